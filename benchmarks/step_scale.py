"""How long is an adapter's carried step? For single-object moving videos, each frame i ≥ 2 before the object's first
bounce whose true shift tells a direction (`bounce_reading.wall_frames`), given its real context: the adapter's
displacement field (the word field as the free field signs it) scaled by each of SCALES carries real frame i−1 onto
frame i, in latent space through the bicubic warp (the displacement loss) and in image space through the bilinear
warp of the field scaled up to pixels (the sampler's carry, `carry_space image`). Per speed, the summed squared
error of each scale over that of the best: the best scale is 1 when the field carries the object exactly as far as
it moved, above 1 when it falls short.

    python benchmarks/step_scale.py --adapter models/shapes-adapter --data runs/shapes-val --videos 60
    # writes benchmarks/results/step_scale.json (--name NAME: NAME.json)
"""

from __future__ import annotations

import os

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bounce_reading import adapters_main, wall_frames  # noqa: E402
from common import cli  # noqa: E402
from vidgen.fields import carry_error, warp  # noqa: E402

SCALES = (0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.2)


def measure(pipe, folder, num_videos: int) -> dict:
    totals = {}  # speed → (2, len(SCALES)): latent, image
    frames = {}
    for f in wall_frames(pipe, folder, num_videos):
        if f["where"] != "before any bounce":
            continue
        i, latents, field = f["i"], f["latents"], f["context"].flow
        images = torch.from_numpy(f["video"][i - 1:i + 1]).permute(0, 3, 1, 2).to(latents.dtype) / 127.5 - 1
        total = totals.setdefault(f["speed"], np.zeros((2, len(SCALES))))
        with torch.no_grad():
            for j, s in enumerate(SCALES):
                total[0, j] += carry_error(latents[i - 1:i], s * field, latents[i:i + 1], "bicubic").sum().item()
                moved = warp(images[:1], pipe.image_flow(s * field), "bilinear")
                total[1, j] += (moved - images[1:]).square().sum().item()
        frames[f["speed"]] = frames.get(f["speed"], 0) + 1
    return {f"{speed}, {space}": {"frames": frames.get(speed, 0), "best_scale": SCALES[int(row.argmin())],
                                  "error_over_best": {str(s): round(float(v / row.min()), 3)
                                                      for s, v in zip(SCALES, row)}}
            for speed, total in sorted(totals.items()) for space, row in zip(("latent", "image"), total)}


def main() -> None:
    adapters_main(__doc__.splitlines()[0], "step_scale", measure)


if __name__ == "__main__":
    cli(main)
