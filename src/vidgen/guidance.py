"""Noise-prediction callables for the samplers, built from a `VideoDenoiser`, with classifier-free guidance.

Text guidance alone:      ε̂ = ε(ctx, ∅) + w_t [ε(ctx, c) − ε(ctx, ∅)]
Context guidance too:     ε̂ = ε(∅, ∅) + w_x [ε(ctx, ∅) − ε(∅, ∅)] + w_t [ε(ctx, c) − ε(ctx, ∅)]
A frame drawn given other frames may take its own w_t (`later_text_scale`): the caption's motion words act
through the adapter, so w_t > 1 scales the motion as well as the look (measured: the shipped adapter's objects
move 1.23× the real step at w_t = 3 given real frames, 0.96× at w_t = 1), while the look is held by the context.
That is because the caption-free branch ε(ctx, ∅) moves less (0.78×): its word field reads no motion words. With
`null_field="free"` the caption-free branches are warped by the adapter's free field instead (read off the context
frames, flow_words adapters): ε(ctx, ∅) then carries the context's own motion (1.02×), and guidance at w_t = 3
amplifies what the caption adds, not the speed (0.95×). With `null_field="unturned"` they are warped by the
caption's own word field unsigned (its motion with no turn): guidance then amplifies the turns alone.
All branches run as one batch. The context encoder reads the text, so the text-free branches encode their own
context with the null text; each branch keeps its own cached keys/values (they are rows of one batch).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from einops import rearrange

from .adapter import VideoDenoiser
from .context import NullField
from .fields import warp
from .sampling import FrameContext, joint_context


@dataclass(frozen=True)
class Guidance:
    text_scale: float = 5.0  # w_t; 1 disables text guidance
    context_scale: float = 1.0  # w_x; 1 disables context guidance
    later_text_scale: float | None = None  # w_t of a frame drawn given other frames; None: text_scale
    null_field: str = "words"  # the caption-free branches' displacement: "words" (as trained) | "free" | "unturned"

    def given(self, has_context: bool) -> "Guidance":
        """The guidance of a frame drawn with (`has_context`) or without other frames."""
        if not has_context or self.later_text_scale is None:
            return replace(self, later_text_scale=None)
        return replace(self, text_scale=self.later_text_scale, later_text_scale=None)

    @property
    def branches(self) -> list[tuple[bool, bool]]:
        """(use context, use text) of each batched branch."""
        if self.context_scale != 1:
            return [(False, False), (True, False), (True, True)]
        if self.text_scale != 1:
            return [(True, False), (True, True)]
        return [(True, True)]

    def combine(self, outs: list[torch.Tensor]) -> torch.Tensor:
        if len(outs) == 3:
            e00, e10, e11 = outs
            return e00 + self.context_scale * (e10 - e00) + self.text_scale * (e11 - e10)
        if len(outs) == 2:
            e0, e1 = outs
            return e0 + self.text_scale * (e1 - e0)
        return outs[0]


def warp_latents(previous: torch.Tensor, flow: torch.Tensor, interpolation: str) -> torch.Tensor:
    """The frame before carried on in latent space: its latents warped by the displacement (latent px)."""
    return warp(previous, flow.to(previous.dtype), interpolation)


def frame_model(denoiser: VideoDenoiser, text: torch.Tensor, null_text: torch.Tensor, guidance: Guidance,
                cache: bool = True, base_first: bool = False, carry=warp_latents):
    """`frame_model` for `sample_autoregressive`: context → denoiser. With `cache` (the default) the context
    tokens, spatial residuals and all keys/values are computed once per frame; without, at every step. With
    `base_first`, a frame with an empty context (frame 0 of a video with no given frames) is drawn by the base
    model alone, the adapter switched off (text guidance only). `carry` (previous latents, displacement in
    latent px, interpolation) → the latents a carried start begins from (`warp_latents`, or the pipeline's
    warp in image space)."""
    def build(ctx: FrameContext):
        b = ctx.frames.shape[0]
        has_context = bool(ctx.mask.any())  # False: every sample of the batch has an empty context
        frame_guidance = guidance.given(has_context)
        branches = frame_guidance.branches
        n = len(branches)
        texts = torch.cat([text if use_text else null_text for _, use_text in branches])
        drop = torch.cat([torch.full((b,), not use_ctx, device=text.device) for use_ctx, _ in branches])
        null = None
        if guidance.null_field != "words":
            rows = torch.cat([torch.full((b,), not use_text, device=text.device) for _, use_text in branches])
            null = NullField(rows, text.repeat(n, 1, 1) if guidance.null_field == "unturned" else None)
        args = ctx.repeat(n).as_args()
        args = (args[0].to(text.dtype), *args[1:])

        base_only = base_first and not has_context

        def condition():  # None: the base model alone, no adapter context
            return None if base_only else denoiser.condition(*args, texts, drop, null)

        cached = condition() if cache else None

        def predict(x: torch.Tensor, t) -> torch.Tensor:
            out = denoiser.predict(x.repeat(n, 1, 1, 1), t, texts, cached if cache else condition())
            return frame_guidance.combine(list(out.chunk(n)))

        context = cached if cache else condition()
        if context is not None and context.flow is not None:
            # the frame before, carried on by the full-condition branch's displacement
            flow = context.flow.chunk(n)[-1]
            predict.carry = lambda previous: carry(previous, flow, context.interpolation)
        return predict

    return build


def video_model(denoiser: VideoDenoiser, text: torch.Tensor, null_text: torch.Tensor, guidance: Guidance,
                window: int | None = None, base_first: bool = False):
    """`video_model` for `sample_joint`: every frame predicted given the other frames at the same step
    (`base_first`: see `frame_model`; in joint mode it only touches a one-frame video)."""

    def predict(x: torch.Tensor, t) -> torch.Tensor:
        b, f = x.shape[:2]
        ctx = joint_context(x, t, window)  # batch (b f)
        frames = frame_model(denoiser, text.repeat_interleave(f, 0), null_text.repeat_interleave(f, 0),
                             guidance, base_first=base_first)(ctx)
        out = frames(rearrange(x, "b f c h w -> (b f) c h w"), t)
        return rearrange(out, "(b f) c h w -> b f c h w", b=b)

    return predict
