"""Does the base model's own denoising error pick a first frame whose objects are right? For train-split
captions, the shipped pipeline draws K first frames per caption (`VideoPipeline.first_frame_candidates`, the
draws `--first-frame-candidates K` makes), and each is judged by the shapes scorer (each caption colour once and
nothing else, as in `first_frame.py`). Reported: how often a random candidate is right (K = 1), how often the
one of lowest denoising error is, for every subset of k ≤ K candidates, and, for comparison, the pick by how
much the caption lowers the error (the caption-free error minus the caption's: a diffusion classifier's score).

    python benchmarks/first_frame_pick.py --num-prompts 96 --candidates 4
    # writes benchmarks/results/first_frame_pick.json

Run it with nothing else running.
"""

from __future__ import annotations

import argparse
import itertools
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import cli, machine, write_results  # noqa: E402
from first_frame import gaps, mistakes, objects_right  # noqa: E402
from vidgen.data.shapes import parse_caption, sample_scene  # noqa: E402
from vidgen.errors import check  # noqa: E402
from vidgen.eval.scorer import score_video  # noqa: E402
from vidgen.pipeline import VideoPipeline  # noqa: E402
from vidgen.sampling import first_within  # noqa: E402


def lowest(key: str):
    return lambda group: min(group, key=lambda c: c[key])


def within(margin: float):
    """The candidate `first_frame_margin` = margin keeps (`sampling.first_within`)."""
    return lambda group: group[first_within(torch.tensor([c["error"] for c in group]), margin)]


def picks(groups: list[list[dict]], rule, k: int | None = None) -> list[dict]:
    """The candidate `rule` picks from every k-subset (in draw order) of each caption's candidates."""
    return [rule(list(sub)) for group in groups for sub in itertools.combinations(group, k or len(group))]


def summary(chosen: list[dict]) -> dict:
    mean = lambda key: round(float(np.mean([c[key] for c in chosen])), 3)  # noqa: E731
    return {"right": mean("right"), "with_a_copy": mean("copy"), "missing_an_object": mean("missing"),
            "room_ahead_px": mean("room_ahead")}


def room_ahead(image: np.ndarray, caption: str) -> float:
    """The least room (px) any moving caption object found has before the wall it moves towards (the canvas
    size when none): how soon the video has its first bounce."""
    return min([float(image.shape[0])] + [a for _, a in gaps(image[None], caption) if a is not None])


def candidate_args(description: str, name: str, prompts: int, extra=lambda parser: None) -> argparse.Namespace:
    """The command line of a benchmark over first-frame candidates: --num-prompts, --candidates (K ≥ 2), --name,
    and what `extra(parser)` adds."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--num-prompts", type=int, default=prompts)
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--name", default=name)
    extra(parser)
    args = parser.parse_args()
    check(args.num_prompts >= 1, "--num-prompts", args.num_prompts, "an integer ≥ 1")
    check(args.candidates >= 2, "--candidates", args.candidates, "an integer ≥ 2")
    torch.set_num_threads(os.cpu_count() or 1)
    return args


def main() -> None:
    args = candidate_args(__doc__.splitlines()[0], "first_frame_pick", 96, lambda parser: parser.add_argument(
        "--margins", type=lambda v: [float(m) for m in v.split(",")], default=[0.1, 0.2, 0.3],
        help="relative margins of the 'first within' rules, comma-separated"))
    pipe = VideoPipeline.from_pretrained()
    rng = np.random.default_rng(11)
    captions = [sample_scene(rng, "train").caption() for _ in range(args.num_prompts)]
    null = pipe.encode_prompt("")
    groups = []
    for i, caption in enumerate(captions):
        frames, error = pipe.first_frame_candidates(caption, generator=torch.Generator().manual_seed(i),
                                                    first_frame_candidates=args.candidates)
        latents = pipe.encode_frames(frames)  # the scorer's frames, encoded again: what the base model sees
        free, given = (pipe.base_denoising_error(latents, text, torch.Generator().manual_seed(i))
                       for text in (null, pipe.encode_prompt(caption)))
        group = []
        for j, image in enumerate(frames):
            copies, missing = mistakes(image[None], caption)
            group.append({"right": objects_right(score_video(image[None], caption), copies, missing),
                          "copy": copies > 0, "missing": missing > 0, "error": float(error[j]),
                          "caption_gain": float(given[j] - free[j]), "room_ahead": room_ahead(image, caption)})
        groups.append(group)
    rules = {"random (the first drawn)": lambda group: group[0], "lowest error": lowest("error"),
             **{f"first within {m:.0%} of the lowest error": within(m) for m in args.margins},
             "largest caption gain": lowest("caption_gain")}
    results = {}
    for n in (1, 2, None):
        chosen = [g for g, c in zip(groups, captions) if n is None or len(parse_caption(c).objects) == n]
        label = "all" if n is None else f"{n} object" + "s" * (n > 1)
        if chosen:
            results[label] = {"captions": len(chosen), **{name: summary(picks(chosen, rule))
                                                          for name, rule in rules.items()},
                              "lowest error of k": {k: summary(picks(chosen, lowest("error"), k))["right"]
                                                    for k in range(1, args.candidates + 1)}}
            print(label, results[label], flush=True)
    write_results(args.name, {"machine": machine(), "results": results})


if __name__ == "__main__":
    cli(main)
