"""Do objects move as their caption says? For each single-object, moving-caption video in a scored folder: the
object's per-frame displacement (scorer's detector) along the direction the caption implies at that frame (the
world's bounce rule, from where frame 1 put the object), median over frames, divided by the caption's speed.
1 = moves as told (real videos), 0 = stays put, negative = the wrong way; random jumps spread widely.

    python benchmarks/motion_follow.py runs/demo-eval2/autoregressive-train runs/demo-eval2/independent-train
    # writes benchmarks/results/motion_follow.json (--name NAME: NAME.json)
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402

from vidgen.data.shapes import BACKGROUNDS, REFERENCE_SIZE, SPEEDS, parse_caption  # noqa: E402
from vidgen.data.video_folder import read_captions  # noqa: E402
from vidgen.eval.scorer import colour_masks, detect, expected_path  # noqa: E402
from vidgen.video import read_video  # noqa: E402
from common import cli, folder_benchmark  # noqa: E402


def object_centres(video: np.ndarray, scene, k: int = 0) -> np.ndarray:
    """(f, 2) centre of the scene's object k in each frame (NaN where the detector finds none). Each pixel goes
    to the nearest of the caption's colours, as in the scorer: against its own colour alone, another object of a
    near colour (red beside orange) would count as this one."""
    obj, canvas = scene.objects[k], video.shape[1]
    mask = colour_masks(video, np.array(BACKGROUNDS[scene.background], np.float32),
                        [o.colour for o in scene.objects])[obj.colour]
    return np.array([detect(mask[i], canvas).centre for i in range(len(video))])


def moving_captions(folder: Path, count: int = 1):
    """(video path, caption, scene) for each video in `folder` whose caption names `count` objects, all moving,
    each at a different speed."""
    for path, caption in read_captions(folder):
        scene = parse_caption(caption)
        objects = scene.objects
        if len(objects) == count and all(o.direction is not None for o in objects) and \
                len({o.speed for o in objects}) == count:
            yield path, caption, scene


def axis_of(obj) -> int:
    """0 for a horizontal motion, 1 for a vertical one."""
    return 0 if obj.direction in ("left", "right") else 1


def moving_tracks(folder: Path, count: int = 1):
    """(caption, scene, video, [(centres (f, 2), axis of motion, speed)] per object) for each video of
    `moving_captions`."""
    for path, caption, scene in moving_captions(folder, count):
        video = read_video(path)
        yield caption, scene, video, [(object_centres(video, scene, k), axis_of(o), o.speed)
                                      for k, o in enumerate(scene.objects)]


def moving_objects(folder: Path):
    """(caption, scene, video, object centres (f, 2), axis of motion) for each video in `folder` whose caption
    names one moving object."""
    for caption, scene, video, [(centres, axis, _)] in moving_tracks(folder):
        yield caption, scene, video, centres, axis


EARLY = 3  # frame steps counted as the start of the motion; steps from LATE on count as its later part
LATE = 8


def follow_ratios(folder: Path) -> list[dict]:
    """Per single-object moving video: its speed and size, and the median displacement along the caption's
    direction over the caption's speed, over all steps, the first EARLY, and from step LATE on."""
    rows = []
    for _, scene, video, centres, axis in moving_objects(folder):
        obj, canvas = scene.objects[0], video.shape[1]
        if not np.isfinite(centres[0]).all():
            continue
        expected = np.sign(np.diff(expected_path(obj, centres[0], canvas, len(video))[:, axis]))
        along = np.diff(centres[:, axis]) * expected / (SPEEDS[obj.speed] * canvas / REFERENCE_SIZE)
        part = lambda sel: float(np.nanmedian(along[sel][expected[sel] != 0])) \
            if (expected[sel] != 0).any() else float("nan")  # noqa: E731
        steps = np.arange(len(along))
        rows.append({"speed": obj.speed, "size": obj.size, "ratio": part(steps >= 0),
                     "early": part(steps < EARLY), "late": part(steps >= LATE)})
    return rows


def by_kind(rows: list[dict]) -> dict:
    """Medians per (speed, size): a motion that starts and then stops shows as early ≫ late."""
    out = {}
    for key in sorted({(r["speed"], r["size"]) for r in rows}):
        sel = [r for r in rows if (r["speed"], r["size"]) == key]
        out[" ".join(key)] = {"videos": len(sel), **{k: round(float(np.nanmedian([r[k] for r in sel])), 3)
                                                      for k in ("ratio", "early", "late")}}
    return out


def summary(folder: Path) -> dict:
    rows = follow_ratios(folder)
    ratios = [r["ratio"] for r in rows]
    return {"videos": len(ratios), "median": float(np.median(ratios)) if ratios else None,
            "ratios": [round(r, 3) for r in ratios], "by_speed_and_size": by_kind(rows)}


def show(result: dict) -> str:
    return "\n".join([f"{result['videos']} videos, median displacement / caption speed {result['median']:.2f}; "
                      f"per video {np.round(result['ratios'], 2).tolist()}",
                      *(f"  {kind}: {v}" for kind, v in result["by_speed_and_size"].items())])


def main() -> None:
    folder_benchmark(__doc__.splitlines()[0], "motion_follow", summary, show)


if __name__ == "__main__":
    cli(main)
