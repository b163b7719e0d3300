"""Does the adapter's word binding tell a right two-object first frame from a wrong one?

The base model's cross-attention barely does (`first_frame_attention.py`: peaks near an even spread, right above
wrong in 63% of pairs). The shipped adapter has a second, trained reading of which words a frame draws where: its
word field binds each place of the latest context frame to the caption's words by appearance alone
(`fields.WordField`, `word_binding: appearance`), a softmax per place over the words and a "still" key. A frame
that draws one object twice leaves the other object's words with no place that takes them. For two-object train
captions the shipped pipeline draws K first frames each (the shipped defaults), judged by the shapes scorer as
in `first_frame.py`; each is bound to its caption, and scored by how strongly the words find a place:

- per object, the peak over places of the weight on its colour word (and on its shape word); the weaker
  object's counts (min over the two), as in `first_frame_attention.py`;
- with no caption grammar at all: the sum over the caption's words of each word's peak weight ("coverage").

Reported negated (lower preferred, as the shipped pick's denoising error beside it): how often each ranks a right
candidate below a wrong one of the same caption, and how often the lowest of 2 and of K is right.

    python benchmarks/first_frame_binding.py --num-prompts 48 --candidates 4
    # writes benchmarks/results/first_frame_binding.json

Run it with nothing else running.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import cli, machine, write_results  # noqa: E402
from first_frame_attention import judged_candidates, word_positions  # noqa: E402
from first_frame_contrast import pick_scores, rank_right_below_wrong  # noqa: E402
from first_frame_pick import candidate_args  # noqa: E402
from vidgen.pipeline import VideoPipeline  # noqa: E402


STRONG_FIRST = 1e3  # a lexicographic key: the count of strongly bound words first, the error (≪ 1e3) second


def strong_count(strong: float) -> int:
    """The number of words some place takes outright, from the sum of their fourth-power peaks: a word half
    taken adds 1/16, so a frame that binds two words fully and a third weakly still counts 2."""
    return int(np.floor(strong + 0.1))


def binding(pipe: VideoPipeline, latents: torch.Tensor, caption: str) -> dict[str, np.ndarray]:
    """Per candidate (K,): the weaker object's peak binding on its colour and shape word, and the words' coverage."""
    peak = pipe.bind(latents, pipe.encode_prompt(caption)).flatten(2).amax(2).numpy()  # K, L + 1
    colour_at, shape_at = word_positions(caption)
    words = caption.split()
    verb_at = [i + 1 for i, w in enumerate(words) if w in ("moving", "standing")]  # one per object's clause
    return {"colour": peak[:, colour_at].min(1), "shape": peak[:, shape_at].min(1),
            "colour and shape": (peak[:, colour_at] + peak[:, shape_at]).min(1),
            "verb": peak[:, verb_at].min(1),
            "coverage": peak[:, 1:len(words) + 1].sum(1),
            "strong words": (peak[:, 1:len(words) + 1] ** 4).sum(1)}


def main() -> None:
    args = candidate_args(__doc__.splitlines()[0], "first_frame_binding", 48)
    pipe = VideoPipeline.from_pretrained()
    chosen = judged_candidates(pipe, args, lambda latents, caption, i: binding(pipe, latents, caption),
                               ("verb", "strong words"))
    scores = {"the shipped pick's error": lambda c: c["pick"],
              **{f"minus the weaker object's binding on its {word} word": (lambda c, w=word: c[w])
                 for word in ("colour", "shape", "colour and shape", "verb")},
              "minus the caption words' coverage": lambda c: c["coverage"],
              "minus the caption words' strong bindings": lambda c: c["strong words"],
              "most strongly bound words, then the error": lambda c: STRONG_FIRST * -strong_count(-c["strong words"])
              + c["pick"],
              "both objects' verbs bound (≥ 0.95), then the error": lambda c: STRONG_FIRST * (c["verb"] > -0.95)
              + c["pick"]}
    results = {"captions": len(chosen),
               "candidates_right": round(float(np.mean([c["right"] for g in chosen for c in g])), 3),
               "right_wrong_pairs": rank_right_below_wrong(chosen, scores["the shipped pick's error"])[1],
               "scores": pick_scores(chosen, scores, args.candidates),
               "candidates": [[{k: round(v, 4) for k, v in c.items()} for c in g] for g in chosen]}
    print(results)
    write_results(args.name, {"machine": machine(), "results": results})


if __name__ == "__main__":
    cli(main)
