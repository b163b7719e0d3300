"""A small video classifier trained on the shapes world, whose features give a Fréchet distance between
generated and real shapes videos (the video analogue of FID, on features that know this world).

It predicts, from frames resized to 32×32, the background, which colours and shapes are present, and which motions
(left, right, up, down, still; slow, quick) occur. Its penultimate layer (128 numbers) is the feature.

Train the shipped weights (seeded; about 20 minutes on 2 CPU cores):

    python -m vidgen.eval.classifier --out src/vidgen/eval/weights/shapes-classifier
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from einops import rearrange
from torch import nn

from ..data.shapes import BACKGROUNDS, COLOURS, DIRECTIONS, SHAPES, SPEEDS, Scene, make_video

SHIPPED = Path(__file__).parent / "weights" / "shapes-classifier"
MOTIONS = (*DIRECTIONS, "still")
LABELS = (*COLOURS, *SHAPES, *MOTIONS, *SPEEDS)  # multi-label (present or not); the background is one of three


def labels(scene: Scene) -> tuple[int, np.ndarray]:
    """(background index, multi-hot vector over LABELS)."""
    present = set()
    for o in scene.objects:
        present |= {o.colour, o.shape, o.direction or "still"} | ({o.speed} if o.speed else set())
    return list(BACKGROUNDS).index(scene.background), np.array([x in present for x in LABELS], np.float32)


class ShapesClassifier(ModelMixin, ConfigMixin):
    """(b, f, 3, 64, 64) videos in [0, 1] → features (b, feature_dim) and logits."""

    @register_to_config
    def __init__(self, width: int = 16, feature_dim: int = 128, canvas: int = 32):
        super().__init__()

        def block(conv, channels):
            return [conv, nn.GroupNorm(8, channels), nn.SiLU()]

        self.frame = nn.Sequential(  # per frame, resized to `canvas` (32): 32 → 16
            *block(nn.Conv2d(3, width, 3, padding=1), width),
            *block(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), 2 * width))
        self.time = nn.Sequential(  # across frames and space: (f, 16, 16) → (f, 8, 8)
            *block(nn.Conv3d(2 * width, 2 * width, 3, padding=1), 2 * width),
            *block(nn.Conv3d(2 * width, 4 * width, 3, stride=(1, 2, 2), padding=1), 4 * width))
        self.features = nn.Linear(8 * width, feature_dim)
        self.background = nn.Linear(feature_dim, len(BACKGROUNDS))
        self.attributes = nn.Linear(feature_dim, len(LABELS))

    def embed(self, video: torch.Tensor) -> torch.Tensor:
        b, f = video.shape[:2]
        x = rearrange(video, "b f c h w -> (b f) c h w")
        if x.shape[-1] != self.config.canvas:
            x = F.interpolate(x, size=(self.config.canvas, self.config.canvas), mode="bilinear", antialias=True)
        x = rearrange(self.frame(x * 2 - 1), "(b f) c h w -> b c f h w", b=b)
        x = self.time(x).flatten(2)  # b c (f h w): any number of frames
        return self.features(torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1))  # what is there, and where

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feats = self.embed(video)
        h = F.silu(feats)
        return feats, self.background(h), self.attributes(h)


def to_tensor(videos: list[np.ndarray] | np.ndarray) -> torch.Tensor:
    """uint8 (b, f, h, w, 3) → float (b, f, 3, h, w) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(np.stack(videos))).permute(0, 1, 4, 2, 3).float() / 255


def make_pool(rng: np.random.Generator, size: int, frames: int = 16, canvas: int = 64, to: int = 32):
    """`size` labelled shapes videos (80% train split, 20% held-out), resized to `to` px as the model sees them."""
    videos, bgs, multi = [], [], []
    for _ in range(size):
        video, scene, _ = make_video(int(rng.integers(2 ** 31)), frames, canvas,
                                     split="train" if rng.random() < 0.8 else "heldout")
        x = to_tensor([video])[0]
        videos.append(F.interpolate(x, size=(to, to), mode="bilinear", antialias=True))
        bg, hot = labels(scene)
        bgs.append(bg)
        multi.append(hot)
    return torch.stack(videos), torch.tensor(bgs), torch.from_numpy(np.stack(multi))


def train_classifier(out: Path, steps: int = 2500, batch_size: int = 32, pool: int = 4000, seed: int = 0) -> dict:
    """Train on a pool of rendered videos (random frame order is not used: motion is part of the labels)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    start = time.time()
    videos, bgs, multi = make_pool(rng, pool)
    model = ShapesClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for step in range(steps):
        idx = torch.from_numpy(rng.integers(pool, size=batch_size))
        flip = rng.random() < 0.5  # a horizontal flip swaps left and right
        x, hot = videos[idx], multi[idx].clone()
        if flip:
            x = x.flip(-1)
            left, right = LABELS.index("left"), LABELS.index("right")
            hot[:, [left, right]] = hot[:, [right, left]]
        _, bg_logits, logits = model(x)
        loss = F.cross_entropy(bg_logits, bgs[idx]) + F.binary_cross_entropy_with_logits(logits, hot)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"step {step} loss {loss.item():.4f} ({time.time() - start:.0f} s)", flush=True)
    model.eval()
    with torch.no_grad():
        videos, bgs, multi = make_pool(np.random.default_rng(seed + 1), 256)
        _, bg_logits, logits = model(videos)
    accuracy = {"background": float((bg_logits.argmax(1) == bgs).float().mean()),
                "labels": float(((logits > 0).float() == multi).float().mean()),
                "train_seconds": round(time.time() - start), "steps": steps, "pool": pool}
    model.save_pretrained(out)
    return accuracy


def load_classifier(path: str | Path = SHIPPED) -> ShapesClassifier:
    return ShapesClassifier.from_pretrained(path).eval()


@torch.no_grad()
def features(model: ShapesClassifier, videos: list[np.ndarray], batch_size: int = 16) -> np.ndarray:
    """(n, feature_dim) features of uint8 videos (f, h, w, 3)."""
    out = [model.embed(to_tensor(videos[i:i + batch_size])) for i in range(0, len(videos), batch_size)]
    return torch.cat(out).double().numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """‖μa − μb‖² + Tr(Σa + Σb − 2 (Σa^½ Σb Σa^½)^½) between Gaussians fitted to two feature sets."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)

    def sqrtm(m):
        w, v = np.linalg.eigh((m + m.T) / 2)
        return (v * np.sqrt(np.clip(w, 0, None))) @ v.T

    root = sqrtm(cov_a)
    cross = sqrtm(root @ cov_b @ root)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * cross))


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the shapes-world video classifier used for the FD.")
    parser.add_argument("--out", type=Path, default=SHIPPED)
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--pool", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(train_classifier(args.out, args.steps, args.batch_size, args.pool, args.seed))


if __name__ == "__main__":
    main()
