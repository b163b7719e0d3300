"""Displacement fields: how the spatial path (context.py) moves its pooled map from the context frames to the
frame being denoised, and how the caption sets them.

`warp` samples a map at p + field(p). A field is either predicted freely from the map (plus one displacement
read off the caption: `SpatialEncoder`), or made of the caption's own motions, so that the map only chooses,
per place, which motion moves it and whether it runs backwards (a bounce): `motion_field` (M displacements from
pooled words, soft choice and sign; tried, see the model-card log) and `WordField` (a displacement per word, bound to
places by attention, run backwards where the free field points the other way: `signed_like`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

INTERPOLATIONS = ("bilinear", "bicubic")


def warp(x: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """x (b, d, h, w) sampled at p + flow(p) (flow (b, 2, h, w) in pixels, (dx, dy)), edges repeated.

    `mode` bilinear or bicubic. Bilinear blurs a sub-pixel shift, so the displacement that best carries one VAE
    latent onto the next is biased short for small motions (0.88 of a quarter-pixel shift, model-card log); bicubic
    is not (1.02)."""
    h, w = x.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h, device=x.device, dtype=x.dtype),
                            torch.arange(w, device=x.device, dtype=x.dtype), indexing="ij")
    gx = (xs + flow[:, 0]) * (2 / max(w - 1, 1)) - 1
    gy = (ys + flow[:, 1]) * (2 / max(h - 1, 1)) - 1
    grid = torch.stack([gx, gy], dim=-1)  # b h w 2, in [-1, 1] (align_corners=True)
    return nn.functional.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=True)


def carry_error(before: torch.Tensor, shift: torch.Tensor, after: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """(b, h, w), float: per place, the squared error (mean over channels) of `before` (b, c, h, w) warped by
    `shift` (b, 2, h, w) against `after`: how well a field carries one frame onto the next. The displacement
    loss, the turn loss and the hard-frame ranking all measure a field by it (training.py)."""
    return (warp(before, shift.to(before.dtype), mode).float() - after.float()).square().mean(dim=1)


WALL_REACH = 4.0  # latent px: how far from a frame edge `edge_map` (the free field's walls) still tells the distance


def edge_map(h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(4, h, w): per place, how near it is to the left, right, top and bottom edge of the frame: 1 − d / WALL_REACH
    for a distance d (latent px, from the place's centre) below WALL_REACH, else 0. What a field needs to turn an
    object at a wall, in the same units at any frame size (zero padding alone tells a convolution only that an
    edge is within its reach, not how far)."""
    ys = torch.arange(h, device=device, dtype=dtype) + 0.5
    xs = torch.arange(w, device=device, dtype=dtype) + 0.5
    near = lambda d: (1 - d / WALL_REACH).clamp(min=0)  # noqa: E731
    left, right = near(xs).expand(h, w), near(w - xs).expand(h, w)
    top, bottom = near(ys)[:, None].expand(h, w), near(h - ys)[:, None].expand(h, w)
    return torch.stack([left, right, top, bottom])


SIGN_BIAS = 3.0  # a motion layer's sign tanh(h + SIGN_BIAS) starts at +0.995: forwards, as the caption says
MOTION_INIT = 0.01  # std of the motion heads' last weights: small, but not zero, or the M motions, starting
#                     equal, would get equal gradients and stay equal


def motion_field(head: torch.Tensor, motions: torch.Tensor) -> torch.Tensor:
    """The displacement field made of the caption's motions: (b, 2, h, w) = Σ_m a_m(p) s_m(p) v_m.

    head (b, 2M, h, w): M logits of a softmax over the motions per place (which motion moves it: a still object's
    motion is zero), then M sign logits (s_m = tanh(· + SIGN_BIAS) in (−1, 1): −1 runs motion m backwards, as
    after a bounce). motions (b, M, 2): the caption's displacements v_m (latent px, (dx, dy)). No place moves
    farther than the farthest v_m. The choice is soft, so a mixture can still move a place less (the model-card log
    shows how trained adapters use that: with M = 2 they learn v and −v, whose mixtures are any shorter v).
    """
    m = motions.shape[1]
    weights = torch.softmax(head[:, :m], dim=1)
    signs = torch.tanh(head[:, m:] + SIGN_BIAS)
    return torch.einsum("bmhw,bmc->bchw", weights * signs, motions)


WORD_WINDOW = 7  # a word field's word reads the three words either side of it: one object's clause of a caption
WORD_KEYS = 32  # width of a word field's keys and queries


WORD_BINDINGS = ("map", "appearance")  # what a word field's place queries are read from (WordField)


class WordField(nn.Module):
    """The displacement field read off the caption word by word, bound to the place it moves.

    Each word, read with the WORD_WINDOW words around it, offers a displacement and a key; each place attends
    over the words with its own query (what is drawn there) and takes their displacements so weighted.
    `SpatialEncoder` then runs it backwards wherever its free field (which reads the context) points the other
    way: after a bounce. So an object's speed is its words' alone: the context chooses which words and the sign,
    not how far (a context that moved too little cannot make the next frame move too little too), and two
    objects can move differently.

    `binding` says what the queries read. "map": the spatial path's pooled map, which also holds the context's
    frame differences, so a place that moved too little in the frames before (a generated frame) may stop
    matching its words and the object stops for good (model-card log). "appearance": the latest context frame's
    latent alone, through a small convolution (receptive field ±2 latent px, so the place an object is about to
    cover reads it too), plus a learned "still" key of zero displacement that background places can take
    without borrowing a word's: binding by what is drawn, never by how it moved. With "appearance" the free field
    reverses the places bound to the same words all at once (`object_signs`), so that an object never tears
    into parts moving both ways, and only once the context shows a motion: at frame 1 the free field has
    nothing to read but the caption, and a caption-wide guess would turn one of two objects moving apart."""

    def __init__(self, width: int, text_dim: int, binding: str = "map", in_channels: int = 4, partial: bool = False,
                 turn_read: str = "mean"):
        super().__init__()
        self.binding = binding
        self.partial = partial  # "appearance": an object turns by as much as the free field says (object_signs)
        self.turn_read = turn_read  # "appearance": where the free field is read over an object (object_signs)
        self.words = nn.Conv1d(text_dim, width, WORD_WINDOW, padding=WORD_WINDOW // 2)
        self.key = nn.Linear(width, WORD_KEYS)
        if binding == "map":
            self.query = nn.Conv2d(width, WORD_KEYS, 1)
        else:
            self.query = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.SiLU(),
                                       nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
                                       nn.Conv2d(width, WORD_KEYS, 1))
            self.still_key = nn.Parameter(torch.zeros(WORD_KEYS))
        self.motion = nn.Sequential(nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 2))
        nn.init.zeros_(self.motion[-1].weight)  # zero-initialised: no displacement until trained
        nn.init.zeros_(self.motion[-1].bias)

    def bind(self, source: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """source (b, width, h, w): the pooled map ("map"), or (b, c, h, w) the latest context frame
        ("appearance"); text (b, L, text_dim) → (weights (b, L', h, w): each place's softmax over the words, and
        the still key with "appearance"; their displacements (b, L', 2))."""
        words = nn.functional.layer_norm(text, text.shape[-1:], eps=1e-6).to(source.dtype)
        words = self.words(words.transpose(1, 2)).transpose(1, 2)  # b L width
        keys, motions = self.key(words), self.motion(words)  # b L k, b L 2
        if self.binding == "appearance":  # one more key, whose displacement is zero
            keys = torch.cat([keys, self.still_key.to(keys.dtype).expand(keys.shape[0], 1, -1)], dim=1)
            motions = torch.cat([motions, motions.new_zeros(motions.shape[0], 1, 2)], dim=1)
        scores = torch.einsum("bkhw,blk->blhw", self.query(source), keys) / math.sqrt(WORD_KEYS)
        return torch.softmax(scores, dim=1), motions

    def forward(self, source: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """→ the field (b, 2, h, w) as the caption says it, never turned."""
        weights, motions = self.bind(source, text)
        return torch.einsum("blhw,blc->bchw", weights, motions)

    def signed(self, source: torch.Tensor, text: torch.Tensor, guide: torch.Tensor, margin: float = 0.0,
               may_reverse: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """→ (the field (b, 2, h, w) run backwards where `guide` (b, 2, h, w) points the other way: per place with
        "map" (`signed_like`), per object with "appearance" (`object_signs`: an object turns as a whole), and then
        only in samples where `may_reverse` (b,) bool allows it (a context that shows motion); with "appearance",
        the read of the guide that decided it (`object_read`, (b, h, w), differentiable in `guide`, for the turn
        loss), else None)."""
        weights, motions = self.bind(source, text)
        field = torch.einsum("blhw,blc->bchw", weights, motions)
        if self.binding == "map":
            return signed_like(field, guide.detach(), margin), None
        turn = object_read(field.detach(), weights.detach(), guide, self.turn_read)
        signs = turn_signs(turn.detach(), margin, self.partial)  # b 1 h w
        if may_reverse is not None:
            signs = torch.where(may_reverse[:, None, None, None], signs, torch.ones_like(signs))
        return field * signs, turn


TURN_READS = ("mean", "peak")  # how object_signs reads the free field over an object (WordField)


def object_read(field: torch.Tensor, weights: torch.Tensor, guide: torch.Tensor, read: str = "mean") -> torch.Tensor:
    """(b, h, w): per place, how far the guide runs along the field over the object the place belongs to, in
    units of the field's length (+1: the field's full step, −1: the full step back; 0 where nothing moves). Each
    word reads the guide's component along the field, f(q)·g(q), and the field's size |f(q)|²: with `read`
    "mean" summed over the places that take it (weighted by how much they take); with "peak" at the one place
    that takes it most (an object's centre as the binding sees it, where the free field foresees a bounce that
    the mean over the whole object hides; in generated videos it also turns early: model-card log, "The turn read
    at the object's centre"). Each place then sums both back over its own words and takes their ratio: places
    bound to the same words (one object) read the same, and a word's displacement may be any part of an
    object's motion (words' displacements add up per place). field, guide (b, 2, h, w); weights (b, L, h, w)."""
    dot, size = (field * guide).sum(dim=1), field.square().sum(dim=1)  # b h w
    if read == "mean":
        along, size = (torch.einsum("blhw,bhw->bl", weights, x) for x in (dot, size))
    elif read == "peak":
        peak = weights.flatten(2).argmax(dim=2)  # (b, L): the place that takes each word most
        along, size = (x.flatten(1).gather(1, peak) for x in (dot, size))
    else:
        raise ValueError(f"read: got {read!r}; expected one of {TURN_READS}")
    along, size = torch.einsum("blhw,bl->bhw", weights, along), torch.einsum("blhw,bl->bhw", weights, size)
    return along / size.clamp(min=1e-12)


def turn_signs(turn: torch.Tensor, margin: float = 0.0, partial: bool = False) -> torch.Tensor:
    """(b, 1, h, w) from an `object_read` (b, h, w): +1 where it is above −`margin`, else −1, or with `partial`
    the read itself (at least −1): an object the guide only half turns moves half a step back, as at a bounce
    step, where the true step lies anywhere between the caption's step and its reverse."""
    back = turn.clamp(min=-1.0) if partial else -torch.ones_like(turn)
    return torch.where(turn >= -margin, 1.0, back)[:, None]


def object_signs(field: torch.Tensor, weights: torch.Tensor, guide: torch.Tensor, margin: float = 0.0,
                 partial: bool = False, read: str = "mean") -> torch.Tensor:
    """(b, 1, h, w) ±1 per place: −1 where the places that share its words, taken together, have the guide
    pointing against the field by more than `margin` × its length (`object_read`, then `turn_signs`): places
    bound to the same words (one object) get the same sign, so an object never tears into parts moving both
    ways. Not differentiated. field, guide (b, 2, h, w); weights (b, L, h, w)."""
    turn = object_read(field.detach(), weights.detach(), guide.detach(), read)
    return turn_signs(turn, margin, partial).to(field.dtype)


def signed_like(field: torch.Tensor, guide: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """`field` run backwards wherever `guide` points against it (both (b, 2, h, w)): where guide's component
    along field is below −margin × |field| (margin 0: any backward component; 0.5: backwards at half field's
    length or more, so that a guide near zero, with no evidence either way, leaves the field as it is). The sign
    is not differentiated: it only says which way, the guide is trained on its own."""
    dot = (field * guide).sum(dim=1, keepdim=True)
    agree = dot >= -margin * field.square().sum(dim=1, keepdim=True)
    return torch.where(agree, field, -field)


def latest_frame(frames: torch.Tensor, offsets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(b, c, h, w): per sample, the context frame nearest the target in time, one before it when there is
    one (the frame an autoregressive target is carried on from); zeros where the context is empty."""
    if frames.shape[1] == 0:  # no slots at all (an autoregressive frame 0)
        return frames.new_zeros(frames.shape[0], *frames.shape[2:])
    near = -offsets.abs().float() + 0.5 * (offsets < 0)  # (b, k): the frame just before beats the one after
    slot = near.masked_fill(~mask, float("-inf")).argmax(dim=1)  # (b,)
    picked = frames[torch.arange(frames.shape[0], device=frames.device), slot]
    return picked * mask.any(dim=1).to(frames.dtype)[:, None, None, None]
