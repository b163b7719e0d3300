"""Drawing a frame again when an object jumped (`redraw`).

The carried start puts each object where it will be, and the denoiser, run from it at a share of the steps,
draws the frame anew. Now and then it draws an object somewhere else: where two objects meet, one is drawn
again at the far side of the frame, or takes the other's colour and leaves its own word unbound; the next
frames carry the mistake on, and the video keeps it (model card, "Drawing a frame again when an object jumps").
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
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .layers import objects

KEEP = 0.5  # share of an object's region in the frame that must lie within one place of its region in the start
SMALLEST = 1 / 32  # share of the frame's places a start region needs to be judged: smaller ones are a few places
#     at an object's edge bound to another of its words, which the next frame need not bind (1–6 places, where the
#     shapes world's objects bind 25–85 of 256)


def kept_share(start: torch.Tensor, frame: torch.Tensor) -> float:
    """The least share, over the objects of the start's binding `start` (L, h, w; still key left out) whose
    regions hold at least SMALLEST of its places, of its region in `frame`'s binding that lies within one place of
    its region in the start (0 for an object the frame does not bind at all); 1 when there is no such object."""
    before, after = objects(start), objects(frame)
    share = 1.0
    for word, region in before.items():
        if region.sum() < SMALLEST * region.numel():
            continue
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
