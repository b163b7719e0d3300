"""Preference pairs for the base model: a right frame and the same frame drawn with the base's own mistakes.

The base's mistakes on two-object captions are countable, not visible in its training loss: it draws an extra
copy of an object (its main mistake), drops one, or gives both objects one colour (the leak), or swaps the
colours. The shapes world renders each of these exactly, so every training frame has a loser on demand: the
same scene and places with one such flaw. Diffusion-DPO (Wallace et al. 2023, "Diffusion Model Alignment Using
Direct Preference Optimization") then trains the model to find the right frame likelier than the flawed one
under the caption, measured against a frozen reference (the model it starts from):

    L = −log σ(−β/2 · [(‖ε − ε_θ(x_w)‖² − ‖ε − ε_ref(x_w)‖²) − (‖ε − ε_θ(x_l)‖² − ‖ε − ε_ref(x_l)‖²)])

with one noise ε and one level t shared by the pair, and the errors the mean over the latent. Plain DPO
widens the gap by making the model worse at winners too (measured: the ordinary loss doubled); `anchor` adds
DPO-Positive's term against that.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from ..data.shapes import SHAPES, SIZES, Scene, make_video, render

FLAWS = ("copy", "missing", "leak", "swap")  # what a loser gets; a one-object scene can only get a copy
FLAW_WEIGHTS = (0.5, 1 / 6, 1 / 6, 1 / 6)  # copies are the base's commonest mistake


def extra_copy(scene: Scene, centres: list[np.ndarray], rng: np.random.Generator, canvas: int):
    """The scene with a third object in one caption object's colour (half the time its very copy), placed
    where it overlaps neither of the others where possible."""
    source = scene.objects[int(rng.integers(len(scene.objects)))]
    copy = source if rng.random() < 0.5 else dataclasses.replace(
        source, shape=str(rng.choice(SHAPES)), size=str(rng.choice(list(SIZES))))
    h = copy.half_extent(canvas)
    best, best_gap = None, -np.inf
    for _ in range(50):
        at = rng.uniform(h, canvas - h, size=2)
        gap = min(np.linalg.norm(at - c) - (h + o.half_extent(canvas)) * np.sqrt(2)
                  for o, c in zip(scene.objects, centres))
        if gap > best_gap:
            best, best_gap = at, gap
        if gap > 0:
            break
    return dataclasses.replace(scene, objects=(*scene.objects, copy)), [*centres, best]


def flawed(scene: Scene, centres: list[np.ndarray], flaw: str, rng: np.random.Generator, canvas: int):
    """(scene, centres) with one mistake of kind `flaw` (FLAWS)."""
    if flaw == "copy":
        return extra_copy(scene, centres, rng, canvas)
    a, b = scene.objects
    k = int(rng.integers(2))
    if flaw == "missing":
        return dataclasses.replace(scene, objects=(scene.objects[k],)), [centres[k]]
    if flaw == "leak":  # object k takes the other's colour
        other = scene.objects[1 - k].colour
        objects = [dataclasses.replace(o, colour=other) if i == k else o for i, o in enumerate(scene.objects)]
        return dataclasses.replace(scene, objects=tuple(objects)), centres
    if flaw == "swap":
        return dataclasses.replace(scene, objects=(dataclasses.replace(a, colour=b.colour),
                                                   dataclasses.replace(b, colour=a.colour))), centres
    raise ValueError(flaw)


def make_pair(seed: int, pair_share: float, canvas: int = 64) -> tuple[np.ndarray, np.ndarray, Scene, str]:
    """(right frame, flawed frame, scene, flaw), deterministic in `seed`: a frame of a shapes video whose scene
    holds two objects with probability `pair_share` (else one)."""
    rng = np.random.default_rng([seed, 7])
    want = 2 if rng.random() < pair_share else 1
    while True:
        video, scene, paths = make_video(int(rng.integers(2 ** 31)), frames=8, canvas=canvas)
        if len(scene.objects) == want:
            break
    j = int(rng.integers(8))
    centres = [p[j] for p in paths]
    flaw = "copy" if want == 1 else str(rng.choice(FLAWS, p=FLAW_WEIGHTS))
    loser, at = flawed(scene, centres, flaw, rng, canvas)
    return video[j], render(loser, [c[None] for c in at], canvas)[0], scene, flaw


def errors(model, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, alphas_cumprod: torch.Tensor,
           ids: torch.Tensor) -> torch.Tensor:
    """Per sample of x0 (n, c, h, w): the mean squared error of `model` (x_t, t, ids) → ε at predicting `noise`
    from x0 noised with it to level t."""
    a = alphas_cumprod[t].view(-1, 1, 1, 1)
    return F.mse_loss(model(a.sqrt() * x0 + (1 - a).sqrt() * noise, t, ids), noise,
                      reduction="none").mean(dim=(1, 2, 3))


def dpo_loss(model, reference, x_w: torch.Tensor, x_l: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
             alphas_cumprod: torch.Tensor, ids: torch.Tensor, beta: float,
             anchor: float = 0.0) -> tuple[torch.Tensor, float]:
    """The Diffusion-DPO loss of pairs (winner x_w, loser x_l; clean latents (P, c, h, w)) and the share of pairs
    where the model already prefers the winner more than the reference does. With `anchor` λ > 0, the winner's
    error rising above the reference's counts λ times against the pair (DPO-Positive, Pal et al. 2024): plain
    DPO can widen the gap by making the model worse at both."""
    pair = (torch.cat([x_w, x_l]), t.repeat(2), torch.cat([noise, noise]), alphas_cumprod, ids.repeat(2, 1))
    err = errors(model, *pair)
    with torch.no_grad():
        ref = errors(reference, *pair)
    w, l = (err - ref).chunk(2)
    inside = -0.5 * beta * (w - l + anchor * w.clamp(min=0))
    return -F.logsigmoid(inside).mean(), float((inside > 0).float().mean())

