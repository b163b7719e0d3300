"""How well an adapter's displacement field (`--spatial-flow`) reads a real motion, and how well any warp could.

For single-object moving train videos, frames i = 1, 5, 10 given their real context: the field's displacement at
the object's place in frame i−1, over the object's true shift (1 = reads it exactly; frame 1 sees only frame 0,
so it must read the caption). And, per interpolation, the one displacement that best warps latent i−1 onto
latent i (a grid search), over the true shift: the bias the displacement loss inherits from the warp itself.

    python benchmarks/flow_reading.py --adapter models/shapes-adapter runs/adapter-bicubic/adapter
    # writes benchmarks/results/flow_reading.json

With `--objects 2`, the same reading in two-object videos whose objects both move at different speeds, each
object at its own place: whether the field binds each object's own speed to it (a field that gives both objects
one displacement reads the slow one about 3× too far, the fast one about 1/3). Writes flow_reading_2.json.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import cli, write_results  # noqa: E402
from motion_follow import moving_tracks  # noqa: E402
from vidgen.fields import INTERPOLATIONS, warp  # noqa: E402
from vidgen.errors import VidgenError  # noqa: E402
from vidgen.pipeline import VideoPipeline  # noqa: E402
from vidgen.sampling import FrameContext, context_window  # noqa: E402

TARGETS = (1, 5, 10)
SHIFTS = torch.linspace(-1.2, 1.2, 97)  # latent px, step 0.025


def cases(pipe: VideoPipeline, folder: Path, num_videos: int, objects: int = 1) -> list[dict]:
    out, used = [], 0
    for caption, scene, video, tracks in moving_tracks(folder, objects):
        latents, text = pipe.encode_frames(video), pipe.encode_prompt(caption)
        scale = video.shape[1] / latents.shape[-1]
        before = len(out)
        for centres, axis, speed in tracks:
            for i in TARGETS:
                true = (centres[i] - centres[i - 1])[axis] / scale
                if np.isfinite(true) and abs(true) >= 0.1:  # a bounce between i−1 and i leaves no shift to read
                    at = [min(max(int(round(v / scale - 0.5)), 0), latents.shape[-1] - 1) for v in centres[i - 1]]
                    out.append(dict(i=i, axis=axis, true=float(true), at=at, speed=speed, latents=latents,
                                    text=text))
        used += len(out) > before
        if used >= num_videos:
            break
    return out


def summary(ratios: list[float], frames: list[int]) -> dict:
    r, f = np.array(ratios), np.array(frames)
    return {"cases": len(r), "median": round(float(np.median(r)), 3), "right_sign": round(float(np.mean(r > 0)), 3),
            "frame_1": round(float(np.median(r[f == 1])), 3) if (f == 1).any() else None,
            "later": round(float(np.median(r[f > 1])), 3) if (f > 1).any() else None}


def by_speed(rows: list[tuple[str, int, float]]) -> dict:
    return {s: summary([r for sp, _, r in rows if sp == s], [i for sp, i, _ in rows if sp == s])
            for s in sorted({sp for sp, _, _ in rows})}


def field_reading(pipe: VideoPipeline, items: list[dict]) -> dict:
    rows = []
    for c in items:
        idx = context_window(c["i"], 4)
        ctx = FrameContext.make(c["latents"][idx][None], idx, c["i"], 0.0)
        with torch.no_grad():
            flow = pipe.denoiser.adapter.encode(*ctx.as_args(), c["text"]).flow
        x, y = c["at"]
        rows.append((c["speed"], c["i"], -flow[0, c["axis"], y, x].item() / c["true"]))  # warp samples at p + d
    return by_speed(rows)


def best_warp(items: list[dict], mode: str) -> dict:
    rows = []
    for c in items:
        prev, cur = c["latents"][c["i"] - 1][None], c["latents"][c["i"]][None]
        errors = []
        for d in SHIFTS:
            flow = torch.zeros(1, 2, *prev.shape[-2:])
            flow[:, c["axis"]] = d
            errors.append((warp(prev, flow, mode) - cur).square().mean().item())
        rows.append((c["speed"], c["i"], -SHIFTS[int(np.argmin(errors))].item() / c["true"]))
    return by_speed(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/shapes-base")
    parser.add_argument("--adapter", nargs="+", required=True)
    parser.add_argument("--data", type=Path, default=Path("runs/shapes-train"))
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--objects", type=int, choices=(1, 2), default=1)
    args = parser.parse_args()
    results = {"field": {}}
    for adapter in args.adapter:
        pipe = VideoPipeline.from_pretrained(args.model, adapter=adapter)
        if not pipe.denoiser.adapter.config.get("spatial_flow", False):
            raise VidgenError(f"adapter: got {adapter!r}, which has no displacement field; expected one trained "
                              "with --spatial-flow")
        items = cases(pipe, args.data, args.videos, args.objects)
        results["field"][adapter] = field_reading(pipe, items)
        print(f"{adapter}: field / true shift {results['field'][adapter]}", flush=True)
    results["best_warp"] = {mode: best_warp(items, mode) for mode in INTERPOLATIONS}
    print(f"best single displacement / true shift: {results['best_warp']}")
    write_results("flow_reading" if args.objects == 1 else "flow_reading_2", {"results": results})


if __name__ == "__main__":
    cli(main)
