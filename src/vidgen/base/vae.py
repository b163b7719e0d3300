"""Train the demo model's VAE on shapes-world frames: a diffusers `AutoencoderKL` with ×4 downsampling.

The frames are simple (flat colours, sharp edges), so a small autoencoder suffices; what matters is that a round
trip keeps colours and small shapes, which the shapes scorer checks. The latents' spread sets
`scaling_factor` = 1/std, so that the base model sees latents of unit variance (DESIGN.md).

    python -m vidgen.base.vae --out runs/vae --steps 2000      # seeded; resumes from runs/vae/state
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL

from .loop import fit
from ..data.shapes import make_video

CONFIG = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32, 64),
              down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
              layers_per_block=1, norm_num_groups=8, sample_size=64, mid_block_add_attention=False)


OBJECT_WEIGHT = 10.0


def frames(rng: np.random.Generator, n: int, canvas: int = 64) -> torch.Tensor:
    """n random shapes-world frames, (n, 3, canvas, canvas) in [-1, 1]."""
    out = [make_video(int(rng.integers(2 ** 31)), frames=1, canvas=canvas,
                      split="train" if rng.random() < 0.8 else "heldout")[0][0] for _ in range(n)]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 127.5 - 1


def train_vae(out: Path, steps: int = 2000, batch_size: int = 16, lr: float = 1e-3, kl: float = 1e-6,
              seed: int = 0) -> AutoencoderKL:
    torch.manual_seed(seed)
    vae = AutoencoderKL(**CONFIG)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)

    def loss_at(step: int):
        rng = np.random.default_rng([seed, step])
        x = frames(rng, batch_size)
        posterior = vae.encode(x).latent_dist
        z = posterior.sample(generator=torch.Generator().manual_seed(int(rng.integers(2 ** 31))))
        recon = vae.decode(z).sample
        err = (recon - x).abs() + (recon - x) ** 2  # (b, 3, h, w)
        # objects cover a few percent of a frame: weight their pixels so that colour and shape are learnt
        # early instead of after the background (the top-left pixel is background but in rare corner bounces)
        weight = 1 + OBJECT_WEIGHT * ((x - x[:, :, :1, :1]).abs().amax(dim=1, keepdim=True) > 0.02)
        rec = (err * weight).mean() / weight.mean()
        return rec + kl * posterior.kl().mean(), rec.item()

    fit(vae, optimizer, out / "state", steps, loss_at, lambda step: lr * 0.5 * (1 + np.cos(np.pi * step / steps)))
    return vae


@torch.no_grad()
def set_scaling_factor(vae: AutoencoderKL, n: int = 512, seed: int = 1) -> float:
    """scaling_factor = 1 / std of the latent means over n frames; also reports their mean (kept near zero)."""
    vae.eval()
    x = frames(np.random.default_rng(seed), n)
    z = torch.cat([vae.encode(chunk).latent_dist.mode() for chunk in x.split(64)])
    vae.register_to_config(scaling_factor=float(1 / z.std()))
    print(f"latents: mean {z.mean():.3f}, std {z.std():.3f} → scaling_factor {1 / z.std():.4f}")
    return float(1 / z.std())


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the demo model's VAE on shapes-world frames.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    vae = train_vae(args.out, args.steps, args.batch_size, seed=args.seed)
    set_scaling_factor(vae)
    vae.save_pretrained(args.out)


if __name__ == "__main__":
    main()
