"""At which noise levels does the base model's denoising error tell a right first frame from a wrong one?

The shipped pick keeps frame 0's first candidate unless the base model's error of it, averaged over ten levels
t = 50, 150, …, 950 with one noise each (`sampling.ERROR_LEVELS`), is clearly above another's. For train-split
captions the shipped pipeline draws K first frames each (`VideoPipeline.first_frame_candidates`), judged by the
shapes scorer (each caption colour once and nothing else, as in `first_frame.py`); each is denoised by the base
model alone at every level with `--noises` noises. Reported per band of levels (the error averaged over the band's
levels): how often it ranks a right candidate below a wrong one of the same caption, and how often the candidate
of lowest error is right (of 2, over every pair, and of K), for one- and two-object captions.

    python benchmarks/first_frame_levels.py --num-prompts 96 --candidates 4
    # writes benchmarks/results/first_frame_levels.json

Run it with nothing else running.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import cli, machine, write_results  # noqa: E402
from first_frame import mistakes, objects_right  # noqa: E402
from first_frame_contrast import pick_scores, rank_right_below_wrong  # noqa: E402
from first_frame_pick import candidate_args  # noqa: E402
from vidgen.data.shapes import sample_scene  # noqa: E402
from vidgen.eval.scorer import score_video  # noqa: E402
from vidgen.pipeline import VideoPipeline  # noqa: E402
from vidgen.sampling import ERROR_LEVELS  # noqa: E402

BANDS = {"all ten (the shipped pick's levels)": ERROR_LEVELS, "low (50-250)": (50, 150, 250),
         "middle (350-650)": (350, 450, 550, 650), "high (750-950)": (750, 850, 950),
         "middle and high (350-950)": (350, 450, 550, 650, 750, 850, 950)}


def main() -> None:
    args = candidate_args(__doc__.splitlines()[0], "first_frame_levels", 96,
                          lambda parser: parser.add_argument("--noises", type=int, default=2))
    pipe = VideoPipeline.from_pretrained()
    rng = np.random.default_rng(11)
    captions = [sample_scene(rng, "train").caption() for _ in range(args.num_prompts)]
    groups = {1: [], 2: []}
    for i, caption in enumerate(captions):
        frames, pick = pipe.first_frame_candidates(caption, generator=torch.Generator().manual_seed(i),
                                                   first_frame_candidates=args.candidates)
        latents, text = pipe.encode_frames(frames), pipe.encode_prompt(caption)
        per_level = {level: sum(pipe.base_denoising_error(latents, text, torch.Generator().manual_seed(
            1000 * i + 10 * rep + level), levels=(level,)) for rep in range(args.noises)) / args.noises
            for level in ERROR_LEVELS}
        group = []
        for j, image in enumerate(frames):
            copies, missing = mistakes(image[None], caption)
            group.append({"right": objects_right(score_video(image[None], caption), copies, missing),
                          "pick": float(pick[j]),
                          **{band: float(np.mean([per_level[t][j] for t in levels]))
                             for band, levels in BANDS.items()}})
        objects = caption.count(" and ") + 1
        groups[objects].append(group)
        print(i, objects, [c["right"] for c in group], flush=True)
    scores = {"the shipped pick's error (one noise per level)": lambda c: c["pick"],
              **{f"{band}, {args.noises} noises per level": (lambda c, b=band: c[b]) for band in BANDS}}
    results = {}
    for objects, chosen in groups.items():
        every = [c for g in chosen for c in g]
        results[f"{objects} object{'s' if objects > 1 else ''}"] = {
            "captions": len(chosen), "candidates_right": round(float(np.mean([c["right"] for c in every])), 3),
            "right_wrong_pairs": rank_right_below_wrong(chosen, scores["the shipped pick's error (one noise per "
                                                                       "level)"])[1],
            "scores": pick_scores(chosen, scores, args.candidates)}
    print(results)
    write_results(args.name, {"machine": machine(), "results": results})


if __name__ == "__main__":
    cli(main)
