"""One UNet call of the shipped demo base as `vidgen generate` makes it (batch 2 for text guidance, a 4×16×16
latent, 32 text tokens), timed in fp32, in `channels_last` memory format, and under bf16 autocast, side by side
in one process: is there a cheap speed-up for generation on this CPU?

    python benchmarks/unet_call.py        # writes benchmarks/results/unet_call.json
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from diffusers import UNet2DConditionModel  # noqa: E402

from common import cli, machine, write_results  # noqa: E402

UNET = Path(__file__).resolve().parents[1] / "models" / "shapes-base" / "unet"


def per_call_ms(unet, x, t, text, calls: int, autocast: bool = False) -> float:
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        for _ in range(5):  # warm-up
            unet(x, t, text)
        start = time.perf_counter()
        for _ in range(calls):
            unet(x, t, text)
    return (time.perf_counter() - start) / calls * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3, help="variants interleaved, this many times")
    args = parser.parse_args()
    unet = UNet2DConditionModel.from_pretrained(UNET).float().eval()
    x, t = torch.randn(2, 4, 16, 16), torch.tensor([500, 500])
    text = torch.randn(2, 32, unet.config.cross_attention_dim)
    times = {"fp32": [], "channels_last": [], "bf16 autocast": []}
    for _ in range(args.rounds):
        times["fp32"].append(per_call_ms(unet, x, t, text, args.calls))
        unet.to(memory_format=torch.channels_last)
        times["channels_last"].append(per_call_ms(unet, x.to(memory_format=torch.channels_last), t, text,
                                                  args.calls))
        unet.to(memory_format=torch.contiguous_format)
        times["bf16 autocast"].append(per_call_ms(unet, x, t, text, args.calls, autocast=True))
    best = {k: min(v) for k, v in times.items()}
    write_results("unet_call", {"machine": machine(), "ms_per_call": times, "best_ms": best,
                                "ratio_to_fp32": {k: round(v / best["fp32"], 3) for k, v in best.items()}})
    for k, v in best.items():
        print(f"{k}: {v:.1f} ms per call (best of {args.rounds}), {v / best['fp32']:.2f}× fp32")


if __name__ == "__main__":
    cli(main)
