"""The samplers against a Gaussian AR(1) video whose noise predictions are known in closed form (no network).

Each check compares mean, per-frame variance and lag-1 correlation of many sampled videos with the truth,
within the measured discretisation bias plus Monte-Carlo error (see `gaussian.check_stats`), and each planted
bug below must make the same check fail.
"""

import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

from vidgen import sampling

from .gaussian import ARGaussian, AROracle, JointOracle, alpha_sigma, check_stats, truth_stats, video_stats

SCHEDULE = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1)
SCHEDULERS = {
    "ddim": lambda: DDIMScheduler(**SCHEDULE, clip_sample=False, set_alpha_to_one=False),
    "dpm++": lambda: DPMSolverMultistepScheduler(**SCHEDULE, algorithm_type="dpmsolver++"),
}
G = ARGaussian(mu=0.5, v=0.6, rho=0.8)
STEPS, FRAMES, WINDOW, SHAPE = 100, 6, 3, (64, 4, 8, 8)  # 16,384 independent chains per frame


def run_autoregressive(scheduler, steps, level=0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    oracle = AROracle(G, scheduler)
    frames = sampling.sample_autoregressive(oracle, scheduler, SHAPE, FRAMES, steps, window=WINDOW,
                                            start=oracle.exact_start(gen), context_level=level, generator=gen)
    return torch.stack(list(frames), dim=1)


def run_joint(scheduler, steps, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shape = (SHAPE[0], FRAMES, *SHAPE[1:])
    return sampling.sample_joint(JointOracle(G, scheduler), scheduler, shape, steps, generator=gen,
                                 guess=G.sample(shape, gen).float())


def violations(run, scheduler, truth, **kw) -> list[str]:
    stats = video_stats(run(scheduler, STEPS, **kw))
    fine = video_stats(run(scheduler, 4 * STEPS, **kw))
    return check_stats(stats, fine, truth, stats["n"], G)


def ar_truth(level=0):
    ac, sc = alpha_sigma(SCHEDULERS["ddim"](), level) if level else (1.0, 0.0)
    return truth_stats(G, G.sampler_truth(FRAMES, WINDOW, ac, sc))


def test_score_is_minus_eps_over_sigma():
    """E[ε | x_t] regressed from samples of a Gaussian, turned into a score, matches the closed-form score."""
    gen = torch.Generator().manual_seed(0)
    mu, v, n = 0.5, 0.6, 400_000
    for abar in (0.9, 0.5, 0.05):
        a, s = abar ** 0.5, (1 - abar) ** 0.5
        x0 = mu + v ** 0.5 * torch.randn(n, generator=gen, dtype=torch.float64)
        eps = torch.randn(n, generator=gen, dtype=torch.float64)
        xt = a * x0 + s * eps
        slope = ((xt - xt.mean()) * (eps - eps.mean())).mean() / xt.var()  # E[ε|x_t] is linear in x_t
        probe = torch.linspace(-2, 2, 9, dtype=torch.float64)
        eps_hat = slope * (probe - a * mu)
        closed_form = -(probe - a * mu) / (a ** 2 * v + s ** 2)
        assert torch.allclose(sampling.score_from_eps(eps_hat, s), closed_form, rtol=0.02, atol=1e-3)
        if s < 0.8:  # the seed's eq. (4) is off by a factor 1/σ_t
            assert not torch.allclose(-eps_hat / s ** 2, closed_form, rtol=0.1)
        assert torch.allclose(sampling.eps_from_score(closed_form, s), slope * (probe - a * mu), rtol=0.02)


def test_joint_score_is_stack_of_conditional_scores():
    """∇_{x^i} log p(x_t) = ∇_{x^i} log p(x_t^i | x_t^{-i}), exactly (float64)."""
    scheduler = SCHEDULERS["ddim"]()
    x = G.sample((3, FRAMES, 2, 2, 2), torch.Generator().manual_seed(1)) * 1.3
    oracle = JointOracle(G, scheduler)
    for t in (999, 500, 20):
        a, s = alpha_sigma(scheduler, t)
        xt = a * x + s * torch.randn(x.shape, generator=torch.Generator().manual_seed(t), dtype=torch.float64)
        assert torch.allclose(oracle.conditional_scores(xt, t), oracle.joint_score(xt, t), atol=1e-9)


def test_augmented_truth_matches_design_formula():
    """With one noisy context frame the lag-1 correlation is ρ α_s² v / (α_s² v + σ_s²) (DESIGN.md)."""
    ac, sc = alpha_sigma(SCHEDULERS["ddim"](), 300)
    K = G.sampler_truth(2, 1, ac, sc)
    want = G.rho * ac ** 2 * G.v / (ac ** 2 * G.v + sc ** 2)
    assert abs(float(K[0, 1] / (K[0, 0] * K[1, 1]).sqrt()) - want) < 1e-12
    assert torch.allclose(G.sampler_truth(FRAMES, WINDOW), G.cov(torch.arange(FRAMES), torch.arange(FRAMES)))


@pytest.mark.parametrize("name", SCHEDULERS)
def test_autoregressive_matches_truth(name):
    assert violations(run_autoregressive, SCHEDULERS[name](), ar_truth()) == []


@pytest.mark.parametrize("name", SCHEDULERS)
def test_autoregressive_with_context_noise_matches_its_smaller_correlation(name):
    truth = ar_truth(level=300)
    assert (truth["corr"] < G.rho - 0.2).all()
    assert violations(run_autoregressive, SCHEDULERS[name](), truth, level=300) == []


@pytest.mark.parametrize("name", SCHEDULERS)
def test_joint_matches_truth(name):
    assert violations(run_joint, SCHEDULERS[name](), ar_truth()) == []


# ---- planted bugs: the same checks must catch them -------------------------------------------------------

def test_catches_score_divided_by_sigma_squared(monkeypatch):
    monkeypatch.setattr(sampling, "eps_from_score", lambda score, sigma: -sigma ** 2 * score)
    assert violations(run_autoregressive, SCHEDULERS["ddim"](), ar_truth()) != []
    assert violations(run_joint, SCHEDULERS["ddim"](), ar_truth()) != []


def stale(base):
    """A scheduler whose `set_timesteps` after the first keeps the solver history (only the index restarts)."""
    class Stale(base):
        def set_timesteps(self, *args, **kwargs):
            kept = (list(self.model_outputs), self.lower_order_nums) if getattr(self, "_started", False) else None
            super().set_timesteps(*args, **kwargs)
            if kept:
                self.model_outputs, self.lower_order_nums = kept
            self._started = True
    return Stale


def once(base):
    """A scheduler whose `set_timesteps` works only once: the sampler forgetting it between frames."""
    class Once(base):
        def set_timesteps(self, *args, **kwargs):
            if not getattr(self, "_started", False):
                super().set_timesteps(*args, **kwargs)
            self._started = True
    return Once


@pytest.mark.parametrize("make", [lambda: stale(DPMSolverMultistepScheduler)(**SCHEDULE, solver_order=3),
                                  lambda: once(DPMSolverMultistepScheduler)(**SCHEDULE)], ids=["stale", "once"])
def test_catches_multistep_state_reused_across_frames(make):
    """Note: with diffusers' 2nd-order DPM-Solver++ and UniPC a stale history entry gets zero weight at the
    first step (it sits at σ = 0, λ = ∞), so only the 3rd-order solver shows it in the statistics."""
    try:
        bad = violations(run_autoregressive, make(), ar_truth())
    except IndexError:  # the step index runs past the schedule on the second frame
        bad = ["crashed"]
    assert bad != []


def test_catches_wrong_context_frame(monkeypatch):
    """Context frames handed over in the wrong order for their positions (a gather/offset mix-up)."""
    real = sampling.FrameContext.make.__func__
    monkeypatch.setattr(sampling.FrameContext, "make", classmethod(
        lambda cls, frames, indices, target, levels, k=None: real(cls, frames.flip(1), indices, target, levels, k)))
    assert violations(run_autoregressive, SCHEDULERS["ddim"](), ar_truth()) != []


def test_carry_start_with_strength_runs_the_last_steps_from_the_carried_frame():
    """A model that predicts no noise makes DDIM return x_first / α_first: frame 1, started from its denoiser's
    carried guess at step `first_step(4, 0.5)` = 2, comes out as carry(frame 0) + (σ/α at that step) · z, with z
    the second draw of the generator; frame 0 (no guess) runs all four steps."""
    scheduler = DDIMScheduler(**SCHEDULE, clip_sample=False, set_alpha_to_one=True)  # ends at α = 1
    calls = []

    def frame_model(ctx):
        def denoiser(x, t):
            calls.append((int(ctx.offsets.shape[1]), int(t)))
            return torch.zeros_like(x)
        denoiser.carry = lambda previous: 2 * previous + 1
        return denoiser

    shape = (1, 1, 2, 2)
    frames = list(sampling.sample_autoregressive(frame_model, scheduler, shape, 2, 4, start=sampling.Start.CARRY,
                                                 strength=0.5, generator=torch.Generator().manual_seed(0)))
    scheduler.set_timesteps(4)
    steps = scheduler.timesteps.tolist()
    assert sampling.first_step(4, 0.5) == 2 and calls == [(0, t) for t in steps] + [(1, t) for t in steps[2:]]
    gen = torch.Generator().manual_seed(0)
    torch.randn(shape, generator=gen)  # frame 0's draw
    z = torch.randn(shape, generator=gen)
    a, s = alpha_sigma(scheduler, steps[2])
    assert torch.allclose(frames[1], 2 * frames[0] + 1 + s / a * z, atol=1e-5)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_denoising_error_is_zero_for_the_sample_an_oracle_knows_and_grows_with_distance(prediction_type):
    """An oracle that knows x* predicts the target exactly for x* noised at any level, so x* scores 0; a sample
    x* + d scores mean_t(g_t) · mean(d²), with g_t = a_t / (1 − a_t) for ε and 1 / (1 − a_t) for v."""
    scheduler = DDIMScheduler(**SCHEDULE)
    ac = scheduler.alphas_cumprod
    g = torch.Generator().manual_seed(0)
    best = torch.randn(1, 2, 3, 3, generator=g)
    step = torch.randn(1, 2, 3, 3, generator=g)
    samples = torch.cat([best + step, best, best - 2 * step])

    def oracle(x, t):
        a = ac[t].view(-1, 1, 1, 1)
        eps = (x - a.sqrt() * best) / (1 - a).sqrt()
        return eps if prediction_type == "epsilon" else a.sqrt() * eps - (1 - a).sqrt() * best

    levels = (100, 500, 900)
    error = sampling.denoising_error(oracle, samples, ac, prediction_type, levels, generator=g)
    a = ac[list(levels)]
    # ε: ε̂ − ε = √a (x − x*) / √(1 − a); v: v̂ − v = √a (ε̂ − ε) + √(1 − a) (x − x*) = (x − x*) / √(1 − a)
    gain = a / (1 - a) if prediction_type == "epsilon" else 1 / (1 - a)
    expected = torch.stack([gain.mean() * (d ** 2).mean() for d in (step, 0 * step, 2 * step)])
    assert torch.allclose(error, expected, rtol=1e-4, atol=1e-6) and int(error.argmin()) == 1


def test_first_within_keeps_the_first_drawn_near_enough_to_the_lowest():
    error = torch.tensor([2.0, 0.5, 1.0])
    assert [sampling.first_within(error, m) for m in (0.0, 1.0, 3.0)] == [1, 1, 0]  # thresholds 0.5, 1.0, 2.0
    assert sampling.first_within(torch.tensor([1.0, 0.5]), 1.0) == 0
