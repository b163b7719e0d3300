"""Training the adapter on a frozen base model (DESIGN.md, "Training").

Per example: a clip, a target frame i, a level t and a mode. Autoregressive examples condition on the anchor
and the last K clean frames before i (optionally noised to a random level ≤ `context_noise`); joint examples
on the other frames, each noised at the same t with its own noise. The loss is the base model's own target
(ε, v or x₀) for frame i. Text and context are dropped independently for classifier-free guidance.

Every random draw of step n comes from a generator seeded by (seed, n, micro-batch, process), so a resumed run
repeats exactly what an uninterrupted one would have done; checkpoints hold weights, EMA, optimizer and step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from .checkpoint import atomic_dir, latest_checkpoint, load_checkpoint, save_checkpoint
from .adapter import check_options as check_adapter_options
from .fields import carry_error
from .data.video_folder import VideoFolderDataset, read_captions
from .errors import VidgenError, check, positive_number
from .sampling import FrameContext, context_window, joint_window, vp_noise

logger = logging.getLogger(__name__)


LOSS_WEIGHTINGS = ("none", "x0")
HARD_RANKS = ("loss", "sign")  # hard_frames: rank by the field's loss, or by how much better it fits reversed
OWN_FROM = ("first", "previous")  # own-context videos: run on from the real frame 0, or each frame from the real ones
X0_WEIGHT_CAP = 20.0  # "x0" weighting of an ε-prediction loss: 1/SNR, at most this (SNR ≥ 0.05)


@dataclass(frozen=True)
class TrainConfig:
    model: str  # diffusers Stable Diffusion folder (frozen)
    data: str  # video folder with captions.jsonl
    out: str  # output folder: adapter/, checkpoints/, log.jsonl, cache/
    num_frames: int = 8  # frames per training clip
    stride: int = 1  # take every stride-th frame of a video
    height: int | None = None  # pixels; None: the base model's native size
    width: int | None = None
    batch_size: int = 8
    steps: int = 1000  # optimizer steps in all (a resumed run continues to this)
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    gradient_accumulation: int = 1  # micro-batches per optimizer step
    joint_fraction: float = 0.25  # share of joint-mode examples (the rest autoregressive)
    start_fraction: float = 0.0  # share of autoregressive examples whose target is frame 1, which must start
    #                              the motion from the caption (its context, frame 0, has no velocity)
    first_fraction: float = 0.0  # share of autoregressive examples whose target is frame 0, drawn with no
    #                              context as a video's first frame is (drawn after start_fraction: it may take
    #                              some of its examples)
    still_fraction: float = 0.0  # share of autoregressive examples past frame 1 whose context frames are all
    #                              copies of the previous frame: the context stands still, the motion must come
    #                              from the caption (so that a generated context that lags cannot stop it)
    text_dropout: float = 0.1  # probability of training with the null text
    context_dropout: float = 0.1  # probability of training with the null context
    context_noise: int = 0  # autoregressive context augmentation: levels drawn in [0, context_noise]
    loss_weighting: str = "none"  # "none": the base's own objective; "x0": weighted to the x₀ error (capped),
    #                               which pays for the layout at high noise, where the position is decided
    window: int = 4  # K: the anchor + the last K frames (joint: the K nearest)
    ema_decay: float = 0.0  # 0 disables EMA; the exported adapter holds the EMA weights when enabled
    checkpoint_every: int = 250
    log_every: int = 10
    seed: int = 0
    cache_latents: bool = True  # encode all clips with the VAE once and keep the latents on disk
    num_tokens: int = 16  # adapter: context tokens ℓ
    adapter_width: int = 128  # adapter: resampler width
    adapter_depth: int = 2  # adapter: resampler blocks
    token_path: bool = True  # adapter: decoupled cross-attention path
    spatial_path: bool = True  # adapter: spatial residual path
    frame_differences: bool = True  # adapter: the spatial path also sees neighbouring frames' differences
    spatial_text: bool = False  # adapter: the spatial path is also modulated by the text (not yet shown to help)
    spatial_text_words: bool = False  # adapter: with spatial_text, read the text encoder's input word embeddings
    spatial_flow: bool = False  # adapter: the spatial path warps its pooled map by a predicted displacement field
    flow_interpolation: str = "bilinear"  # adapter: how its displacement warps (bilinear | bicubic)
    flow_motions: int = 0  # adapter: M > 0 makes the field of M displacements read off the caption, placed per
    #                        location (and reversed at a bounce) by the map; 0: a free field plus the caption's one
    flow_words: bool = False  # adapter: the field read off the caption word by word, bound per place by attention,
    #                           reversed where the free field points back (fields.WordField): the context never
    #                           sets how far a place moves
    word_binding: str = "map"  # adapter: with flow_words, what binds a place to its words: "map" (the pooled map,
    #                            motion included) or "appearance" (the latest context frame alone; WordField)
    flow_sign_margin: float = 0.0  # adapter: with flow_words, run the word field backwards only where the free
    #                                field points back at this share of its length or more (fields.signed_like)
    flow_walls: bool = False  # adapter: the free field also reads how near each place is to the frame's edges
    flow_partial_turn: bool = False  # adapter: an object turns by as much as the free field points back
    flow_depth: int = 0  # adapter: residual blocks added to the free field's head (zero-initialised)
    flow_turn_read: str = "mean"  # adapter: where the free field is read to turn an object: "mean" over it, or
    #                               "peak" at the place that takes each of its words most (fields.object_signs)
    flow_loss: float = 0.0  # weight of the displacement loss (spatial_flow): the spatial path's displacement must
    #                         carry the previous clean frame onto the target frame (self-supervised, see loss_fn)
    flow_horizon: int = 1  # the displacement loss also warps the frame k = 2..H back by k times the field
    turn_loss: float = 0.0  # weight of the turn loss (words bound by appearance): per place, the free field's read
    #                         that turns each object (fields.object_read) must lean the way of whichever of the
    #                         signed field and its reverse carries the previous clean frame onto the target better
    #                         (self-supervised, see loss_fn): the sign is what the displacement loss cannot train
    train_only: str | None = None  # comma-separated prefixes of adapter parameter names: only those train (e.g.
    #                                "spatial.flow": the free field's head); the rest keep the --init-adapter weights
    init_adapter: str | None = None  # start from this adapter folder's weights where names and shapes match
    oversample: str | None = None  # "TEXT:FACTOR": clips whose caption contains TEXT are drawn FACTOR times as
    #                                often as the others (e.g. " and :2" for more two-object scenes); several
    #                                rules joined by ";" multiply where a caption holds more than one TEXT
    own_context: float = 0.0  # share of autoregressive examples past frame 1 whose context frames after frame 0
    #                           are the init adapter's own video of the clip (`own_from`; made once before
    #                           training, own_frames); the targets stay real
    own_clips: int = 0  # how many clips get such a video (0: all), drawn by seed as `oversample` weighs them
    own_from: str = "first"  # "first": the own video runs on from the real frame 0 (its objects drift off the
    #                          real path); "previous": each frame is generated given the real frames before it
    hard_frames: float = 1.0  # target frames the init adapter's displacement field carries on worst (the top
    #                           HARD_SHARE of clip frames from frame 2 on, by the displacement loss given their
    #                           real context: a bounce the field did not foresee) are drawn this many times as
    #                           often as the others (1: every frame alike); needs --init-adapter with a field
    hard_rank: str = "loss"  # what ranks them: "loss", or "sign": the displacement loss of the field minus that of
    #                          the field reversed (frames where it points the wrong way, as at an unforeseen bounce;
    #                          only frames clearly above 0 count)
    hard_from: int = 0  # 0: the init adapter ranks the hard frames before training; N > 0: this run's own field
    #                     (its EMA weights where it keeps them) ranks them at step N and they are drawn as
    #                     `hard_frames` says from then on, so that one run holds both phases (no --init-adapter)

    # named sets of defaults (`vidgen train --preset NAME`; fields given explicitly win): "demo" is the recipe of
    # the shipped demo adapter (docs/model-card.md, training table), every option of its one command but the seed
    PRESETS = {"demo": {"num_frames": 16, "batch_size": 16, "steps": 15000, "learning_rate": 3e-4,
                        "context_noise": 100, "ema_decay": 0.99, "start_fraction": 0.5, "spatial_text": True,
                        "spatial_text_words": True, "spatial_flow": True, "flow_loss": 1.0,
                        "flow_interpolation": "bicubic", "flow_words": True, "word_binding": "appearance",
                        "oversample": " and :3", "flow_depth": 2, "hard_frames": 5.0, "hard_from": 6000}}
    # fields that may change between a run and its resumption
    RESUMABLE = ("steps", "checkpoint_every", "log_every")
    # what a checkpoint saved before a field existed was trained with
    LEGACY = {"frame_differences": False, "spatial_text": False, "spatial_text_words": False, "start_fraction": 0.0,
              "init_adapter": None, "loss_weighting": "none", "spatial_flow": False,
              "flow_loss": 0.0, "still_fraction": 0.0, "flow_interpolation": "bilinear", "flow_horizon": 1,
              "flow_motions": 0, "flow_words": False, "oversample": None, "word_binding": "map",
              "flow_sign_margin": 0.0, "flow_walls": False, "flow_partial_turn": False, "flow_depth": 0,
              "flow_turn_read": "mean", "own_context": 0.0, "own_clips": 0, "own_from": "first", "hard_frames": 1.0,
              "hard_rank": "loss", "first_fraction": 0.0, "hard_from": 0, "turn_loss": 0.0, "train_only": None}
    # what the hard frames are set by: a checkpoint saved before they acted may resume with them changed
    HARD = ("hard_frames", "hard_rank", "hard_from")

    def validate(self) -> None:
        check(self.num_frames >= 2, "num_frames", self.num_frames, "an integer ≥ 2")
        check(self.stride >= 1, "stride", self.stride, "an integer ≥ 1")
        check(self.batch_size >= 1, "batch_size", self.batch_size, "an integer ≥ 1")
        check(self.steps >= 1, "steps", self.steps, "an integer ≥ 1")
        check(self.learning_rate > 0, "learning_rate", self.learning_rate, "a number > 0")
        check(self.gradient_accumulation >= 1, "gradient_accumulation", self.gradient_accumulation, "an integer ≥ 1")
        for name in ("joint_fraction", "start_fraction", "first_fraction", "still_fraction", "text_dropout",
                     "context_dropout", "own_context"):
            check(0 <= getattr(self, name) <= 1, name, getattr(self, name), "a number in [0, 1]")
        check(0 <= self.ema_decay < 1, "ema_decay", self.ema_decay, "a number in [0, 1)")
        check(self.window >= 1, "window", self.window, "an integer ≥ 1")
        check(self.loss_weighting in LOSS_WEIGHTINGS, "loss_weighting", self.loss_weighting,
              " or ".join(LOSS_WEIGHTINGS))
        check(self.flow_loss >= 0, "flow_loss", self.flow_loss, "a number ≥ 0")
        check(self.flow_loss == 0 or (self.spatial_path and self.spatial_flow), "flow_loss", self.flow_loss,
              "0 unless the adapter has spatial_flow (a displacement to train)")
        check(self.flow_horizon >= 1, "flow_horizon", self.flow_horizon, "an integer ≥ 1")
        check(self.turn_loss >= 0, "turn_loss", self.turn_loss, "a number ≥ 0")
        check(self.turn_loss == 0 or (self.flow_words and self.word_binding == "appearance"), "turn_loss",
              self.turn_loss, "0 unless the adapter has --flow-words with --word-binding appearance (objects to turn)")
        check(self.train_only is None or all(self.train_only.split(",")), "train_only", self.train_only,
              "comma-separated prefixes of adapter parameter names, e.g. 'spatial.flow'")
        check(self.own_from in OWN_FROM, "own_from", self.own_from, " or ".join(OWN_FROM))
        check(self.own_clips >= 0, "own_clips", self.own_clips, "an integer ≥ 0 (0: every clip)")
        check(self.own_context == 0 or self.init_adapter is not None, "own_context", self.own_context,
              "0 unless --init-adapter gives a trained adapter to generate the contexts with")
        check(self.checkpoint_every >= 1, "checkpoint_every", self.checkpoint_every, "an integer ≥ 1")
        check(1 <= self.hard_frames < math.inf, "hard_frames", self.hard_frames, "a finite number ≥ 1")
        check(self.hard_frames == 1 or (self.spatial_flow and (self.init_adapter is not None or self.hard_from > 0)),
              "hard_frames", self.hard_frames, "1 unless the adapter has --spatial-flow and a field ranks the frames: "
              "--init-adapter's (a trained adapter), or the run's own from step --hard-from N")
        check(self.hard_from >= 0 and (self.hard_from == 0 or self.hard_frames > 1), "hard_from", self.hard_from,
              "0, or a step N ≥ 1 with --hard-frames above 1")
        check(self.hard_rank in HARD_RANKS, "hard_rank", self.hard_rank, " or ".join(HARD_RANKS))
        if self.oversample is not None:
            self.oversample_rules()
        check_adapter_options(**self.adapter_options())

    def oversample_rules(self) -> list[tuple[str, float]]:
        """`oversample` as [(text, factor), ...], one pair per ";"-separated rule."""
        rules = []
        for rule in self.oversample.split(";"):
            text, _, factor = rule.rpartition(":")
            weight = positive_number(factor)
            check(bool(text) and weight is not None, "oversample", self.oversample,
                  "'TEXT:FACTOR' with a caption fragment TEXT and a finite number FACTOR > 0, e.g. ' and :2', "
                  "or several such rules joined by ';'")
            rules.append((text, weight))
        return rules

    def adapter_options(self) -> dict:
        return dict(num_tokens=self.num_tokens, width=self.adapter_width, depth=self.adapter_depth,
                    token_path=self.token_path, spatial_path=self.spatial_path,
                    frame_differences=self.frame_differences, spatial_text=self.spatial_text,
                    spatial_text_words=self.spatial_text_words, spatial_flow=self.spatial_flow,
                    flow_interpolation=self.flow_interpolation, flow_motions=self.flow_motions,
                    flow_words=self.flow_words, word_binding=self.word_binding,
                    flow_sign_margin=self.flow_sign_margin, flow_walls=self.flow_walls,
                    flow_partial_turn=self.flow_partial_turn, flow_depth=self.flow_depth,
                    flow_turn_read=self.flow_turn_read)


@dataclass
class TrainingData:
    latents: torch.Tensor  # (N, f, c, h, w) clip latents, scaled as the base model expects
    caption_ids: torch.Tensor  # (N,) index into `texts`
    texts: torch.Tensor  # (U, L, d) text embeddings of the unique captions
    null_text: torch.Tensor  # (1, L, d) embedding of the empty prompt
    weights: torch.Tensor | None = None  # (N,) how often each clip is drawn, relative; None: uniformly
    own: torch.Tensor | None = None  # (N, f, c, h, w) the adapter's own video of each clip (own_context)
    own_weights: torch.Tensor | None = None  # (N,) draw weights of the clips for own-context examples (0: no video)
    frame_weights: torch.Tensor | None = None  # (N, f) how often each frame of a clip is the target; None: uniformly


def _cache_key(config: TrainConfig, size: tuple[int, int], source) -> str:
    model = Path(config.model).resolve()
    vae_cfg = (model / "vae" / "config.json").read_text() if (model / "vae" / "config.json").is_file() else ""
    blob = json.dumps([source, str(model), vae_cfg, config.num_frames, config.stride, size])
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def _folder_stamp(folder: str) -> list:
    files = sorted(p for p in Path(folder).iterdir() if p.is_file())
    return [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]


def prepare_data(config: TrainConfig, pipe, size: tuple[int, int], dataset=None) -> TrainingData:
    """Encode clips (cached on disk) and captions with the frozen base model. `dataset` (items (frames,
    caption), e.g. `ShapesDataset`) replaces the video folder `config.data`; it is cached when it has a
    `cache_key`."""
    source = _folder_stamp(config.data) if dataset is None else getattr(dataset, "cache_key", None)
    cache = Path(config.out) / "cache" / f"latents-{_cache_key(config, size, source)}.safetensors"
    use_cache = config.cache_latents and source is not None
    if use_cache and cache.is_file():
        tensors = load_file(cache)
        captions = json.loads((cache.with_suffix(".json")).read_text())
    else:
        if dataset is None:
            dataset = VideoFolderDataset(config.data, config.num_frames, *size, stride=config.stride)
            print(f"data: {dataset.report}; {len(dataset)} clips of {config.num_frames} frames")
        items = [dataset[i] for i in range(len(dataset))]
        captions = sorted({caption for _, caption in items})
        ids = torch.tensor([captions.index(caption) for _, caption in items])
        latents = torch.stack([pipe.encode_frames(clip).float().cpu() for clip, _ in
                               tqdm(items, desc="encoding clips", leave=False)])
        tensors = {"latents": latents.contiguous(), "caption_ids": ids}
        if use_cache:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            save_file(tensors, tmp)
            cache.with_suffix(".json").write_text(json.dumps(captions))
            os.replace(tmp, cache)
    texts = torch.cat([pipe.encode_prompt(c).float().cpu() for c in captions])
    ids = tensors["caption_ids"].long()
    return TrainingData(tensors["latents"].float(), ids, texts, pipe.encode_prompt("").float().cpu(),
                        clip_weights(config, captions, ids))


def clip_weights(config: TrainConfig, captions: list[str], ids: torch.Tensor) -> torch.Tensor | None:
    """Relative draw weight of each clip under `config.oversample` (None without it): the product of the factors
    of the rules whose text its caption contains."""
    if config.oversample is None:
        return None
    weights = torch.ones(len(ids))
    for text, factor in config.oversample_rules():
        hit = torch.tensor([text in c for c in captions])[ids]
        check(bool(hit.any()), "oversample", config.oversample, f"a TEXT that some training caption contains "
              f"(none contains {text!r})")
        print(f"oversample: {int(hit.sum())} of {len(ids)} clips have {text!r} in their caption, "
              f"drawn {factor:g}× as often")
        weights = torch.where(hit, weights * factor, weights)
    return weights


def init_adapter_cache(config: TrainConfig, prefix: str, name: str, compute, key: list) -> torch.Tensor:
    """The tensor `compute()` makes from the init adapter, cached under OUT/cache/PREFIX-HASH.safetensors, HASH
    keyed by the adapter's weights and `key` (JSON), written atomically, so that a resumed run reads the same."""
    weights_file = Path(config.init_adapter) / "diffusion_pytorch_model.safetensors"
    return cached(config, prefix, name, compute, [hashlib.sha1(weights_file.read_bytes()).hexdigest(), *key])


def cached(config: TrainConfig, prefix: str, name: str, compute, key: list) -> torch.Tensor:
    """The tensor `compute()` makes, cached under OUT/cache/PREFIX-HASH.safetensors, HASH keyed by `key` (JSON),
    written atomically (each process its own temporary file)."""
    blob = json.dumps(key)
    cache = Path(config.out) / "cache" / f"{prefix}-{hashlib.sha1(blob.encode()).hexdigest()[:16]}.safetensors"
    if cache.is_file():
        return load_file(cache)[name]
    tensor = compute()
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    save_file({name: tensor.contiguous()}, tmp)
    os.replace(tmp, cache)
    return tensor


def add_own_videos(data: TrainingData, config: TrainConfig, pipe) -> None:
    """Fill `data.own` with the init adapter's own videos (`own_frames.rollouts` from the real frame 0, or
    `teacher_forced`, as `config.own_from` says) of `config.own_clips` clips (all when 0), chosen by seed as
    `oversample` weighs them, and `data.own_weights`; generated with the init adapter's generation_config.json
    and cached on disk, keyed by the clips, the adapter's weights and the settings, so that a resumed run trains
    on the same."""
    from .own_frames import rollouts, teacher_forced
    from .pipeline import GenerationConfig, read_generation_defaults

    settings = GenerationConfig(**read_generation_defaults(config.init_adapter))
    n = len(data.latents)
    weights = torch.ones(n) if data.weights is None else data.weights
    g = torch.Generator().manual_seed(config.seed)
    count = n if config.own_clips == 0 else min(config.own_clips, n)
    chosen = torch.multinomial(weights, count, replacement=False, generator=g).sort().values

    def generate() -> torch.Tensor:
        print(f"own contexts: generating {count} videos of {data.latents.shape[1]} frames with {config.init_adapter}")
        texts = data.texts[data.caption_ids[chosen]]
        return (rollouts if config.own_from == "first" else teacher_forced)(pipe, data.latents[chosen], texts,
                                                                            settings, g)

    videos = init_adapter_cache(config, "own", "videos", generate,
                                [dataclasses.asdict(settings), chosen.tolist(), config.seed, list(data.latents.shape),
                                 config.own_from, float(data.latents[chosen].double().sum())])
    data.own = data.latents.clone()
    data.own[chosen] = videos.to(data.own.dtype)
    data.own_weights = torch.zeros(n)
    data.own_weights[chosen] = weights[chosen]


HARD_SHARE = 0.1  # hard_frames: the share of clip frames (from frame 2 on) that count as hard (at most)
SIGN_TOLERANCE = 1e-3  # hard_rank "sign": a hard frame's score exceeds this share of the median |score|


@torch.no_grad()
def field_errors(adapter, data: TrainingData, window: int, interpolation: str, clips_per_batch: int = 4,
                 rank: str = "loss") -> torch.Tensor:
    """(N, f): per clip frame i ≥ 2, the displacement loss of `adapter`'s field given frame i's real clean context
    (mean squared latent error of frame i−1 warped by it, against frame i); with `rank` "sign", that loss minus
    the loss of the field reversed (> 0 where it points the wrong way). NaN for frames 0 and 1 (frame 1's
    context shows no motion to carry on)."""
    n, f = data.latents.shape[:2]
    device, dtype = next(adapter.parameters()).device, next(adapter.parameters()).dtype
    targets = [(i, context_window(i, window)) for i in range(2, f)]
    out = torch.full((n, f), float("nan"))
    for start in tqdm(range(0, n, clips_per_batch), desc="ranking frames", leave=False):
        clips = list(range(start, min(start + clips_per_batch, n)))
        ctx = FrameContext.cat([FrameContext.make(data.latents[c, idx][None], idx, i, 0.0, k=window + 1)
                                for c in clips for i, idx in targets])
        text = data.texts[data.caption_ids[clips]].repeat_interleave(len(targets), 0)
        field = adapter.encode(ctx.frames.to(device, dtype), *(a.to(device) for a in ctx.as_args()[1:]),
                               text.to(device, dtype)).flow
        before = data.latents[clips, 1:f - 1].flatten(0, 1).to(device, dtype)
        after = data.latents[clips, 2:].flatten(0, 1).to(device, dtype)

        def loss(shift: torch.Tensor) -> torch.Tensor:  # per frame: frame i−1 warped by `shift` against frame i
            return carry_error(before, shift, after, interpolation).flatten(1).mean(dim=1)

        err = loss(field) - loss(-field) if rank == "sign" else loss(field)
        out[clips, 2:] = err.cpu().view(len(clips), len(targets))
    return out


def add_hard_frames(data: TrainingData, config: TrainConfig, adapter, step: int = 0) -> None:
    """Set `data.frame_weights`: the HARD_SHARE of clip frames (from frame 2 on) whose `field_errors` under
    `adapter` (ranked as `config.hard_rank` says) are largest weigh `config.hard_frames`, the others 1. Cached on
    disk, keyed by the clips and the init adapter's weights (`hard_from` 0) or by the step that ranks them
    (`hard_from` N: `adapter` holds the run's weights at step N), so that a resumed run draws the same."""
    def rank() -> torch.Tensor:
        check(step <= config.hard_from, "hard_from", config.hard_from, "a run that ranked its hard frames at that "
              f"step and kept them in {Path(config.out) / 'cache'} (they are gone: resume from a checkpoint at or "
              "before it, or start again)")
        was_training = adapter.training
        adapter.eval()
        errors = field_errors(adapter, data, config.window, config.flow_interpolation, rank=config.hard_rank)
        adapter.train(was_training)
        return errors

    key = [config.window, config.flow_interpolation, list(data.latents.shape), float(data.latents.double().sum()),
           *([config.hard_rank] if config.hard_rank != "loss" else [])]
    errors = init_adapter_cache(config, "field-errors", "errors", rank, key) if config.hard_from == 0 else \
        cached(config, "own-field-errors", "errors", rank, [config.hard_from, *key])
    ranked = errors[:, 2:].flatten()
    cut = torch.quantile(ranked, 1 - HARD_SHARE)
    if config.hard_rank == "sign":  # only frames the reversed field fits clearly better (a still object scores ~0)
        cut = torch.maximum(cut, SIGN_TOLERANCE * ranked.abs().median())
    hard = errors >= cut  # NaN (frames 0, 1) compares False
    data.frame_weights = torch.where(hard, config.hard_frames, 1.0)
    by = "the init adapter's field" if config.hard_from == 0 else f"this run's field at step {config.hard_from}"
    print(f"hard frames: {int(hard.sum())} of {ranked.numel()} clip frames ({config.hard_rank} score ≥ {cut:.4f}, "
          f"median {ranked.median():.4f}, ranked by {by}) drawn {config.hard_frames:g}× as often")


def hard_frames_acted(config: dict, step: int) -> bool:
    """Whether the hard frames of a run with these settings changed the draw before `step`."""
    return config["hard_frames"] != 1 and (config["hard_from"] == 0 or config["hard_from"] < step)


def make_batch(data: TrainingData, config: TrainConfig, alphas_cumprod: torch.Tensor, prediction_type: str,
               generator: torch.Generator) -> dict:
    """One batch of mixed autoregressive and joint examples, all randomness drawn from `generator`."""
    g, B = generator, config.batch_size
    n, f = data.latents.shape[:2]
    T = len(alphas_cumprod)
    clip = torch.randint(n, (B,), generator=g) if data.weights is None else \
        torch.multinomial(data.weights, B, replacement=True, generator=g)
    x0 = data.latents[clip]  # (B, f, c, h, w)
    target_frame = torch.randint(f, (B,), generator=g) if data.frame_weights is None else \
        torch.multinomial(data.frame_weights[clip], 1, generator=g)[:, 0]
    joint = torch.rand(B, generator=g) < config.joint_fraction
    t = torch.randint(T, (B,), generator=g)
    aug = torch.randint(config.context_noise + 1, (B,), generator=g)
    noise = torch.randn(x0[:, 0].shape, generator=g)
    context_noise = torch.randn(x0.shape, generator=g)
    drop_text = torch.rand(B, generator=g) < config.text_dropout
    drop_context = torch.rand(B, generator=g) < config.context_dropout
    if config.start_fraction > 0:  # drawn last, so that runs without it keep their random stream
        start = (torch.rand(B, generator=g) < config.start_fraction) & ~joint
        target_frame = torch.where(start, torch.ones_like(target_frame), target_frame)
    if config.first_fraction > 0:  # drawn only when set, so that runs without it keep their random stream
        first = (torch.rand(B, generator=g) < config.first_fraction) & ~joint
        target_frame = torch.where(first, torch.zeros_like(target_frame), target_frame)
    still = torch.zeros(B, dtype=torch.bool)
    if config.still_fraction > 0:  # drawn after the others, for the same reason
        still = (torch.rand(B, generator=g) < config.still_fraction) & ~joint & (target_frame > 1)
    own = torch.zeros(B, dtype=torch.bool)
    if config.own_context > 0:  # drawn last too; an own-context example takes a clip that has an own video
        own = (torch.rand(B, generator=g) < config.own_context) & ~joint & (target_frame > 1) & ~still
        clip = torch.where(own, torch.multinomial(data.own_weights, B, replacement=True, generator=g), clip)
        x0 = data.latents[clip]

    parts = []
    for b in range(B):
        i = int(target_frame[b])
        idx, level = (joint_window(i, f, config.window), int(t[b])) if joint[b] else \
            (context_window(i, config.window), int(aug[b]))
        frames = x0[b, [i - 1] * len(idx)] if still[b] else data.own[clip[b], idx] if own[b] else x0[b, idx]
        if level > 0:
            frames = vp_noise(frames, context_noise[b, idx], alphas_cumprod, level)
        parts.append(FrameContext.make(frames[None], idx, i, float(level), k=config.window + 1))
    clean = x0[torch.arange(B), target_frame]  # (B, c, h, w)
    x_t = vp_noise(clean, noise, alphas_cumprod, t)
    if prediction_type == "epsilon":
        target = noise
    elif prediction_type == "v_prediction":
        abar = alphas_cumprod[t].view(B, 1, 1, 1)
        target = abar.sqrt() * noise - (1 - abar).sqrt() * clean
    else:  # "sample"
        target = clean
    text = torch.where(drop_text[:, None, None], data.null_text, data.texts[data.caption_ids[clip]])
    batch = {"x_t": x_t, "t": t, "text": text, "context": FrameContext.cat(parts), "drop": drop_context,
             "target": target, "clean": clean,
             # the frames k = 1..H before the target (k = 1 is in every autoregressive context): the displacement
             # times k should carry frame i−k onto frame i where it exists
             "history": torch.stack([x0[torch.arange(B), (target_frame - k).clamp(min=0)]
                                     for k in range(1, config.flow_horizon + 1)], dim=1),
             "history_ok": torch.stack([target_frame - k >= 0 for k in range(1, config.flow_horizon + 1)], dim=1),
             "carry": ~joint & (target_frame > 0) & ~drop_context}
    if config.loss_weighting == "x0":  # ‖Δx₀‖² = ‖Δε‖²/SNR = σ²‖Δv‖² (VP, α² + σ² = 1)
        abar = alphas_cumprod[t]
        snr = abar / (1 - abar)
        batch["weight"] = {"epsilon": (1 / snr).clamp(max=X0_WEIGHT_CAP),
                           "v_prediction": 1 / (1 + snr)}.get(prediction_type, torch.ones(B))
    return batch


TURN_SHARPNESS = 4.0  # the turn loss's logistic slope per step of the free field's read (fields.object_read)
TURN_CLIP = 2.0  # the read is clipped to ± this many steps before it: a place far on the right side is done


def turn_loss(context, batch: dict, device, interpolation: str, margin: float) -> tuple[torch.Tensor, float] | None:
    """The turn loss and how often the read is on the right side (weighted as the loss), or None where no
    example of `batch` turns.

    Per place p of an autoregressive example whose context shows motion (frame 2 on), the field as signed
    (`context.flow`) and its reverse each carry the previous clean frame on; D(p) is how much better the signed
    one matches the target frame there (squared latent error of the reverse minus the signed's). The free
    field's read r(p) (`context.turn`, ≥ −margin: this sign) should lean to the side of the better of the two,
    by a logistic loss on TURN_SHARPNESS · (r + margin), weighted by |D(p)|, which is what the wrong sign costs
    there: a place in an object's flat inside or in the background costs nothing whichever way it goes. It is
    the self-supervision of a turn, read off any video as the displacement loss is; that loss cannot train the
    sign, which it never differentiates (an object carried the wrong way by a field of the right length)."""
    rows = batch["carry"].to(device) & (batch["context"].mask.to(device).sum(dim=1) >= 2)
    if context.turn is None or not rows.any():
        return None
    flow, read = context.flow.detach()[rows], (context.turn[rows].float() + margin).clamp(-TURN_CLIP, TURN_CLIP)
    before, clean = batch["history"][:, 0].to(device)[rows], batch["clean"].to(device)[rows]
    # b h w: > 0 where the sign as it is carries the frame on better
    better = carry_error(before, -flow, clean, interpolation) - carry_error(before, flow, clean, interpolation)
    target = torch.where(read >= 0, 1.0, -1.0) * better.sign()
    weight = better.abs()
    total = weight.sum().clamp(min=1e-12)
    loss = (weight * F.softplus(-TURN_SHARPNESS * target * read)).sum() / total
    right = float((weight * (target * read > 0)).sum() / total)
    return loss, right


def loss_fn(denoiser, batch: dict, device, dtype, flow_weight: float = 0.0, interpolation: str = "bilinear",
            turn_weight: float = 0.0, sign_margin: float = 0.0) -> tuple[torch.Tensor, dict]:
    """→ (the loss to minimise, its parts as floats for the log).

    With `flow_weight`, a displacement loss joins the denoising loss: warping the previous clean frame by the
    spatial path's displacement field should give the target frame (mean squared latent error over the
    autoregressive examples with a context). This is the self-supervision of optical flow, read off any video;
    through the denoising loss alone the field gets so weak a gradient that it stays near zero (model-card log).
    With a longer history (`flow_horizon` H), frame i−k warped by k times the field should give it too
    (constant motion over H frames): the mean is over every (example, k) pair whose frame i−k exists. A slow
    object's quarter-pixel step then meets the loss of a k-fold shift. With `flow_words`, the free field that
    signs the word field (`guide`) is trained by the same loss, logged as guide_loss. With `turn_weight`, the
    turn loss joins too (`turn_loss`; `sign_margin`: the adapter's flow_sign_margin), logged with the weighted
    share of places it finds on the right side as turn_right."""
    ctx = batch["context"]
    args = [ctx.frames.to(device, dtype), *(a.to(device) for a in ctx.as_args()[1:])]
    pred, context = denoiser(batch["x_t"].to(device, dtype), batch["t"].to(device), batch["text"].to(device, dtype),
                          *args, drop=batch["drop"].to(device))
    if "weight" not in batch:
        loss = F.mse_loss(pred.float(), batch["target"].to(device).float())
    else:
        per_example = (pred.float() - batch["target"].to(device).float()).square().flatten(1).mean(dim=1)
        loss = (batch["weight"].to(device) * per_example).mean()
    parts = {"loss": loss.item()}
    if flow_weight > 0:
        history = batch["history"].to(device, dtype)  # (B, H, c, h, w)
        use = batch["carry"].to(device)[:, None] & batch["history_ok"].to(device)  # (B, H)
        clean = batch["clean"].to(device)
        for name, field in (("flow_loss", context.flow), ("guide_loss", context.guide)):
            if field is None:
                continue
            err = torch.stack([carry_error(history[:, k], (k + 1) * field, clean, interpolation).flatten(1).mean(dim=1)
                               for k in range(history.shape[1])], dim=1)
            part = (err * use).sum() / use.sum().clamp(min=1)
            parts[name] = part.item()
            loss = loss + flow_weight * part
    if turn_weight > 0:  # both parts logged at every step (0 in the rare batch with nothing to turn)
        part, parts["turn_right"] = turn_loss(context, batch, device, interpolation, sign_margin) or (loss * 0, 0.0)
        parts["turn_loss"] = part.item()
        loss = loss + turn_weight * part
    return loss, parts


def _step_generator(config: TrainConfig, step: int, micro: int, rank: int) -> torch.Generator:
    seed = int(np.random.SeedSequence([config.seed, step, micro, rank]).generate_state(1)[0])
    return torch.Generator().manual_seed(seed)


def _check_resumable(saved: dict, config: TrainConfig, step: int) -> None:
    """A checkpoint at `step` resumes only with the settings it was trained with, apart from RESUMABLE ones and,
    where neither setting had drawn hard frames before `step`, the HARD ones (a second phase added later)."""
    now = dataclasses.asdict(config)
    saved = {**TrainConfig.LEGACY, **saved}
    free = TrainConfig.RESUMABLE
    if not (hard_frames_acted(saved, step) or hard_frames_acted(now, step)):
        free += TrainConfig.HARD
    changed = [k for k in now if k not in free and saved.get(k) != now[k]]
    if changed:
        k = changed[0]
        raise VidgenError(f"resume: {k} is {now[k]!r} but the checkpoint was trained with {saved.get(k)!r}; "
                          f"expected the same settings (only {', '.join(free)} may change at step {step})")


def train(config: TrainConfig, resume: bool = False, dataset=None) -> Path:
    """Train an adapter; returns the folder of the exported adapter (`out/adapter`). `dataset` (items
    (frames (f, h, w, 3) uint8, caption), e.g. `vidgen.data.shapes.ShapesDataset`) replaces the video folder."""
    from accelerate import Accelerator

    from .pipeline import VideoPipeline

    config.validate()
    if dataset is None:
        read_captions(config.data)  # a missing or malformed data folder fails before the model loads
    out = Path(config.out)
    ckpt_root = out / "checkpoints"
    found = latest_checkpoint(ckpt_root)
    if found is not None and not resume:
        raise VidgenError(f"out: {str(out)!r} already holds checkpoints (latest {found.name}); expected --resume "
                          "to continue them, or a new --out folder")
    accelerator = Accelerator(gradient_accumulation_steps=config.gradient_accumulation)
    with torch.random.fork_rng():  # the adapter's initial weights follow config.seed, not the global RNG
        torch.manual_seed(config.seed)
        pipe = VideoPipeline.from_pretrained(config.model, adapter_options=config.adapter_options())
    pipe.to(accelerator.device)
    native = pipe.native_size
    size = (config.height or native, config.width or native)
    for name, value in zip(("height", "width"), size):
        m = pipe.size_multiple
        check(value >= m and value % m == 0, name, value, f"a positive multiple of {m} for this model")
    out.mkdir(parents=True, exist_ok=True)
    data = prepare_data(config, pipe, size, dataset)

    denoiser, adapter = pipe.denoiser, pipe.denoiser.adapter
    if config.init_adapter is not None and (found is None or config.own_context > 0 or config.hard_frames > 1):
        init_from(adapter, config.init_adapter)  # a resumed run's checkpoint replaces it below
    if config.own_context > 0:
        add_own_videos(data, config, pipe)
    if config.hard_frames > 1 and config.hard_from == 0:
        add_hard_frames(data, config, adapter)
    adapter.train()
    trained = trainable(adapter, config.train_only)
    optimizer = torch.optim.AdamW([p for _, p in trained], lr=config.learning_rate, weight_decay=config.weight_decay)
    step, ema = 0, None
    if found is not None:
        step, ema, saved = load_checkpoint(found, adapter, optimizer)
        _check_resumable(saved, config, step)
        print(f"resumed from {found} at step {step}")
    if config.ema_decay > 0 and ema is None:
        ema = {k: v.detach().clone().float() for k, v in adapter.state_dict().items()}
    model, optimizer = accelerator.prepare(denoiser, optimizer)
    scheduler_cfg = pipe.scheduler.config
    alphas = pipe.scheduler.alphas_cumprod.float()
    resolved = dataclasses.asdict(config)
    log = (out / "log.jsonl").open("a")
    bar = tqdm(range(step, config.steps), initial=step, total=config.steps, desc="training",
               disable=not accelerator.is_main_process)
    for step in bar:
        if config.hard_from and step >= config.hard_from and data.frame_weights is None:  # validate: hard_frames > 1
            with ema_weights(adapter, ema):  # this run's field ranks its hard frames (step: where it resumed)
                add_hard_frames(data, config, adapter, step)
        for micro in range(config.gradient_accumulation):
            with accelerator.accumulate(model):
                batch = make_batch(data, config, alphas, scheduler_cfg.prediction_type,
                                   _step_generator(config, step, micro, accelerator.process_index))
                loss, parts = loss_fn(model, batch, accelerator.device, pipe.dtype, config.flow_loss,
                                      config.flow_interpolation, config.turn_loss, config.flow_sign_margin)
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            with torch.no_grad():  # the trained parameters only: the others' averages stay their weights exactly
                for k, v in trained:
                    ema[k].mul_(config.ema_decay).add_(v.detach().float(), alpha=1 - config.ema_decay)
        done = step + 1
        if done % config.log_every == 0 or done == config.steps:
            values = accelerator.gather(torch.tensor([list(parts.values())], device=accelerator.device)).mean(0)
            record = {"step": done, **dict(zip(parts, values.tolist()))}
            bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if k != "step"})
            if accelerator.is_main_process:
                log.write(json.dumps(record) + "\n")
                log.flush()
        if accelerator.is_main_process and (done % config.checkpoint_every == 0 or done == config.steps):
            save_checkpoint(ckpt_root, done, adapter, optimizer, ema, resolved)
    log.close()
    accelerator.wait_for_everyone()
    final = out / "adapter"
    if accelerator.is_main_process:
        export_adapter(adapter, ema, final)
    del model, optimizer  # release the (possibly DDP-wrapped) model before the process group goes
    accelerator.end_training()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return final


def trainable(adapter, train_only: str | None) -> list[tuple[str, torch.nn.Parameter]]:
    """The adapter's parameters that train, by name: all of them, or with `train_only` those whose names start
    with one of its comma-separated prefixes (the others are frozen: requires_grad off)."""
    prefixes = None if train_only is None else tuple(train_only.split(","))
    named = list(adapter.named_parameters())
    for name, p in named:
        p.requires_grad_(prefixes is None or name.startswith(prefixes))
    trained = [(name, p) for name, p in named if p.requires_grad]
    some = sorted({name.split(".")[0] + "." + name.split(".")[1] if "." in name else name for name, _ in named})
    check(bool(trained), "train_only", train_only, f"prefixes of this adapter's parameter names, e.g. {some[:6]}")
    if prefixes is not None:
        print(f"training {len(trained)} of {len(named)} parameter tensors "
              f"({sum(p.numel() for _, p in trained):,} weights): {', '.join(prefixes)}")
    return trained


def init_from(adapter, folder: str) -> None:
    """Copy the weights of the adapter saved in `folder` into `adapter` where names and shapes match; the rest
    (parts the saved adapter lacks) keep their initialisation. Prints what was taken and what was not."""
    path = Path(folder) / "diffusion_pytorch_model.safetensors"
    check(path.is_file(), "init_adapter", folder, "an adapter folder (with diffusion_pytorch_model.safetensors)")
    saved, own = load_file(path), adapter.state_dict()
    taken = {k: v.to(own[k].dtype) for k, v in saved.items() if k in own and own[k].shape == v.shape}
    check(taken, "init_adapter", folder, "an adapter for the same base model (no weight of it fits)")
    adapter.load_state_dict({**own, **taken})
    fresh = sorted(set(own) - set(taken))
    print(f"init: {len(taken)} of {len(own)} tensors from {folder}; new: {', '.join(fresh) or 'none'}")


def export_adapter(adapter, ema: dict | None, folder: Path) -> None:
    """Save the adapter (its EMA weights when there are any) to `folder`, replacing it atomically."""
    with atomic_dir(folder) as tmp, ema_weights(adapter, ema):
        adapter.save_pretrained(tmp)


@contextlib.contextmanager
def ema_weights(adapter, ema: dict | None):
    """Within the block the adapter holds its EMA weights (where there are any); its own come back after."""
    if ema is None:
        yield
        return
    live = {k: v.detach().clone() for k, v in adapter.state_dict().items()}
    adapter.load_state_dict({k: v.to(live[k].dtype) for k, v in ema.items()})
    try:
        yield
    finally:
        adapter.load_state_dict(live)
