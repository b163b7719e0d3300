"""Is the adapter's displacement field what holds slow objects back? Slow single-object prompts generated with
the adapter's own field, and again with an oracle field: the caption's displacement (direction × speed, no
bounce), the same everywhere, in place of what the adapter predicts. Everything else (the denoiser, the carried
start, the settings) stays the adapter's. Scored by the shapes scorer: direction, trajectory, identity.

    python benchmarks/field_oracle.py --adapter models/shapes-adapter
    # writes benchmarks/results/field_oracle.json
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import cli, machine, write_results
from torch import nn

from vidgen.data.shapes import parse_caption
from vidgen.errors import check
from vidgen.eval.scorer import score_video
from vidgen.pipeline import VideoPipeline

PROMPTS = [f"a {size} {colour} {shape} moving {direction} slowly on a {bg} background"
           for size, colour, shape, direction, bg in
           [("large", "green", "square", "right", "black"), ("small", "red", "circle", "down", "white"),
            ("large", "blue", "triangle", "left", "white"), ("small", "yellow", "square", "up", "black"),
            ("large", "red", "circle", "up", "black"), ("small", "green", "triangle", "left", "white")]]


def oracle(pipe: VideoPipeline, displacement: dict) -> None:
    """Replace the field by displacement["v"] (b, 2) everywhere: the map's head is zeroed, the caption's read
    is replaced."""
    spatial = pipe.denoiser.adapter.spatial
    nn.init.zeros_(spatial.flow[-1].weight)
    nn.init.zeros_(spatial.flow[-1].bias)
    spatial.text_flow.forward = lambda words: displacement["v"].expand(words.shape[0], 2).to(words.dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="base model folder (default: the shipped one)")
    parser.add_argument("--adapter", default="models/shapes-adapter")
    parser.add_argument("--seeds", type=lambda text: [int(s) for s in text.split(",")], default=[1, 2])
    args = parser.parse_args()
    pipe = VideoPipeline.from_pretrained(args.model, args.adapter)
    cfg = pipe.denoiser.adapter.config
    check(cfg.get("spatial_flow") and cfg.get("spatial_text") and not cfg.get("flow_motions"), "adapter",
          args.adapter, "an adapter with spatial_flow and spatial_text, without flow_motions (a field to replace)")
    results, displacement = {}, {}
    for field in ("adapter", "oracle"):
        if field == "oracle":  # after the adapter's own run: this replaces its field for good
            oracle(pipe, displacement)
        rows = []
        for prompt in PROMPTS:
            obj = parse_caption(prompt).objects[0]
            # in latent px; warp samples at p + flow, so content moving by v comes from p − v
            displacement["v"] = -torch.tensor(obj.velocity(pipe.native_size), dtype=torch.float32)[None] \
                / pipe.vae_scale_factor
            for seed in args.seeds:
                frames = pipe(prompt, generator=torch.Generator().manual_seed(seed)).frames
                s = score_video(frames, prompt)
                rows.append({"prompt": prompt, "seed": seed, "direction": s.direction_accuracy,
                             "trajectory_rmse": s.trajectory_rmse, "identity": s.identity_consistency})
                print(f"[{field}] {prompt} seed {seed}: direction {s.direction_accuracy:.2f}, trajectory "
                      f"{s.trajectory_rmse:.1f} px, identity {s.identity_consistency:.2f}", flush=True)
        results[field] = {"direction": float(np.mean([r["direction"] for r in rows])),
                          "trajectory_rmse": float(np.sqrt(np.mean([r["trajectory_rmse"] ** 2 for r in rows]))),
                          "identity": float(np.mean([r["identity"] for r in rows])), "videos": rows}
        print(f"[{field}] direction {results[field]['direction']:.3f}, trajectory "
              f"{results[field]['trajectory_rmse']:.2f} px, identity {results[field]['identity']:.3f}", flush=True)
    write_results("field_oracle", {"machine": machine(), "results": results})


if __name__ == "__main__":
    cli(main)
