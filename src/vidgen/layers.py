"""The layered carry (`carry_space` layered): the image-space carry, plus each object's last full look.

Where two objects overlap, the carried start (the frame before warped by the adapter's displacement) has only
the front one's pixels there, so the hidden object has to be drawn anew when it comes out, and often takes the
other's colour or motion. A layered carry keeps, per object, its pixels from the latest frame that showed it
whole, moves them by the object's own displacement every frame, and lays them under the objects in view.

Objects are what the adapter's word field binds (`WordField.bind`, binding by appearance): a trained field binds
each object to one word of its caption clause with weight about 1 (model-card log, "Frame 0 picked by the word
binding"), so a word some place takes outright is a layer, and the places that take it most are its region. An
object's pixels are those of its region that differ from the background, the colour of the places bound to no
word outright (a flat background, as in the shapes world; over a textured one the look keeps some background
around the object). An object is in full view while its pixel mass is at least FULL of the most it has shown.

Objects that meet (`meet`, `carry_meet`). Where two objects come within MEET px of each other, one blob holds
both and the field's displacement over it blends their motions, so the image carry moves them as one, and they
go on as one object or leave one behind (model-card log, "Objects that meet"). With `meet`, two objects seen apart
that meet keep, until they are apart again, the look and the displacement each had before they met: the
carry's pixels of both are replaced by the background, and their looks are laid in their own places, the one
more of whose pixels are in view in front. An object about to reach the frame's edge takes the field's
displacement again, which may turn it there. Telling objects apart needs their own pixels, so with `meet` an
object is a word some place binds with at least SOLID (a word bound at 0.7 at an object's edge is none), its
pixels are the blob of non-background pixels that holds the place binding its word most strongly (a region
reaches a few places past its object, often over a neighbour), and two words on one blob never seen apart are
one object (a colour word bound beside its clause's verb), kept by the more strongly bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch.nn import functional as F

from .fields import warp

STRONG = 0.5  # a word some place binds with at least this weight is bound there outright (a region)
SOLID = 0.95  # with meet: a word some place binds with at least this weight is an object's (weaker: an edge)
FULL = 0.9  # an object whose pixel mass is at least this share of the most it has shown is in full view
HOLD = 8  # frames a look is kept once no place binds its word at all (an object hidden or lost)
EDGE = (0.1, 0.3)  # colour distance from the background (in [-1, 1] units, RMS over channels): no object → object
MEET = 2  # with meet: image px within which two objects' pixels have met
MOVING = 0.5  # image px a frame: `past` reads the axes along which pixels move at least this far


def objects(weights: torch.Tensor) -> dict[int, torch.Tensor]:
    """word → its region (h, w) bool, for a binding (L, h, w) with the still key left out: the places a word
    takes outright (weight ≥ STRONG, > ½ of a softmax, so it is the place's largest), for each word that has any."""
    owner_weight, owner = weights.max(0)
    bound = owner_weight >= STRONG
    return {word: bound & (owner == word) for word in owner[bound].unique().tolist()}


def grow(mask: torch.Tensor, px: int = 1) -> torch.Tensor:
    """(1, 1, H, W) bool: `mask` grown by `px` pixels (8-connected)."""
    return F.max_pool2d(mask.float(), 2 * px + 1, 1, px) > 0


def connected(binary: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """(1, 1, H, W) bool: the 8-connected components of `binary` that hold a seed (both (1, 1, H, W) bool)."""
    grown = seeds & binary
    while True:
        more = grow(grown) & binary
        if torch.equal(more, grown):
            return grown
        grown = more


def own_pixels(ink: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(1, 1, H, W): of `ink` (how far each pixel is from the background, 0–1), the blob (ink > ½, 1 px wider for
    its soft edge) that holds the pixel `weight` (1, 1, H, W) binds most strongly; zeros where it binds no ink."""
    binary = ink > 0.5
    score = weight * binary
    if score.max() <= 0:
        return torch.zeros_like(ink)
    seed = torch.zeros_like(binary)
    seed.view(-1)[int(score.argmax())] = True
    return ink * grow(connected(binary, seed)).to(ink.dtype)


def backdrop(image: torch.Tensor, regions: dict[int, torch.Tensor], scale: int):
    """(background (1, 3, 1, 1), ink (1, 1, H, W)) of an image (1, 3, H, W) in [-1, 1] whose binding's regions
    (`objects`, at latent places, `scale` image px each) are `regions`: the background is the mean colour of the
    places no word takes outright, a pixel's ink how far it is from it (0–1, EDGE); None when every place is
    some word's (nothing to tell the background by)."""
    bound = torch.zeros(image.shape[-2] // scale, image.shape[-1] // scale, dtype=torch.bool, device=image.device)
    for region in regions.values():
        bound |= region
    loose = F.interpolate((~bound)[None, None].to(image.dtype), scale_factor=scale, mode="nearest")
    if loose.sum() == 0:
        return None
    background = (image * loose).sum((2, 3), keepdim=True) / loose.sum()
    return background, ink_from(image, background)


def ink_from(image: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """(1, 1, H, W): how far each pixel of `image` is from `background` (1, 3, 1, 1), 0–1 over EDGE."""
    distance = (image - background).square().mean(1, keepdim=True).sqrt()
    return ((distance - EDGE[0]) / (EDGE[1] - EDGE[0])).clamp(0, 1)


def blobs(binary: torch.Tensor, least: int = 1) -> int:
    """How many 8-connected blobs of `binary` (1, 1, H, W) bool hold at least `least` pixels."""
    left, count = binary.clone(), 0
    while left.any():
        seed = torch.zeros_like(left)
        seed.view(-1)[int(left.view(-1).nonzero()[0, 0])] = True
        blob = connected(left, seed)
        count += int(blob.sum()) >= least
        left &= ~blob
    return count


def drawn_objects(image: torch.Tensor, weights: torch.Tensor, scale: int) -> int | None:
    """How many separate objects an image (1, 3, H, W) draws, given its binding (L, h, w; the still key left
    out): blobs of ink (`backdrop`, > ½) of at least one latent place's pixels (`scale`²); smaller ones are
    specks no word can bind. Two objects that touch are one blob. None where `backdrop` cannot tell."""
    ground = backdrop(image, objects(weights), scale)
    return None if ground is None else blobs(ground[1] > 0.5, scale * scale)


def room(pixels: torch.Tensor, axis: int) -> tuple[float, float] | None:
    """(before, after): how far pixels (H, W) bool lie from the frame's two edges along `axis` (0: x, 1: y), in
    px, each edge half a pixel past the last pixel's centre; None when there are none."""
    at = pixels.nonzero(as_tuple=True)[1 - axis]
    if len(at) == 0:
        return None
    return float(at.min()) + 0.5, pixels.shape[1 - axis] - 0.5 - float(at.max())


def past(pixels: torch.Tensor, move: torch.Tensor) -> float:
    """How far pixels (H, W) bool, moved by `move` (x, y image px), land past the frame's edge they move to, as a
    share of the move: the most over the axes along which they move at least MOVING px (−inf on none; below 0:
    short of the edge). The edge lies half a pixel past the last pixel's centre (`room`); an object's pixels
    (those that differ from the background, ink over ½) reach about ⅓ px past its own edge."""
    most = float("-inf")
    for axis in (0, 1):
        gaps, d = room(pixels, axis), float(move[axis])
        if gaps is None:
            return most
        if d >= MOVING:
            most = max(most, (d - gaps[1]) / d)
        elif d <= -MOVING:
            most = max(most, (-d - gaps[0]) / -d)
    return most


def edge_gap(pixels: torch.Tensor, axis: int) -> float | None:
    """How far pixels (H, W) bool lie from the frame's nearer edge along `axis` (0: x, 1: y), in px (`room`);
    None when there are none."""
    gaps = room(pixels, axis)
    return None if gaps is None else min(gaps)


def near_edge(look: Look) -> bool:
    """Whether a look's pixels, carried on by its displacement once more, come within MEET px of the frame's
    edge."""
    ys, xs = torch.nonzero(look.alpha[0, 0] > 0.5, as_tuple=True)
    if len(xs) == 0:
        return False
    h, w = look.alpha.shape[-2:]
    dx, dy = -float(look.step[0, 0]), -float(look.step[0, 1])  # warp reads at p + step: pixels move by −step
    return bool(xs.min() + dx < MEET or xs.max() + dx > w - 1 - MEET or ys.min() + dy < MEET
                or ys.max() + dy > h - 1 - MEET)


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
    or meeting object's look goes.

    `bind(latents)` → (1, L + 1, h, w): the word field's binding of the frame (`WordField.bind`, the still key
    last); `scale` image px per latent px; `meet`: objects that meet are laid from their looks (module doc)."""

    def __init__(self, bind: Callable[[torch.Tensor], torch.Tensor], scale: int, meet: bool = False):
        self.bind = bind
        self.scale = scale
        self.meet = meet
        self.looks: dict[int, Look] = {}
        self.apart: set[tuple[int, int]] = set()  # pairs of words (lower first) whose objects were seen apart

    def __call__(self, image: torch.Tensor, plain: torch.Tensor, latents: torch.Tensor,
                 flow: torch.Tensor) -> torch.Tensor:
        s = self.scale
        flow = flow.to(image.dtype) * s  # image px, at each latent place
        weights = self.bind(latents)[0, :-1].to(image.dtype)  # (L, h, w): the still key left out
        regions = objects(weights)
        ground = backdrop(image, regions, s)
        if ground is None:  # every place is some object's: nothing to lay under, nothing to tell background by
            return plain
        background, ink = ground  # ink (1, 1, H, W): not background
        up = lambda m: F.interpolate(m[None, None].to(image.dtype), scale_factor=s, mode="nearest")  # noqa: E731
        meeting = self._meeting() if self.meet else set()  # from the looks where they were carried to
        peak = {word: float(weights[word].max()) for word in regions} if self.meet else {}
        seen = {}  # word → (its pixels now, their mass, its displacement)
        for word, region in regions.items():
            if self.meet and peak[word] < SOLID and word not in self.looks:
                continue  # a word bound at an object's edge, not an object
            w = weights[word] * region
            step = (flow * w).sum((2, 3), keepdim=True) / w.sum().clamp(min=1e-6)
            alpha = own_pixels(ink, up(w)) if self.meet else up(region) * ink
            seen[word] = (alpha, float(alpha.sum()), step)
        if self.meet:
            self._one_object_per_blob(seen, peak)
            meeting &= set(self.looks)  # a look dropped as one object with another meets no one
        shift = lambda x, step: warp(x, step.expand(-1, -1, *x.shape[-2:]), "bilinear")  # noqa: E731
        hidden, in_view = set(), {}
        for word in set(self.looks) | set(seen):
            alpha, mass, step = seen.get(word, (None, 0.0, None))
            look = self.looks.get(word)
            if word in meeting:  # its look and its displacement stay those from before they met
                look.unseen = 0
                in_view[word] = mass / max(look.most, 1e-6)
                if step is not None and near_edge(look):  # by the frame's edge, the field's: it may turn there
                    look.step = step
                continue
            if alpha is not None and (look is None or mass >= FULL * look.most):  # in full view: its look now
                self.looks[word] = Look(image, alpha, max(mass, look.most if look else 0.0), step)
                continue
            look.unseen = 0 if alpha is not None else look.unseen + 1
            if look.unseen > HOLD:  # no place has bound it for HOLD frames: gone
                del self.looks[word]
                continue
            look.step = look.step if step is None else step
            hidden.add(word)
        where = sum((self.looks[word].alpha for word in meeting), torch.zeros_like(ink))
        for look in self.looks.values():  # each look moves to where its object will be
            moved = shift(torch.cat([look.image, look.alpha], 1), look.step)
            look.image, look.alpha = moved[:, :3], moved[:, 3:]
        shown = sum((shift(alpha, step) for word, (alpha, _, step) in seen.items() if word not in meeting),
                    torch.zeros_like(ink)).clamp(max=1)
        out = plain  # what it shows of the objects in view stays
        if meeting:  # the carry's blobs where the meeting objects were and will be go; their looks are laid
            will = sum(self.looks[word].alpha for word in meeting)
            carried = ink_from(plain, background)
            blobs = connected(carried > 0.05, grow((where + will) > 0.5, 2 * MEET))
            erase = grow(blobs).to(ink.dtype) * carried
            out = out * (1 - erase) + background * erase
            for word in sorted(meeting, key=in_view.get):  # the one more in view last: in front
                a = self.looks[word].alpha
                out = out * (1 - a) + self.looks[word].image * a
            shown = (shown + will).clamp(max=1)
        for word in hidden:  # hidden looks go where no object is shown
            a = self.looks[word].alpha * (1 - shown)
            out = out * (1 - a) + self.looks[word].image * a
        return out

    def _meeting(self) -> set[int]:
        """The words whose looks, where they were carried to, lie within MEET px of the look of an object they
        were seen apart from; each pair seen apart now is remembered."""
        meeting, words = set(), sorted(self.looks)
        near = {word: grow(self.looks[word].alpha > 0.5, MEET) for word in words}
        for i, a in enumerate(words):
            for b in words[i + 1:]:
                if not (near[a] & near[b]).any():
                    self.apart.add((a, b))
                elif (a, b) in self.apart:
                    meeting |= {a, b}
        return meeting

    def _one_object_per_blob(self, seen: dict, peak: dict[int, float]) -> None:
        """Two seen words most of whose pixels are one blob, never seen apart, are one object: the word bound
        less strongly is dropped, its look too."""
        order = sorted(seen, key=lambda word: -peak[word])
        for i, a in enumerate(order):
            for b in order[i + 1:]:
                if a in seen and b in seen and (min(a, b), max(a, b)) not in self.apart:
                    pa, pb = seen[a][0] > 0.5, seen[b][0] > 0.5
                    if (pa & pb).sum() > 0.5 * (pa | pb).sum():
                        del seen[b]
                        self.looks.pop(b, None)
