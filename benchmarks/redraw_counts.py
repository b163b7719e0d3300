"""How often does `redraw` draw a frame again, and does a redraw keep the objects? Runs `vidgen eval` (any of its
arguments) and counts, over the videos it generates, the autoregressive frames judged (`redraw.jump`), those
rejected, the redraws made, and per rejected frame the kept share (`redraw.kept_share`) of each draw (-1 where
the draw was accepted). Writes EVAL_FOLDER.redraws.json beside the eval folder (`seconds`: the whole command).

    python benchmarks/redraw_counts.py eval --model models/shapes-base --adapter models/shapes-adapter \\
        --num-prompts 48 --videos-per-prompt 2 --seed 3 --no-fd --videos runs/sweep/redraw2c-s3
"""

import json
import os
import sys
import time

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import vidgen.pipeline as pipeline  # noqa: E402
import vidgen.redraw as redraw  # noqa: E402
import vidgen.sampling as sampling  # noqa: E402
from vidgen.cli import main  # noqa: E402

log, calls = [], []
real_jump, real_best_of = redraw.jump, sampling.best_of


def jump(start, frame):
    value = real_jump(start, frame)
    log.append(round(redraw.KEEP - value if value > 0 else -1, 3))  # the kept share of a rejected draw, or -1
    return value


def best_of(draw, judge, first, redraws, reset):
    n = len(log)
    out = real_best_of(draw, judge, first, redraws, reset)
    calls.append(log[n:])
    return out


if __name__ == "__main__":
    pipeline.jump, sampling.best_of = jump, best_of
    out = sys.argv[sys.argv.index("--videos") + 1]
    start = time.time()
    try:
        main(sys.argv[1:])
    finally:
        rejected = [c for c in calls if len(c) > 1]
        json.dump({"seconds": time.time() - start, "frames": len(calls), "redrawn_frames": len(rejected),
                   "draws": sum(len(c) - 1 for c in calls), "flagged": rejected}, open(out + ".redraws.json", "w"))
