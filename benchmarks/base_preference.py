"""What did training a base on preference pairs change? For each base (an SD folder), on fresh held-out data:
its ordinary denoising loss (512 frames of `text2image.encode_dataset`, one level and noise each, one- and
two-object scenes apart), and, on 256 preference pairs (`vidgen.base.preference`: a right frame against it drawn
with one of the base's mistakes), per band of noise levels its error on the winners and on the losers, and how
often it prefers the winner more than the first base does (the Diffusion-DPO sense of "ahead"), and how often
that first base (the reference) itself finds the winner likelier.

    python benchmarks/base_preference.py --bases models/shapes-base,runs/base-dpo-ema500
    # writes benchmarks/results/base_preference.json

Run it with nothing else running.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from diffusers import AutoencoderKL, DDIMScheduler  # noqa: E402

from common import cli, machine, write_results  # noqa: E402
from vidgen.base.text2image import (MAX_TOKENS, SCHEDULER, encode_dataset, encode_preferences,  # noqa: E402
                                    load_model, sd_folder)
from vidgen.base.preference import errors as denoising_errors  # noqa: E402
from vidgen.data.shapes import VOCABULARY  # noqa: E402
from vidgen.tiny import build_clip_tokenizer  # noqa: E402

BANDS = ((0, 250), (250, 500), (500, 750), (750, 1000))


@torch.no_grad()
def errors(model, x0: torch.Tensor, ids: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, abar) -> torch.Tensor:
    """`preference.errors`, 128 samples at a time."""
    return torch.cat([denoising_errors(model, x0[i:i + 128], t[i:i + 128], noise[i:i + 128], abar, ids[i:i + 128])
                      for i in range(0, len(x0), 128)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bases", required=True, help="comma-separated SD folders; the first is the reference")
    parser.add_argument("--name", default="base_preference")
    args = parser.parse_args()
    bases = [sd_folder(b) for b in args.bases.split(",")]
    torch.set_num_threads(os.cpu_count() or 1)
    tokenizer = build_clip_tokenizer(VOCABULARY, MAX_TOKENS)
    vae = AutoencoderKL.from_pretrained(bases[0] / "vae").eval()
    latents, ids, pairs = encode_dataset(vae, tokenizer, 512, 12345)  # seeds no training run used
    winners, losers, pair_ids = encode_preferences(vae, tokenizer, 256, 12345)
    abar = DDIMScheduler(**SCHEDULER).alphas_cumprod
    g = torch.Generator().manual_seed(0)
    t, noise = torch.randint(1000, (512,), generator=g), torch.randn(latents.shape, generator=g)
    draws = [(lo, hi, torch.randint(lo, hi, (256,), generator=g), torch.randn(winners.shape, generator=g))
             for lo, hi in BANDS]
    reference = load_model(bases[0], tokenizer).eval()
    ref_pairs = {lo: (errors(reference, winners, pair_ids, tb, nb, abar), errors(reference, losers, pair_ids, tb, nb,
                                                                                abar)) for lo, _, tb, nb in draws}
    results = {}
    for folder in bases:
        model = load_model(folder, tokenizer).eval()
        err = errors(model, latents, ids, t, noise, abar)
        row = {"ordinary_loss": round(err.mean().item(), 5), "one_object": round(err[~pairs].mean().item(), 5),
               "two_objects": round(err[pairs].mean().item(), 5), "pairs": {}}
        for lo, hi, tb, nb in draws:
            w, l = errors(model, winners, pair_ids, tb, nb, abar), errors(model, losers, pair_ids, tb, nb, abar)
            rw, rl = ref_pairs[lo]
            row["pairs"][f"t {lo}-{hi - 1}"] = {
                "winner_error": round(w.mean().item(), 5), "loser_error": round(l.mean().item(), 5),
                "ahead_of_reference": round(((w - rw) < (l - rl)).float().mean().item(), 3),
                "prefers_winner": round((w < l).float().mean().item(), 3)}
        results[str(folder)] = row
        print(folder, row, flush=True)
    write_results(args.name, {"machine": machine(), "results": results})


if __name__ == "__main__":
    cli(main)
