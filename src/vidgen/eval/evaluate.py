"""`vidgen eval`: score a folder of shapes videos (or generate one and score it), print a table, write JSON.

A video that cannot be read, is empty, has a caption outside the grammar or frames of the wrong shape is
skipped and reported; it never stops the evaluation. The Fréchet distance compares the classifier features of
the scored videos with those of real videos rendered from the same captions (new placements, fixed seed).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..data.shapes import parse_caption, place, render
from ..data.video_folder import read_captions
from ..errors import VidgenError
from ..video import read_video
from .scorer import score_video

METRICS = ("attributes_correct", "background_correct", "colour_correct", "shape_correct", "size_correct",
           "count_correct", "trajectory_rmse", "direction_accuracy", "identity_consistency", "flicker", "found",
           "trajectory_rmse_found")


@dataclass
class Report:
    summary: dict
    videos: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)

    def table(self) -> str:
        lines = [f"{'metric':<22}{'value':>10}", "-" * 32]
        for name in METRICS:
            lines.append(f"{name:<22}{self.summary[name]:>10.4f}")
        for name in ("frechet_distance", "videos", "object_frames", "overlap_frames", "skipped"):
            if self.summary.get(name) is not None:
                value = self.summary[name]
                lines.append(f"{name:<22}{value:>10.3f}" if isinstance(value, float) else f"{name:<22}{value:>10}")
        return "\n".join(lines)

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2))


def real_videos(captions: list[str], frames: int, canvas: int, seed: int = 1234) -> list[np.ndarray]:
    """Ground-truth videos of the given captions with fresh placements."""
    out = []
    for i, caption in enumerate(captions):
        scene = parse_caption(caption)
        rng = np.random.default_rng([seed, i])
        out.append(render(scene, place(scene, rng, canvas, frames), canvas))
    return out


def summarize(scores: list[dict]) -> dict:
    """Per-object-frame metrics weighted by each video's object-frames; per-video metrics averaged."""
    if not scores:
        return {m: float("nan") for m in METRICS} | {"videos": 0}
    weights = np.array([max(s["object_frames"], 1) for s in scores], float)
    found = weights * np.nan_to_num([s["found"] for s in scores])  # object-frames with the object
    summary = {}
    for m in METRICS:
        values = np.array([s[m] for s in scores], float)
        ok = np.isfinite(values)
        w = found if m == "trajectory_rmse_found" else weights
        ok &= w > 0
        if m.startswith("trajectory_rmse"):  # pool squared errors, then root
            summary[m] = float(np.sqrt(np.average(values[ok] ** 2, weights=w[ok]))) if ok.any() else np.nan
        else:
            summary[m] = float(np.average(values[ok], weights=w[ok])) if ok.any() else float("nan")
    summary.update(videos=len(scores), object_frames=int(sum(s["object_frames"] for s in scores)),
                   overlap_frames=int(sum(s["overlap_frames"] for s in scores)))
    return summary


def evaluate(items, frechet: bool = True) -> Report:
    """Score `items`: an iterable of (name, frames or a callable that reads them, caption)."""
    scores, skipped, kept = [], [], []
    for name, video, caption in items:
        try:
            frames = video() if callable(video) else video
            result = score_video(frames, caption)
        except VidgenError as exc:
            skipped.append({"video": name, "reason": str(exc)})
            continue
        except Exception as exc:  # an unreadable file: PyAV raises several error types
            skipped.append({"video": name, "reason": f"could not read ({type(exc).__name__}: {exc})"})
            continue
        scores.append({"video": name, **{k: v for k, v in asdict(result).items() if k != "details"},
                       **result.details})
        kept.append((frames, caption))
    summary = summarize(scores)
    summary["skipped"] = len(skipped)
    summary["frechet_distance"] = None
    if frechet and len(kept) >= 2:
        from .classifier import features, frechet_distance, load_classifier
        model = load_classifier()
        f, canvas = kept[0][0].shape[:2]
        same = [v for v, _ in kept if v.shape[:2] == (f, canvas)]
        real = real_videos([c for v, c in kept if v.shape[:2] == (f, canvas)], f, canvas)
        summary["frechet_distance"] = frechet_distance(features(model, same), features(model, real))
    return Report(summary, scores, skipped)


def evaluate_folder(folder: str | Path, frechet: bool = True) -> Report:
    """Score every video listed in `folder/captions.jsonl`."""
    pairs = read_captions(folder)
    return evaluate(((p.name, lambda p=p: read_video(p), c) for p, c in pairs), frechet)


MODES = ("autoregressive", "joint", "independent")


def image_pipeline(model: str, scheduler: str | None = None, spacing: str | None = None):
    """The base model alone as a plain diffusers `StableDiffusionPipeline` (what `independent` samples from),
    with the same folder checks and one-line errors as the other modes; `scheduler`: a vidgen scheduler name
    (default: the folder's own), `spacing`: its timestep spacing (default: the folder's own)."""
    import diffusers

    from ..pipeline import load_base, make_scheduler

    pipe = diffusers.StableDiffusionPipeline(**load_base(model), safety_checker=None, feature_extractor=None,
                                             requires_safety_checker=False)
    if scheduler is not None or spacing is not None:
        pipe.scheduler = make_scheduler(pipe.scheduler, scheduler, spacing)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def independent_images(sd, caption: str, seeds, steps: int | None = None, guidance: float | None = None,
                       **options) -> np.ndarray:
    """One image of `caption` per seed from a `StableDiffusionPipeline`, as uint8 frames (n, H, W, 3): the
    independent-images baseline (defaults: vidgen's steps and guidance; `options` go to the pipeline)."""
    import torch

    from ..pipeline import GenerationConfig

    images = sd(caption, num_images_per_prompt=len(seeds), output_type="np",
                num_inference_steps=steps or GenerationConfig.num_inference_steps,
                guidance_scale=GenerationConfig.guidance_scale if guidance is None else guidance,
                generator=[torch.Generator().manual_seed(int(s)) for s in seeds], **options).images
    return (images * 255).round().astype(np.uint8)


def eval_captions(split: str, num_prompts: int, seed: int) -> list[str]:
    """The captions `generate_folder` (`vidgen eval`) draws from `split` at `seed`, in order."""
    from ..data.shapes import sample_scene

    rng = np.random.default_rng([seed, 7])
    return [sample_scene(rng, split).caption() for _ in range(num_prompts)]


def video_seed(seed: int, prompt: int, k: int) -> int:
    """The generator seed of `generate_folder`'s k-th video of its prompt number `prompt` at `seed`."""
    return seed * 100_003 + prompt * 101 + k


def generate_folder(model: str, adapter: str | None, out: str | Path, split: str = "train", num_prompts: int = 8,
                    per_prompt: int = 2, frames: int = 16, mode: str = "autoregressive", seed: int = 0,
                    **options) -> Path:
    """Generate `per_prompt` videos for each of `num_prompts` captions drawn from `split` (seeded), written
    as a video folder that `evaluate_folder` scores. `options` are `GenerationConfig` fields (steps, guidance,
    scheduler, ...; default: vidgen generate's, i.e. the adapter's generation_config.json, then GenerationConfig).
    Mode `independent` is the baseline without the adapter: `frames` images from the base model alone (plain
    diffusers `StableDiffusionPipeline`, the same caption, steps, guidance and scheduler — those of `adapter`,
    whose weights it does not use — one seed per frame) put side by side as a video."""
    import torch

    from ..data.shapes import SPLITS
    from ..errors import check
    from ..pipeline import GenerationConfig, VideoPipeline, read_generation_defaults
    from ..video import check_output_path, export_video

    check(split in SPLITS, "prompts", split, " or ".join(SPLITS))
    check(mode in MODES, "mode", mode, " | ".join(MODES))
    check(num_prompts >= 1, "num_prompts", num_prompts, "an integer ≥ 1")
    check(per_prompt >= 1, "videos_per_prompt", per_prompt, "an integer ≥ 1")
    defaults = read_generation_defaults(adapter) if adapter is not None else {}
    config = GenerationConfig(num_frames=frames, **(defaults | options))
    config.validate(num_train_timesteps=sys.maxsize)
    out = Path(out)
    check_output_path(str(out) + "/")
    if mode == "independent":
        pipe = image_pipeline(model, config.scheduler, config.timestep_spacing)
    else:
        pipe = VideoPipeline.from_pretrained(model, adapter=adapter)
    captions = eval_captions(split, num_prompts, seed)
    out.mkdir(exist_ok=True)
    lines = []
    for p, caption in enumerate(captions):
        for k in range(per_prompt):
            name = f"gen_{p:04d}_{k:02d}.mp4"
            vseed = video_seed(seed, p, k)
            if mode == "independent":
                seeds = [vseed * 1000 + j for j in range(frames)]
                export_video(independent_images(pipe, caption, seeds, config.num_inference_steps,
                                                config.guidance_scale, height=config.height, width=config.width,
                                                negative_prompt=config.negative_prompt), out / name)
            else:
                pipe(caption, output=out / name, generator=torch.Generator().manual_seed(vseed),
                     **(asdict(config) | {"mode": mode}))
            lines.append(json.dumps({"file": name, "caption": caption}))
    (out / "captions.jsonl").write_text("\n".join(lines) + "\n")
    return out
