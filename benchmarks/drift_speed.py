"""Do moving objects keep their speed over a long video, and do they bounce? For each moving object of each video
in a folder (a `vidgen eval` folder: videos and captions.jsonl), per consecutive 16-frame window: the median step
along the caption's axis as a share of the caption's speed (1: its speed; near 0: standing), and where the object
is along that axis at the window's start. Window direction scores start each window moving the caption's way,
which an object that has bounced is not; this measures motion without that assumption.

    python benchmarks/drift_speed.py runs/ema-eval/drift-256
    # writes benchmarks/results/drift_speed.json
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from common import cli, folder_benchmark
from motion_follow import axis_of, object_centres

from vidgen.data.shapes import parse_caption
from vidgen.data.video_folder import read_captions
from vidgen.video import read_video

WINDOW = 16


def speeds(folder: Path) -> list[dict]:
    out = []
    for path, caption in read_captions(folder):
        video = read_video(path)
        canvas = video.shape[1]
        scene = parse_caption(caption)
        for k, obj in enumerate(scene.objects):
            if obj.direction is None:
                continue
            axis = axis_of(obj)
            centres = object_centres(video, scene, k)[:, axis]
            steps = np.abs(np.diff(centres)) / abs(obj.velocity(canvas)[axis])
            windows = []
            for start in range(0, len(video) - WINDOW + 1, WINDOW):
                found = steps[start:start + WINDOW - 1]
                found = found[np.isfinite(found)]
                windows.append({"start": start, "speed_share": float(np.median(found)) if len(found) else None,
                                "place": None if not np.isfinite(centres[start]) else round(float(centres[start]), 1)})
            out.append({"caption": caption, "object": obj.colour, "speed": obj.speed,
                        "axis": "xy"[axis], "canvas": canvas, "windows": windows})
    return out


def show(rows: list[dict]) -> str:
    return "\n".join(f"  {r['object']} {r['speed']}: " + " ".join(
        "-" if w["speed_share"] is None else f"{w['speed_share']:.2f}@{w['place']}" for w in r["windows"])
        for r in rows)


def main() -> None:
    folder_benchmark(__doc__.splitlines()[0], "drift_speed", speeds, show)


if __name__ == "__main__":
    cli(main)
