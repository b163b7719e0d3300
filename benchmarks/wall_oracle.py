"""Is it the carry or the denoiser that turns objects late at one wall? Large fast single objects moving each way
("a large red|green|blue|yellow square|cross|triangle|square moving DIRECTION quickly on a black background",
video seeds 1000 on), each drawn twice with the same seed and `retake 0`: with the shipped carried start (the
adapter's own field), and with an oracle start that carries each object by its true step along its ideal path,
bounces included (`start_oracle.oracle_start`, in image space), the adapter's denoiser doing the rest. Per
direction and start: the trajectory error (RMS over the videos of each video's `vidgen eval` score). Where the
oracle evens the directions out, the carry's field is what turns late there; where it does not, the denoiser.

    python benchmarks/wall_oracle.py --videos 8    # writes benchmarks/results/wall_oracle.json
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import cli, machine, write_results
from start_oracle import oracle_start

from vidgen import VideoPipeline
from vidgen.data.shapes import DIRECTIONS
from vidgen.eval.scorer import score_video

COLOURS = ("red", "green", "blue", "yellow")
SHAPES = ("square", "cross", "triangle", "square")


def caption(direction: str, k: int) -> str:
    return f"a large {COLOURS[k % 4]} {SHAPES[k % 4]} moving {direction} quickly on a black background"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8, help="videos per direction")
    parser.add_argument("--name", default="wall_oracle", help="results file name")
    args = parser.parse_args()
    pipe = VideoPipeline.from_pretrained()
    results = {}
    for direction in DIRECTIONS:
        row = {}
        for start in ("own field", "oracle"):
            errors = []
            for k in range(args.videos):
                text = caption(direction, k)
                guess = oracle_start(pipe, text, 16, "image") if start == "oracle" else None
                frames = np.stack(list(pipe.stream(text, num_frames=16, guess=guess, retake=0,
                                                   generator=torch.Generator().manual_seed(1000 + k))))
                errors.append(score_video(frames, text).trajectory_rmse)
            row[start] = {"trajectory_rmse": round(float(np.sqrt(np.mean(np.square(errors)))), 2),
                          "per_video": [round(e, 2) for e in errors]}
        results[direction] = row
        print(direction, {start: r["trajectory_rmse"] for start, r in row.items()}, flush=True)
    write_results(args.name, {"machine": machine(), "results": results})


if __name__ == "__main__":
    cli(main)
