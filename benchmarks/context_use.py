"""How much the adapter uses its context: the training loss on one fixed batch of training examples with the
context and with the null context, in each mode, per noise-level band.

    python benchmarks/context_use.py --adapter models/shapes-adapter --data runs/shapes-train --out runs/adapter
    # --out: the training run's folder, whose latent cache is reused; writes benchmarks/results/context_use.json

With `--frame1`: what knowing the motion is worth to the loss where the motion must start. Every example targets
frame 1 (context: frame 0 alone, clean), scored three ways per band, in ε and in x₀ (x₀ error = ε error / SNR):
the real context (frame 0), the null context, and an oracle context that holds frame 1 itself where frame 0
would be (the motion already applied, so copying it is right) — given to both paths, or to one path while the
other sees frame 0 (which path carries the layout). Writes context_use_frame1.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from vidgen import VideoPipeline  # noqa: E402
from vidgen.adapter import Context  # noqa: E402
from vidgen.training import TrainConfig, make_batch, prepare_data  # noqa: E402
from common import cli  # noqa: E402

BANDS = [(0, 250), (250, 500), (500, 750), (750, 1000)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/shapes-base")
    parser.add_argument("--adapter", default="models/shapes-adapter")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--frame1", action="store_true", help="the frame-1 oracle comparison (see above)")
    args = parser.parse_args()
    config = TrainConfig(model=args.model, data=args.data, out=args.out, num_frames=16, batch_size=args.batch,
                         text_dropout=0, context_dropout=0)
    pipe = VideoPipeline.from_pretrained(args.model, adapter=args.adapter)
    data = prepare_data(config, pipe, (64, 64))
    alphas = pipe.scheduler.alphas_cumprod.float()
    if args.frame1:
        return frame1(args, config, pipe, data, alphas)
    results = {}
    for mode, fraction in (("autoregressive", 0.0), ("joint", 1.0)):
        batch = make_batch(data, dataclasses.replace(config, joint_fraction=fraction), alphas, "epsilon",
                           torch.Generator().manual_seed(123))
        ctx = batch["context"]
        errors = {}
        for drop in (False, True):
            with torch.no_grad():
                pred = pipe.denoiser(batch["x_t"], batch["t"], batch["text"], *ctx.as_args(),
                                     drop=torch.full((args.batch,), drop))[0]
            errors[drop] = F.mse_loss(pred, batch["target"], reduction="none").mean(dim=(1, 2, 3))
        results[mode] = {f"t {lo}-{hi}": {"with context": errors[False][m].mean().item(),
                                          "null context": errors[True][m].mean().item()}
                         for lo, hi in BANDS if (m := (batch["t"] >= lo) & (batch["t"] < hi)).any()}
        results[mode]["all"] = {"with context": errors[False].mean().item(),
                                "null context": errors[True].mean().item()}
    print(json.dumps(results, indent=1))
    out = Path(__file__).parent / "results" / "context_use.json"
    out.write_text(json.dumps({"command": f"python benchmarks/context_use.py --adapter {args.adapter} --data "
                                          f"{args.data} --out {args.out} --batch {args.batch}",
                               "results": results}, indent=2))


def frame1(args, config, pipe, data, alphas) -> None:
    config = dataclasses.replace(config, joint_fraction=0.0, start_fraction=1.0, context_noise=0)
    batch = make_batch(data, config, alphas, "epsilon", torch.Generator().manual_seed(123))
    ctx, t = batch["context"], batch["t"]
    abar = alphas[t].view(-1, 1, 1, 1)
    clean = (batch["x_t"] - (1 - abar).sqrt() * batch["target"]) / abar.sqrt()  # the target frame's latent
    oracle = ctx.frames.clone()
    oracle[:, 0] = clean  # slot 0 holds frame 0, the only context frame of frame 1
    real = (ctx.frames, ctx.frames)  # (what the token path sees, what the spatial path sees)
    contexts = {"frame 0": (real, False), "null": (real, True), "oracle (frame 1 itself)": ((oracle, oracle), False),
                "oracle, token path only": ((oracle, ctx.frames), False),
                "oracle, spatial path only": ((ctx.frames, oracle), False)}
    adapter = pipe.denoiser.adapter
    errors = {}
    for name, ((token_frames, spatial_frames), drop) in contexts.items():
        drop = torch.full((args.batch,), drop)
        with torch.no_grad():
            token, spatial = (adapter.encode(f, *ctx.as_args()[1:], batch["text"], drop)
                              for f in (token_frames, spatial_frames))
            pred = pipe.denoiser.predict(batch["x_t"], t, batch["text"], Context(token.kv, spatial.residuals))
        errors[name] = F.mse_loss(pred, batch["target"], reduction="none").mean(dim=(1, 2, 3))
    snr = (abar / (1 - abar)).flatten()
    results = {}
    for lo, hi in BANDS + [(0, 1000)]:
        m = (t >= lo) & (t < hi)
        results[f"t {lo}-{hi}"] = {name: {"eps": e[m].mean().item(), "x0": (e[m] / snr[m]).mean().item()}
                                   for name, e in errors.items()}
    print(json.dumps(results, indent=1))
    out = Path(__file__).parent / "results" / "context_use_frame1.json"
    out.write_text(json.dumps({"command": f"python benchmarks/context_use.py --adapter {args.adapter} --data "
                                          f"{args.data} --out {args.out} --batch {args.batch} --frame1",
                               "results": results}, indent=2))


if __name__ == "__main__":
    cli(main)
