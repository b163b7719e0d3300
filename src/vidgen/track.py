"""Keeping objects on their track (`carry_track`): the denoiser's small shifts taken out of the next carry.

The carry moves the frame before by the adapter's displacement, and the denoiser, run from that start at a
share of the steps, draws the frame anew: it puts each object a fraction of a pixel away from where the carry
put it (a few tenths of a pixel per frame on the shapes world, in no fixed direction across the motion). The
next carry starts from that frame, so the shifts add up like a random walk over the video. A track keeper measures
each object's shift between the start a frame was denoised from and the frame that came out (Lucas–Kanade over
the object's region, `region_shift`) and moves the object back by it in the next carry, so that each frame is
off by its own shift alone. An object touching another is left as it is: over their regions the shift of one
cannot be told from the other's, and on held-out prompts such wrong shifts pulled objects apart.

`across` takes out only the part across the object's motion (all of it for a still object): along the motion
the denoiser's shifts are not noise alone: it turns objects at walls the displacement carries into them, and
makes up for a displacement a little short (model-card log, "Keeping objects on their track"). `full` takes out
the whole shift.

Objects and their regions are those of the word binding, as in the layered carry (`layers`): a word some place
takes outright is an object, and the places that take it are its region. A region is much wider than its
object (the places around an object bind its word too), so two objects' regions often meet, and then neither is
kept on its track: telling touching objects by their pixels instead was tried and lost held-out videos (model
card).

Turning at the frame's edge (`bounce`, `carry_bounce`). The shapes world's objects reflect at the frame's edge.
The adapter's free field decides when an object turns, and it foresees a large object's wall less well (right at
64% of large fast objects' bounce steps on real contexts, against 92% of small ones'): the carry moves the object
into the wall, the denoiser draws it pressed there, and it turns one to three frames late and stays off its path
for the rest of the video. `bounce` reverses, in the carry, the displacement of an object that it would move past
the edge ahead by more than BOUNCE of its step, read off its pixels in the frame before: the carry turns it at
the step whose whole-step turn lands nearest the reflected path. Only fast objects (FAST): where a slow one's
pixels end is known to about its step. Off by default; on in the demo model only together with later text guidance
1.5 (objects at the caption's speed): objects that run ahead of the caption's speed reach the wall early, and
turned there on time they keep the lead after the bounce, where a late turn would have made up for it (model
card, "Objects at the caption's speed, turned at the wall in the carry").
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.nn import functional as F

from .fields import warp
from .layers import objects, past
from .redraw import FAST, STILL, moving_objects

TRACKS = ("none", "across", "full")  # GenerationConfig.carry_track
ITERATIONS = 4  # Lucas–Kanade steps
MAX_SHIFT = 1.5  # image px: a larger shift is no small redraw (an object lost, swapped, or met by another)
BOUNCE = 0.5  # share of its step: `bounce` turns an object that the carry would move this far past the edge ahead


def region_shift(start: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
    """δ (2,) image px (x, y) such that image(p) ≈ start(p − δ) over `mask` (1, 1, H, W): where the object
    `start` (1, 3, H, W) showed there lies in `image`, by Lucas–Kanade; None when the region has no edges to
    tell a shift by, or the shift is above MAX_SHIFT."""
    shift = torch.zeros(2, dtype=start.dtype, device=start.device)
    for _ in range(ITERATIONS):
        moved = warp(start, -shift.view(1, 2, 1, 1).expand(1, 2, *start.shape[-2:]), "bilinear")
        gx = (moved.roll(-1, 3) - moved.roll(1, 3)) / 2
        gy = (moved.roll(-1, 2) - moved.roll(1, 2)) / 2
        rest = (image - moved) * mask
        a = torch.stack([(gx * gx * mask).sum(), (gx * gy * mask).sum(), (gy * gy * mask).sum()])
        normal = torch.stack([a[:2], a[1:]])
        if torch.linalg.det(normal) < 1e-6:
            return None
        # moved(p − Δ) ≈ moved(p) − ∇moved · Δ: the Δ that best explains the rest
        shift = shift - torch.linalg.solve(normal, torch.stack([(gx * rest).sum(), (gy * rest).sum()]))
        if shift.norm() > MAX_SHIFT:
            return None
    return shift


class TrackKeeper:
    """keeper(image, latents, flow) → the displacement (1, 2, H, W) image px, warp's convention (read at p +
    flow) that carries `image` (1, 3, H, W), the frame that came out of the denoiser (its `latents`), onto the
    next frame's start, with each object's shift since its own start taken out; `keeper.started(start)` tells it
    the start the next frame is denoised from. One keeper per video.

    `bind(latents)` → (1, L + 1, h, w): the word field's binding (`WordField.bind`, the still key last)."""

    def __init__(self, bind: Callable[[torch.Tensor], torch.Tensor], mode: str = "across"):
        self.bind = bind
        self.mode = mode
        self.start: torch.Tensor | None = None
        self.shifts: list[list[tuple[float, float]]] = []  # per frame, the shifts taken out (for tests, diagnoses)

    def __call__(self, image: torch.Tensor, latents: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        if self.start is None or self.mode == "none":
            return flow
        weights = self.bind(latents)[0, :-1].to(image.dtype)  # (L, h, w): the still key left out
        regions = objects(weights)
        scale = image.shape[-1] // weights.shape[-1]
        back = torch.zeros_like(flow)  # per place of `image`: the shift to take out where it is read from
        taken = []
        for word, place in regions.items():
            region = place.to(image.dtype)[None, None]
            grown = F.max_pool2d(region, 3, 1, 1)  # one place wider: its edges too
            if any((grown[0, 0].bool() & other).any() for w, other in regions.items() if w != word):
                continue  # touching another object: whose pixels moved where cannot be told apart
            mask = F.interpolate(grown, scale_factor=scale, mode="nearest")
            shift = region_shift(self.start, image, mask)
            if shift is None:
                continue
            up = F.interpolate(region, scale_factor=scale, mode="nearest")
            step = (flow * up).sum((2, 3))[0] / up.sum()
            if self.mode == "across" and step.norm() > STILL:
                along = step / step.norm()
                shift = shift - (shift @ along) * along
            taken.append((float(shift[0]), float(shift[1])))
            back = back + shift.view(1, 2, 1, 1) * mask
        self.shifts.append(taken)
        # the object that now lies δ beyond its start is read δ further on: it lands where the carry meant it to
        return flow + warp(back, flow, "bilinear")

    def started(self, start: torch.Tensor) -> None:
        self.start = start


def bounce(image: torch.Tensor, weights: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """The displacement (1, 2, h, w; latent places, read at p + flow) that carries `image` (1, 3, H, W) on, with
    each object it would move more than BOUNCE of its step past the frame's edge ahead (`layers.past`, over the
    object's pixels and its mean displacement: `redraw.moving_objects`) turned: the displacement reversed where
    the object's words are bound, in proportion to their weight. weights: the frame's binding (L, h, w), still
    key left out."""
    sign = torch.ones_like(flow[:, :1])
    for word, pixels, move in moving_objects(image, weights, flow[0], image.shape[-1] // weights.shape[-1]):
        if float(move.norm()) >= FAST and past(pixels, move) > BOUNCE:
            sign = sign - 2 * weights[word][None, None].to(sign.dtype)
    return flow * sign.to(flow.dtype)
