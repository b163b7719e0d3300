"""What the base model alone draws: scorer accuracies of images from plain diffusers `StableDiffusionPipeline` at
several guidance scales (8 train-split captions, 8 images each, 25 DDIM steps).

    python benchmarks/base_images.py [--model models/shapes-base] [--guidance 3,5,9]
    # writes benchmarks/results/base_images.json and docs/images/base_images.png (the images at guidance 5)
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402

from vidgen.data.shapes import sample_scene  # noqa: E402
from vidgen.eval.evaluate import image_pipeline, independent_images, summarize  # noqa: E402
from vidgen.eval.scorer import score_video  # noqa: E402
from vidgen.pipeline import GenerationConfig  # noqa: E402
from common import cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

KEYS = ("attributes_correct", "colour_correct", "shape_correct", "size_correct", "count_correct",
        "background_correct")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/shapes-base")
    parser.add_argument("--guidance", default="3,5,9")
    args = parser.parse_args()
    sd = image_pipeline(args.model)
    rng = np.random.default_rng([5, 7])
    captions = [sample_scene(rng, "train").caption() for _ in range(8)]
    results, grid = {}, []
    for g in (float(x) for x in args.guidance.split(",")):
        scores = []
        for caption in captions:
            images = independent_images(sd, caption, range(8), steps=25, guidance=g)
            if g == GenerationConfig.guidance_scale:
                grid.append((caption, images))
            score = score_video(images, caption)
            scores.append({k: v for k, v in asdict(score).items() if k != "details"})
        summary = summarize(scores)
        results[g] = {k: summary[k] for k in KEYS}
        print(g, {k: round(v, 3) for k, v in results[g].items()}, flush=True)
    out = ROOT / "benchmarks" / "results" / "base_images.json"
    out.write_text(json.dumps({"command": f"python benchmarks/base_images.py --model {args.model} --guidance "
                                          f"{args.guidance}", "results": results}, indent=2))
    if grid:
        save_grid(grid, ROOT / "docs" / "images" / "base_images.png")


def save_grid(rows: list[tuple[str, np.ndarray]], path: Path, scale: int = 2) -> None:
    """One row per caption: the caption, then its images side by side (×scale)."""
    from PIL import Image, ImageDraw

    h = rows[0][1].shape[1] * scale
    strips = []
    for caption, images in rows:
        strip = np.concatenate([np.pad(im.repeat(scale, 0).repeat(scale, 1), ((2, 2), (2, 2), (0, 0)),
                                       constant_values=128) for im in images], axis=1)
        label = Image.new("RGB", (strip.shape[1], 16), "white")
        ImageDraw.Draw(label).text((4, 2), caption, fill="black")
        strips += [np.asarray(label), strip]
    Image.fromarray(np.concatenate(strips)).save(path)
    print(f"wrote {path} ({h}px images)")


if __name__ == "__main__":
    cli(main)
