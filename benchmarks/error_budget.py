"""Where a folder's squared trajectory error comes from: the scorer's own per-object-frame errors
(`score_video`'s `path_error_by_object`, the overlap rule applied), each put down to one cause, in this order:

- lost: an object-frame without its object (the scorer counts the canvas side, 64 px: 4,096 px²);
- frame 0 wrong: the video's first frame does not hold each caption colour once and nothing else (a copy, an
  object missing, a stray: `first_frame.objects_right`), so its path starts from a wrong scene;
- starts at a wall: the caption's path from where frame 0 drew the object turns at once or after one step
  (frame 0 at a wall, moving into it), which frame 1 cannot do (model-card log, "Frame 1 cannot turn");
- paths cross: two objects whose caption paths from frame 0 bring them together (`crossing.crosses`);
- two objects, apart; one object: the rest.

Per folder: the object-frames, the pooled trajectory error, and per cause the squared error's share, the mean
squared error it adds (px² per object-frame: issue 4's 2 px RMS is 4 px² in all) and the error the folder would
score were that cause's object-frames exact. The plot stacks each folder's mean squared error by cause against
the bar.

    python benchmarks/error_budget.py runs/sweep/later2-s1 runs/sweep/later2-s2 runs/sweep/later2-s3 \\
        --labels "seed 1,seed 2,seed 3" --plot docs/images/error_budget.png
    # writes benchmarks/results/error_budget.json
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from common import BAR, cli, folder_benchmark, pyplot
from crossing import crosses
from first_frame import mistakes, objects_right
from motion_follow import axis_of, object_centres
from wall_turns import first_turn

from vidgen.data.shapes import parse_caption
from vidgen.data.video_folder import read_captions
from vidgen.eval.scorer import expected_path, score_video
from vidgen.video import read_video

CAUSES = ("lost", "frame 0 wrong", "starts at a wall", "paths cross", "two objects, apart", "one object")


def starts_at_wall(frame: np.ndarray, caption: str, frames: int) -> list[bool]:
    """Per caption object: whether its caption path from where frame 0 (1, S, S, 3) draws it turns within the
    first two steps (`wall_turns.first_turn`, any step back); False for a still object or one frame 0 lacks."""
    scene, size = parse_caption(caption), frame.shape[1]
    out = []
    for k, obj in enumerate(scene.objects):
        start = object_centres(frame, scene, k)[0]
        if obj.direction is None or not np.isfinite(start).all():
            out.append(False)
            continue
        axis = axis_of(obj)
        path = expected_path(obj, start, size, frames)[:, axis]
        turn = first_turn(np.diff(path), float(np.sign(obj.velocity(size)[axis])), 0.0)
        out.append(turn is not None and turn <= 1)
    return out


def measure(folder: Path) -> dict:
    squared = dict.fromkeys(CAUSES, 0.0)
    objects = dict.fromkeys(CAUSES, 0)
    frames_counted = 0
    for path, caption in read_captions(folder):
        frames = read_video(path)
        score = score_video(frames, caption)
        canvas = frames.shape[1]
        first = frames[:1]
        wrong = not objects_right(score_video(first, caption), *mistakes(first, caption))
        wall = starts_at_wall(first, caption, len(frames))
        cross = crosses(first, caption, len(frames))
        for k, errors in enumerate(score.details["path_error_by_object"]):
            kept = np.array([e for e in errors if e is not None], float)
            frames_counted += len(kept)
            lost = kept == canvas ** 2
            squared["lost"] += float(kept[lost].sum())
            cause = "frame 0 wrong" if wrong else "starts at a wall" if wall[k] else "paths cross" if cross else \
                "one object" if cross is None and len(wall) == 1 else "two objects, apart"
            squared[cause] += float(kept[~lost].sum())
            objects[cause] += 1
    total = sum(squared.values()) or 1.0  # exact paths: every share 0
    return {"object_frames": frames_counted, "trajectory_rmse": round(float(np.sqrt(total / frames_counted)), 3),
            "causes": {c: {"objects": objects[c] if c != "lost" else None,
                           "share": round(squared[c] / total, 3),
                           "mean_squared_px2": round(squared[c] / frames_counted, 3),
                           "rmse_were_it_exact": round(float(np.sqrt((total - squared[c]) / frames_counted)), 3)}
                       for c in CAUSES}}


def show(result: dict) -> str:
    return f"{result['trajectory_rmse']} px over {result['object_frames']} object-frames; " + "; ".join(
        f"{c} {v['share']:.0%} ({v['rmse_were_it_exact']} px without)" for c, v in result["causes"].items())


def plot(results: dict, out: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 1.6 + 0.55 * len(results)))
    labels = list(results)
    left = np.zeros(len(labels))
    colours = plt.get_cmap("tab10").colors
    for i, cause in enumerate(CAUSES):
        width = np.array([results[label]["causes"][cause]["mean_squared_px2"] for label in labels])
        ax.barh(labels, width, left=left, color=colours[i], label=cause)
        left += width
    ax.axvline(BAR ** 2, color="black", linestyle="--", label=f"the bar: {BAR:g} px RMS")
    for y, label in enumerate(labels):
        ax.text(left[y], y, f" {results[label]['trajectory_rmse']:.2f} px", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("mean squared trajectory error per object-frame (px²)")
    ax.set_xlim(0, left.max() * 1.15)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=4, frameon=False)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> None:
    folder_benchmark(__doc__.splitlines()[0], "error_budget", measure, show, plot)


if __name__ == "__main__":
    cli(main)
