"""How do generated objects turn at a wall? For every moving object in a scored folder's videos whose ideal path (the
world's bounce rule from where frame 0 put it) turns within the video, by speed and by size and speed: whether the
generated object turns too (a frame step of at least half the slow speed against the caption's direction, from
EARLY steps before the ideal turn on), how many frames after the ideal turn it does, and how far its detected
centre ran past the place where the ideal one turns (half its extent from the edge) before that: a model that does
not see the wall pushes the object into it.

    python benchmarks/wall_turns.py runs/hard-eval/autoregressive-train runs/sweep/walls-s1
    # writes benchmarks/results/wall_turns.json (--name NAME: NAME.json)
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402

from common import cli, folder_benchmark  # noqa: E402
from motion_follow import axis_of, object_centres  # noqa: E402
from vidgen.data.shapes import REFERENCE_SIZE, SPEEDS, parse_caption  # noqa: E402
from vidgen.data.video_folder import read_captions  # noqa: E402
from vidgen.eval.scorer import expected_path  # noqa: E402
from vidgen.video import read_video  # noqa: E402

MIN_LEFT = 3  # an ideal turn counts only with this many frame steps after it, so that a late turn can show
EARLY = 2  # a generated turn counts from this many frame steps before the ideal one (an object a little too fast
#            meets the wall early); a step back sooner is a wrong move, not a turn (direction accuracy counts it)


def first_turn(steps: np.ndarray, forward: float, least: float, start: int = 0) -> int | None:
    """Index of the first frame step from `start` on that runs against `forward` (±1) by more than `least` px;
    None if none."""
    back = np.flatnonzero(np.nan_to_num(steps[start:] * forward, nan=0.0) < -least)
    return int(back[0]) + start if len(back) else None


def object_turn(centres: np.ndarray, obj, canvas: int) -> dict | None:
    """One object's turn, or None when its ideal path does not turn early enough or it is not found at frame 0."""
    if not np.isfinite(centres[0]).all():
        return None
    axis, f = axis_of(obj), len(centres)
    forward = float(np.sign(obj.velocity(canvas)[axis]))
    ideal = first_turn(np.diff(expected_path(obj, centres[0], canvas, f)[:, axis]), forward, 0.0)
    if ideal is None or ideal > f - 1 - MIN_LEFT:
        return None
    least = 0.5 * SPEEDS["slowly"] * canvas / REFERENCE_SIZE
    got = first_turn(np.diff(centres[:, axis]), forward, least, max(ideal - EARLY, 0))
    h = obj.half_extent(canvas)
    wall = canvas - h if forward > 0 else h  # where the ideal centre turns
    until = f if got is None else got + 1
    past = np.nan_to_num((centres[:until, axis] - wall) * forward, nan=0.0).max()
    return {"speed": obj.speed, "size": obj.size, "turned": got is not None,
            "late": None if got is None else got - ideal, "past_wall": float(max(past, 0.0))}


def moving_objects(folder: Path):
    """(scene, object, its centres (f, 2), canvas) for each moving object of each video in the scored `folder`
    (each video read once, and only when it has a moving object)."""
    for path, caption in read_captions(folder):
        scene, video = parse_caption(caption), None
        for k, obj in enumerate(scene.objects):
            if obj.direction is None:
                continue
            video = read_video(path) if video is None else video
            yield scene, obj, object_centres(video, scene, k), video.shape[1]


def measure(folder: Path) -> dict:
    turns = []
    for _, obj, centres, canvas in moving_objects(folder):
        turn = object_turn(centres, obj, canvas)
        if turn is not None:
            turns.append(turn)
    out = {}
    groups = [(speed, None) for speed in ("quickly", "slowly", "all")]
    groups += [(speed, size) for size in ("large", "small") for speed in ("quickly", "slowly")]
    for speed, size in groups:
        rows = [t for t in turns if speed in ("all", t["speed"]) and size in (None, t["size"])]
        late = [t["late"] for t in rows if t["turned"]]
        out[speed if size is None else f"{size} {speed}"] = {
            "objects": len(rows), "turned": round(np.mean([t["turned"] for t in rows]), 3) if rows else None,
            "on_time": round(np.mean([t["late"] == 0 for t in rows]), 3) if rows else None,
            "late_frames_mean": round(float(np.mean(late)), 2) if late else None,
            "late_frames": {str(k): late.count(k) for k in sorted(set(late))},
            "past_wall_px_mean": round(float(np.mean([t["past_wall"] for t in rows])), 2) if rows else None}
    return out


def show(results: dict) -> str:
    return " | ".join(f"{k}: {v['objects']} objects, turned {v['turned']}, on time {v['on_time']}, late "
                      f"{v['late_frames_mean']} frames {v['late_frames']}, past the wall {v['past_wall_px_mean']} px"
                      for k, v in results.items())


if __name__ == "__main__":
    cli(lambda: folder_benchmark(__doc__, "wall_turns", measure, show))
