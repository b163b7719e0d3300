"""Two-object videos whose caption paths cross: from where each object is found in frame 0, the paths the
caption implies (the world's bounce rule, as the scorer simulates them) bring the two objects' bounding circles
together at some frame. The shapes world's training videos are placed so that this never happens where it can
be avoided (`vidgen.data.shapes.place`), but a first frame drawn by a model puts objects anywhere. Per folder:
how many two-object videos cross, and their share of the squared trajectory error, direction and objects
found, against two-object videos that do not cross and one-object videos.

    python benchmarks/crossing.py runs/sweep/ffb20-s1 runs/sweep/ffb20-s2 runs/sweep/ffb20-s3
    # writes benchmarks/results/crossing.json
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from common import cli, folder_benchmark
from first_frame import motion_summary

from vidgen.data.shapes import BACKGROUNDS, parse_caption
from vidgen.data.video_folder import read_captions
from vidgen.eval.scorer import colour_masks, detect, expected_path, overlap_reach, score_video
from vidgen.video import read_video


def crosses(frame: np.ndarray, caption: str, frames: int) -> bool | None:
    """Whether the caption's paths from frame 0's (1, S, S, 3) objects bring them within reach of each other
    (the scorer's overlap distance); None when the caption has one object or frame 0 lacks one of them."""
    scene = parse_caption(caption)
    if len(scene.objects) != 2:
        return None
    size = frame.shape[1]
    masks = colour_masks(frame, np.array(BACKGROUNDS[scene.background], np.float32), [o.colour for o in scene.objects])
    found = [detect(masks[o.colour][0], size) for o in scene.objects]
    if not all(d.present for d in found):
        return None
    a, b = (expected_path(o, d.centre, size, frames) for o, d in zip(scene.objects, found))
    return bool(np.linalg.norm(a - b, axis=1).min() < overlap_reach(scene, size))


def measure(folder: Path) -> dict:
    groups = {"one object": [], "two, paths apart": [], "two, paths cross": [], "two, frame 0 lacks one": []}
    for path, caption in read_captions(folder):
        frames = read_video(path)
        cross = crosses(frames[:1], caption, len(frames))
        n = len(parse_caption(caption).objects)
        key = "one object" if n == 1 else "two, frame 0 lacks one" if cross is None else \
            "two, paths cross" if cross else "two, paths apart"
        groups[key].append(score_video(frames, caption))
    total = sum(s.trajectory_rmse ** 2 * s.object_frames for g in groups.values() for s in g)
    out = {}
    for key, scores in groups.items():
        if not scores:
            continue
        sq = sum(s.trajectory_rmse ** 2 * s.object_frames for s in scores)
        found = np.average([s.found for s in scores], weights=[s.object_frames for s in scores])
        out[key] = {**motion_summary(scores), "share_of_squared_error": round(sq / total, 3),
                    "found": round(float(found), 4),
                    "overlap_frames": int(sum(s.overlap_frames for s in scores))}
    return out


def show(result: dict) -> str:
    return "; ".join(f"{k}: {v['videos']} videos, {v['trajectory_rmse']} px, {v['direction_accuracy']:.1%}, "
                     f"found {v['found']:.1%}, {v['share_of_squared_error']:.0%} of sq. error"
                     for k, v in result.items())


def main() -> None:
    folder_benchmark(__doc__.splitlines()[0], "crossing", measure, show)


if __name__ == "__main__":
    cli(main)
