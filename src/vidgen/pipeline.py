"""`VideoPipeline`: prompt → text embedding → sampler ↔ noise prediction → latents → VAE → frames → file."""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image

from .adapter import VideoAdapter, VideoDenoiser, split_text
from .errors import VidgenError, check
from .fields import warp
from .guidance import Guidance, frame_model, video_model, warp_latents
from .layers import LayeredCarry, drawn_objects
from .redraw import FADE, fade, jump, pixel_turns, sightings, strays, turns, unnamed, walls
from .sampling import (ERROR_LEVELS, FrameContext, Mode, Start, denoising_error, first_within, sample_autoregressive,
                       sample_frame, sample_joint)
from .track import TRACKS, TrackKeeper, bounce
from .video import VideoWriter, read_video, resize_center_crop

SCHEDULERS = {
    "ddim": ("DDIMScheduler", {}),
    "dpm++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "euler": ("EulerDiscreteScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {}),
}
SPACINGS = ("leading", "trailing", "linspace")  # diffusers' timestep_spacing: where the sampled steps lie
FIRST_FRAME = ("adapter", "base")  # GenerationConfig.first_frame
NULL_FIELDS = ("words", "free", "unturned")  # GenerationConfig.null_field
CARRY_SPACES = ("latent", "image", "layered")  # GenerationConfig.carry_space
FIRST_FRAME_PICKS = ("error", "binding", "objects")  # GenerationConfig.first_frame_pick
SD_PARTS = ("vae", "text_encoder", "tokenizer", "unet", "scheduler")


@dataclass(frozen=True)
class GenerationConfig:
    """Settings of one generation; the CLI maps its flags onto these fields."""
    num_frames: int = 16  # frames in the output, given frames (image, clip) included
    height: int | None = None  # pixels; None: the base model's native size
    width: int | None = None
    num_inference_steps: int = 25
    guidance_scale: float = 5.0  # text guidance w_t (1 = off)
    context_guidance_scale: float = 1.0  # context guidance w_x (1 = off)
    later_guidance_scale: float | None = None  # text guidance of frames drawn given other frames (None: guidance_scale)
    null_field: str = "words"  # displacement of guidance's caption-free branches: words (the word field, as
    #     trained) | free (the free field read off the context) | unturned (the caption's word field without its
    #     turns); the last two for adapters with flow_words
    negative_prompt: str | None = None
    mode: str = "autoregressive"  # autoregressive | joint
    scheduler: str = "ddim"  # ddim | dpm++ | euler | unipc
    timestep_spacing: str | None = None  # leading | trailing | linspace; None: the base model's scheduler's own
    window: int = 4  # K: context = the anchor frame + the last K frames (joint: the K nearest frames)
    start: str = "previous"  # autoregressive start of frame i: noise | previous (α_T x^{i-1} + σ_T z) | carry
    #                          (x^{i-1} warped by the adapter's displacement; needs an adapter with spatial_flow)
    context_noise: int = 0  # context noise augmentation level (training timestep), 0 = clean context
    strength: float = 1.0  # share of the steps a frame started from a guess (start previous | carry) runs
    carry_space: str = "latent"  # where `start carry` warps the frame before by the adapter's displacement: latent
    #     (its latents) | image (its decoded pixels, the displacement scaled up, then encoded again: a shift
    #     of whole pixels moves an object without blurring it, where a latent shift of a quarter pixel blurs) |
    #     layered (image, plus each object's last full look laid under the objects in view, so that one that
    #     passes behind another comes out whole: `layers.LayeredCarry`; needs flow_words, word_binding appearance)
    carry_track: str = "none"  # with the carry in image space (start carry, carry_space image | layered; else
    #     ignored): none | across (each object's shift by the denoiser across its motion, all of it for a still
    #     object, is taken out of the next frame's carry, so that the small shifts of every redraw do not add up
    #     over the video: `track.TrackKeeper`) | full (the whole shift, along the motion too); needs flow_words,
    #     word_binding appearance
    carry_meet: bool = False  # with carry_space layered (else ignored): two objects seen apart that meet keep
    #     their looks and displacements from before they met, each laid in its own place, until they are apart
    #     again, so that the carry does not move them as one (`layers.LayeredCarry`, meet)
    carry_bounce: bool = False  # with the carry in image space (start carry, carry_space image | layered; else
    #     ignored): a fast object the carry would move past the frame's edge ahead by more than half its step
    #     is turned there, its displacement reversed (`track.bounce`), where the adapter's free field would turn
    #     it a frame or more late; a prior of the demo's shapes world, whose objects reflect at the frame's edge
    #     (on in the demo model, with later_guidance_scale 1.5); needs flow_words, word_binding appearance
    first_frame: str = "adapter"  # who draws a frame with no context (frame 0 when no frames are given): adapter
    #                               (the adapter's empty-context conditional) | base (the base model alone)
    first_frame_candidates: int = 1  # K: draw a frame with no context K times (one batch) and keep the one the
    #     base model, given the caption, finds most likely (lowest denoising error: `denoising_error`);
    #     autoregressive mode (joint mode draws all frames together and ignores it)
    first_frame_margin: float = 0.0  # with first_frame_candidates: keep the first candidate drawn whose error is
    #     within this share of the lowest (0: the lowest), so that the pick leans less on what the base model
    #     finds likely beyond the caption (where it puts objects, say)
    first_frame_steps: int | None = None  # steps for a frame with no context in autoregressive mode (None: the
    #     num_inference_steps of every frame); few-step sampling copies objects more often
    first_frame_pick: str = "error"  # with first_frame_candidates: error (the denoising error alone) | binding
    #     (first the candidates in which the adapter's word field binds the most caption words outright:
    #     `VideoPipeline.bound_words`; a frame that draws one object twice leaves the other's words no place;
    #     then the error among them; needs an adapter with flow_words and word_binding appearance) | objects
    #     (binding, then those that draw no more separate objects than words bound, `layers.drawn_objects`: a
    #     copy of an object drawn beside it binds the same word twice; then the error)
    first_frame_retries: int = 0  # with first_frame_pick objects (else ignored): while no candidate with the most
    #     words bound draws just as many objects, another first_frame_candidates are drawn and judged, up to this
    #     many times
    redraw: int = 0  # N: an autoregressive frame drawn from a start (start previous | carry) in which an object the
    #     word binding finds there is not where the start put it (`redraw.jump`: drawn at the far side of the
    #     frame, or its word left unbound) is drawn again with new noise, up to N times, the redraws starting
    #     evenly spaced between the first draw's step and the schedule's end (keeping more of the start each
    #     time: `sampling.redraw_later`), and the draw that keeps its objects best is kept; needs
    #     flow_words, word_binding appearance
    retake: int = 0  # N: autoregressive mode, a video in which an object of frame 0 has faded in some frame to
    #     under a third of its places there (`redraw.fade`: one passing behind another, two that meet becoming
    #     one) is drawn again from the start, frame 0 too, with new noise, up to N times, and the take whose worst
    #     fade is least is kept (with retake_turns, of those, the one with the fewest turns); each take is
    #     judged on its first retake_frames frames, held until then, as the video shows them (each frame's decode
    #     encoded again: a faint object the sampler's latents still bind can be lost in what is shown; model card,
    #     "Judging what the video shows"); needs flow_words, word_binding appearance
    retake_frames: int = 64  # with retake (else ignored): how many frames of a take, its first, are judged (0: all);
    #     a longer video's takes are drawn that far, and the one kept goes on from there, so memory stays flat past
    #     them and the time grows with num_frames once, not once per take (a whole long take fails some judge
    #     almost always, so judging whole takes drew most of them); judging the first 16 frames only let objects
    #     fade later on: 4.89 → 9.90 px over the drift-64 row (model card, "Long videos: judging the opening")
    retake_turns: bool = False  # with retake (else ignored): a take in which an object of frame 0 leaves its
    #     caption's path in mid-frame is drawn again too: one moving at least FAST image px a frame that turns back
    #     away from the frame's border (`redraw.turns`: where two objects would meet, the adapter stalls one and
    #     turns it), any moving one whose pixels come back BACK_PX px away from it (`redraw.pixel_turns`: a slow
    #     one stalled by the denoiser for a frame, whose free field then reads no motion and may turn it, or a fast
    #     one turned where it met another, which `turns` can miss), or a still one whose
    #     pixels move STRAY px off (`redraw.strays`: pushed aside by one that would cross it, or drawn again
    #     elsewhere); an object kept comes first, so a take with such an object is kept over one that fades; a
    #     prior of the demo's shapes world, whose objects turn only at walls and whose still objects stay put:
    #     leave it off for real videos
    retake_walls: bool = False  # with retake (else ignored), when the video draws its own frame 0: a take in
    #     which a fast object (at least FAST image px a frame) turns late at the frame's edge (`redraw.walls`:
    #     frame 0 puts it at the edge moving into it, which frame 1 cannot turn, or it stays at the edge for two
    #     frames, or is pressed into it and drawn shorter), and so stays off its path, is drawn again too, judged
    #     after the fade and the turns; like retake_turns, a prior of the demo's shapes world, whose objects turn
    #     at once at a wall

    def guidance(self) -> Guidance:
        return Guidance(self.guidance_scale, self.context_guidance_scale, self.later_guidance_scale,
                        self.null_field)

    def validate(self, num_train_timesteps: int) -> None:
        check(self.num_frames >= 1, "num_frames", self.num_frames, "an integer ≥ 1")
        check(self.num_inference_steps >= 1, "num_inference_steps", self.num_inference_steps, "an integer ≥ 1")
        check(self.guidance_scale >= 0, "guidance_scale", self.guidance_scale, "a number ≥ 0")
        check(self.later_guidance_scale is None or self.later_guidance_scale >= 0, "later_guidance_scale",
              self.later_guidance_scale, "a number ≥ 0")
        check(self.null_field in NULL_FIELDS, "null_field", self.null_field, " | ".join(NULL_FIELDS))
        check(self.context_guidance_scale >= 0, "context_guidance_scale", self.context_guidance_scale,
              "a number ≥ 0")
        check(self.mode in {m.value for m in Mode}, "mode", self.mode, "'autoregressive' or 'joint'")
        check(self.scheduler in SCHEDULERS, "scheduler", self.scheduler, " | ".join(SCHEDULERS))
        check(self.timestep_spacing in (None, *SPACINGS), "timestep_spacing", self.timestep_spacing,
              " | ".join(SPACINGS))
        check(self.window >= 1, "window", self.window, "an integer ≥ 1")
        check(self.start in {s.value for s in Start}, "start", self.start, "'noise', 'previous' or 'carry'")
        check(0 < self.strength <= 1, "strength", self.strength, "a number in (0, 1]")
        check(self.carry_space in CARRY_SPACES, "carry_space", self.carry_space, " | ".join(CARRY_SPACES))
        check(self.carry_track in TRACKS, "carry_track", self.carry_track, " | ".join(TRACKS))
        check(self.first_frame in FIRST_FRAME, "first_frame", self.first_frame, " | ".join(FIRST_FRAME))
        check(self.first_frame_candidates >= 1, "first_frame_candidates", self.first_frame_candidates,
              "an integer ≥ 1")
        check(self.first_frame_margin >= 0, "first_frame_margin", self.first_frame_margin, "a number ≥ 0")
        check(self.first_frame_steps is None or self.first_frame_steps >= 1, "first_frame_steps",
              self.first_frame_steps, "an integer ≥ 1 (or none: num_inference_steps)")
        check(self.first_frame_pick in FIRST_FRAME_PICKS, "first_frame_pick", self.first_frame_pick,
              " | ".join(FIRST_FRAME_PICKS))
        check(self.first_frame_retries >= 0, "first_frame_retries", self.first_frame_retries, "an integer ≥ 0")
        check(self.redraw >= 0, "redraw", self.redraw, "an integer ≥ 0")
        check(self.retake >= 0, "retake", self.retake, "an integer ≥ 0")
        check(self.retake_frames >= 0, "retake_frames", self.retake_frames, "an integer ≥ 0 (0: all frames)")
        check(0 <= self.context_noise < num_train_timesteps, "context_noise", self.context_noise,
              f"an integer in [0, {num_train_timesteps})")


def check_prompt(prompt) -> None:
    check(isinstance(prompt, str) and prompt.strip() != "", "prompt", prompt, "a non-empty text")


@dataclass
class VideoOutput:
    frames: np.ndarray  # (frames, height, width, 3) uint8


def _load(what: str, folder: Path, loader):
    try:
        return loader()
    except VidgenError:
        raise
    except Exception as exc:  # diffusers/transformers raise many types for missing or corrupt files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise VidgenError(f"{what}: could not load {str(folder)!r} ({first}); expected a readable "
                          f"{'diffusers Stable Diffusion folder' if what == 'model' else 'vidgen adapter folder'}")


GENERATION_DEFAULTS = "generation_config.json"  # in an adapter folder: the settings it generates best with


def read_generation_defaults(adapter: str | Path) -> dict:
    """The `GenerationConfig` fields an adapter folder recommends (its generation_config.json; {} if none), which
    replace GenerationConfig's defaults for that adapter; what a caller passes still wins."""
    path = Path(adapter) / GENERATION_DEFAULTS
    if not path.is_file():
        return {}
    values = _load("adapter", path, lambda: json.loads(path.read_text()))
    names = {f.name for f in fields(GenerationConfig)}
    check(isinstance(values, dict) and not set(values) - names, str(path),
          sorted(set(values) - names) if isinstance(values, dict) else values,
          f"a JSON object with keys among {sorted(names)}")
    try:
        GenerationConfig(**values).validate(sys.maxsize)
    except VidgenError as exc:
        raise VidgenError(f"{path}: {exc}") from None
    return values


def make_scheduler(base, name: str | None, spacing: str | None = None):
    """The scheduler `name` (a key of SCHEDULERS; None: `base`'s own kind) with the noise schedule of the model's
    scheduler `base`, and its timestep spacing unless `spacing` (one of SPACINGS) is given."""
    import diffusers

    extra = {}
    if name is not None:
        check(name in SCHEDULERS, "scheduler", name, " | ".join(SCHEDULERS))
        cls_name, extra = SCHEDULERS[name]
    if spacing is not None:
        check(spacing in SPACINGS, "timestep_spacing", spacing, " | ".join(SPACINGS))
        extra = {**extra, "timestep_spacing": spacing}
    cls = type(base) if name is None else getattr(diffusers, cls_name)
    return cls.from_config(base.config, **extra)


def load_base(model: str | Path, dtype: torch.dtype = torch.float32) -> dict:
    """The parts of a diffusers Stable Diffusion folder (vae, text_encoder, tokenizer, unet, scheduler), the
    networks loaded in `dtype`, with a one-line error naming what is missing or unreadable."""
    import diffusers
    import transformers

    transformers.utils.logging.disable_progress_bar()
    folder = Path(model)
    if not (folder / "model_index.json").is_file():
        raise VidgenError(f"model: got {str(model)!r}, which has no model_index.json; expected a diffusers "
                          f"Stable Diffusion folder with {', '.join(SD_PARTS)}")
    index = _load("model", folder, lambda: diffusers.DiffusionPipeline.load_config(folder))
    parts = {}
    for name in SD_PARTS:
        library, cls_name = index.get(name, (None, None))
        if cls_name is None or not (folder / name).is_dir():
            raise VidgenError(f"model: {str(model)!r} has no usable {name}/ part; expected a diffusers "
                              f"Stable Diffusion folder with {', '.join(SD_PARTS)}")
        module = transformers if library == "transformers" else diffusers
        loader = getattr(module, cls_name).from_pretrained
        options = {"dtype": dtype} if name in ("vae", "text_encoder", "unet") else {}
        parts[name] = _load("model", folder / name, lambda: loader(folder, subfolder=name, **options))
    return parts


class VideoPipeline:
    """A frozen text-to-image model plus a `VideoAdapter`. See `from_pretrained` and `__call__`."""

    def __init__(self, vae, text_encoder, tokenizer, unet, scheduler, adapter: VideoAdapter | None = None,
                 adapter_options: dict | None = None, generation_defaults: dict | None = None):
        self.vae, self.text_encoder, self.tokenizer, self.scheduler = vae, text_encoder, tokenizer, scheduler
        self.generation_defaults = dict(generation_defaults or {})  # GenerationConfig fields, below the caller's
        for part in (vae, text_encoder, unet):
            part.requires_grad_(False).eval()
        if adapter is None:
            adapter = VideoAdapter.for_unet(unet, **(adapter_options or {}))
        self.denoiser = VideoDenoiser(unet, adapter)
        self.denoiser.eval()
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)

    @classmethod
    def from_pretrained(cls, model: str | Path | None = None, adapter: str | Path | VideoAdapter | None = None,
                        device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                        adapter_options: dict | None = None) -> "VideoPipeline":
        """Load a diffusers Stable Diffusion folder (`model_index.json`, vae/, text_encoder/, tokenizer/, unet/,
        scheduler/) and an adapter folder, or start from an untrained adapter (shaped by `adapter_options`,
        the keyword arguments of `VideoAdapter`) when `adapter` is None. With no `model`, the demo model that
        ships in the repository: its base and, unless `adapter` is given, its trained adapter. An adapter folder's
        generation_config.json, if it has one, sets the generation defaults (see `read_generation_defaults`)."""
        if model is None:
            from .shipped import ADAPTER, BASE, shipped

            model, adapter = shipped(BASE), shipped(ADAPTER) if adapter is None else adapter

        parts, defaults = load_base(model, dtype), {}
        if isinstance(adapter, (str, Path)):
            adapter_dir = Path(adapter)
            if not (adapter_dir / "config.json").is_file():
                raise VidgenError(f"adapter: got {str(adapter)!r}, which has no config.json; expected a folder "
                                  "written by VideoAdapter.save_pretrained or vidgen train")
            adapter = _load("adapter", adapter_dir, lambda: VideoAdapter.from_pretrained(adapter_dir))
            defaults = read_generation_defaults(adapter_dir)
        pipe = cls(**parts, adapter=adapter, adapter_options=adapter_options, generation_defaults=defaults)
        return pipe.to(device, dtype)

    def to(self, device, dtype=None) -> "VideoPipeline":
        for part in (self.vae, self.text_encoder, self.denoiser):
            part.to(device)
            if dtype is not None and dtype != next(part.parameters()).dtype:
                part.to(dtype)
        return self

    @property
    def device(self) -> torch.device:
        return self.denoiser.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.denoiser.unet.dtype

    @property
    def native_size(self) -> int:
        """Frame height and width (pixels) the base model was trained at: its default."""
        return self.denoiser.unet.config.sample_size * self.vae_scale_factor

    @property
    def size_multiple(self) -> int:
        """Height and width must be multiples of this many pixels."""
        unet_factor = 2 ** (len(self.denoiser.unet.config.block_out_channels) - 1)
        return self.vae_scale_factor * max(unet_factor, self.denoiser.adapter.size_multiple)

    # ---- phases -------------------------------------------------------------------------------------

    def _config(self, prompt: str, options: dict) -> GenerationConfig:
        names = {f.name for f in fields(GenerationConfig)}
        unknown = sorted(set(options) - names)
        check(not unknown, "options", unknown, f"keywords among {sorted(names)}")
        native = self.native_size
        options = {"height": native, "width": native, **self.generation_defaults,
                   **{k: v for k, v in options.items() if v is not None}}
        config = GenerationConfig(**options)
        check_prompt(prompt)
        config.validate(self.scheduler.config.num_train_timesteps)
        flow = self.denoiser.adapter.config.get("spatial_flow", False)
        check(config.start != Start.CARRY.value or flow, "start", config.start,
              "'noise' or 'previous' with this adapter ('carry' needs one trained with spatial_flow)")
        check(config.null_field == "words" or self.denoiser.adapter.config.get("flow_words", False), "null_field",
              config.null_field, "'words' with this adapter ('free' and 'unturned' need one trained with flow_words)")
        adapter = self.denoiser.adapter.config
        binds = adapter.get("flow_words", False) and adapter.get("word_binding") == "appearance"
        check(config.first_frame_pick == "error" or binds, "first_frame_pick", config.first_frame_pick,
              "'error' with this adapter ('binding' and 'objects' need one trained with flow_words and word_binding "
              "appearance)")
        check(config.carry_space != "layered" or binds, "carry_space", config.carry_space,
              "'latent' or 'image' with this adapter ('layered' needs one trained with flow_words and word_binding "
              "appearance)")
        check(config.carry_track == "none" or binds, "carry_track", config.carry_track,
              "'none' with this adapter (keeping tracks needs one trained with flow_words and word_binding "
              "appearance)")
        check(not config.carry_bounce or binds, "carry_bounce", config.carry_bounce,
              "off with this adapter (turning objects at the frame's edge needs one trained with flow_words and "
              "word_binding appearance)")
        check(config.redraw == 0 or binds, "redraw", config.redraw,
              "0 with this adapter (judging a frame's objects needs one trained with flow_words and word_binding "
              "appearance)")
        check(config.retake == 0 or binds, "retake", config.retake,
              "0 with this adapter (judging a frame's objects needs one trained with flow_words and word_binding "
              "appearance)")
        m = self.size_multiple
        for name in ("height", "width"):
            value = getattr(config, name)
            check(value >= m and value % m == 0, name, value, f"a positive multiple of {m} for this model")
        return config

    def make_scheduler(self, config: GenerationConfig):
        return make_scheduler(self.scheduler, config.scheduler, config.timestep_spacing)

    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> torch.Tensor:
        """The text condition the denoiser takes: the text encoder's output tokens (1, L, d), followed along the
        feature axis by its input word embeddings (token + position; (1, L, 2d) in all) when the adapter's
        spatial path reads words (`spatial_text_words`)."""
        ids = torch.tensor([self._token_ids(prompt)], device=self.device)
        adapter = self.denoiser.adapter.config
        if not adapter.get("spatial_text_words", False):
            return self.text_encoder(ids)[0].to(self.dtype)
        out = self.text_encoder(ids, output_hidden_states=True)
        return torch.cat([out[0], out.hidden_states[0]], dim=-1).to(self.dtype)

    @torch.no_grad()
    def encode_frames(self, frames: np.ndarray) -> torch.Tensor:
        """(f, h, w, 3) uint8 → latents (f, c, h/s, w/s), scaled as the base model expects."""
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device, self.dtype)
        return self._encode(x.permute(0, 3, 1, 2) / 127.5 - 1)

    def _encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images (b, 3, H, W) in [-1, 1] → latents (b, c, H/s, W/s), scaled as the base model expects. The
        images are made contiguous first: a permuted view (encode_frames' (b, H, W, 3) frames) is channels-last,
        which the VAE's convolutions would carry into the latents and on into every frame generated from them,
        rounding differently (1e-6) from the same latents laid out as the sampler makes them."""
        z = torch.cat([self.vae.encode(chunk).latent_dist.mode() for chunk in images.contiguous().split(8)])
        shift = getattr(self.vae.config, "shift_factor", None) or 0.0
        return (z - shift) * self.vae.config.scaling_factor

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (b, c, h, w) → images (b, 3, H, W) in [-1, 1]."""
        shift = getattr(self.vae.config, "shift_factor", None) or 0.0
        return self.vae.decode(latents / self.vae.config.scaling_factor + shift).sample.clamp(-1, 1)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """Latents (b, c, h, w) → (b, H, W, 3) uint8."""
        return to_uint8(self._decode(latents))

    def warp_in_image(self, previous: torch.Tensor, flow: torch.Tensor, interpolation: str,
                      decoded: torch.Tensor | None = None, layered: LayeredCarry | None = None,
                      keeper: TrackKeeper | None = None, bounce_by: Callable | None = None) -> torch.Tensor:
        """`carry_space` image: latents (b, c, h, w) decoded (or `decoded`, their `_decode` already made), warped by
        the displacement (latent px, (b, 2, h, w)) scaled up to image px, and encoded again. The image is warped
        bilinearly (`interpolation` is the latent warp's), so that a step of whole pixels moves an object
        exactly. With `bounce_by` (`carry_bounce`: bind(latents) → their binding, `bind`'s), an object carried
        past the frame's edge is turned first (`track.bounce`); with `keeper` (`carry_track`), each object's shift
        by the denoiser is taken out of the displacement; with `layered` (`carry_space` layered), hidden objects'
        looks are laid under."""
        image = self._decode(previous) if decoded is None else decoded
        if bounce_by is not None:
            flow = bounce(image, bounce_by(previous)[0, :-1].to(image.dtype), flow)
        pixels = self.image_flow(flow)
        if keeper is not None:
            pixels = keeper(image, previous, pixels)
        start = warp(image, pixels, "bilinear")
        if layered is not None:
            start = layered(image, start, previous, flow)
        if keeper is not None:
            keeper.started(start)
        return self._encode(start)

    def image_flow(self, flow: torch.Tensor) -> torch.Tensor:
        """A displacement (latent px, (b, 2, h, w)) scaled up to image px at image size."""
        s = self.vae_scale_factor
        return torch.nn.functional.interpolate(flow.to(self.dtype), scale_factor=s, mode="bilinear") * s

    def _given_frames(self, config: GenerationConfig, image, video) -> torch.Tensor | None:
        """Latents (1, p, c, h, w) of the frames that open the video: an image or a clip to continue."""
        if image is None and video is None:
            return None
        check(config.mode == Mode.AUTOREGRESSIVE.value, "mode", config.mode,
              "'autoregressive' when an image or a clip to continue is given")
        frames = []
        if image is not None:
            frames.append(resize_center_crop(_read_image(image), config.height, config.width))
        if video is not None:
            clip = _read_clip(video) if isinstance(video, (str, Path)) else video
            frames += [resize_center_crop(f, config.height, config.width) for f in clip]
        check(len(frames) <= config.num_frames, "num_frames", config.num_frames,
              f"at least the {len(frames)} given frames")
        return self.encode_frames(np.stack(frames))[None]

    # ---- generation ---------------------------------------------------------------------------------

    @torch.no_grad()
    def stream(self, prompt: str, *, image=None, video=None, generator: torch.Generator | None = None,
               guess: Callable | None = None, **options) -> Iterator[np.ndarray]:
        """Autoregressive generation, one (height, width, 3) uint8 frame at a time, memory flat in
        `num_frames` (with `retake`, each take's first `retake_frames` are held until judged). Options are the fields of
        `GenerationConfig`. `guess`, a callable (i, history: {j: latents
        (1, c, h, w)}) → the latents frame i starts from (or None: noise), replaces the `start` option (an oracle's
        start in a benchmark, say)."""
        config = self._config(prompt, options)
        check(config.mode == Mode.AUTOREGRESSIVE.value, "mode", config.mode,
              "'autoregressive' for stream (joint mode holds all frames at once)")
        prefix = self._given_frames(config, image, video)
        text, null_text = self._texts(prompt, config)
        clauses = self.clauses(prompt)
        if config.retake == 0:
            for _, decoded in self._take(config, text, null_text, prefix, generator, guess, clauses):
                yield to_uint8(decoded)[0]
            return
        judged = config.retake_frames or config.num_frames
        best, least = ([], iter(())), (float("inf"), 0, 0)
        for _ in range(config.retake + 1):
            take = self._take(config, text, null_text, prefix, generator, guess, clauses)
            head = list(itertools.islice(take, judged))  # the rest is drawn only for the take kept, after the last
            images = [d for _, d in head]
            shown = list(self._encode(torch.cat(images)).split(1))  # what the video shows, read as the judges read
            short = self.judge_take(shown, text, config.retake_turns, config.retake_walls and prefix is None,
                                    images, clauses)
            if short < least:
                best, least = (head, take), short
            if not any(least):
                break
        for _, decoded in itertools.chain(*best):
            yield to_uint8(decoded)[0]

    def _take(self, config: GenerationConfig, text, null_text, prefix, generator, guess,
              clauses=None) -> Iterator:
        """One draw of an autoregressive video: (latents, decoded) per frame, one at a time (`stream`); `clauses`:
        the prompt's (`clauses`), for the first-frame pick."""
        last = {}  # the latest frame and its decode for the video, which the image-space carry warps as it is
        bound = {}  # the latest latents bound and their binding: the layered carry and the keeper share it

        def bind(latents):
            if bound.get("latents") is not latents:
                bound.update(latents=latents, weights=self.bind(latents, text))
            return bound["weights"]

        layered = LayeredCarry(bind, self.vae_scale_factor, config.carry_meet) \
            if config.carry_space == "layered" else None
        keeper = TrackKeeper(bind, config.carry_track) if config.carry_track != "none" else None

        def carry_in_image(previous, flow, interpolation):
            decoded = last["image"] if last.get("latent") is previous else None
            return self.warp_in_image(previous, flow, interpolation, decoded, layered, keeper,
                                      bind if config.carry_bounce else None)

        model = frame_model(self.denoiser, text, null_text, config.guidance(),
                            base_first=config.first_frame == "base",
                            carry=warp_latents if config.carry_space == "latent" else carry_in_image)
        shape = self._frame_shape(config)
        if prefix is None and (config.first_frame_candidates > 1 or config.first_frame_steps):  # frame 0 apart
            candidates = self._first_frame_candidates(text, null_text, config, shape, generator)
            keys = self._first_frame_keys(candidates, text, config, clauses)
            for _ in range(config.first_frame_retries if config.first_frame_pick == "objects" else 0):
                if keys[1].any():
                    break
                candidates = torch.cat([candidates, self._first_frame_candidates(text, null_text, config, shape,
                                                                                 generator)])
                keys = self._first_frame_keys(candidates, text, config, clauses)
            prefix = candidates[self._pick_first_frame(candidates, text, config, generator, keys)][None, None]
        latents = sample_autoregressive(model, self.make_scheduler(config), shape, config.num_frames,
                                        config.num_inference_steps, window=config.window,
                                        start=guess or Start(config.start), strength=config.strength,
                                        context_level=config.context_noise, prefix=prefix, generator=generator,
                                        judge=lambda start, frame: jump(bind(start)[0, :-1], bind(frame)[0, :-1]),
                                        redraws=config.redraw, device=self.device, dtype=self.dtype)
        for latent in latents:
            last.update(latent=latent, image=self._decode(latent))
            yield latent, last["image"]

    @torch.no_grad()
    def first_frame_candidates(self, prompt: str, *, generator: torch.Generator | None = None,
                               **options) -> tuple[np.ndarray, torch.Tensor]:
        """The `first_frame_candidates` first frames a generation with these options draws, (K, H, W, 3) uint8,
        and the base model's denoising error of each given the caption (K,): the video opens with the first drawn
        whose error is within `first_frame_margin` of the lowest (0: the lowest)."""
        config = self._config(prompt, options)
        text, null_text = self._texts(prompt, config)
        latents = self._first_frame_candidates(text, null_text, config, self._frame_shape(config), generator)
        return self.decode(latents), self.base_denoising_error(latents, text, generator)

    def _frame_shape(self, config: GenerationConfig) -> tuple[int, int, int, int]:
        return (1, self.denoiser.unet.config.in_channels, config.height // self.vae_scale_factor,
                config.width // self.vae_scale_factor)

    def _first_frame_candidates(self, text, null_text, config: GenerationConfig, shape,
                                generator) -> torch.Tensor:
        """Frame 0 drawn `first_frame_candidates` times in one batch (K, c, h, w), in `first_frame_steps` steps
        if set; `base_denoising_error` then ranks them."""
        k = config.first_frame_candidates
        model = frame_model(self.denoiser, text.expand(k, -1, -1), null_text.expand(k, -1, -1), config.guidance(),
                            base_first=config.first_frame == "base")
        steps = config.first_frame_steps or config.num_inference_steps
        scheduler = self.make_scheduler(config)
        scheduler.set_timesteps(steps, device=self.device)
        empty = torch.zeros(k, 0, *shape[1:], device=self.device, dtype=self.dtype)
        candidates = sample_frame(model(FrameContext.make(empty, [], 0, float(config.context_noise))), scheduler,
                                  (k, *shape[1:]), steps, None, generator=generator,
                                  device=self.device, dtype=self.dtype)
        return candidates

    def _pick_first_frame(self, candidates: torch.Tensor, text: torch.Tensor, config: GenerationConfig,
                          generator, keys: tuple[torch.Tensor, torch.Tensor] | None) -> int:
        """Which of the first-frame candidates (K, c, h, w) the video opens with (`first_frame_pick`), given their
        `_first_frame_keys`."""
        if len(candidates) == 1:
            return 0
        error = self.base_denoising_error(candidates, text, generator)
        if keys is not None:
            most, clean = keys
            error = torch.where(clean if clean.any() else most, error, torch.inf)
        return first_within(error, config.first_frame_margin)

    def _first_frame_keys(self, candidates: torch.Tensor, text: torch.Tensor, config: GenerationConfig,
                          clauses: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(K,) bool each: the candidates that bind the most words (`bound_words`, each clause of the prompt once
        with its `clauses`), and of those the ones that pass the pick's judge too (pick objects: they draw no more
        separate objects than words bound, `layers.drawn_objects`; pick binding: all of them); None with pick
        error (no keys, the error alone)."""
        if config.first_frame_pick == "error":
            return None
        bound = self.bound_words(candidates, text, clauses)
        most = bound == bound.max()
        if config.first_frame_pick != "objects":
            return most, most
        weights, images = self.bind(candidates, text)[:, :-1], self._decode(candidates)
        drawn = [drawn_objects(images[k:k + 1], weights[k], self.vae_scale_factor) for k in range(len(candidates))]
        extra = torch.tensor([n is not None and n > b for n, b in zip(drawn, bound.tolist())], device=most.device)
        return most, most & ~extra

    @torch.no_grad()
    def bound_words(self, latents: torch.Tensor, text: torch.Tensor,
                    clauses: torch.Tensor | None = None) -> torch.Tensor:
        """(K,): for latents (K, c, h, w), how many of the caption's words (`text`, an `encode_prompt` output) some
        place takes outright under the adapter's word field (its binding by appearance, `WordField.bind`): the
        sum over words of their peak weight over places to the fourth power, floored after adding 0.1, so that a
        word half taken adds 1/16. A trained field binds each object to one word of its clause (model-card log), so
        a frame that draws one object twice and leaves out the other binds one word fewer. With `clauses` (the
        prompt's `clauses`), the words of one clause add up to 1 at most: a copy drawn beside an object can bind
        another word of its clause (one copy "yellow", the other "square"), which is one object named, not two."""
        strength = self.bind(latents, text)[:, :-1].flatten(2).amax(2).pow(4)  # (K, L): the still key left out
        if clauses is None:
            return torch.floor(strength.sum(1) + 0.1)
        inside = clauses >= 0
        named = strength.new_zeros(len(strength), int(clauses.max()) + 1 if inside.any() else 0)
        named.index_add_(1, clauses[inside], strength[:, inside])
        return torch.floor(named.clamp(max=1).sum(1) + strength[:, ~inside].sum(1) + 0.1)

    def _token_ids(self, prompt: str) -> list[int]:
        """The prompt's token ids, padded and cut to the tokenizer's length: what `encode_prompt` encodes and
        `clauses` splits, position for position."""
        return self.tokenizer(prompt, padding="max_length", max_length=self.tokenizer.model_max_length,
                              truncation=True).input_ids

    def clauses(self, prompt: str) -> torch.Tensor:
        """(L,) long: per token of the prompt as `encode_prompt` reads it, the clause it belongs to, the clauses
        split at the word "and" (which the shapes world's captions put between objects: each clause names one),
        and −1 for the word "and" itself and the tokenizer's own tokens (start, end, padding)."""
        ids = self._token_ids(prompt)
        tokens = self.tokenizer.convert_ids_to_tokens(ids)
        special, clause, out = set(self.tokenizer.all_special_ids), 0, []
        for i, token in zip(ids, tokens):
            joins = token.removesuffix("</w>").lower() == "and"
            out.append(-1 if joins or i in special else clause)
            clause += joins
        return torch.tensor(out, device=self.device)

    @torch.no_grad()
    def take_readings(self, latents: list[torch.Tensor], text: torch.Tensor, read_turns: bool = True,
                      read_walls: bool = True, images: list[torch.Tensor] | None = None,
                      clauses: torch.Tensor | None = None) -> dict[str, float | int]:
        """Each whole-video judge's reading of a take: `fade`, its worst `redraw.fade` against frame 0; `unnamed`,
        the caption's `clauses` frame 0 draws no object of (`redraw.unnamed`; 0 without `clauses`); with
        `read_turns`, its objects off the caption's path in mid-frame, moving ones that turn (`turns`, read off
        the binding, and `pixel_turns`, off the pixels) and still ones that leave their place (`strays`); with
        `read_walls`, its fast objects late at a wall (`walls`). latents: per frame (1, c, h, w); text: an
        `encode_prompt` output; `images`: the frames' `_decode`, when the caller already made them. `judge_take`
        ranks takes by them; benchmarks/turn_judge.py reports them one by one."""
        bindings = [self.bind(x, text)[0, :-1] for x in latents]
        out = {"fade": max((fade(bindings[0], b) for b in bindings[1:]), default=0.0),
               "unnamed": unnamed(bindings[0], clauses) if clauses is not None else 0}
        if not (read_turns or read_walls):
            return out
        step = self.caption_steps(latents[0], text)[0]
        images = images if images is not None else [self._decode(x) for x in latents]
        seen = sightings(images, bindings, step, self.vae_scale_factor)
        if read_turns:
            out.update(turns=turns(bindings, step, self.vae_scale_factor), pixel_turns=pixel_turns(seen),
                       strays=strays(seen))
        if read_walls:
            out["walls"] = walls(seen)
        return out

    def judge_take(self, latents: list[torch.Tensor], text: torch.Tensor, judge_turns: bool = True,
                   judge_walls: bool = False, images: list[torch.Tensor] | None = None,
                   clauses: torch.Tensor | None = None) -> tuple[float, int, int]:
        """How a whole video falls short, as `retake` ranks a take, from its `take_readings`: (its worst fade, or
        FADE, an object lost outright, when frame 0 draws no object of one of the caption's `clauses`; its
        objects off the caption's path in mid-frame, turns, pixel turns and strays, or 0 unless `judge_turns`; its
        fast objects late at a wall, or 0 unless `judge_walls`), objects kept first, then paths, then walls; all 0
        passes."""
        read = self.take_readings(latents, text, judge_turns, judge_walls, images, clauses)
        worst = max(read["fade"], FADE) if read["unnamed"] else read["fade"]
        return (worst, read["turns"] + read["pixel_turns"] + read["strays"] if judge_turns else 0,
                read.get("walls", 0))

    def caption_steps(self, latents: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """The adapter's word field's displacement of latents (K, c, h, w) as the caption (`text`, an
        `encode_prompt` output) says it, never turned: (K, 2, h, w), in latent places (`WordField.forward`)."""
        field, words = self._word_field(text)
        return field(latents.to(self.dtype), words.expand(len(latents), -1, -1))

    def bind(self, latents: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """The adapter's word field's binding of latents (K, c, h, w) to the caption (`text`, an `encode_prompt`
        output): (K, L + 1, h, w), each place's softmax over the words and, last, the still key
        (`WordField.bind`)."""
        field, words = self._word_field(text)
        return field.bind(latents.to(self.dtype), words.expand(len(latents), -1, -1))[0]

    def _word_field(self, text: torch.Tensor) -> tuple[torch.nn.Module, torch.Tensor]:
        """The adapter's word field and the caption's words it reads (1, L, D) from `text`."""
        words = split_text(text, self.denoiser.unet.config.cross_attention_dim)[1]
        return self.denoiser.adapter.spatial.word_field, words

    @torch.no_grad()
    def base_denoising_error(self, latents: torch.Tensor, text: torch.Tensor, generator=None,
                             levels=ERROR_LEVELS) -> torch.Tensor:
        """`sampling.denoising_error` of latents (K, c, h, w) under the base model alone (no adapter context)
        given `text` (an `encode_prompt` output) at `levels` → (K,): lower, the base model finds a sample more
        likely."""
        base = lambda x, t: self.denoiser.predict(x, t, text.expand(len(x), -1, -1), None)  # noqa: E731
        return denoising_error(base, latents, self.scheduler.alphas_cumprod,
                               self.scheduler.config.get("prediction_type", "epsilon"), levels, generator)

    @torch.no_grad()
    def __call__(self, prompt: str, *, image=None, video=None, generator: torch.Generator | None = None,
                 output: str | Path | None = None, fps: float = 8, **options) -> VideoOutput:
        """Generate a video. Options are the fields of `GenerationConfig` (num_frames, height, width,
        num_inference_steps, guidance_scale, context_guidance_scale, later_guidance_scale, null_field,
        negative_prompt, mode, scheduler, window, start, strength, carry_space, context_noise, first_frame,
        first_frame_candidates, first_frame_margin, first_frame_steps). `image`: a first
        frame (path, PIL image or array); `video`: a clip (path or (f, h, w, 3) array) to continue; both
        autoregressive only. With `output`, frames are also
        streamed to that file as they are made."""
        config = self._config(prompt, options)
        writer = VideoWriter(output, fps) if output is not None else contextlib.nullcontext()
        frames = []
        with writer:
            for frame in self._frames(prompt, config, image, video, generator):
                frames.append(frame)
                if output is not None:
                    writer.write(frame)
        return VideoOutput(np.stack(frames))

    def _frames(self, prompt, config: GenerationConfig, image, video, generator) -> Iterator[np.ndarray]:
        options = {f.name: getattr(config, f.name) for f in fields(config)}
        if config.mode == Mode.AUTOREGRESSIVE.value:
            yield from self.stream(prompt, image=image, video=video, generator=generator, **options)
            return
        self._given_frames(config, image, video)  # rejects given frames in joint mode
        text, null_text = self._texts(prompt, config)
        model = video_model(self.denoiser, text, null_text, config.guidance(), config.window,
                            base_first=config.first_frame == "base")
        shape = (1, config.num_frames, *self._frame_shape(config)[1:])
        latents = sample_joint(model, self.make_scheduler(config), shape, config.num_inference_steps,
                               generator=generator, device=self.device, dtype=self.dtype)
        for latent in latents[0]:
            yield self.decode(latent[None])[0]

    def _texts(self, prompt: str, config: GenerationConfig) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode_prompt(prompt), self.encode_prompt(config.negative_prompt or "")


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Images (b, 3, H, W) in [-1, 1] → (b, H, W, 3) uint8."""
    return ((images.float() + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _read_clip(path) -> np.ndarray:
    try:
        return read_video(path)
    except VidgenError:
        raise
    except Exception as exc:  # PyAV raises several error types for missing or broken files
        raise VidgenError(f"video: could not read {str(path)!r} ({type(exc).__name__}); expected an mp4, webm or "
                          "gif file, or a directory of PNG frames") from None


def _read_image(image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, np.ndarray):
        return Image.fromarray(image)
    try:
        with Image.open(image) as img:
            return img.convert("RGB")
    except Exception as exc:
        raise VidgenError(f"image: could not read {str(image)!r} ({type(exc).__name__}); expected a PNG, JPEG "
                          "or other image file PIL can open")
