"""How close to the ideal path can an object come that moves by whole steps? The world reflects an object at a wall
part-way through a frame step (the centre reflects at half its extent from the edge), so the ideal step at a
bounce is anything between the caption's step and its reverse; a sampler that only runs an object's step forwards
or backwards (the word field signed per object) cannot draw it. For each object of a scored folder's videos,
from where frame 0 drew it: the path of an object that moves exactly at the caption's speed and reverses at the
best frame step (the one where the ideal reflected centre lies nearer the reversed step than the forward one),
scored against the ideal path as the scorer scores it (RMS over object-frames; still objects count with their
zero error). This is the floor of the trajectory error for whole-step turns: what is left above it is speed,
turn timing and lost objects.

    python benchmarks/turn_floor.py runs/sweep/later2-s1 runs/sweep/later2-s2 runs/sweep/later2-s3
    # writes benchmarks/results/turn_floor.json (--name NAME: NAME.json)
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402

from common import cli, folder_benchmark  # noqa: E402
from motion_follow import object_centres  # noqa: E402
from vidgen.data.shapes import parse_caption  # noqa: E402
from vidgen.data.video_folder import read_captions  # noqa: E402
from vidgen.eval.scorer import expected_path  # noqa: E402
from vidgen.video import read_video  # noqa: E402


def whole_step_path(start: np.ndarray, velocity: np.ndarray, low: float, high: float, frames: int) -> np.ndarray:
    """Centres (frames, 2) from `start`, moving by ±`velocity` per frame: each axis's step reverses at the frame
    step that would carry the centre past [low, high] when the reflected centre lies nearer the reversed step
    (otherwise it runs on past the bound and reverses at the next step, as a late turn would)."""
    x, v, path = np.clip(start, low, high).astype(float), velocity.astype(float).copy(), []
    for _ in range(frames):
        path.append(x.copy())
        ahead = x + v
        for a in range(2):
            bound = high if ahead[a] > high else low if ahead[a] < low else None
            if bound is not None and abs(2 * bound - ahead[a] - (x[a] - v[a])) < abs(2 * bound - ahead[a] - ahead[a]):
                v[a] = -v[a]
        x = x + v
    return np.array(path)


def measure(folder: Path) -> dict:
    rows = []  # (speed, size, squared errors (f,))
    for path, caption in read_captions(folder):
        scene = parse_caption(caption)
        video = read_video(path)
        canvas, frames = video.shape[1], len(video)
        for k, obj in enumerate(scene.objects):
            start = object_centres(video[:1], scene, k)[0]
            if not np.isfinite(start).all():
                continue
            h = obj.half_extent(canvas)
            want = expected_path(obj, start, canvas, frames)
            got = whole_step_path(start, obj.velocity(canvas), h, canvas - h, frames)
            rows.append((obj.speed or "still", obj.size, ((got - want) ** 2).sum(axis=1)))
    out = {}
    for name, keep in [("all", lambda r: True), ("quickly", lambda r: r[0] == "quickly"),
                       ("slowly", lambda r: r[0] == "slowly"), ("large quickly", lambda r: r[:2] == ("quickly", "large")),
                       ("small quickly", lambda r: r[:2] == ("quickly", "small"))]:
        sel = [r[2] for r in rows if keep(r)]
        if sel:
            out[name] = {"objects": len(sel), "rmse_px": round(float(np.sqrt(np.concatenate(sel).mean())), 3),
                         "objects_over_1px": int(sum(np.sqrt(s.mean()) > 1 for s in sel))}
    return out


def show(results: dict) -> str:
    return " | ".join(f"{k}: {v['objects']} objects, floor {v['rmse_px']} px, {v['objects_over_1px']} over 1 px"
                      for k, v in results.items())


if __name__ == "__main__":
    cli(lambda: folder_benchmark(__doc__, "turn_floor", measure, show))
