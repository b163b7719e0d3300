"""Autoregressive and joint video samplers: plain functions over a noise-prediction callable.

They drive any diffusers scheduler (DDIM, DPM-Solver++, Euler, UniPC, ...) through its public API
(`set_timesteps`, `init_noise_sigma`, `scale_model_input`, `step`, `add_noise`) and know nothing of
pipelines, text encoders or guidance: those live in the callables they are given.

- Autoregressive (DESIGN.md, seed §1.1): frame i is an ordinary diffusion sample whose model is conditioned on
  a window of clean previous frames (the anchor frame 0 and the last K). The model for frame i is built
  once — `frame_model(context)` — so everything derived from the context is computed once per frame.
- Joint (seed §1.2/§2.1): one scheduler runs over the whole video tensor; the video model predicts every
  frame's noise given the other frames at the same step. Stacking the per-frame conditional scores gives the
  exact joint score, since ∇_{x^i} log p(x) = ∇_{x^i} log p(x^i | x^{-i}).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Iterator

import torch
from diffusers.utils.torch_utils import randn_tensor

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, t) → model output (ε, v, ...)


class Mode(str, Enum):
    AUTOREGRESSIVE = "autoregressive"
    JOINT = "joint"


class Start(str, Enum):
    """Where an autoregressive frame starts: pure noise, the forward marginal α_T x^{i−1} + σ_T z, or that of
    the previous frame carried on by the frame's denoiser (`denoiser.carry(x^{i−1})`, when it has one: an
    adapter with a displacement field warps x^{i−1} by it)."""
    NOISE = "noise"
    PREVIOUS = "previous"
    CARRY = "carry"


def score_from_eps(eps: torch.Tensor, sigma) -> torch.Tensor:
    """∇ log p_t(x_t) = −E[ε | x_t] / σ_t (Tweedie). The seed's eq. (4) divides by σ_t²: a slip."""
    return -eps / sigma


def eps_from_score(score: torch.Tensor, sigma) -> torch.Tensor:
    """Inverse of `score_from_eps`: the noise prediction whose score is `score`."""
    return -sigma * score


def vp_noise(x: torch.Tensor, noise: torch.Tensor, alphas_cumprod: torch.Tensor, t) -> torch.Tensor:
    """Variance-preserving forward process α_t x + σ_t ε at integer training timestep(s) `t`."""
    abar = alphas_cumprod.to(x.device)[torch.as_tensor(t, device=x.device).long()].to(x.dtype)
    while abar.ndim < x.ndim:
        abar = abar[..., None]
    return abar.sqrt() * x + (1 - abar).sqrt() * noise


def context_window(i: int, window: int) -> list[int]:
    """Autoregressive context of frame i: the anchor (frame 0) and the last `window` frames before i."""
    return sorted({0} | set(range(max(0, i - window), i))) if i > 0 else []


def joint_window(i: int, num_frames: int, window: int | None = None) -> list[int]:
    """Joint context of frame i: every other frame, or the anchor and the `window` nearest others.

    With a window the joint score is no longer exact (noisy conditionals are dense even for Markov videos).
    """
    others = [j for j in range(num_frames) if j != i]
    if window is None or window >= len(others):
        return others
    nearest = sorted(others, key=lambda j: (abs(j - i), j))[:window]
    return sorted(set(nearest) | ({0} if i != 0 else set()))


@dataclass
class FrameContext:
    """Context frames for a batch of target frames, padded to a common length k."""
    frames: torch.Tensor  # (b, k, c, h, w)
    offsets: torch.Tensor  # (b, k) long: j − i
    anchor: torch.Tensor  # (b, k) bool: j is frame 0
    levels: torch.Tensor  # (b, k) noise level (training timestep) of each context frame
    mask: torch.Tensor  # (b, k) bool: slot holds a frame

    @classmethod
    def make(cls, frames: torch.Tensor, indices: list[int], target: int, levels, k: int | None = None):
        """`frames` (b, len(indices), c, h, w) are frames `indices` of the video; pad to `k` slots."""
        b, n = frames.shape[:2]
        k = n if k is None else k
        pad = k - n
        dev = frames.device
        frames = torch.cat([frames, frames.new_zeros(b, pad, *frames.shape[2:])], dim=1)
        idx = torch.tensor(indices + [0] * pad, device=dev, dtype=torch.long)
        mask = torch.arange(k, device=dev) < n
        levels = torch.as_tensor(levels, device=dev, dtype=torch.float32).expand(b, n)
        return cls(frames, (idx - target).expand(b, k), ((idx == 0) & mask).expand(b, k),
                   torch.cat([levels, levels.new_zeros(b, pad)], dim=1), mask.expand(b, k))

    @classmethod
    def cat(cls, parts: list["FrameContext"]) -> "FrameContext":
        return cls(*(torch.cat([getattr(p, f) for p in parts]) for f in
                     ("frames", "offsets", "anchor", "levels", "mask")))

    def as_args(self) -> tuple:
        return self.frames, self.offsets, self.anchor, self.levels, self.mask

    def repeat(self, n: int) -> "FrameContext":
        """Repeat the batch n times (one copy per guidance branch)."""
        return FrameContext(*(t.repeat(n, *([1] * (t.ndim - 1))) for t in self.as_args()))


def joint_context(video: torch.Tensor, level, window: int | None = None) -> FrameContext:
    """Context of every frame given the others at the same noise level; batch order (b f)."""
    b, f = video.shape[:2]
    windows = [joint_window(i, f, window) for i in range(f)]
    k = max((len(w) for w in windows), default=0)
    parts = [FrameContext.make(video[:, w], w, i, level, k) for i, w in enumerate(windows)]
    ctx = FrameContext.cat(parts)  # (f b) order
    order = torch.arange(b * f).reshape(f, b).T.reshape(-1)  # → (b f)
    return FrameContext(*(t[order] for t in ctx.as_args()))


def start_latent(scheduler, shape, guess: torch.Tensor | None, generator, device, dtype,
                 first: int = 0) -> torch.Tensor:
    """Pure noise (× init_noise_sigma), or the scheduler's own forward marginal of `guess` at its step `first`."""
    z = randn_tensor(tuple(shape), generator=generator, device=torch.device(device), dtype=dtype)
    if guess is None:
        return z * scheduler.init_noise_sigma
    return scheduler.add_noise(guess, z, scheduler.timesteps[first:first + 1])


def first_step(num_steps: int, strength: float) -> int:
    """The step a guessed frame starts at when it runs `strength` of the schedule (SDEdit): at least one step."""
    return min(int(round(num_steps * (1 - strength))), num_steps - 1)


def redraw_later(num_steps: int, strength: float, redraws: int, j: int) -> int:
    """How many steps later than a guessed frame's first draw its j-th redraw (of `redraws`) starts: the redraws
    start evenly spaced between the first draw's step and the end of the schedule (8 steps at strength 0.75, the
    first draw running 6: two redraws run 4 and 2), keeping more of the guess each time."""
    return round(j * (num_steps - first_step(num_steps, strength)) / (redraws + 1))


def denoise(model: Denoiser, scheduler, x: torch.Tensor, generator=None, first: int = 0) -> torch.Tensor:
    """Run `scheduler` from `x` over its current timesteps from step `first` on, with `model`."""
    extra = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(first * scheduler.order)
    for t in scheduler.timesteps[first * scheduler.order:]:
        out = model(scheduler.scale_model_input(x, t), t)
        x = scheduler.step(out, t, x, **extra).prev_sample
    return x


def guess_from(denoiser, previous: torch.Tensor | None, start: Start | str) -> torch.Tensor | None:
    """The guess an autoregressive frame starts from (`Start`): none, the frame before, or the frame before carried
    on by the frame's denoiser (`denoiser.carry`, when it has one; else the frame before as it is)."""
    if previous is None or Start(start) is Start.NOISE:
        return None
    carry = getattr(denoiser, "carry", None) if Start(start) is Start.CARRY else None
    return previous if carry is None else carry(previous)


def sample_frame(denoiser: Denoiser, scheduler, shape, num_steps: int, guess: torch.Tensor | None,
                 strength: float = 1.0, generator=None, device="cpu", dtype=torch.float32,
                 later: int = 0) -> torch.Tensor:
    """One frame: `scheduler` (timesteps set for `num_steps`) from pure noise, or from the forward marginal of
    `guess` over the last `strength` of the schedule, less `later` steps (at least one step runs)."""
    first = 0 if guess is None else min(first_step(num_steps, strength) + later, num_steps - 1)
    return denoise(denoiser, scheduler, start_latent(scheduler, shape, guess, generator, device, dtype, first),
                   generator, first)


ERROR_LEVELS = tuple(range(50, 1000, 100))  # training timesteps at which `denoising_error` noises a sample


def denoising_error(model: Denoiser, x0: torch.Tensor, alphas_cumprod: torch.Tensor, prediction_type: str = "epsilon",
                    levels=ERROR_LEVELS, generator=None) -> torch.Tensor:
    """Per sample of x0 (k, c, h, w): the model's mean squared error at predicting its own target (ε, or v for
    `v_prediction`) from x0 noised to each of `levels` (one noise per level, shared by all k, so that samples
    are compared on the same noise) → (k,). A Monte Carlo estimate of the diffusion training loss, whose
    weighted form bounds −log p(x0): lower, the model finds x0 more likely (a proxy, as in diffusion
    classifiers)."""
    k, n = x0.shape[0], len(levels)
    t = torch.tensor(levels, device=x0.device)
    a = alphas_cumprod.to(x0.device, torch.float32)[t].view(1, n, 1, 1, 1).to(x0.dtype)
    noise = randn_tensor((1, n, *x0.shape[1:]), generator=generator, device=x0.device, dtype=x0.dtype)
    xt = a.sqrt() * x0[:, None] + (1 - a).sqrt() * noise  # (k, n, c, h, w)
    target = noise if prediction_type == "epsilon" else a.sqrt() * noise - (1 - a).sqrt() * x0[:, None]
    out = model(xt.flatten(0, 1), t.repeat(k)).view(k, n, *x0.shape[1:])
    return ((out - target.expand_as(out)) ** 2).mean(dim=(1, 2, 3, 4))


def first_within(error: torch.Tensor, margin: float = 0.0) -> int:
    """The index of the first sample whose `denoising_error` is within (1 + margin) of the lowest (0: the
    lowest): a pick among candidates that keeps the draw order unless a sample is clearly less likely."""
    return int((error <= (1 + margin) * error.min()).nonzero()[0, 0])


def best_of(draw: Callable[[int], torch.Tensor], judge: Callable[[torch.Tensor], float], first: torch.Tensor,
            redraws: int, reset: Callable[[], None]) -> torch.Tensor:
    """`first`, or while the best draw so far is judged above 0, up to `redraws` more draws, the j-th by
    `draw(j)` (`reset` before each: a multistep scheduler keeps history); the lowest judged is kept (the earliest
    of equals)."""
    best, score = first, judge(first)
    for j in range(1, redraws + 1):
        if score <= 0:
            break
        reset()
        x = draw(j)
        value = judge(x)
        if value < score:
            best, score = x, value
    return best


def sample_autoregressive(frame_model: Callable[[FrameContext], Denoiser], scheduler, shape, num_frames: int,
                          num_steps: int, *, window: int = 4, start: Start | Callable = Start.NOISE,
                          strength: float = 1.0, context_level: int = 0, prefix: torch.Tensor | None = None,
                          judge: Callable[[torch.Tensor, torch.Tensor], float] | None = None, redraws: int = 0,
                          generator=None, device="cpu", dtype=torch.float32) -> Iterator[torch.Tensor]:
    """Yield frames (b, c, h, w) one at a time; memory is flat in `num_frames`.

    Args:
        frame_model: context → denoiser for one frame. Called once per frame; the denoiser is called per step.
        scheduler: any diffusers scheduler; `set_timesteps` is called for each frame (resets multistep history).
        shape: (b, c, h, w) of one frame.
        window (int, default 4): K, the number of most recent frames in the context (plus the anchor).
        start: `Start.NOISE`, `Start.PREVIOUS`, `Start.CARRY`, or a callable (i, history) → a guess of x^i (or
            None).
        strength (float, default 1): the share of the schedule a frame with a guess runs (SDEdit); below 1 it
            starts at a later, less noisy step, keeping more of the guess. Frames without a guess run it all.
        context_level (int, default 0): context noise augmentation: context frames are noised to this
            training timestep, with noise drawn once per frame (0 = clean context, exact conditionals).
        prefix: (b, p, c, h, w) given frames (an image, a clip to continue); they open the video.
        judge, redraws: a frame drawn from a guess is drawn again with new noise, up to `redraws` times, while
            `judge(guess, frame)` (how far it falls short, 0 = fine) of the best draw so far is above 0, the
            redraws starting evenly spaced between the first draw's step and the schedule's end
            (`redraw_later`: each keeps more of the guess); the draw it judges best is kept (`redraw`).
    """
    history: dict[int, torch.Tensor] = {}
    num_given = 0 if prefix is None else prefix.shape[1]
    for i in range(num_frames):
        if i < num_given:
            x = prefix[:, i].to(device, dtype)
        else:
            scheduler.set_timesteps(num_steps, device=device)
            idx = context_window(i, window)
            frames = torch.stack([history[j] for j in idx], dim=1) if idx else torch.zeros(
                shape[0], 0, *shape[1:], device=device, dtype=dtype)
            if context_level > 0 and idx:
                noise = randn_tensor(tuple(frames.shape), generator=generator, device=torch.device(device),
                                     dtype=dtype)
                frames = vp_noise(frames, noise, scheduler.alphas_cumprod, context_level)
            denoiser = frame_model(FrameContext.make(frames, idx, i, float(context_level)))
            guess = start(i, history) if callable(start) and not isinstance(start, Start) else \
                guess_from(denoiser, history.get(i - 1), start)
            draw = lambda later=0: sample_frame(denoiser, scheduler, shape, num_steps, guess,  # noqa: E731
                                                strength, generator, device, dtype, later)
            x = draw()
            if judge is not None and guess is not None and redraws > 0:
                x = best_of(lambda j: draw(redraw_later(num_steps, strength, redraws, j)),
                            lambda y: judge(guess, y), x, redraws,
                            lambda: scheduler.set_timesteps(num_steps, device=device))
        history[i] = x
        keep = set(context_window(i + 1, window))
        for j in [j for j in history if j not in keep]:
            del history[j]
        yield x


def sample_joint(video_model: Denoiser, scheduler, shape, num_steps: int, *, generator=None,
                 guess: torch.Tensor | None = None, device="cpu", dtype=torch.float32) -> torch.Tensor:
    """All frames (b, f, c, h, w) step together through one scheduler; `video_model(x, t)` predicts each
    frame given the others. Starts from pure noise, or from the forward marginal of `guess`."""
    scheduler.set_timesteps(num_steps, device=device)
    x = start_latent(scheduler, shape, guess, generator, device, dtype)
    return denoise(video_model, scheduler, x, generator)
