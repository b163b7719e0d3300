"""How much of the trajectory error is speed? For every moving object of a scored folder's videos (found in frame
0), its path error against the caption's path (its speed, bouncing at the frame's edges from where frame 0 has
it, as the scorer's), and against the same path at the one speed, k × the caption's, that fits it best (k from
0.5 to 1.6 in steps of 0.01): what is left then is the error of the path's shape (late or early turns, stalls,
objects pushed aside), what the fit takes away is the error of a speed held wrong over the video.

Per folder and speed class: the objects, the RMS error (px, over the frames where the object is found) with the
caption's speed and with the fitted one, the share of the squared error the fit takes away, and the fitted k's
median and 10th / 90th percentiles.

    python benchmarks/speed_share.py runs/sweep/stall-s1 runs/sweep/stall-s2 runs/sweep/stall-s3
    # writes benchmarks/results/speed_share.json (--name NAME: NAME.json)
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402

from common import cli, folder_benchmark  # noqa: E402
from vidgen.data.shapes import bounce  # noqa: E402
from vidgen.eval.scorer import expected_path  # noqa: E402
from wall_turns import moving_objects  # noqa: E402

SPEEDS = np.round(np.arange(0.5, 1.605, 0.01), 2)  # k: the fitted speed over the caption's


def fit(obj, centres: np.ndarray, canvas: int) -> tuple[float, float, float, int]:
    """(squared error with the caption's speed, with the best k, that k, frames found) of one object's centres."""
    found = np.isfinite(centres).all(axis=1)
    low = obj.half_extent(canvas)
    start = np.clip(centres[0], low, canvas - low)
    error = lambda path: float(((centres[found] - path[found]) ** 2).sum())  # noqa: E731
    caption = error(expected_path(obj, centres[0], canvas, len(centres)))
    best = min((error(bounce(start, k * obj.velocity(canvas), low, canvas - low, len(centres))), k) for k in SPEEDS)
    return caption, best[0], float(best[1]), int(found.sum())


def measure(folder: Path) -> dict:
    rows: dict[str, list] = {}
    for scene, obj, centres, canvas in moving_objects(folder):
        if not np.isfinite(centres[0]).all():
            continue  # never found in frame 0: no start to fit a path from
        kind = f"{obj.speed}, {'one object' if len(scene.objects) == 1 else 'two objects'}"
        row = fit(obj, centres, canvas)
        rows.setdefault(kind, []).append(row)
        rows.setdefault("all", []).append(row)
    out = {}
    for kind in sorted(rows):
        r = np.array(rows[kind])
        frames = r[:, 3].sum()
        out[kind] = {"objects": len(r), "rmse_px": round(float(np.sqrt(r[:, 0].sum() / frames)), 2),
                     "rmse_px_fitted_speed": round(float(np.sqrt(r[:, 1].sum() / frames)), 2),
                     "share_taken_by_speed": round(float(1 - r[:, 1].sum() / r[:, 0].sum()), 3),
                     "k_median": round(float(np.median(r[:, 2])), 3),
                     "k_p10_p90": [round(float(q), 3) for q in np.quantile(r[:, 2], [0.1, 0.9])]}
    return out


def show(results: dict) -> str:
    return "; ".join(f"{kind}: {r['objects']} objects, {r['rmse_px']} -> {r['rmse_px_fitted_speed']} px "
                     f"({r['share_taken_by_speed']:.0%} of the squared error), k {r['k_median']} "
                     f"({r['k_p10_p90'][0]}-{r['k_p10_p90'][1]})" for kind, r in results.items())


def main() -> None:
    folder_benchmark(__doc__.splitlines()[0], "speed_share", measure, show)


if __name__ == "__main__":
    cli(main)
