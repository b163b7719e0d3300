"""Carry settings side by side on the videos `vidgen eval` makes, scored on the raw frames (no mp4 in between),
one JSON line per video: to compare `carry_track` and `carry_space` settings in parallel processes, on a machine
with many cores or a GPU (each process a share of the prompts), then pool.

    python benchmarks/carry_track_sweep.py --carry-space image --carry-track across --seed 2 --num-prompts 48 \
        --out runs/track-sweep/image-across-s2.jsonl [--prompts 0:24] [--device cuda]
    python benchmarks/carry_track_sweep.py --pool runs/track-sweep/*.jsonl   # one row per file

The prompts and seeds are `vidgen eval --prompts train --num-prompts N --videos-per-prompt 2 --seed S`'s
(`generate_folder`), so the scores match that command's up to the H.264 round trip. A file that already holds
a video's line keeps it (an interrupted run continues).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from vidgen import VideoPipeline
from vidgen.eval.evaluate import eval_captions, summarize, video_seed
from vidgen.eval.scorer import score_video


def sweep(args) -> None:
    pipe = VideoPipeline.from_pretrained(device=args.device)
    captions = eval_captions("train", args.num_prompts, args.seed)
    first, last = (int(x) for x in args.prompts.split(":")) if args.prompts else (0, args.num_prompts)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {json.loads(line)["video"] for line in out.read_text().splitlines()} if out.exists() else set()
    with out.open("a") as fh:
        for p in range(first, last):
            for k in range(2):
                name = f"gen_{p:04d}_{k:02d}"
                if name in done:
                    continue
                start = time.perf_counter()
                seed = video_seed(args.seed, p, k)
                frames = pipe(captions[p], carry_space=args.carry_space, carry_track=args.carry_track,
                              generator=torch.Generator().manual_seed(seed)).frames
                score = asdict(score_video(np.asarray(frames), captions[p]))
                # the row `vidgen eval` writes for a video (`evaluate`), so that `summarize` pools it as it does
                row = {"video": name, **{key: v for key, v in score.items() if key != "details"}, **score["details"],
                       "seconds": time.perf_counter() - start}
                fh.write(json.dumps(row) + "\n")
                fh.flush()


def pool(paths: list[str]) -> None:
    """Per file: `vidgen eval`'s summary (`summarize`) of all its videos, and of its one- and two-object ones."""
    print("| file | videos | trajectory px (one / two objects) | direction | attributes |")
    print("|---|---|---|---|---|")
    for path in paths:
        rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
        every, one, two = (summarize([r for r in rows if keep(r)]) for keep in
                           (lambda r: True, lambda r: " and " not in r["caption"], lambda r: " and " in r["caption"]))
        print(f"| {path} | {len(rows)} | {every['trajectory_rmse']:.2f} ({one['trajectory_rmse']:.2f} / "
              f"{two['trajectory_rmse']:.2f}) | {every['direction_accuracy']:.1%} | {every['attributes_correct']:.1%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--carry-space", default="image")
    parser.add_argument("--carry-track", default="none")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--num-prompts", type=int, default=24)
    parser.add_argument("--prompts", help="FIRST:LAST, this process's share of the prompts (default: all)")
    parser.add_argument("--out", help="JSON lines, one per video")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--pool", nargs="+", help="summarise these files instead")
    args = parser.parse_args()
    if args.pool:
        return pool(args.pool)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    sweep(args)


if __name__ == "__main__":
    main()
