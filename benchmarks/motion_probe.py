"""Teacher-forced motion probe: given the first i real frames of a shapes video (as the clip to continue), does
the adapter's frame i carry the object on from frame i−1 as the real frame i does? Per (video, i): the generated
object's displacement from real frame i−1 along the real displacement, divided by the real displacement.
1 = continues the motion, 0 = copies frame i−1, negative = goes back. Single-object videos whose object moves
between i−1 and i, at frames --targets (bounces skipped) or, with --bounces, at the frames where the real object
turns off a wall (1 = turns as it does, negative = runs on into the wall); the adapter's own generation settings.

    python benchmarks/motion_probe.py --adapter models/shapes-adapter runs/adapter-x/adapter --videos 12
    # writes benchmarks/results/motion_probe.json
    python benchmarks/motion_probe.py --adapter models/shapes-adapter --bounces --videos 48 --name motion_probe_bounces
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vidgen.pipeline import VideoPipeline  # noqa: E402

from motion_follow import moving_objects, object_centres  # noqa: E402
from common import cli, write_results  # noqa: E402


def turns(centres: np.ndarray, axis: int) -> list[int]:
    """The frames i ≥ 2 at which the real object comes off a wall: its step i−1 → i runs against the one
    before."""
    step = np.diff(centres[:, axis])
    return [i for i in range(2, len(centres)) if step[i - 1] * step[i - 2] < 0 and abs(step[i - 1]) > 0.5]


def probe_cases(folder: Path, num_videos: int, targets: list[int] | None) -> list[dict]:
    """(video, caption, i, axis, real centres) for single-object moving videos whose object moves at i (each
    frame of `targets`; None: the frames where it turns off a wall)."""
    cases, used = [], 0
    for caption, scene, video, centres, axis in moving_objects(folder):
        moving = turns(centres, axis) if targets is None else \
            [i for i in targets if abs(centres[i, axis] - centres[i - 1, axis]) > 0.5]
        cases += [dict(video=video, caption=caption, scene=scene, i=i, axis=axis, centres=centres) for i in moving]
        used += bool(moving)
        if used >= num_videos:
            break
    return cases


def run(model: str | None, adapter: str, cases: list[dict], seed: int, options: dict) -> dict:
    pipe = VideoPipeline.from_pretrained(model, adapter=adapter)
    ratios, start = [], time.perf_counter()
    for case in cases:
        i, axis, c = case["i"], case["axis"], case["centres"]
        out = pipe(case["caption"], video=case["video"][:i], num_frames=i + 1,
                   generator=torch.Generator().manual_seed(seed), **options).frames
        made = object_centres(out[-1:], case["scene"])[0]
        real = c[i, axis] - c[i - 1, axis]
        ratios.append(float((made[axis] - c[i - 1, axis]) / real) if np.isfinite(made).all() else float("nan"))
    ok = [r for r in ratios if np.isfinite(r)]
    return {"adapter": adapter, "options": options, "cases": len(ratios), "detected": len(ok),
            "median": float(np.median(ok)) if ok else None, "mean": float(np.mean(ok)) if ok else None,
            "ratios": [round(r, 3) for r in ratios], "speeds": [c["scene"].objects[0].speed for c in cases],
            "seconds": round(time.perf_counter() - start, 1)}


def setting_value(field: str, value: str) -> dict:
    """`start=noise` → {"start": "noise"}; numbers become numbers (`guidance_scale=5`)."""
    try:
        return {field: json.loads(value)}
    except json.JSONDecodeError:
        return {field: value}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="the base model (default: the shipped one)")
    parser.add_argument("--adapter", nargs="+", required=True)
    parser.add_argument("--data", type=Path, default=Path("runs/shapes-train"))
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--targets", default="4,8,12")
    parser.add_argument("--bounces", action="store_true",
                        help="probe the frames where the real object turns off a wall instead of --targets")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="motion_probe")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="generation settings over the adapter's own, e.g. start=noise; each runs separately")
    args = parser.parse_args()
    cases = probe_cases(args.data, args.videos, None if args.bounces else [int(t) for t in args.targets.split(",")])
    results = []
    settings = [setting_value(*setting.split("=", 1)) for setting in args.set] or [{}]
    for adapter, options in [(a, o) for a in args.adapter for o in settings]:
        results.append(run(args.model, adapter, cases, args.seed, options))
        r = results[-1]
        by_speed = {s: np.nanmedian([x for x, v in zip(r["ratios"], r["speeds"]) if v == s])
                    for s in sorted(set(r["speeds"]))}
        print(f"{adapter} {options or ''}: {r['detected']}/{r['cases']} detected, median {r['median']:.2f}, "
              f"mean {r['mean']:.2f}, median by speed {({s: round(float(m), 2) for s, m in by_speed.items()})}, "
              f"right direction {np.mean(np.array(r['ratios']) > 0):.0%} ({r['seconds']} s)", flush=True)
    write_results(args.name, {"results": results})


if __name__ == "__main__":
    cli(main)
