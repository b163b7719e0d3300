"""Attribute accuracy of each video's first frame against the frames after it, over folders of videos with
captions.jsonl. Autoregressive frames after the first are drawn from it (with `start carry`, warped from it): a
first frame drawn wrong stays wrong. This tells whether a split's attribute errors are made at frame 0 (the
base model's image) or later (the adapter's continuation).

    python benchmarks/first_frame.py runs/fl-eval/autoregressive-heldout runs/fl-eval/independent-heldout
    # writes benchmarks/results/first_frame.json
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from common import cli, folder_benchmark

from vidgen.data.video_folder import read_captions
from vidgen.eval.scorer import score_video
from vidgen.video import read_video


def split(folder: Path) -> dict:
    first, later, carried, inherited = [], [], [], []
    for path, caption in read_captions(folder):
        frames = read_video(path)
        head = score_video(frames[:1], caption).attributes_correct
        tail = score_video(frames[1:], caption).attributes_correct
        first.append(head)
        later.append(tail)
        carried.append(tail if head == 1.0 else np.nan)
        inherited.append(tail if head < 1.0 else np.nan)
    mean = lambda xs: round(float(np.nanmean(xs)), 3) if np.isfinite(xs).any() else None  # noqa: E731
    # (frame 0 wrong: some object of it has a wrong colour, shape or size, or the background is wrong)
    return {"videos": len(first), "frame_0": mean(first), "frames_1_on": mean(later),
            "frames_1_on_when_frame_0_right": mean(carried), "frames_1_on_when_frame_0_wrong": mean(inherited),
            "frame_0_wholly_right": int(sum(h == 1.0 for h in first))}


def main() -> None:
    folder_benchmark(__doc__.splitlines()[0], "first_frame", split)


if __name__ == "__main__":
    cli(main)
