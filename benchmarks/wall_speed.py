"""How fast do generated objects move on the way to a wall? For every moving object found in every frame of a
scored folder's videos, each frame step before the object's first turn (a step of at least half the slow speed
against the caption's direction, as in wall_turns.py), binned by how far the object then is from the place
where its centre would turn (in caption steps): the step over the caption's (`step`), and how far the object is
ahead of where the caption's speed puts it from frame 0, per frame so far (`ahead_px_per_frame`). An object
that gains on its path only near the wall turns early for the path although on time for where it is.

    python benchmarks/wall_speed.py runs/sweep/ship-s1 runs/sweep/lg175-s1 --name wall_speed
    # writes benchmarks/results/wall_speed.json (--name NAME: NAME.json)
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402

from common import cli, folder_benchmark  # noqa: E402
from motion_follow import axis_of  # noqa: E402
from vidgen.data.shapes import REFERENCE_SIZE, SPEEDS  # noqa: E402
from wall_turns import first_turn, moving_objects  # noqa: E402

GAPS = ((4.0, np.inf, "more than 4 steps"), (2.0, 4.0, "2-4 steps"), (1.0, 2.0, "1-2 steps"),
        (-np.inf, 1.0, "under a step"))


def object_steps(centres: np.ndarray, obj, canvas: int) -> list[tuple[str, float, float]]:
    """(gap bin, step over the caption's, px ahead per frame so far) for each frame step before the first turn."""
    axis = axis_of(obj)
    velocity = obj.velocity(canvas)[axis]
    forward, speed = float(np.sign(velocity)), abs(velocity)
    along = centres[:, axis] * forward  # position along the motion, growing while the object goes forwards
    turn = first_turn(np.diff(centres[:, axis]), forward, 0.5 * SPEEDS["slowly"] * canvas / REFERENCE_SIZE)
    limit = (canvas - obj.half_extent(canvas) if forward > 0 else obj.half_extent(canvas)) * forward
    rows = []
    for i in range(1, len(centres) if turn is None else turn + 1):
        gap = (limit - along[i - 1]) / speed  # before the step
        name = next(label for lo, hi, label in GAPS if lo <= gap < hi)
        rows.append((name, (along[i] - along[i - 1]) / speed, (along[i] - along[0] - speed * i) / i))
    return rows


def measure(folder: Path) -> dict:
    rows: dict[tuple[str, str], list] = {}
    for scene, obj, centres, canvas in moving_objects(folder):
        if not np.isfinite(centres).all():
            continue
        kind = f"{obj.speed}, {'one object' if len(scene.objects) == 1 else 'two objects'}"
        for gap, step, ahead in object_steps(centres, obj, canvas):
            rows.setdefault((kind, gap), []).append((step, ahead))
    return {kind: {gap: {"steps": len(r), "step": round(float(np.mean([s for s, _ in r])), 3),
                         "ahead_px_per_frame": round(float(np.mean([a for _, a in r])), 3)}
                   for _, _, gap in GAPS if (r := rows.get((kind, gap)))}
            for kind in sorted({kind for kind, _ in rows})}


def show(results: dict) -> str:
    return " | ".join(f"{kind}: " + ", ".join(f"{gap} {v['step']}× ({v['steps']})" for gap, v in bins.items())
                      for kind, bins in results.items())


if __name__ == "__main__":
    cli(lambda: folder_benchmark(__doc__, "wall_speed", measure, show))
