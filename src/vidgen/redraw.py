"""Drawing a frame again when an object jumped (`redraw`).

The carried start puts each object where it will be, and the denoiser, run from it at a share of the steps,
draws the frame anew. Now and then it draws an object somewhere else: where two objects meet, one is drawn
again at the far side of the frame, or takes the other's colour and leaves its own word unbound; the next
frames carry the mistake on, and the video keeps it (model-card log, "Drawing a frame again when an object jumps").
Such a frame is easy to see: an object the word binding finds in the start is not where the start put it in
the frame that came out. The frame is then drawn again from the same start with new noise, the redraws starting
evenly spaced between the first draw's step and the schedule's end (`sampling.redraw_later`: two redraws of a
frame drawn at strength 0.75 run at 0.5 and 0.25), keeping more of the start each time, where the objects are
right (on the frames it rejected, a draw at strength 0.5 kept its objects more often than one at 0.75), and the
draw that keeps its objects best is kept.

Objects are those of the word binding (`layers.objects`). An object is kept when at least KEEP of its region in
the frame lies within one place of its region in the start (a region is a few places wider than its object,
so an object moved by the denoiser's small shifts, or coming out from behind another, keeps most of it). Words
the start does not bind (an object coming into view) are not judged.

A frame can keep every object of its start and still lose one over a few frames: an object fading as it passes
behind another (14 → 5 → 3 places, each where the start had it), or two that meet and slowly become one. Each
frame's start already holds the loss, so the redraw has nothing to keep. The video's first frame still does:
`fade` compares each frame with it, and a video in which an object of frame 0 holds under FADE of its places
there in some frame is drawn again from the start, a new frame 0 too (`retake`, `VideoPipeline.stream`): the
loss comes from where frame 0 put the objects, so drawing the last few frames again loses the object again.

An object can also stay in view and leave its path: where two objects would meet, the adapter stalls one and
turns it back in mid-frame (model-card log, "Drawing the video again when an object turns in mid-frame"). The shapes
world's objects turn only at the frame's border, so `turns` (off the word binding, fast objects) and
`pixel_turns` (off the objects' pixels, every moving object) count an object's turns away from it, and `retake`
draws such a video again as well (option `retake_turns`: a prior of the demo's world, not of real videos, whose
objects turn anywhere). A still object can leave its place too: pushed aside where a moving one would cross it,
or drawn again at the far side of the frame; `strays` counts those, under the same option.

An object that frame 0 draws at the frame's edge, moving into it, should turn at once; frame 1 cannot turn it
(the word field is turned only once the context shows a motion), so it runs into the edge, stalls and turns a
frame or two late, and stays off its path for the rest of the video (model-card log, "Frame 1 cannot turn"). Later
on, the free field foresees a large object's wall less well than a small one's, and it stalls there too, or the
carry pushes part of it past the edge and the frame is drawn with the object shorter, pressed into the wall (a
large triangle moving up: its apex's faint ink hides how near the wall it is). `walls` counts such fast objects,
in frame 0, stalled or pressed later, and `retake` draws the video again (option `retake_walls`).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .layers import backdrop, edge_gap, objects, own_pixels, past, room

KEEP = 0.5  # share of an object's region in the frame that must lie within one place of its region in the start
SMALLEST = 1 / 32  # share of the frame's places a start region needs to be judged: smaller ones are a few places
#     at an object's edge bound to another of its words, which the next frame need not bind (1–6 places, where the
#     shapes world's objects bind 25–85 of 256)
FADE = 1 / 3  # share of its places in frame 0 an object may shrink to before the video is drawn again (a single
#     object's region swings between about ½ and 1 of its frame-0 size from frame to frame)
FAST = 1.8  # image px a frame: `turns` and `walls` judge (and `track.bounce` turns) only objects that their words
#     move at least this far, the line between the shapes world's slow objects (1 px, ¼ place a frame at the demo's
#     4 px a place: below a region's centre's jitter from frame to frame, and about the error of where an object's
#     decoder-blurred pixels end) and its fast ones (3 px); a slow object that turns a frame late is 2 px off
TURN_BACK = 0.3  # places: a move at least this far against an object's direction turns it
BORDER = 1  # places: a turn with the object within this of the edge it moved to is a bounce
STILL = 0.3  # image px a frame: an object whose words move it less is still (`strays`; `track`: its whole shift
#     is noise)
STRAY = 4.0  # image px: `strays` counts a still object whose pixels' centre lies this far from frame 0's (root
#     mean square over the frames), twice the bar's trajectory error (a still object's pixels wander about 1 px:
#     in a scratch reading of 528 videos of seeds 1–6, 95% of the still objects stay within 2.2 px, and the two
#     beyond 11 px are one pushed aside and one drawn again elsewhere: model-card log)
WHOLE = 3.0  # image px: `strays` reads a frame where an object's pixels span within this of their frame-0 extent
BACK_PX = 2.0  # image px: `pixel_turns` counts a moving object whose pixels' centre comes back this far from the
#     farthest it got along its direction (twice a slow object's step: a one-frame stall and the jitter of where
#     its pixels end, a few tenths of a pixel, stay well under it)
EDGE_PX = 3.0  # image px: ... unless its pixels there lay within this of the edge ahead (a bounce: the shapes
#     world turns an object at the edge, part-way through a step, so at its farthest a slow object's pixels end
#     half a pixel from the edge and a fast one's (3 px a frame) within 2 px)
STALL = 0.5  # share of its step: `walls` counts an object whose pixels' gaps to the edge in two consecutive frames
#     add up to less (two frames pressed at the edge add up to 1 px, a turn on time to its step, 3 px, less the
#     ⅓ px by which ink reaches past an object's edge on each side)


def judged(weights: torch.Tensor) -> dict[int, torch.Tensor]:
    """The objects of a binding (L, h, w; still key left out) that the judges below judge: word → region
    (`layers.objects`) for the regions that hold at least SMALLEST of its places."""
    return {word: region for word, region in objects(weights).items() if region.sum() >= SMALLEST * region.numel()}


def kept_share(start: torch.Tensor, frame: torch.Tensor) -> float:
    """The least share, over the objects of the start's binding `start` (L, h, w; still key left out) whose
    regions hold at least SMALLEST of its places, of its region in `frame`'s binding that lies within one place of
    its region in the start (0 for an object the frame does not bind at all); 1 when there is no such object."""
    after = objects(frame)
    share = 1.0
    for word, region in judged(start).items():
        now = after.get(word)
        if now is None:
            return 0.0
        near = F.max_pool2d(region[None, None].float(), 3, 1, 1)[0, 0].bool()
        share = min(share, float((now & near).sum()) / float(now.sum()))
    return share


def jump(start: torch.Tensor, frame: torch.Tensor) -> float:
    """How far a frame falls short of keeping its objects (`sample_autoregressive`'s judge): 0 when every object
    of the start keeps at least KEEP of its region, else what it lacks, KEEP − `kept_share`."""
    return max(0.0, KEEP - kept_share(start, frame))


def fade(first: torch.Tensor, frame: torch.Tensor) -> float:
    """How far `frame` falls short of keeping the objects of the video's first frame (bindings (L, h, w), still
    key left out): 0 when every object of `first` whose region holds at least SMALLEST of its places holds at least
    FADE of them in `frame` (anywhere: objects move), else the largest shortfall, FADE − its share."""
    after = objects(frame)
    worst = 0.0
    for word, region in judged(first).items():
        places = float(region.sum())
        now = after.get(word)
        worst = max(worst, FADE - (0.0 if now is None else float(now.sum())) / places)
    return worst


def unnamed(first: torch.Tensor, clauses: torch.Tensor) -> int:
    """How many of the caption's clauses (`clauses`, per word: its clause, −1 for none; `VideoPipeline.clauses`)
    no object of the video's first frame belongs to, its binding `first` (L, h, w; still key left out): an object
    the caption names that frame 0 does not draw, or draws too faintly for the judges to see (`judged`). Such an
    object is lost in every frame, and no judge reads it: `fade`, the turns and the walls judge only the objects of
    frame 0, so a take without one would pass where a take with it turned once (model card, "Judging the takes
    again")."""
    named = {int(clauses[word]) for word in judged(first) if int(clauses[word]) >= 0}
    return max(0, int(clauses.max()) + 1 - len(named))


def centre(region: torch.Tensor) -> torch.Tensor:
    """(x, y), in places, of a region (h, w) bool's centre."""
    ys, xs = region.nonzero(as_tuple=True)
    return torch.stack([xs.float().mean(), ys.float().mean()])


def at_border(region: torch.Tensor, ahead: torch.Tensor) -> bool:
    """Whether a region (h, w) bool lies within BORDER places of the frame's edge that the direction `ahead`
    (x, y; a unit vector along x or y, as the shapes world's motions are) points to."""
    ys, xs = region.nonzero(as_tuple=True)
    (h, w), (x, y) = region.shape, ahead.tolist()
    return bool((x > 0.5 and xs.max() >= w - 1 - BORDER) or (x < -0.5 and xs.min() <= BORDER)
                or (y > 0.5 and ys.max() >= h - 1 - BORDER) or (y < -0.5 and ys.min() <= BORDER))


def turns(bindings: list[torch.Tensor], step: torch.Tensor, scale: int) -> int:
    """How many times the objects of a video's first frame turn back away from the frame's border.
    bindings: per frame (L, h, w), still key left out; step: the word field's displacement of the first frame
    as the caption says it (2, h, w: x, y; the field is read at p + step, so an object moves by −step); `scale`
    image px a place. Each object of the first frame that is judged (`judged`) and that its words move at least
    FAST image px a frame (the step's mean over its region) keeps a direction, at first its words', which flips
    at each move, between consecutive frames that both bind it, of at least TURN_BACK places against it; a flip
    counts unless the object's region in the earlier frame lies within BORDER places of the edge it was moving to
    (a bounce)."""
    regions = [objects(b) for b in bindings]
    count = 0
    for word, region in judged(bindings[0]).items():
        along = -step[:, region].mean(1).float()
        if float(along.norm()) * scale < FAST:
            continue
        ahead = along / along.norm()
        for before, after in zip(regions, regions[1:]):
            if word in before and word in after and float((centre(after[word]) - centre(before[word])) @ ahead) \
                    <= -TURN_BACK:
                count += not at_border(before[word], ahead)
                ahead = -ahead
    return count


def moving_objects(image: torch.Tensor, weights: torch.Tensor, field: torch.Tensor, scale: int):
    """(word, pixels (H, W) bool, move (x, y) image px) per judged object (`judged`) of a frame: image (1, 3, H,
    W) in [-1, 1]; weights: its binding (L, h, w), still key left out; field: a displacement of it (2, h, w,
    latent places, read at p + field, so an object moves by −field); `scale` image px a place. An object's pixels
    are its blob of ink (`layers.own_pixels`: the pixels that differ from the background, joined to the one its
    word binds most), its move the field's mean over its region, weighted by its binding. None of them where the
    background cannot be told (`layers.backdrop`)."""
    ground = backdrop(image, objects(weights), scale)
    if ground is None:
        return
    for word, region in judged(weights).items():
        w = (weights[word] * region).to(image.dtype)
        along = (field.to(image.dtype) * w).sum((1, 2)) / w.sum() * scale
        alpha = own_pixels(ground[1], F.interpolate(w[None, None], scale_factor=scale, mode="nearest"))
        yield word, alpha[0, 0] > 0.5, -along


def sightings(images: list[torch.Tensor], bindings: list[torch.Tensor], step: torch.Tensor,
              scale: int) -> list[dict[int, tuple[torch.Tensor, torch.Tensor]]]:
    """Per frame of a video, word → (pixels (H, W) bool, move (x, y) image px) of its judged objects
    (`moving_objects`, each frame read with frame 0's step): what `walls` and `strays` read a take by.
    images: the frames decoded (1, 3, H, W) in [-1, 1], frame 0 first; bindings: theirs (L, h, w), still key left
    out; step: the word field's displacement of frame 0 as the caption says it (2, h, w, latent places); `scale`
    image px a place."""
    return [{word: (pixels, move) for word, pixels, move in moving_objects(image, weights, step, scale)}
            for image, weights in zip(images, bindings)]


def walls(seen: list[dict[int, tuple[torch.Tensor, torch.Tensor]]]) -> int:
    """How many fast objects (at least FAST image px a frame) of a video's first frame turn late at the frame's
    edge: those that frame 0 puts where their caption's step moves them past the edge ahead (`layers.past` above
    0: frame 1 cannot turn them), and those that stay at an edge, their pixels' gaps to the nearer edge along
    their motion's axis (`layers.edge_gap`) together under STALL of their step in two consecutive frames (the
    world turns an object part-way through a step, so the two gaps around a turn add up to a whole step), the
    last frame left out (the video ends before a turn could show). A slow one is left alone: it turns a frame
    late by no more than the error of where its pixels end, and drawing its video again is mostly risk. Those
    pressed into an edge and shortened there (`pressed`) count too.
    seen: the video's `sightings`, frame 0 first (only frame 0: its walls alone)."""
    count = 0
    for word, (pixels, move) in seen[0].items():
        if float(move.norm()) < FAST:
            continue
        axis = int(move.abs().argmax())
        gaps = [edge_gap(f[word][0], axis) if word in f else None for f in seen[:-1]]
        count += past(pixels, move) > 0 or any(a is not None and b is not None and a + b < STALL * float(move.norm())
                                               for a, b in zip(gaps, gaps[1:])) or bool(pressed(seen, word, axis))
    return count


def pressed(seen: list[dict[int, tuple[torch.Tensor, torch.Tensor]]], word: int, axis: int) -> list[int]:
    """The frames after frame 0 of a video's `sightings` (their indices) in which `word`'s object lies within a
    step of the frame's edge along `axis` (0: x, 1: y) with its pixels spanning at least WHOLE px less along it
    than in frame 0: pressed into the edge instead of turning, its far side still coming on (the shapes world's
    objects stay whole). A large triangle moving up does this (model-card log): its apex's ink ends a pixel or two
    short of its edge, so its gaps to the top can stay above STALL's and `walls`' stall reading misses it."""
    pixels, move = seen[0][word]
    if not pixels.any():
        return []  # bound where frame 0 has no ink: no extent to keep
    step, size = float(move.norm()), box(pixels)[1][axis]
    return [i for i, f in enumerate(seen) if i and word in f and f[word][0].any()
            and edge_gap(f[word][0], axis) < step and float(size - box(f[word][0])[1][axis]) >= WHOLE]


def box(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(centre (x, y), extent (x, y)) in px of pixels (H, W) bool that hold at least one (`layers.room`)."""
    gaps = torch.tensor([room(pixels, axis) for axis in (0, 1)])  # (axis, before | after)
    size = torch.tensor([pixels.shape[1], pixels.shape[0]], dtype=gaps.dtype)
    return (gaps[:, 0] + size - gaps[:, 1]) / 2, size - gaps.sum(1)


def whole(seen: list[dict[int, tuple[torch.Tensor, torch.Tensor]]], word: int):
    """(centre (x, y) px, pixels (H, W) bool) of `word`'s object in each frame after frame 0 of a video's
    `sightings` that shows it whole: its `box` extent within WHOLE px of frame 0's along each axis (not merged with
    another object's pixels, nor partly hidden); frames that do not bind it or hold none of its ink are left out.
    What `strays` and `pixel_turns` read an object's path by."""
    size = box(seen[0][word][0])[1]
    for frame in seen[1:]:
        if word in frame and frame[word][0].any():
            centre, extent = box(frame[word][0])
            if float((extent - size).abs().max()) <= WHOLE:
                yield centre, frame[word][0]


def pixel_turns(seen: list[dict[int, tuple[torch.Tensor, torch.Tensor]]]) -> int:
    """How many times the moving objects of a video's first frame (their words move them at least STILL image px
    a frame) turn back away from the frame's edge, read off their pixels: an object's direction, at first its
    words', flips where its pixels' centre along that direction has come back BACK_PX px from the farthest it got
    since the last flip, and the flip counts unless its pixels at that farthest place lay within EDGE_PX px of the
    edge ahead (a bounce), over the frames that show it whole (`whole`: not merged with another object, nor partly
    hidden). In the demo a slow object that the denoiser stalls for a frame leaves a context with no motion to
    read, the free field's sign then falls either way, and once it turns the context shows it moving back
    (model-card log, "Slow objects that turn back in mid-frame"). A fast one that meets another object can turn
    back where they meet, short of the wall, while `turns`, reading the binding, misses it: on a dark background
    a large object's word can bind most of the frame, a region that reaches the wall all along (model card,
    "Where the rest of the error is"). seen: the video's `sightings`, frame 0 first."""
    count = 0
    for word, (pixels, move) in seen[0].items():
        if float(move.norm()) < STILL or not pixels.any():
            continue
        axis = int(move.abs().argmax())
        ahead = 1.0 if float(move[axis]) > 0 else -1.0
        farthest, at = None, None
        for centre, now in whole(seen, word):
            x = float(centre[axis]) * ahead
            if farthest is None or x >= farthest:
                farthest, at = x, now
            elif farthest - x >= BACK_PX:
                gaps = room(at, axis)
                count += (gaps[1] if ahead > 0 else gaps[0]) > EDGE_PX
                ahead, farthest, at = -ahead, -x, now
    return count


def strays(seen: list[dict[int, tuple[torch.Tensor, torch.Tensor]]]) -> int:
    """How many still objects of a video's first frame (their words move them under STILL image px a frame) leave
    their place: their pixels' centre lies more than STRAY px from frame 0's, root mean square over the frames
    that show them whole (`whole`: not merged with another object's pixels, nor partly hidden). The shapes world's
    still objects stay put; the adapter now and then pushes one aside where a moving object would cross it, or
    draws it again elsewhere (model-card log, "A copy that binds another word, and a still object that leaves its
    place"). seen: the video's `sightings`, frame 0 first."""
    count = 0
    for word, (pixels, move) in seen[0].items():
        if float(move.norm()) >= STILL or not pixels.any():
            continue  # moving, or bound where frame 0 has no ink: no place to keep
        start = box(pixels)[0]
        off = [float((centre - start).pow(2).sum()) for centre, _ in whole(seen, word)]
        count += bool(off) and (sum(off) / len(off)) ** 0.5 > STRAY
    return count
