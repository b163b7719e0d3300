"""Which way do the worst paths go? For every moving object of a scored folder's videos, by its caption's direction
and speed: the RMS path error over the frames where it is found (`path_error_by_object` of the folder's
eval.json; a frame where it is not found scores the canvas² and is left out here), the share of the folder's
squared error it holds (not-found frames in), and at the wall ahead, for the objects whose ideal path turns within
the video (`wall_turns.object_turn`): how many turn two or more frames late, and how far past the place where the
ideal centre turns they run first (mean px). Per folder also its trajectory error as scored, and as it would be
were the objects moving up as far off per object-frame as the folder's others of their speed: how much of the
error that one side holds.

    python benchmarks/wall_sides.py runs/sweep/still-s1 runs/sweep/still-s2 runs/sweep/still-s3 \\
        --labels "seed 1,seed 2,seed 3" --plot docs/images/wall_sides.png
    # writes benchmarks/results/wall_sides.json (--name NAME: NAME.json)
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402

from common import BAR, cli, folder_benchmark, pyplot  # noqa: E402
from direction_split import report  # noqa: E402
from motion_follow import object_centres  # noqa: E402
from vidgen.data.shapes import DIRECTIONS, SPEEDS, parse_caption  # noqa: E402
from vidgen.data.video_folder import read_captions  # noqa: E402
from vidgen.video import read_video  # noqa: E402
from wall_turns import object_turn  # noqa: E402

SIDE = "up"  # the direction whose share `measure` takes out


def objects(folder: Path):
    """(direction, speed, squared errors per frame with None where not scored, canvas, wall turn or None) per
    moving object of the folder's videos; and the folder's (squared error, object-frames) over all objects."""
    scored = {v["video"]: v for v in report(folder)["videos"]}  # a clear error where it was not scored
    rows, total, frames = [], 0.0, 0
    for path, caption in read_captions(folder):
        errors_by_object = scored[path.name]["path_error_by_object"]
        for errors in errors_by_object:
            kept = [e for e in errors if e is not None]
            total, frames = total + sum(kept), frames + len(kept)
        scene, video = parse_caption(caption), None
        for k, obj in enumerate(scene.objects):
            if obj.direction is None:
                continue
            video = read_video(path) if video is None else video
            canvas = video.shape[1]
            turn = object_turn(object_centres(video, scene, k), obj, canvas)
            rows.append((obj.direction, obj.speed, errors_by_object[k], canvas, turn))
    return rows, (total, frames)


def measure(folder: Path) -> dict:
    rows, (total, frames) = objects(folder)
    out: dict = {"trajectory_rmse": round(float(np.sqrt(total / frames)), 3), "motions": {}}
    sums: dict = {}
    for direction, speed, errors, canvas, turn in rows:
        kept = [e for e in errors if e is not None]
        found = [e for e in kept if e < canvas ** 2]
        s = sums.setdefault((direction, speed), {"objects": 0, "sq": 0.0, "n": 0, "sq_all": 0.0, "n_all": 0,
                                                "turns": 0, "late2": 0, "past": []})
        s["objects"] += 1
        s["sq"], s["n"] = s["sq"] + sum(found), s["n"] + len(found)
        s["sq_all"], s["n_all"] = s["sq_all"] + sum(kept), s["n_all"] + len(kept)
        if turn is not None:
            s["turns"] += 1
            s["late2"] += int(not turn["turned"] or turn["late"] >= 2)
            s["past"].append(turn["past_wall"])
    for (direction, speed), s in sorted(sums.items()):
        out["motions"][f"{direction} {speed}"] = {
            "objects": s["objects"], "rmse_px_found": round(float(np.sqrt(s["sq"] / max(s["n"], 1))), 2),
            "share_of_squared_error": round(s["sq_all"] / total, 3), "wall_turns": s["turns"],
            "two_or_more_frames_late": s["late2"],
            "past_wall_px_mean": round(float(np.mean(s["past"])), 2) if s["past"] else None}
    swapped = total
    for speed in SPEEDS:
        side = sums.get((SIDE, speed))
        others = [s for (d, sp), s in sums.items() if sp == speed and d != SIDE]
        if side is not None and others:
            mean_other = sum(s["sq_all"] for s in others) / sum(s["n_all"] for s in others)
            swapped += side["n_all"] * mean_other - side["sq_all"]
    out[f"rmse_were_{SIDE}_as_the_other_directions"] = round(float(np.sqrt(swapped / frames)), 3)
    return out


def show(results: dict) -> str:
    swapped = results[f"rmse_were_{SIDE}_as_the_other_directions"]
    return (f"{results['trajectory_rmse']} px ({swapped} px were {SIDE} as the rest) | " +
            " | ".join(f"{k}: {v['rmse_px_found']} px, {v['share_of_squared_error']:.0%}, "
                       f"{v['two_or_more_frames_late']}/{v['wall_turns']} late ≥2, past {v['past_wall_px_mean']} px"
                       for k, v in results["motions"].items()))


def plot(results: dict, out: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    names = [f"{d} {s}" for s in SPEEDS for d in DIRECTIONS]
    x = np.arange(len(names))
    width = 0.8 / len(results)
    for i, (label, r) in enumerate(results.items()):
        ax.bar(x + (i - (len(results) - 1) / 2) * width,
               [r["motions"].get(n, {}).get("rmse_px_found", 0) for n in names], width, label=label)
    ax.axhline(BAR, color="black", linestyle="--", label=f"the bar: {BAR:g} px RMS (all objects)")
    ax.set_xticks(x, [n.replace(" ", "\n") for n in names], fontsize=8)
    ax.set_ylabel("path error, RMS over found frames (px)")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> None:
    folder_benchmark(__doc__.splitlines()[0], "wall_sides", measure, show, plot)


if __name__ == "__main__":
    cli(main)
