"""Does a sampler setting fix the first frame's objects? The first frame of an autoregressive video (no context
yet) drawn for train-split captions under several settings, with the shipped adapter or with an untrained one
(the base model's own image): for one- and two-object captions, how many first frames hold each caption colour
exactly once and nothing else (objects right: the count right, no same-colour copy, none missing; a copy of one
object with the other missing leaves the count right), how many hold a copy or miss an object, and attribute
accuracy.

    python benchmarks/first_frame_settings.py --settings adapter:dpm++:8:3,base:dpm++:8:3,adapter:dpm++:8:6
    # writes benchmarks/results/first_frame_settings.json

A setting is WHICH:SCHEDULER:STEPS:GUIDANCE, WHICH being `adapter` (the shipped one), `base` (untrained: the
adapter adds nothing), the folder of another adapter on the shipped base (its first frame, e.g.
`runs/adapter-first/adapter`) or the folder of another base model (its own image, e.g. `runs/base-pairs/model`,
to compare bases side by side). Frame 0 is drawn once (`--first-frame-candidates 1`) unless told otherwise:
the demo defaults' pick among two is `--first-frame-candidates 2 --first-frame-margin 0.3`. Run it with nothing
else running.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import cli, machine, write_results  # noqa: E402
from first_frame import mistakes, objects_right  # noqa: E402
from vidgen.data.shapes import parse_caption, sample_scene  # noqa: E402
from vidgen.errors import check  # noqa: E402
from vidgen.eval.scorer import score_video  # noqa: E402
from vidgen.pipeline import VideoPipeline  # noqa: E402
from vidgen.shipped import ADAPTER, BASE  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="adapter:dpm++:8:3,base:dpm++:8:3")
    parser.add_argument("--num-prompts", type=int, default=48)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--first-frame-candidates", type=int, default=1)
    parser.add_argument("--first-frame-margin", type=float, default=0.0)
    parser.add_argument("--name", default="first_frame_settings")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    settings = args.settings.split(",")
    for s in settings:
        parts = s.split(":")
        which_ok = len(parts) == 4 and (parts[0] in ("adapter", "base") or Path(parts[0], "unet").is_dir()
                                        or Path(parts[0], "config.json").is_file())
        check(which_ok, "setting", s, "WHICH:SCHEDULER:STEPS:GUIDANCE with WHICH adapter, base, an adapter's or "
              "a base model's folder, e.g. adapter:dpm++:8:3")
    rng = np.random.default_rng(11)
    captions = [sample_scene(rng, "train").caption() for _ in range(args.num_prompts)]
    def pipeline(which: str) -> VideoPipeline:
        if which in ("adapter", "base"):
            return VideoPipeline.from_pretrained(BASE, ADAPTER if which == "adapter" else None)
        if Path(which, "unet").is_dir():
            return VideoPipeline.from_pretrained(which, None)
        return VideoPipeline.from_pretrained(BASE, which)

    pipes = {which: pipeline(which) for which in {s.split(":")[0] for s in settings}}  # only the ones named
    results = {}
    for setting in settings:
        which, scheduler, steps, guidance = setting.split(":")
        right = {1: [], 2: []}
        copies = missing = 0
        attributes = []
        for k, caption in enumerate(captions):
            for seed in range(args.seeds):
                image = pipes[which](caption, generator=torch.Generator().manual_seed(1000 * k + seed), num_frames=1,
                                     scheduler=scheduler, num_inference_steps=int(steps),
                                     guidance_scale=float(guidance),
                                     first_frame_candidates=args.first_frame_candidates,
                                     first_frame_margin=args.first_frame_margin).frames
                score = score_video(image, caption)
                c, m = mistakes(image, caption)
                right[len(parse_caption(caption).objects)].append(objects_right(score, c, m))
                copies, missing = copies + (c > 0), missing + (m > 0)
                attributes.append(score.attributes_correct)
        results[setting] = {"images": sum(len(r) for r in right.values()),
                            "objects_right": round(float(np.mean(right[1] + right[2])), 3),
                            "objects_right_1_object": f"{sum(right[1])} of {len(right[1])}",
                            "objects_right_2_objects": f"{sum(right[2])} of {len(right[2])}",
                            "images_with_a_copy": copies, "images_missing_an_object": missing,
                            "attributes": round(float(np.nanmean(attributes)), 3)}
        print(setting, results[setting], flush=True)
    write_results(args.name, {"machine": machine(), "results": results})


if __name__ == "__main__":
    cli(main)
