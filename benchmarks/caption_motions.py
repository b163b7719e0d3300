"""The displacements an adapter reads off a caption (its spatial path's `text_flow`), in image px per frame, for a
few captions whose true motions are known: what a `--flow-motions M` adapter learnt to put in its M motions (per
object, or v and −v), and how far a free-field adapter's one caption displacement falls short of the caption.

    python benchmarks/caption_motions.py models/shapes-adapter runs/adapter-motions2/adapter
    # writes benchmarks/results/caption_motions.json
"""

from __future__ import annotations

import argparse

import torch
from common import cli, write_results

from vidgen.adapter import split_text
from vidgen.data.shapes import parse_caption
from vidgen.errors import check
from vidgen.pipeline import VideoPipeline

CAPTIONS = ["a small red circle moving down slowly on a white background",
            "a large green square moving right quickly on a black background",
            "a small blue triangle moving up quickly and a small yellow triangle moving up slowly on a white background",
            "a large red square moving left slowly and a small green circle moving right quickly on a black background",
            "a large blue circle standing still and a small red triangle moving down slowly on a white background"]


@torch.no_grad()
def read(adapter: str) -> list[dict]:
    pipe = VideoPipeline.from_pretrained(adapter=adapter)
    spatial = getattr(pipe.denoiser.adapter, "spatial", None)
    check(spatial is not None and spatial.text_flow is not None, "adapter", adapter,
          "an adapter with spatial_flow and spatial_text (a caption displacement to read)")
    canvas = pipe.native_size
    rows = []
    for caption in CAPTIONS:
        _, words = split_text(pipe.encode_prompt(caption), pipe.denoiser.unet.config.cross_attention_dim)
        # warp samples at p + flow: a displacement d moves content by −d latent px
        read_off = -spatial.text_flow(spatial.pool_text(words)).reshape(-1, 2) * pipe.vae_scale_factor
        rows.append({"caption": caption,
                     "true": [[round(float(x), 2) for x in o.velocity(canvas)] for o in parse_caption(caption).objects],
                     "read": [[round(float(x), 2) for x in v] for v in read_off]})
        print(f"{adapter}: {caption}\n  true {rows[-1]['true']}  read {rows[-1]['read']}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("adapters", nargs="+")
    args = parser.parse_args()
    write_results("caption_motions", {"results": {adapter: read(adapter) for adapter in args.adapters}})


if __name__ == "__main__":
    cli(main)
