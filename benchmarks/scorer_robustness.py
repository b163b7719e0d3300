"""How the shapes scorer reads ground truth that has been degraded the ways generated frames are.

Ground-truth shapes videos (16 frames, one or two objects) at 64 and 32 px, scored clean, after an H.264 round
trip (vidgen's own mp4 export: libx264, crf 18, yuv420p), a Gaussian blur (σ = 0.7 px), and two VAE-like
resamplings (bilinear down by 2 or 4, bicubic up). Each twice: as the world places objects (apart during the
frames where possible), and with every two-object video's objects starting apart and then crossing paths
(`make_video(crossing=1)`: one object passes over the other, as it may after a first frame drawn by a model).

    python benchmarks/scorer_robustness.py --videos 60    # writes benchmarks/results/scorer_robustness.{json,md}
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from vidgen.data.shapes import make_video
from vidgen.eval.scorer import score_video
from vidgen.video import export_video, read_video
from common import cli

RESULTS = Path(__file__).parent / "results"
METRICS = ("attributes_correct", "count_correct", "trajectory_rmse", "direction_accuracy", "identity_consistency",
           "flicker")


def h264(video):
    with tempfile.TemporaryDirectory() as tmp:
        export_video(video, f"{tmp}/v.mp4")
        return read_video(f"{tmp}/v.mp4")


def resample(factor):
    def apply(video):
        s = video.shape[1]
        return np.stack([np.asarray(Image.fromarray(f).resize((s // factor, s // factor), Image.BILINEAR)
                                    .resize((s, s), Image.BICUBIC)) for f in video])
    return apply


DEGRADATIONS = {"clean": lambda v: v, "H.264 (crf 18, yuv420)": h264,
                "blur σ 0.7": lambda v: np.stack([np.asarray(Image.fromarray(f).filter(ImageFilter.GaussianBlur(0.7)))
                                                   for f in v]),
                "resample ×2": resample(2), "resample ×4": resample(4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=60)
    args = parser.parse_args()
    rows = []
    for paths, crossing in (("apart", 0.0), ("crossing", 1.0)):
        for canvas in (64, 32):
            for name, degrade in DEGRADATIONS.items():
                scores = []
                for seed in range(args.videos):
                    video, scene, _ = make_video(10_000 + seed, frames=16, canvas=canvas, crossing=crossing)
                    scores.append(score_video(degrade(video), scene.caption()))
                row = {"paths": paths, "canvas": canvas, "degradation": name}
                for m in METRICS:  # a video whose objects overlap in every frame has no per-object figures (nan)
                    values = np.array([getattr(s, m) for s in scores])
                    row[m] = float(np.sqrt(np.nanmean(values ** 2))) if m == "trajectory_rmse" else \
                        float(np.nanmean(values))
                rows.append(row)
                print(row, flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scorer_robustness.json").write_text(json.dumps({"command": "python benchmarks/scorer_robustness.py "
                                                                f"--videos {args.videos}", "rows": rows}, indent=2))
    lines = [f"Command: `python benchmarks/scorer_robustness.py --videos {args.videos}`\n",
             "| paths | size | degradation | attributes | count | trajectory RMSE (px) | direction | identity "
             "| flicker |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['paths']} | {r['canvas']} | {r['degradation']} | {r['attributes_correct']:.3f} | "
              f"{r['count_correct']:.3f} | "
              f"{r['trajectory_rmse']:.2f} | {r['direction_accuracy']:.3f} | {r['identity_consistency']:.3f} | "
              f"{r['flicker']:.2f} |" for r in rows]
    (RESULTS / "scorer_robustness.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    cli(main)
