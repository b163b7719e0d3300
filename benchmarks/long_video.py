"""A long video from the shipped demo model, its takes judged on their first 64 frames (the default
`retake_frames`) against whole takes judged (`--retake-frames 0`): wall time and peak resident memory of each
`vidgen generate` command, the two started together (one thread each, so they share the 2 cores evenly), and
the scorer's reading of each video.

    python benchmarks/long_video.py     # writes benchmarks/results/long_video.{json,md}

The default prompt and seed are those of the scores table's second drift video (`vidgen eval … --frames 256
--seed 1`: its video seed 100104), so the videos are that row's.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from common import machine, write_results  # noqa: E402
from vidgen.eval.scorer import score_video  # noqa: E402
from vidgen.video import read_video  # noqa: E402

PROMPT = "a large green triangle standing still and a large orange square standing still on a gray background"
RUNS = {"first 64 frames judged (default)": [], "whole takes judged": ["--retake-frames", "0"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--seed", type=int, default=100104)
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        started, children = time.perf_counter(), {}
        for name, flags in RUNS.items():
            out = Path(tmp) / f"{len(children)}.mp4"
            command = ["vidgen", "generate", args.prompt, "--frames", str(args.frames), "--seed", str(args.seed),
                       *flags, "--out", str(out)]
            children[subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL).pid] = (name, command, out)
        runs = {}
        while len(runs) < len(children):
            pid, status, usage = os.wait4(-1, 0)
            name, command, out = children[pid]
            if status != 0:
                sys.exit(f"{' '.join(command)} failed ({status})")
            score = score_video(read_video(out), args.prompt)
            runs[name] = {"command": shlex.join(command[:-1] + ["video.mp4"]),
                          "wall_seconds": round(time.perf_counter() - started, 1),
                          "peak_rss_mib": round(usage.ru_maxrss / 1024),
                          "trajectory_rmse": round(score.trajectory_rmse, 2),
                          "direction_accuracy": round(score.direction_accuracy, 3),
                          "attributes_correct": round(score.attributes_correct, 3)}
    path = write_results("long_video", {"machine": machine(), "prompt": args.prompt, "frames": args.frames,
                                        "seed": args.seed, "runs": {name: runs[name] for name in RUNS}})
    result = json.loads(path.read_text())
    lines = [f"`{args.prompt}`, {args.frames} frames, seed {args.seed}, on {result['machine']}; the two commands "
             "started together, one thread each. Reproduce: `" + result["command"] + "`.", "",
             "| takes | wall s | peak RSS MiB | trajectory px | direction | attributes |", "|---|---|---|---|---|---|"]
    lines += [f"| {name} | {r['wall_seconds']} | {r['peak_rss_mib']} | {r['trajectory_rmse']} | "
              f"{r['direction_accuracy']:.1%} | {r['attributes_correct']:.1%} |" for name, r in result["runs"].items()]
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
