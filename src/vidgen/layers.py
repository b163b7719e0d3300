"""The layered carry (`carry_space` layered): the image-space carry, plus each object's last full look.

Where two objects overlap, the carried start (the frame before warped by the adapter's displacement) has only
the front one's pixels there, so the hidden object has to be drawn anew when it comes out, and often takes the
other's colour or motion. A layered carry keeps, per object, its pixels from the latest frame that showed it
whole, moves them by the object's own displacement every frame, and lays them under the objects in view.

Objects are what the adapter's word field binds (`WordField.bind`, binding by appearance): a trained field binds
each object to one word of its caption clause with weight about 1 (model card, "Frame 0 picked by the word
binding"), so a word some place takes outright is a layer, and the places that take it most are its region. An
object's pixels are those of its region that differ from the background, the colour of the places bound to no
word outright (a flat background, as in the shapes world; over a textured one the look keeps some background
around the object). An object is in full view while its pixel mass is at least FULL of the most it has shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch.nn import functional as F

from .fields import warp

STRONG = 0.5  # a word some place binds with at least this weight is an object (a layer)
FULL = 0.9  # an object whose pixel mass is at least this share of the most it has shown is in full view
HOLD = 8  # frames a look is kept once no place binds its word at all (an object hidden or lost)
EDGE = (0.1, 0.3)  # colour distance from the background (in [-1, 1] units, RMS over channels): no object → object


def objects(weights: torch.Tensor) -> dict[int, torch.Tensor]:
    """word → its region (h, w) bool, for a binding (L, h, w) with the still key left out: the places a word
    takes outright (weight ≥ STRONG, > ½ of a softmax, so it is the place's largest), for each word that has any."""
    owner_weight, owner = weights.max(0)
    bound = owner_weight >= STRONG
    return {word: bound & (owner == word) for word in owner[bound].unique().tolist()}


@dataclass
class Look:
    image: torch.Tensor  # (1, 3, H, W) in [-1, 1]: the frame that last showed the object whole, moved since
    alpha: torch.Tensor  # (1, 1, H, W): the object's pixels in it
    most: float  # the largest pixel mass the object has shown
    step: torch.Tensor  # (1, 2, 1, 1): its latest displacement, image px (warp's convention: read at p + step)
    unseen: int = 0  # frames since any place bound its word


class LayeredCarry:
    """carry(image, plain, latents, flow) → the next frame's start image, for one video (it keeps the looks);
    `plain` is the image-space carry of `image` (`VideoPipeline.warp_in_image`), which it keeps wherever no hidden
    object's look goes.

    `bind(latents)` → (1, L + 1, h, w): the word field's binding of the frame (`WordField.bind`, the still key
    last); `scale` image px per latent px."""

    def __init__(self, bind: Callable[[torch.Tensor], torch.Tensor], scale: int):
        self.bind = bind
        self.scale = scale
        self.looks: dict[int, Look] = {}

    def __call__(self, image: torch.Tensor, plain: torch.Tensor, latents: torch.Tensor,
                 flow: torch.Tensor) -> torch.Tensor:
        s = self.scale
        flow = flow.to(image.dtype) * s  # image px, at each latent place
        weights = self.bind(latents)[0, :-1].to(image.dtype)  # (L, h, w): the still key left out
        regions = objects(weights)
        bound = torch.zeros_like(weights[0], dtype=torch.bool)  # places some word takes outright
        for region in regions.values():
            bound |= region
        up = lambda m: F.interpolate(m[None, None].to(image.dtype), scale_factor=s, mode="nearest")  # noqa: E731
        loose = up(~bound)
        if loose.sum() == 0:  # every place is some object's: nothing to lay under, nothing to tell background by
            return plain
        background = (image * loose).sum((2, 3), keepdim=True) / loose.sum()
        distance = (image - background).square().mean(1, keepdim=True).sqrt()
        ink = ((distance - EDGE[0]) / (EDGE[1] - EDGE[0])).clamp(0, 1)  # (1, 1, H, W): not background
        seen = {}  # word → (its pixels now, their mass, its displacement)
        for word, region in regions.items():
            w = weights[word] * region
            step = (flow * w).sum((2, 3), keepdim=True) / w.sum().clamp(min=1e-6)
            alpha = up(region) * ink
            seen[word] = (alpha, float(alpha.sum()), step)
        shift = lambda x, step: warp(x, step.expand(-1, -1, *x.shape[-2:]), "bilinear")  # noqa: E731
        hidden = set()
        for word in set(self.looks) | set(seen):
            alpha, mass, step = seen.get(word, (None, 0.0, None))
            look = self.looks.get(word)
            if alpha is not None and (look is None or mass >= FULL * look.most):  # in full view: its look now
                self.looks[word] = Look(image, alpha, max(mass, look.most if look else 0.0), step)
                continue
            look.unseen = 0 if alpha is not None else look.unseen + 1
            if look.unseen > HOLD:  # no place has bound it for HOLD frames: gone
                del self.looks[word]
                continue
            look.step = look.step if step is None else step
            hidden.add(word)
        for look in self.looks.values():  # each look moves to where its object will be
            moved = shift(torch.cat([look.image, look.alpha], 1), look.step)
            look.image, look.alpha = moved[:, :3], moved[:, 3:]
        shown = sum((shift(alpha, step) for alpha, _, step in seen.values()), torch.zeros_like(ink)).clamp(max=1)
        out = plain  # what it shows of the objects in view stays; hidden looks go where no object is shown
        for word in hidden:
            a = self.looks[word].alpha * (1 - shown)
            out = out * (1 - a) + self.looks[word].image * a
        return out
