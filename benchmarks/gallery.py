"""The gallery in docs/model-card.md: GIFs from the shipped demo model, made with `vidgen generate`'s defaults.

    python benchmarks/gallery.py        # writes docs/images/gallery/*.gif (frames scaled ×3 for viewing)

Each GIF is what `vidgen generate PROMPT --seed S --frames F --out x.gif` writes, scaled up by pixel repetition;
its scores by the shapes scorer (on the frames before scaling) are printed beside it, for the captions.
`compare.gif` puts the autoregressive mode, the joint mode and 16 independent images from the base model side
by side for one prompt (same seed).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from vidgen import VideoPipeline, export_video  # noqa: E402
from vidgen.eval.evaluate import image_pipeline, independent_images  # noqa: E402
from vidgen.eval.scorer import score_video  # noqa: E402
from vidgen.pipeline import GenerationConfig, read_generation_defaults  # noqa: E402
from vidgen.shipped import ADAPTER, BASE  # noqa: E402
from common import cli  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "gallery"
SCALE = 3
# (file, prompt, frames, seed); the held-out prompts name pairs the adapter never saw in training
ITEMS = [
    ("red-circle-right", "a small red circle moving right quickly on a black background", 32, 0),
    ("two-objects", "a large blue square moving down slowly and a small yellow triangle moving left quickly "
                    "on a white background", 32, 0),
    ("heldout-pair", "a small blue circle moving right slowly on a white background", 32, 2),
]


def big(frames: np.ndarray) -> np.ndarray:
    return frames.repeat(SCALE, axis=1).repeat(SCALE, axis=2)


def label(frames: np.ndarray, text: str) -> np.ndarray:
    out = []
    for frame in frames:
        image = Image.fromarray(np.concatenate([np.full((14, *frame.shape[1:]), 255, np.uint8), frame]))
        ImageDraw.Draw(image).text((3, 1), text, fill=(0, 0, 0))
        out.append(np.asarray(image))
    return np.stack(out)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    pipe = VideoPipeline.from_pretrained()
    for name, prompt, frames, seed in ITEMS:
        video = pipe(prompt, num_frames=frames, generator=torch.Generator().manual_seed(seed)).frames
        export_video(big(video), OUT / f"{name}.gif", fps=8)
        score = score_video(video, prompt)
        print(f"{name}.gif: {prompt!r}, {frames} frames, seed {seed}: trajectory {score.trajectory_rmse:.1f} px "
              f"({score.trajectory_rmse_found:.1f} over found frames), direction {score.direction_accuracy:.0%}, "
              f"attributes {score.attributes_correct:.0%}, identity {score.identity_consistency:.0%}, found "
              f"{score.found:.0%}, count {score.count_correct:.0%}")

    prompt = ITEMS[0][1]
    ar = pipe(prompt, num_frames=16, generator=torch.Generator().manual_seed(0)).frames
    joint = pipe(prompt, num_frames=16, mode="joint", generator=torch.Generator().manual_seed(0)).frames
    settings = GenerationConfig(**read_generation_defaults(ADAPTER))  # the same settings as the other two
    independent = independent_images(image_pipeline(BASE, settings.scheduler), prompt, range(16),
                                     settings.num_inference_steps, settings.guidance_scale)
    gap = np.full((16, 64 * SCALE + 14, 6, 3), 255, np.uint8)
    panels = [label(big(v), t) for v, t in ((ar, "autoregressive"), (joint, "joint"), (independent, "independent"))]
    export_video(np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=2), OUT / "compare.gif", fps=8)
    print(f"compare.gif: {prompt!r}")


if __name__ == "__main__":
    cli(main)
