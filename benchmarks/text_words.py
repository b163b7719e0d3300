"""How strongly the base's text encoder tells each kind of caption word apart: swap one word of a caption for
another of its kind (colour, shape, size, background, direction, speed) and measure the change of the encoder's
output, relative to the output's size — at the swapped word's own position and in the mean over all tokens
(what a mean-pooled text feature sees). The adapter reads these outputs: a kind the encoder barely separates is
one the adapter must learn to amplify. With `--adapter` (adapters trained with `--spatial-text`): the same
swaps' relative change of what the adapter's spatial path makes of the caption (its text modulation, the
FiLM scale and shift), which shows whether the adapter learned to read a kind of word.

    python benchmarks/text_words.py --model models/shapes-base [--adapter DIR ...] [--name text_words]
    # writes benchmarks/results/NAME.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import cli, machine  # noqa: E402
from vidgen.data.shapes import BACKGROUNDS, COLOURS, DIRECTIONS, SHAPES, SIZES, SPEEDS, sample_scene  # noqa: E402
from vidgen.adapter import split_text  # noqa: E402
from vidgen.pipeline import VideoPipeline  # noqa: E402
from vidgen.shipped import BASE  # noqa: E402

KINDS = {"colour": list(COLOURS), "shape": list(SHAPES), "size": list(SIZES), "background": list(BACKGROUNDS),
         "direction": list(DIRECTIONS), "speed": list(SPEEDS)}


def swaps(caption: str, words: list[str]) -> list[tuple[str, int]]:
    """Each caption that differs from `caption` in its first word of this kind, with that word's index."""
    tokens = caption.split()
    at = next((i for i, w in enumerate(tokens) if w in words), None)
    if at is None:
        return []
    return [(" ".join(tokens[:at] + [w] + tokens[at + 1:]), at) for w in words if w != tokens[at]]


def modulation(pipe: VideoPipeline):
    """caption → the FiLM (scale, shift) vector the adapter's spatial path derives from it."""
    adapter = pipe.denoiser.adapter
    spatial = adapter.spatial

    def film(caption: str) -> torch.Tensor:
        text, words = split_text(pipe.encode_prompt(caption), adapter.config.cross_attention_dim)
        with torch.no_grad():
            return spatial.text_film(spatial.pool_text(words if adapter.config.spatial_text_words else text))[0]
    return film


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(BASE))
    parser.add_argument("--captions", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--adapter", nargs="*", default=[], help="adapters with --spatial-text to measure too")
    parser.add_argument("--name", default="text_words")
    args = parser.parse_args()
    pipe = VideoPipeline.from_pretrained(args.model)  # the base's encoder; the (untrained) adapter is not used
    rng = np.random.default_rng(args.seed)
    captions = [sample_scene(rng, "train").caption() for _ in range(args.captions)]
    base = torch.cat([pipe.encode_prompt(c) for c in captions]).float()
    results = {}
    for kind, words in KINDS.items():
        at_word, mean = [], []
        for c, caption in enumerate(captions):
            for other, at in swaps(caption, words):
                out = pipe.encode_prompt(other)[0].float()
                position = at + 1  # the start token comes first; one token per word
                at_word.append(float((out[position] - base[c, position]).norm() / base[c, position].norm()))
                mean.append(float((out.mean(0) - base[c].mean(0)).norm() / base[c].mean(0).norm()))
        results[kind] = {"swaps": len(at_word), "at_word": float(np.median(at_word)), "mean": float(np.median(mean))}
        print(f"{kind:>10}: {len(at_word):4d} swaps, relative change at the word {results[kind]['at_word']:.3f}, "
              f"of the mean token {results[kind]['mean']:.3f} (medians)", flush=True)
    adapters = {}
    for folder in args.adapter:
        film = modulation(VideoPipeline.from_pretrained(args.model, adapter=folder))
        base_film = [film(c) for c in captions]
        adapters[folder] = {}
        for kind, words in KINDS.items():
            change = [float((film(other) - base_film[c]).norm() / base_film[c].norm())
                      for c, caption in enumerate(captions) for other, _ in swaps(caption, words)]
            adapters[folder][kind] = float(np.median(change))
        print(f"{folder}: relative change of the spatial path's text modulation (medians): "
              f"{ {k: round(v, 3) for k, v in adapters[folder].items()} }", flush=True)
    out = Path(__file__).resolve().parent / "results" / f"{args.name}.json"
    out.write_text(json.dumps({"machine": machine(), "command": "python benchmarks/text_words.py " + " ".join(
        sys.argv[1:]), "results": results} | ({"adapters": adapters} if adapters else {}), indent=2))


if __name__ == "__main__":
    cli(main)
