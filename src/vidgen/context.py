"""Context encoders: summarise other frames for the frame being denoised.

`ContextEncoder` (the note's summariser): frames → patch tokens with 2-D position, relative-time, anchor and
noise-level embeddings → a Perceiver-style resampler whose ℓ learned queries attend to the frame tokens and
the text tokens → ℓ × d tokens for decoupled cross-attention.

`SpatialEncoder` (layout): frames → per-frame conv features modulated by the same kind of embedding → a
learned softmax pooling over frames → a small pyramid whose zero-initialised outputs are T2I-Adapter-style
residuals for the base model's down blocks. With `frame_differences`, each frame also brings its difference
from the frame one step farther from the target (when that frame is in the context): x^j + (x^j − x^{j∓1}) is
the first-order extrapolation of a small motion, so carrying a frame on costs the convolutions one linear map
instead of a learned negative weight between pooled frames (which the pooling, with positive weights, lacks).
With `text_dim`, the pooled map is also modulated by the caption (a few learned attention poolings of its
tokens), so that a caption's motion can move the object from a context that has no velocity yet (the second
frame of a video sees only the first). With `flow`, the pooled map is then warped by a displacement field that a
zero-initialised head predicts from it (after the text modulation; with `walls`, also from how near each
place is to the frame's edges, so that it can turn an object at a wall; with `flow_depth`, through that
many residual blocks more), plus, with text, one displacement read off the caption by a small MLP (a shift is
direction × speed, a product no linear read of pooled words can form), so that a shift is one number per place
rather than a pattern of feature channels. With `motions` M > 0 or
`words`, the field is instead made of the caption's own motions, and the map only chooses where each applies and
whether it runs backwards (fields.py).

Every context frame carries its own noise level, so training with independent per-frame levels (Diffusion
Forcing) is a data change, not a model change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from diffusers.models.embeddings import get_timestep_embedding
from einops import rearrange
from torch import nn

from .fields import MOTION_INIT, WordField, edge_map, latest_frame, motion_field, warp


def sincos_2d(h: int, w: int, dim: int, device) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding, (h·w, dim); any grid size."""
    quarter = dim // 4
    freqs = torch.exp(-math.log(10000.0) * torch.arange(quarter, device=device) / max(quarter, 1))
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    parts = []
    for pos in (ys.flatten(), xs.flatten()):
        angle = pos[:, None].float() * freqs[None]
        parts += [angle.sin(), angle.cos()]
    emb = torch.cat(parts, dim=1)
    return nn.functional.pad(emb, (0, dim - emb.shape[1]))


class FrameEmbedding(nn.Module):
    """Embeds what is known of a context frame: offset j − i (clamped), anchor flag, and noise level."""

    def __init__(self, width: int, max_offset: int):
        super().__init__()
        self.max_offset = max_offset
        self.offset = nn.Embedding(2 * max_offset + 1, width)
        self.anchor = nn.Embedding(2, width)
        self.level = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.width = width

    def forward(self, offsets: torch.Tensor, anchor: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        # offsets, anchor, levels: (b, k) → (b, k, width)
        b, k = offsets.shape
        off = offsets.clamp(-self.max_offset, self.max_offset) + self.max_offset
        lev = get_timestep_embedding(levels.reshape(-1).float(), self.width, flip_sin_to_cos=True)
        lev = self.level(lev.to(self.offset.weight.dtype)).reshape(b, k, self.width)
        return self.offset(off) + self.anchor(anchor.long()) + lev


class ResamplerBlock(nn.Module):
    """Queries attend to (frame tokens ⊕ text tokens), then a feed-forward layer; pre-norm residual."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.norm_q = nn.LayerNorm(width)
        self.norm_kv = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ff = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 4 * width), nn.GELU(),
                                nn.Linear(4 * width, width))

    def forward(self, q: torch.Tensor, kv: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(kv)
        q = q + self.attn(self.norm_q(q), kv, kv, key_padding_mask=pad, need_weights=False)[0]
        return q + self.ff(q)


class ContextEncoder(nn.Module):
    """Context frames (+ text) → ℓ tokens of width `out_dim` (the base model's cross-attention width)."""

    def __init__(self, in_channels: int, text_dim: int, out_dim: int, width: int, num_tokens: int,
                 depth: int, heads: int, patch_size: int, max_offset: int):
        super().__init__()
        self.patch = nn.Conv2d(in_channels, width, patch_size, stride=patch_size)
        self.frame_emb = FrameEmbedding(width, max_offset)
        self.text_in = nn.Linear(text_dim, width)
        self.queries = nn.Parameter(torch.randn(num_tokens, width) / math.sqrt(width))
        self.blocks = nn.ModuleList(ResamplerBlock(width, heads) for _ in range(depth))
        self.out = nn.Sequential(nn.Linear(width, out_dim), nn.LayerNorm(out_dim))

    def forward(self, frames, offsets, anchor, levels, mask, text) -> torch.Tensor:
        # frames (b, k, c, h, w); offsets/anchor/levels/mask (b, k); text (b, L, text_dim)
        b, k = frames.shape[:2]
        x = self.patch(rearrange(frames, "b k c h w -> (b k) c h w"))  # (b k) width h' w'
        hh, ww = x.shape[-2:]
        x = rearrange(x, "(b k) d h w -> b k (h w) d", b=b) + sincos_2d(hh, ww, x.shape[1], x.device).to(x.dtype)
        x = x + self.frame_emb(offsets, anchor, levels)[:, :, None]  # b k n d
        frame_tokens = rearrange(x, "b k n d -> b (k n) d")
        text_tokens = self.text_in(text)
        kv = torch.cat([frame_tokens, text_tokens], dim=1)
        pad = torch.cat([(~mask).repeat_interleave(hh * ww, dim=1),
                         torch.zeros(b, text_tokens.shape[1], dtype=torch.bool, device=mask.device)], dim=1)
        q = self.queries[None].expand(b, -1, -1)
        for block in self.blocks:
            q = block(q, kv, pad)
        return self.out(q)  # (b, ℓ, out_dim)


def frame_differences(frames, offsets, mask) -> torch.Tensor:
    """x^j − x^{j'} per context slot, where j' is one frame farther from the target than j on the same side
    (offset − 1 before the target, + 1 after it); zero where j' is not in the context. (b, k, c, h, w)."""
    farther = offsets + offsets.sign()  # (b, k): the offset each slot wants its neighbour at
    match = (offsets[:, None, :] == farther[:, :, None]) & mask[:, None, :] & mask[:, :, None]  # b k(slot) m
    match &= (offsets != 0)[:, :, None]
    neighbour = torch.einsum("bkm,bmchw->bkchw", match.to(frames.dtype), frames)
    return (frames - neighbour) * match.any(dim=2).to(frames.dtype)[..., None, None, None]


@dataclass
class NullField:
    """Rows of a batch whose displacement is not their own word field's (guidance's caption-free branches,
    `Guidance.null_field`): with `words` None, the free field (the context's own motion); else the word field read
    off `words` (b, L, d), e.g. the caption's, unsigned: the caption's motion with no turn."""
    rows: torch.Tensor  # (b,) bool
    words: torch.Tensor | None = None


class FieldBlock(nn.Module):
    """x + conv(SiLU(conv(x))), both 3×3 dilated by 2, the second zero-initialised: a block that starts as the
    identity, so that it deepens a trained free field's head without changing what it computes."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=2, dilation=2), nn.SiLU(),
                                  nn.Conv2d(width, width, 3, padding=2, dilation=2))
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


TEXT_QUERIES = 4  # learned poolings of the caption's tokens that modulate the spatial path (spatial_text)


class SpatialEncoder(nn.Module):
    """Context frames → zero-initialised residuals, one per entry of `residuals` = [(channels, stride), ...]."""

    def __init__(self, in_channels: int, width: int, residuals: list[tuple[int, int]], max_offset: int,
                 differences: bool = False, text_dim: int | None = None, flow: bool = False,
                 interpolation: str = "bilinear", motions: int = 0, words: bool = False,
                 word_binding: str = "map", sign_margin: float = 0.0, walls: bool = False,
                 partial_turn: bool = False, flow_depth: int = 0, turn_read: str = "mean"):
        super().__init__()
        if walls and not flow:
            raise ValueError("walls need flow (they are an input of the free field)")
        if flow_depth and not flow:
            raise ValueError("flow_depth > 0 needs flow (its blocks deepen the free field's head)")
        if (motions or words) and not (flow and text_dim is not None):
            raise ValueError("motions > 0 or words need flow and text_dim (the motions are read off the caption)")
        if motions and words:
            raise ValueError("motions > 0 and words are two ways to read the field off the caption; expected one")
        self.interpolation = interpolation
        self.motions = motions
        self.sign_margin = sign_margin
        self.flow = self.word_field = None
        if flow:  # zero-initialised: no displacement until trained (with words: the free field that signs it)
            self.flow = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
                                      nn.Conv2d(width, 2 * max(motions, 1), 3, padding=1))
            nn.init.zeros_(self.flow[-1].weight)
            nn.init.zeros_(self.flow[-1].bias)
            if motions:
                nn.init.normal_(self.flow[-1].weight, std=MOTION_INIT)
            if words:
                self.word_field = WordField(width, text_dim, word_binding, in_channels, partial_turn,
                                            turn_read)
        self.flow_blocks = nn.Sequential(*(FieldBlock(width) for _ in range(flow_depth)))  # empty: identity
        self.walls = None
        if walls:  # zero-initialised: the free field reads the frame's edges only once trained to
            self.walls = nn.Conv2d(4, width, 1)
            nn.init.zeros_(self.walls.weight)
            nn.init.zeros_(self.walls.bias)
        self.differences = differences
        self.text_film = self.text_flow = None
        if text_dim is not None:  # zero-initialised: pooling starts as the mean, modulation as identity
            self.text_queries = nn.Parameter(torch.zeros(TEXT_QUERIES, text_dim))
            self.text_film = nn.Linear(TEXT_QUERIES * text_dim, 2 * width)
            nn.init.zeros_(self.text_film.weight)
            nn.init.zeros_(self.text_film.bias)
            if flow:  # the caption's own displacement, the same everywhere. Not linear: a shift is direction ×
                # speed, which no linear read of pooled words (a sum over words) can form
                self.text_flow = nn.Sequential(nn.Linear(TEXT_QUERIES * text_dim, width), nn.SiLU(),
                                               nn.Linear(width, 2 * max(motions, 1)))
                nn.init.zeros_(self.text_flow[-1].weight)
                nn.init.zeros_(self.text_flow[-1].bias)
                if motions:
                    nn.init.normal_(self.text_flow[-1].weight, std=MOTION_INIT)
        stem_in = 2 * in_channels if differences else in_channels
        self.stem = nn.Sequential(nn.Conv2d(stem_in, width, 3, padding=1), nn.SiLU(),
                                  nn.Conv2d(width, width, 3, padding=1))
        self.frame_emb = FrameEmbedding(width, max_offset)
        self.film = nn.Linear(width, 2 * width)
        self.pool_logit = nn.Linear(width, 1)
        self.strides = [stride for _, stride in residuals]
        levels = int(math.log2(max(self.strides)))
        self.down = nn.ModuleList(
            nn.Sequential(nn.SiLU(), nn.Conv2d(width, width, 3, stride=2, padding=1)) for _ in range(levels))
        self.mix = nn.Sequential(nn.SiLU(), nn.Conv2d(width, width, 3, padding=1))
        self.heads = nn.ModuleList(nn.Conv2d(width, ch, 1) for ch, _ in residuals)
        for head in self.heads:  # zero-initialised: an untrained spatial path adds exactly nothing
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def pool_text(self, text: torch.Tensor) -> torch.Tensor:
        """(b, L, text_dim) → (b, TEXT_QUERIES · text_dim): each learned query's softmax-weighted sum of the
        tokens, each token first normalised to zero mean and unit variance over its features, so that a word
        counts by what it is, not by how large its embedding grew (input word embeddings of words a base never
        needed stay at their initial size, ~0.2). A motion word moves the mean of a caption's encoder outputs by
        about 2%: the mean alone all but hides it, a query can pick it out."""
        text = nn.functional.layer_norm(text, text.shape[-1:], eps=1e-6)
        weights = torch.softmax(torch.einsum("qd,bld->bql", self.text_queries.to(text.dtype), text)
                                / math.sqrt(text.shape[-1]), dim=-1)
        return torch.einsum("bql,bld->bqd", weights, text).flatten(1)

    def forward(self, frames, offsets, anchor, levels, mask, text=None, null: NullField | None = None):
        """→ (residuals, one per entry of `residuals`; the displacement field (b, 2, h, w) in latent pixels the
        pooled map was warped by, None without `flow`; with `words`, the free field that signed it (trained by
        the displacement loss too), else None; with words bound by appearance, the free field's read per place
        that turned each object or not (`fields.object_read`, (b, h, w): trained by the turn loss), else None).
        `null` (with `words`): rows warped otherwise (`NullField`)."""
        b, k = frames.shape[:2]
        appearance = self.word_field is not None and self.word_field.binding == "appearance"
        latest = latest_frame(frames, offsets, mask) if appearance else None  # b c h w
        if self.differences:
            frames = torch.cat([frames, frame_differences(frames, offsets, mask)], dim=2)
        feats = rearrange(self.stem(rearrange(frames, "b k c h w -> (b k) c h w")), "(b k) d h w -> b k d h w", b=b)
        emb = self.frame_emb(offsets, anchor, levels)  # b k d
        scale, shift = self.film(emb).chunk(2, dim=-1)
        feats = feats * (1 + scale[..., None, None]) + shift[..., None, None]
        logits = self.pool_logit(emb).squeeze(-1).masked_fill(~mask, float("-inf"))  # b k
        weights = torch.softmax(logits, dim=1).nan_to_num(0.0)  # a sample with no context frame pools to zero
        pooled = torch.einsum("bk,bkdhw->bdhw", weights, feats)
        if self.text_film is not None:
            words = self.pool_text(text).to(pooled.dtype)
            scale, shift = self.text_film(words).chunk(2, dim=-1)
            pooled = pooled * (1 + scale[..., None, None]) + shift[..., None, None]
        flow = guide = turn = None
        if null is not None and self.word_field is None:
            raise ValueError("null rows need words (their field is the free field or an unturned word field)")
        if self.flow is not None:
            source = pooled
            if self.walls is not None:  # how near each place is to the frame's edges (fields.edge_map)
                source = pooled + self.walls(edge_map(*pooled.shape[-2:], pooled.device, pooled.dtype)[None])
            flow = self.flow[-1](self.flow_blocks(self.flow[:-1](source)))
            if self.motions:
                flow = motion_field(flow, self.text_flow(words).reshape(b, self.motions, 2))
            elif self.text_flow is not None:
                flow = flow + self.text_flow(words)[..., None, None]
            if self.word_field is not None:
                source = latest.to(pooled.dtype) if appearance else pooled
                moving = mask.sum(dim=1) >= 2  # (b,): the context shows a motion (frame 1's holds frame 0 alone)
                guide, (flow, turn) = flow, self.word_field.signed(source, text, flow, self.sign_margin, moving)
                if null is not None:
                    other = guide if null.words is None else self.word_field(source, null.words)  # unsigned
                    flow = torch.where(null.rows[:, None, None, None], other, flow)
            pooled = warp(pooled, flow.to(pooled.dtype), self.interpolation)
        pyramid = {1: self.mix(pooled)}
        x = pyramid[1]
        for level, down in enumerate(self.down, start=1):
            x = down(x)
            pyramid[2 ** level] = x
        return [head(pyramid[stride]) for head, stride in zip(self.heads, self.strides)], flow, guide, turn
