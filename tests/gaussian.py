"""A Gaussian AR(1) video with closed-form noise predictions, to drive the real samplers with no network.

Per coordinate, frames follow x^1 ~ N(μ, v), x^i = μ + ρ (x^{i−1} − μ) + √(v(1−ρ²)) ξ, so the clean video is
N(μ1, Σ) with Σ_ab = v ρ^|a−b|. Every oracle below is exact Gaussian conditioning on whatever context frames
the sampler hands it (their positions come from the offsets), written as a closed-form score and turned into a
noise prediction with the library's `eps_from_score`, so a slip in that conversion shows up in the samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vidgen import sampling
from vidgen.sampling import FrameContext


@dataclass
class ARGaussian:
    mu: float = 0.5
    v: float = 0.6
    rho: float = 0.8

    def cov(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.v * self.rho ** (a[:, None] - b[None, :]).abs().double()

    def conditional(self, positions: torch.Tensor, target: int, alpha_c: float, sigma_c: float):
        """Weights w and variance s² of x^target | context y_j = α_c x^{p_j} + σ_c η_j:
        E = μ + Σ_j w_j (y_j − α_c μ)."""
        if len(positions) == 0:
            return torch.zeros(0, dtype=torch.float64), self.v
        C = alpha_c ** 2 * self.cov(positions, positions) + sigma_c ** 2 * torch.eye(len(positions), dtype=torch.float64)
        c = alpha_c * self.cov(torch.tensor([target]), positions)[0]
        w = torch.linalg.solve(C, c)
        return w, self.v - float(c @ w)

    def sampler_truth(self, num_frames: int, window: int, alpha_c: float = 1.0, sigma_c: float = 0.0):
        """Exact covariance of what the autoregressive sampler draws when each frame is drawn from the true
        conditional given its (noise-augmented) context window: a linear-Gaussian recursion. With a clean
        context it is Σ itself; with augmentation it is the biased process the sampler really targets."""
        K = torch.zeros(num_frames, num_frames, dtype=torch.float64)
        for i in range(num_frames):
            idx = sampling.context_window(i, window)
            w, s2 = self.conditional(torch.tensor(idx), i, alpha_c, sigma_c)
            for a in range(i):
                K[i, a] = K[a, i] = alpha_c * sum(float(wj) * K[j, a] for wj, j in zip(w, idx))
            Kc = alpha_c ** 2 * K[idx][:, idx] + sigma_c ** 2 * torch.eye(len(idx), dtype=torch.float64)
            K[i, i] = s2 + float(w @ Kc @ w) if len(idx) else self.v
        return K

    def sample(self, shape, generator) -> torch.Tensor:
        """Clean videos (b, f, c, h, w)."""
        b, f = shape[:2]
        x = torch.empty(shape, dtype=torch.float64)
        x[:, 0] = self.mu + self.v ** 0.5 * torch.randn(x[:, 0].shape, generator=generator, dtype=torch.float64)
        for i in range(1, f):
            innov = torch.randn(x[:, i].shape, generator=generator, dtype=torch.float64)
            x[:, i] = self.mu + self.rho * (x[:, i - 1] - self.mu) + (self.v * (1 - self.rho ** 2)) ** 0.5 * innov
        return x


def alpha_sigma(scheduler, t) -> tuple[float, float]:
    abar = float(scheduler.alphas_cumprod[int(t)])
    return abar ** 0.5, (1 - abar) ** 0.5


class AROracle:
    """`frame_model` for `sample_autoregressive`: the exact conditional noise prediction given the context."""

    def __init__(self, g: ARGaussian, scheduler):
        self.g, self.scheduler = g, scheduler
        self.last = None  # (mean, var) of the clean target given the last context: for an exact start

    def __call__(self, ctx: FrameContext):
        positions = ctx.offsets[0][ctx.mask[0]]  # positions relative to the target
        level = float(ctx.levels[0, 0]) if len(positions) else 0.0
        ac, sc = alpha_sigma(self.scheduler, level) if level > 0 else (1.0, 0.0)
        w, s2 = self.g.conditional(positions, 0, ac, sc)
        y = ctx.frames[:, : len(positions)].double()
        mean = self.g.mu + torch.einsum("k,bk...->b...", w, y - ac * self.g.mu)
        self.last = (mean, s2)

        def denoise(x, t):
            a, s = alpha_sigma(self.scheduler, t)
            score = -(x.double() - a * mean) / (a ** 2 * s2 + s ** 2)
            return sampling.eps_from_score(score, s).to(x.dtype)

        return denoise

    def exact_start(self, generator):
        """`start` callable: a draw from the true conditional, so x_T has the exact marginal."""
        def start(i, history):
            mean, s2 = self.last
            return (mean + s2 ** 0.5 * torch.randn(mean.shape, generator=generator, dtype=torch.float64)).float()
        return start


class JointOracle:
    """`video_model` for `sample_joint`: each frame's exact conditional given the other noisy frames."""

    def __init__(self, g: ARGaussian, scheduler, window: int | None = None):
        self.g, self.scheduler, self.window = g, scheduler, window

    def conditional_scores(self, x: torch.Tensor, t) -> torch.Tensor:
        a, s = alpha_sigma(self.scheduler, t)
        b, f = x.shape[:2]
        ctx = sampling.joint_context(x.double(), float(t), self.window)  # batch (b f)
        scores = torch.empty_like(x, dtype=torch.float64)
        for i in range(f):
            rows = torch.arange(b) * f + i
            positions = ctx.offsets[rows[0]][ctx.mask[rows[0]]] + i
            C = a ** 2 * self.g.cov(positions, positions) + s ** 2 * torch.eye(len(positions), dtype=torch.float64)
            c = a ** 2 * self.g.cov(torch.tensor([i]), positions)[0]
            w = torch.linalg.solve(C, c)
            var = a ** 2 * self.g.v + s ** 2 - float(c @ w)
            y = ctx.frames[rows, : len(positions)]
            mean = a * self.g.mu + torch.einsum("k,bk...->b...", w, y - a * self.g.mu)
            scores[:, i] = -(x[:, i].double() - mean) / var
        return scores

    def joint_score(self, x: torch.Tensor, t) -> torch.Tensor:
        """The closed-form joint score −(α²Σ + σ²I)⁻¹ (x − αμ), for the identity check."""
        a, s = alpha_sigma(self.scheduler, t)
        f = x.shape[1]
        pos = torch.arange(f)
        P = torch.linalg.inv(a ** 2 * self.g.cov(pos, pos) + s ** 2 * torch.eye(f, dtype=torch.float64))
        return -torch.einsum("ij,bj...->bi...", P, x.double() - a * self.g.mu)

    def __call__(self, x, t):
        _, s = alpha_sigma(self.scheduler, t)
        return sampling.eps_from_score(self.conditional_scores(x, t), s).to(x.dtype)


def video_stats(video: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean over everything, per-frame variance, lag-1 correlation per consecutive pair (over coordinates)."""
    f = video.shape[1]
    flat = video.double().transpose(0, 1).reshape(f, -1)  # (f, n)
    centred = flat - flat.mean(dim=1, keepdim=True)
    var = centred.pow(2).mean(dim=1)
    corr = (centred[1:] * centred[:-1]).mean(dim=1) / (var[1:] * var[:-1]).sqrt()
    return {"mean": flat.mean(), "var": var, "corr": corr, "n": flat.shape[1]}


def truth_stats(g: ARGaussian, K: torch.Tensor) -> dict:
    """Mean, per-frame variance and lag-1 correlations of N(μ, K)."""
    var = K.diagonal()
    return {"mean": g.mu, "var": var, "corr": K.diagonal(-1) / (var[1:] * var[:-1]).sqrt()}


def check_stats(stats, reference, truth: dict, n: int, g: ARGaussian) -> list[str]:
    """Violations of |stat − truth| ≤ 2·|stat − stat_fine| + 4·SE, where stat_fine comes from the same sampler
    with 4× the steps (the measured discretisation bias) and SE is the Monte-Carlo standard error."""
    corr = torch.as_tensor(truth["corr"])
    se = {"mean": (g.v / n) ** 0.5, "var": (2 / n) ** 0.5 * torch.as_tensor(truth["var"]),
          "corr": (1 - corr ** 2) / n ** 0.5}
    bad = []
    for key in ("mean", "var", "corr"):
        got, fine, want = stats[key], reference[key], torch.as_tensor(truth[key], dtype=torch.float64)
        tol = 2 * (got - fine).abs() + 4 * se[key]
        err = (got - want).abs()
        if not (err <= tol).all():  # NaN counts as a violation
            bad.append(f"{key}: got {got.tolist()}, want {want.tolist()}, tolerance {torch.as_tensor(tol).tolist()}")
    return bad
