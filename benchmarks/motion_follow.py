"""Do objects move as their caption says? For each single-object, moving-caption video in a scored folder: the
object's per-frame displacement (scorer's detector) along the direction the caption implies at that frame (the
world's bounce rule, from where frame 1 put the object), median over frames, divided by the caption's speed.
1 = moves as told (real videos), 0 = stays put, negative = the wrong way; random jumps spread widely.

    python benchmarks/motion_follow.py runs/demo-eval2/autoregressive-train runs/demo-eval2/independent-train
    # writes benchmarks/results/motion_follow.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402

from vidgen.data.shapes import BACKGROUNDS, REFERENCE_SIZE, SPEEDS, parse_caption  # noqa: E402
from vidgen.data.video_folder import read_captions  # noqa: E402
from vidgen.eval.scorer import colour_masks, detect, expected_path  # noqa: E402
from vidgen.video import read_video  # noqa: E402
from common import cli  # noqa: E402


def object_centres(video: np.ndarray, scene) -> np.ndarray:
    """(f, 2) centre of the scene's one object in each frame (NaN where the detector finds none)."""
    obj, canvas = scene.objects[0], video.shape[1]
    mask = colour_masks(video, np.array(BACKGROUNDS[scene.background], np.float32), [obj.colour])[obj.colour]
    return np.array([detect(mask[i], canvas).centre for i in range(len(video))])


def moving_objects(folder: Path):
    """(caption, scene, video, object centres (f, 2), axis of motion) for each video in `folder` whose caption
    names one moving object."""
    for path, caption in read_captions(folder):
        scene = parse_caption(caption)
        if len(scene.objects) != 1 or scene.objects[0].direction is None:
            continue
        video = read_video(path)
        axis = 0 if scene.objects[0].direction in ("left", "right") else 1
        yield caption, scene, video, object_centres(video, scene), axis


def follow_ratios(folder: Path) -> list[float]:
    ratios = []
    for _, scene, video, centres, axis in moving_objects(folder):
        obj, canvas = scene.objects[0], video.shape[1]
        if not np.isfinite(centres[0]).all():
            continue
        expected = np.sign(np.diff(expected_path(obj, centres[0], canvas, len(video))[:, axis]))
        along = (np.diff(centres[:, axis]) * expected)[expected != 0]
        ratios.append(float(np.nanmedian(along) / (SPEEDS[obj.speed] * canvas / REFERENCE_SIZE)))
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args()
    results = {}
    for folder in args.folders:
        ratios = follow_ratios(folder)
        results[str(folder)] = {"videos": len(ratios), "median": float(np.median(ratios)) if ratios else None,
                                "ratios": [round(r, 3) for r in ratios]}
        print(f"{folder}: {len(ratios)} videos, median displacement / caption speed "
              f"{results[str(folder)]['median']:.2f}; per video {np.round(ratios, 2).tolist()}")
    out = Path(__file__).resolve().parent / "results" / "motion_follow.json"
    out.write_text(json.dumps({"command": "python benchmarks/motion_follow.py " + " ".join(map(str, args.folders)),
                               "results": results}, indent=2))


if __name__ == "__main__":
    cli(main)
