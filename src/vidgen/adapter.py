"""`VideoAdapter`: the trained part of vidgen, and `VideoDenoiser`: the frozen base model plus the adapter.

The adapter has two zero-initialised paths (DESIGN.md): the token path (context encoder → ℓ tokens →
decoupled cross-attention in every cross-attention layer) and the spatial path (context features →
residuals into the down blocks). It saves and loads only its own weights (config.json + safetensors).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from .attention import DecoupledAttention, DecoupledProcessor, cross_attention_layers
from .context import ContextEncoder, NullField, SpatialEncoder
from .fields import INTERPOLATIONS, TURN_READS, WORD_BINDINGS
from .errors import VidgenError


def attention_spec(unet) -> list[list]:
    """[name, query_dim, inner_dim, heads] for every cross-attention layer of `unet`, in a fixed order."""
    return [[name, attn.to_q.in_features, attn.to_q.out_features, attn.heads]
            for name, attn in sorted(cross_attention_layers(unet).items())]


def residual_spec(unet) -> list[list[int]]:
    """[channels, stride] of each residual `down_intrablock_additional_residuals` adds, in order.

    diffusers adds it after the last resnet/attention pair of a cross-attention down block (before its
    downsampler), and after the whole block (downsampler included) for a block without cross-attention.
    """
    cfg, spec, stride = unet.config, [], 1
    for j, block in enumerate(cfg.down_block_types):
        last = j == len(cfg.down_block_types) - 1
        if "CrossAttn" in block:
            spec.append([cfg.block_out_channels[j], stride])
        stride *= 1 if last else 2
        if "CrossAttn" not in block:
            spec.append([cfg.block_out_channels[j], stride])
    return spec


@dataclass
class Context:
    """What one frame's context turns into, computed once and reused at every denoising step."""
    kv: list[tuple[torch.Tensor, torch.Tensor]] | None  # per cross-attention layer, (b, heads, ℓ, d) each
    residuals: list[torch.Tensor] | None  # per down block, (b, C_j, h_j, w_j)
    flow: torch.Tensor | None = None  # (b, 2, h, w): the spatial path's displacement (spatial_flow), latent px
    interpolation: str = "bilinear"  # how that displacement warps (fields.warp)
    guide: torch.Tensor | None = None  # (b, 2, h, w), flow_words: the free field that signs the word field
    turn: torch.Tensor | None = None  # (b, h, w), words bound by appearance: the guide's read that turned them


def check_options(token_path: bool = True, spatial_path: bool = True, spatial_text: bool = False,
                  spatial_text_words: bool = False, spatial_flow: bool = False, flow_interpolation: str = "bilinear",
                  flow_motions: int = 0, flow_words: bool = False, word_binding: str = "map",
                  flow_sign_margin: float = 0.0, flow_walls: bool = False, flow_partial_turn: bool = False,
                  flow_depth: int = 0, flow_turn_read: str = "mean", **_) -> None:
    """Raise VidgenError unless these `VideoAdapter` options fit together (the adapter and `vidgen train`, before it
    loads anything, both check them here); other keyword arguments are ignored."""
    if flow_interpolation not in INTERPOLATIONS:
        raise VidgenError(f"flow_interpolation: got {flow_interpolation!r}; expected one of {INTERPOLATIONS}")
    if flow_motions < 0:
        raise VidgenError(f"flow_motions: got {flow_motions}; expected an integer ≥ 0")
    if not (token_path or spatial_path):
        raise VidgenError("adapter paths: got token_path=False and spatial_path=False; expected at least one")
    if spatial_text_words and not (spatial_path and spatial_text):
        raise VidgenError("spatial_text_words: got True without spatial_text; expected spatial_text=True too")
    if flow_motions and not (spatial_path and spatial_flow and spatial_text):
        raise VidgenError(f"flow_motions: got {flow_motions} without spatial_flow and spatial_text; expected 0, "
                          "or both of those (the motions are read off the caption)")
    if word_binding not in WORD_BINDINGS:
        raise VidgenError(f"word_binding: got {word_binding!r}; expected one of {WORD_BINDINGS}")
    if word_binding != "map" and not flow_words:
        raise VidgenError(f"word_binding: got {word_binding!r} without flow_words; expected 'map', or flow_words too")
    if not 0 <= flow_sign_margin <= 1:
        raise VidgenError(f"flow_sign_margin: got {flow_sign_margin}; expected a number in [0, 1]")
    if flow_walls and not (spatial_path and spatial_flow):
        raise VidgenError("flow_walls: got True without spatial_flow; expected spatial_flow too (the walls are an "
                          "input of its free field)")
    if flow_depth < 0 or (flow_depth and not (spatial_path and spatial_flow)):
        raise VidgenError(f"flow_depth: got {flow_depth} with spatial_flow={spatial_flow}; expected 0, or an integer "
                          "> 0 with spatial_flow (the blocks deepen its free field)")
    if flow_turn_read not in TURN_READS:
        raise VidgenError(f"flow_turn_read: got {flow_turn_read!r}; expected one of {TURN_READS}")
    object_settings = (("flow_turn_read", flow_turn_read, "mean"), ("flow_partial_turn", flow_partial_turn, False))
    for name, value, default in object_settings:  # settings of fields.object_signs, which reads whole objects
        if value != default and not (flow_words and word_binding == "appearance"):
            raise VidgenError(f"{name}: got {value!r} with flow_words={flow_words}, word_binding={word_binding!r}; "
                              f"expected {default!r}, or flow_words and word_binding 'appearance' (it turns objects "
                              "as a whole)")
    if flow_words and (not (spatial_path and spatial_flow and spatial_text) or flow_motions):
        raise VidgenError(f"flow_words: got True with spatial_flow={spatial_flow}, spatial_text={spatial_text}, "
                          f"flow_motions={flow_motions}; expected spatial_flow and spatial_text, flow_motions 0")


class VideoAdapter(ModelMixin, ConfigMixin):
    """Context encoders + decoupled cross-attention layers for one base model's layout.

    Args:
        in_channels (int): latent channels of the base model.
        cross_attention_dim (int): width of the base model's text tokens (and of the context tokens).
        attn_layers (list): `attention_spec(unet)`; one decoupled layer per entry.
        residuals (list): `residual_spec(unet)`; one spatial residual per entry.
        num_tokens (int, default 16): ℓ, context tokens per frame.
        width (int, default 128): width of the resampler.
        depth (int, default 2): resampler blocks.
        heads (int, default 4): resampler attention heads.
        patch_size (int, default 2): latent patch size of the frame tokens.
        max_offset (int, default 16): relative positions j − i are clamped to ±max_offset.
        spatial_width (int, default 64): width of the spatial encoder.
        token_path (bool, default True): use the token path.
        spatial_path (bool, default True): use the spatial path.
        frame_differences (bool, default False): the spatial path also sees each context frame's difference
            from its neighbour (context.py); False in adapters saved before the option existed.
        spatial_text (bool, default False): the spatial path is also modulated by the text (context.py), so a
            caption's motion can start a video; False in adapters saved before the option existed.
        spatial_text_words (bool, default False): with spatial_text, the spatial path reads the text encoder's
            input word embeddings (token + position, appended to the text along the feature axis: see
            `VideoPipeline.encode_prompt`) instead of its output, in which a base trained on single images may
            barely tell motion words apart.
        spatial_flow (bool, default False): the spatial path warps its pooled map by a displacement field it
            predicts (zero-initialised, context.py) plus, with spatial_text, one displacement read off the caption,
            so that moving an object is one number per place; the first option that starts a motion from the
            caption (model-card log).
        flow_interpolation (str, default "bilinear"): how the displacement warps, bilinear or bicubic
            (`fields.warp`); bilinear in adapters saved before the option existed.
        flow_motions (int, default 0): with spatial_flow and spatial_text, M > 0 builds the field from M
            displacements read off the caption, placed per location by the map (`fields.motion_field`); 0: the
            map predicts the field freely and the caption adds one displacement everywhere.
        flow_words (bool, default False): with spatial_flow and spatial_text, the field is read off the caption
            word by word and bound per place by attention (`fields.WordField`), and run backwards where the free
            field (the spatial_flow one, which reads the context) points the other way: the map chooses which
            words move a place and which way, never how far. The demo adapter's field.
        word_binding (str, default "map"): with flow_words, what each place's query over the words reads: "map"
            (the pooled map, frame differences included) or "appearance" (the latest context frame alone, with
            a learned still key: `fields.WordField`); "map" in adapters saved before the option existed.
        flow_sign_margin (float, default 0): with flow_words, the word field runs backwards only where the free
            field's component along it is below −margin × its length (`fields.signed_like`); 0 in adapters
            saved before the option existed.
        flow_walls (bool, default False): with spatial_flow, the free field also reads how near each place is to
            the frame's edges (`fields.edge_map`, through a zero-initialised 1×1 convolution), so that it can turn
            an object at a wall; False in adapters saved before the option existed.
        flow_partial_turn (bool, default False): with flow_words and word_binding "appearance", an object the
            free field points back turns by as much as it says (its component along the word field, at least
            −1 of the step: `fields.object_signs`) instead of by a whole step; a setting of the field's sign,
            no weights of its own. False in adapters saved before the option existed.
        flow_depth (int, default 0): with spatial_flow, residual blocks (two dilated 3×3 convolutions each, the
            second zero-initialised) added to the free field's head, so that it can tell from farther away and
            more finely whether an object meets a wall; 0 in adapters saved before the option existed.
        flow_turn_read (str, default "mean"): with flow_words and word_binding "appearance", where the free
            field is read to decide whether an object turns (`fields.object_signs`): "mean" over the object's
            places, or "peak", at the place that takes each of its words most; a setting of the field's sign, no
            weights of its own. "mean" in adapters saved before the option existed.
    """

    @register_to_config
    def __init__(self, in_channels: int, cross_attention_dim: int, attn_layers: list, residuals: list,
                 num_tokens: int = 16, width: int = 128, depth: int = 2, heads: int = 4, patch_size: int = 2,
                 max_offset: int = 16, spatial_width: int = 64, token_path: bool = True,
                 spatial_path: bool = True, frame_differences: bool = False, spatial_text: bool = False,
                 spatial_text_words: bool = False, spatial_flow: bool = False,
                 flow_interpolation: str = "bilinear", flow_motions: int = 0, flow_words: bool = False,
                 word_binding: str = "map", flow_sign_margin: float = 0.0, flow_walls: bool = False,
                 flow_partial_turn: bool = False, flow_depth: int = 0, flow_turn_read: str = "mean"):
        super().__init__()
        check_options(token_path, spatial_path, spatial_text, spatial_text_words, spatial_flow, flow_interpolation,
                      flow_motions, flow_words, word_binding, flow_sign_margin, flow_walls, flow_partial_turn,
                      flow_depth, flow_turn_read)
        if token_path:
            self.encoder = ContextEncoder(in_channels, cross_attention_dim, cross_attention_dim, width, num_tokens,
                                          depth, heads, patch_size, max_offset)
            self.null_tokens = nn.Parameter(torch.randn(num_tokens, cross_attention_dim) * 0.02)
            self.layers = nn.ModuleList(DecoupledAttention(q, cross_attention_dim, inner, h)
                                        for _, q, inner, h in attn_layers)
        if spatial_path:
            self.spatial = SpatialEncoder(in_channels, spatial_width, [tuple(r) for r in residuals], max_offset,
                                          frame_differences, cross_attention_dim if spatial_text else None,
                                          spatial_flow, flow_interpolation, flow_motions, flow_words, word_binding,
                                          flow_sign_margin, flow_walls, flow_partial_turn, flow_depth,
                                          flow_turn_read)
        self._processors: dict[str, DecoupledProcessor] = {}
        self._stock: dict | None = None
        self._attached: tuple = ()  # (unet,) while attached; a tuple so the base never becomes a submodule

    @classmethod
    def for_unet(cls, unet, **options) -> "VideoAdapter":
        """A fresh (untrained) adapter shaped for `unet`; `options` are the keyword arguments above."""
        return cls(in_channels=unet.config.in_channels, cross_attention_dim=unet.config.cross_attention_dim,
                   attn_layers=attention_spec(unet), residuals=residual_spec(unet), **options)

    @property
    def size_multiple(self) -> int:
        """Latent height and width must be multiples of this (patches and the spatial pyramid)."""
        strides = [s for _, s in self.config.residuals] if self.config.spatial_path else [1]
        return max([self.config.patch_size if self.config.token_path else 1] + strides)

    # ---- attaching to a base model -------------------------------------------------------------------

    def check_compatible(self, unet) -> None:
        """Raise a clear error when `unet` has another cross-attention width or channel layout."""
        expected = {"in_channels": unet.config.in_channels,
                    "cross_attention_dim": unet.config.cross_attention_dim,
                    "attn_layers": attention_spec(unet), "residuals": residual_spec(unet)}
        for key, theirs in expected.items():
            ours = self.config[key]
            if key in ("attn_layers", "residuals"):
                ours = [list(x) for x in ours]
            if ours != theirs:
                raise VidgenError(f"adapter does not fit this base model: adapter {key}={_short(ours)}; "
                                  f"base model has {_short(theirs)}")

    def attach(self, unet) -> None:
        """Wrap every cross-attention processor of `unet`. Freeze `unet` before calling this."""
        self.check_compatible(unet)
        if self._attached:
            self.detach()
        self._stock = dict(unet.attn_processors)
        self._attached = (unet,)
        if not self.config.token_path:
            return
        names = [spec[0] for spec in self.config.attn_layers]
        self._processors = {name: DecoupledProcessor(self._stock[name], layer)
                            for name, layer in zip(names, self.layers)}
        unet.set_attn_processor({**self._stock, **self._processors})

    def detach(self) -> None:
        """Restore the base model's original processors."""
        for unet in self._attached:
            unet.set_attn_processor(self._stock)
        self._attached, self._stock, self._processors = (), None, {}

    # ---- encoding a context ------------------------------------------------------------------------------

    def encode(self, frames, offsets, anchor, levels, mask, text, drop: torch.Tensor | None = None,
               null: NullField | None = None) -> Context:
        """Encode context frames once.

        Args:
            frames: (b, k, c, h, w) context latents (VP-scaled, as the base model sees its input).
            offsets: (b, k) long, j − i. anchor: (b, k) bool. levels: (b, k) noise level (timestep) of each
            context frame. mask: (b, k) bool, which of the k slots hold a frame. text: (b, L, d) text tokens,
            or (b, L, 2d) with the word embeddings appended (spatial_text_words).
            drop: (b,) bool, samples whose context is replaced by the null context (guidance, dropout).
            null: rows whose displacement field is not their own word field's (`NullField`; its words in the
                layout of `text`).
        """
        kv = residuals = flow = guide = turn = None
        text, words = split_text(text, self.config.cross_attention_dim)
        if self.config.spatial_text_words and words is None:
            raise VidgenError(f"text: got width {text.shape[-1]}; this adapter's spatial path reads word embeddings, "
                              f"so it expects width {2 * text.shape[-1]} (VideoPipeline.encode_prompt makes it)")
        keep = None if drop is None else (~drop).to(frames.dtype)
        if self.config.token_path:
            tokens = self.encoder(frames, offsets, anchor, levels, mask, text)  # b ℓ d
            if drop is not None:
                tokens = torch.where(drop[:, None, None], self.null_tokens.to(tokens.dtype), tokens)
            kv = [layer.project_context(tokens) for layer in self.layers]
        if self.config.spatial_path:
            residuals, flow, guide, turn = self.spatial(frames, offsets, anchor, levels, mask,
                                     words if self.config.spatial_text_words else text, self._null_words(null))
            if keep is not None:
                residuals = [r * keep[:, None, None, None] for r in residuals]
        return Context(kv, residuals, flow, self.config.get("flow_interpolation", "bilinear"), guide, turn)

    def _null_words(self, null: NullField | None) -> NullField | None:
        """`null` with its words in the spatial path's layout (the word embeddings of spatial_text_words)."""
        if null is None or null.words is None or not self.config.spatial_text_words:
            return null
        return NullField(null.rows, split_text(null.words, self.config.cross_attention_dim)[1])

    @contextlib.contextmanager
    def active(self, context: Context | None):
        """Within the block, the attached processors use `context`'s cached keys/values."""
        for i, proc in enumerate(self._processors.values()):
            proc.kv = None if context is None or context.kv is None else context.kv[i]
        try:
            yield
        finally:
            for proc in self._processors.values():
                proc.kv = None


def split_text(text: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(b, L, width) text tokens → (them, None); (b, L, 2·width) → (text tokens, word embeddings)."""
    return (text, None) if text.shape[-1] == width else (text[..., :width], text[..., width:])


def _short(value) -> str:
    text = repr(value)
    return text if len(text) < 160 else text[:157] + "..."


class VideoDenoiser(nn.Module):
    """The frozen base UNet and the adapter in one module (one `prepare` for accelerate, one DDP wrapper)."""

    def __init__(self, unet, adapter: VideoAdapter):
        super().__init__()
        unet.requires_grad_(False)  # frozen before the adapter's processors are attached
        self.unet = unet
        self.adapter = adapter
        adapter.attach(unet)

    def condition(self, frames, offsets, anchor, levels, mask, text, drop=None, null=None) -> Context:
        return self.adapter.encode(frames, offsets, anchor, levels, mask, text, drop, null)

    def predict(self, x: torch.Tensor, t, text: torch.Tensor, context: Context | None) -> torch.Tensor:
        """The base model's output (ε or v, per its `prediction_type`) for `x` given `context`."""
        residuals = None
        if context is not None and context.residuals is not None:
            residuals = [r.to(x.dtype) for r in context.residuals]  # diffusers pops from this list
        with self.adapter.active(context):
            return self.unet(x, t, encoder_hidden_states=split_text(text, self.unet.config.cross_attention_dim)[0],
                             down_intrablock_additional_residuals=residuals).sample

    def forward(self, x, t, text, frames, offsets, anchor, levels, mask, drop=None):
        """Training: encode the context and predict in one call → (prediction, the `Context`, whose displacement
        fields the displacement and turn losses read), all from one forward pass so that a DDP wrapper sees every
        loss term."""
        context = self.condition(frames, offsets, anchor, levels, mask, text, drop)
        return self.predict(x, t, text, context), context
