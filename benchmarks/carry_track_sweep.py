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
from pathlib import Path

import numpy as np
import torch

from vidgen import VideoPipeline
from vidgen.data.shapes import sample_scene
from vidgen.eval.scorer import score_video


def sweep(args) -> None:
    pipe = VideoPipeline.from_pretrained(device=args.device)
    rng = np.random.default_rng([args.seed, 7])  # generate_folder's captions and video seeds
    captions = [sample_scene(rng, "train").caption() for _ in range(args.num_prompts)]
    first, last = (int(x) for x in args.prompts.split(":")) if args.prompts else (0, args.num_prompts)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {json.loads(line)["name"] for line in out.read_text().splitlines()} if out.exists() else set()
    with out.open("a") as fh:
        for p in range(first, last):
            for k in range(2):
                name = f"gen_{p:04d}_{k:02d}"
                if name in done:
                    continue
                start = time.perf_counter()
                seed = args.seed * 100_003 + p * 101 + k
                frames = pipe(captions[p], carry_space=args.carry_space, carry_track=args.carry_track,
                              generator=torch.Generator().manual_seed(seed)).frames
                s = score_video(np.asarray(frames), captions[p])
                fh.write(json.dumps({"name": name, "caption": captions[p], "trajectory_rmse": s.trajectory_rmse,
                                     "attributes_correct": s.attributes_correct, "object_frames": s.object_frames,
                                     "direction_by_object": s.details["direction_by_object"],
                                     "seconds": time.perf_counter() - start}) + "\n")
                fh.flush()


def pool(paths: list[str]) -> None:
    """Per file: trajectory pooled over object-frames (all, one-object, two-object videos), direction over frame
    pairs, attributes over object-frames."""
    print("| file | videos | trajectory px (one / two objects) | direction | attributes |")
    print("|---|---|---|---|---|")
    for path in paths:
        rows = [json.loads(line) for line in Path(path).read_text().splitlines()]

        def rms(sel):
            rs = [r for r in rows if sel(r)]
            return np.sqrt(sum(r["trajectory_rmse"] ** 2 * r["object_frames"] for r in rs) /
                           max(sum(r["object_frames"] for r in rs), 1))
        hits = sum(o["hits"] for r in rows for o in r["direction_by_object"])
        pairs = sum(o["pairs"] for r in rows for o in r["direction_by_object"])
        attributes = np.average([r["attributes_correct"] for r in rows], weights=[r["object_frames"] for r in rows])
        print(f"| {path} | {len(rows)} | {rms(lambda r: True):.2f} ({rms(lambda r: ' and ' not in r['caption']):.2f}"
              f" / {rms(lambda r: ' and ' in r['caption']):.2f}) | {hits / pairs:.1%} | {attributes:.1%} |")


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
