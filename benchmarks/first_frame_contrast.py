"""Does the base model's error tell a two-object first frame whose colours leaked (both objects drawn in one
caption colour) from a right one, when the caption is contrasted with the captions that describe the leak?

For two-object train captions 'A and B', the shipped pipeline draws K first frames each
(`VideoPipeline.first_frame_candidates`). Each is judged by the shapes scorer (right: each caption colour once
and nothing else; a copy: a colour twice; missing: a colour absent, as in `first_frame.py`) and denoised by the
base model alone (`base_denoising_error`, two noises per level) under the caption and under four others: A's
colour on both objects, B's colour on both (the leak; two objects of one colour are outside the training
grammar), A alone and B alone. Reported: for each score, how often it ranks a right candidate below a wrong one
of the same caption, how often the candidate of lowest score is right (of 2, over every pair, and of K), and per
kind of mistake how often the caption that describes the leak beats the true caption.

    python benchmarks/first_frame_contrast.py --num-prompts 60 --candidates 4
    # writes benchmarks/results/first_frame_contrast.json

Run it with nothing else running.
"""

from __future__ import annotations

import dataclasses
import itertools
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import cli, machine, write_results  # noqa: E402
from first_frame import mistakes, objects_right  # noqa: E402
from first_frame_pick import candidate_args  # noqa: E402
from vidgen.data.shapes import sample_scene  # noqa: E402
from vidgen.eval.scorer import score_video  # noqa: E402
from vidgen.pipeline import VideoPipeline  # noqa: E402

# score of a candidate from its errors under each caption: lower, the more the base model finds it the caption's
SCORES = {
    "pick error (the shipped pick's, one noise per level)": lambda e: e["pick"],
    "error under the caption (two noises per level)": lambda e: e["caption"],
    "caption minus the likelier leak": lambda e: e["caption"] - min(e["a_on_both"], e["b_on_both"]),
    "caption over the likelier leak": lambda e: e["caption"] / min(e["a_on_both"], e["b_on_both"]),
    "caption minus the likelier one-object caption": lambda e: e["caption"] - min(e["a_alone"], e["b_alone"]),
}


def contrasts(scene) -> dict[str, str]:
    a, b = scene.objects
    with_objects = lambda *objects: dataclasses.replace(scene, objects=objects).caption()  # noqa: E731
    return {"caption": scene.caption(), "a_on_both": with_objects(a, dataclasses.replace(b, colour=a.colour)),
            "b_on_both": with_objects(dataclasses.replace(a, colour=b.colour), b),
            "a_alone": with_objects(a), "b_alone": with_objects(b)}


def rank_right_below_wrong(groups: list[list[dict]], score) -> tuple[float | None, int]:
    pairs = [(score(r), score(w)) for g in groups for r, w in itertools.product(g, g) if r["right"] and not w["right"]]
    return (round(float(np.mean([r < w for r, w in pairs])), 3) if pairs else None), len(pairs)


def lowest_right(groups: list[list[dict]], score, k: int) -> float:
    return round(float(np.mean([min(sub, key=score)["right"] for g in groups
                                for sub in itertools.combinations(g, k)])), 3)


def pick_scores(groups: list[list[dict]], scores: dict, k: int) -> dict:
    """Per score (a candidate → a number, lower preferred): how often it ranks a right candidate below a wrong one
    of the same caption, and how often the lowest of 2 and of `k` candidates is right."""
    return {name: {"ranks_right_below_wrong": rank_right_below_wrong(groups, score)[0],
                   "lowest_of_2_right": lowest_right(groups, score, 2),
                   f"lowest_of_{k}_right": lowest_right(groups, score, k)} for name, score in scores.items()}


def two_object_scenes(n: int) -> list:
    """The first n two-object train-split scenes of a fixed draw."""
    rng, scenes = np.random.default_rng(11), []
    while len(scenes) < n:
        scene = sample_scene(rng, "train")
        scenes += [scene] if len(scene.objects) == 2 else []
    return scenes


def main() -> None:
    args = candidate_args(__doc__.splitlines()[0], "first_frame_contrast", 60)
    pipe = VideoPipeline.from_pretrained()
    scenes = two_object_scenes(args.num_prompts)
    groups = []
    for i, scene in enumerate(scenes):
        captions = contrasts(scene)
        frames, pick = pipe.first_frame_candidates(captions["caption"], generator=torch.Generator().manual_seed(i),
                                                   first_frame_candidates=args.candidates)
        latents = pipe.encode_frames(frames)  # the scorer's frames, encoded again: what the base model sees
        errors = {name: sum(pipe.base_denoising_error(latents, pipe.encode_prompt(text),
                                                      torch.Generator().manual_seed(1000 * i + rep))
                            for rep in range(2)) / 2 for name, text in captions.items()}
        group = []
        for j, image in enumerate(frames):
            copies, missing = mistakes(image[None], captions["caption"])
            group.append({"right": objects_right(score_video(image[None], captions["caption"]), copies, missing),
                          "copy": copies > 0, "missing": missing > 0, "pick": float(pick[j]),
                          **{name: float(e[j]) for name, e in errors.items()}})
        groups.append(group)
        print(i, [c["right"] for c in group], flush=True)
    every = [c for g in groups for c in g]
    kinds = {"a colour twice, the other missing (leak)": lambda c: c["copy"] and c["missing"],
             "a colour twice, nothing missing (an extra object)": lambda c: c["copy"] and not c["missing"],
             "a colour missing, no copy": lambda c: c["missing"] and not c["copy"], "right": lambda c: c["right"]}
    results = {
        "captions": len(groups), "candidates": len(every), "right": round(float(np.mean([c["right"] for c in every])), 3),
        "scores": pick_scores(groups, SCORES, args.candidates),
        "right_wrong_pairs": rank_right_below_wrong(groups, SCORES["error under the caption (two noises per level)"])[1],
        "leak_caption_likelier_than_the_caption": {
            kind: {"candidates": len(chosen := [c for c in every if test(c)]),
                   "share": round(float(np.mean([min(c["a_on_both"], c["b_on_both"]) < c["caption"]
                                                 for c in chosen])), 3) if chosen else None}
            for kind, test in kinds.items()},
    }
    print(results)
    write_results(args.name, {"machine": machine(), "results": results})


if __name__ == "__main__":
    cli(main)
