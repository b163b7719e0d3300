"""Attribute accuracy of each video's first frame against the frames after it, over folders of videos with
captions.jsonl. Autoregressive frames after the first are drawn from it (with `start carry`, warped from it): a
first frame drawn wrong stays wrong. This tells whether a split's attribute errors are made at frame 0 (the
base model's image) or later (the adapter's continuation). It also counts first frames whose objects are right
(each caption colour once and nothing else: no same-colour copy, none missing, no stray), for one- and
two-object captions, and the trajectory error and direction accuracy of videos whose first frame is so right
against those whose first frame is not.

    python benchmarks/first_frame.py runs/fl-eval/autoregressive-heldout runs/fl-eval/independent-heldout
    # writes benchmarks/results/first_frame.json
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
from common import cli, folder_benchmark
from direction_split import by_motion

from vidgen.data.shapes import BACKGROUNDS, COLOURS, parse_caption
from vidgen.eval.evaluate import summarize
from vidgen.data.video_folder import read_captions
from vidgen.eval.scorer import blobs, colour_masks, detect, score_video
from vidgen.video import read_video


def mistakes(image: np.ndarray, caption: str) -> tuple[int, int]:
    """(same-colour copies, objects missing) in one (1, S, S, 3) image."""
    scene = parse_caption(caption)
    masks = colour_masks(image, np.array(BACKGROUNDS[scene.background], np.float32), list(COLOURS))
    found = [blobs(masks[o.colour][0], image.shape[1]) for o in scene.objects]
    return sum(max(n - 1, 0) for n in found), sum(n == 0 for n in found)


def gaps(image: np.ndarray, caption: str) -> list[tuple[float, float | None]]:
    """Per caption object found in one (1, S, S, 3) image: the pixels between its extent and the nearest frame
    edge, and between it and the wall it moves towards (None for a still object)."""
    scene = parse_caption(caption)
    size = image.shape[1]
    masks = colour_masks(image, np.array(BACKGROUNDS[scene.background], np.float32), [o.colour for o in scene.objects])
    out = []
    for obj in scene.objects:
        found = detect(masks[obj.colour][0], size)
        if not found.present:
            continue
        h, centre, step = obj.half_extent(size), found.centre, obj.velocity(size)
        axis = 0 if step[0] else 1
        ahead = None if obj.direction is None else (size - h - centre[axis] if step[axis] > 0 else centre[axis] - h)
        out.append((min(min(c - h, size - h - c) for c in centre), ahead))
    return out


def objects_right(score, copies: int, missing: int) -> bool:
    """Each caption colour drawn once and nothing else: the count right, no copy, none missing (a copy of one
    object with the other missing leaves the count right)."""
    return score.count_correct == 1.0 and copies == missing == 0


def split(folder: Path) -> dict:
    first, later, carried, inherited = [], [], [], []
    counted = {1: [], 2: []}  # objects in the caption → [first frame's objects right]
    motion = {True: [], False: []}  # first frame's objects right → [whole video's score]
    edge, ahead = [], []  # per object found in frame 0: pixels to the nearest edge, to the wall ahead
    for path, caption in read_captions(folder):
        frames = read_video(path)
        for to_edge, to_wall in gaps(frames[:1], caption):
            edge.append(to_edge)
            ahead += [] if to_wall is None else [to_wall]
        frame_0 = score_video(frames[:1], caption)
        head = frame_0.attributes_correct
        tail = score_video(frames[1:], caption).attributes_correct
        first.append(head)
        later.append(tail)
        carried.append(tail if head == 1.0 else np.nan)
        inherited.append(tail if head < 1.0 else np.nan)
        right = objects_right(frame_0, *mistakes(frames[:1], caption))
        counted[len(parse_caption(caption).objects)].append(right)
        motion[right].append(score_video(frames, caption))
    mean = lambda xs: round(float(np.nanmean(xs)), 3) if np.isfinite(xs).any() else None  # noqa: E731
    # (frame 0 wrong: some object of it has a wrong colour, shape or size, or the background is wrong)
    return {"videos": len(first), "frame_0": mean(first), "frames_1_on": mean(later),
            "frames_1_on_when_frame_0_right": mean(carried), "frames_1_on_when_frame_0_wrong": mean(inherited),
            "frame_0_wholly_right": int(sum(h == 1.0 for h in first)),
            "frame_0_px_to_nearest_edge_median": round(float(np.median(edge)), 1) if edge else None,
            "frame_0_px_to_wall_ahead_median": round(float(np.median(ahead)), 1) if ahead else None,
            **{f"frame_0_objects_right_{n}_object{'s' * (n > 1)}": f"{sum(c)} of {len(c)}" for n, c in counted.items()},
            **{f"videos_frame_0_objects_{'right' if ok else 'wrong'}": motion_summary(scores)
               for ok, scores in motion.items()}}


def motion_summary(scores: list) -> dict:
    """Trajectory error and direction accuracy of a set of videos, pooled as `vidgen eval` pools them, and
    direction accuracy by object count and motion (`direction_split.by_motion`)."""
    summary = summarize([asdict(s) for s in scores])
    objects = [s.details["direction_by_object"] for s in scores]
    return {"videos": len(scores), "trajectory_rmse": round(summary["trajectory_rmse"], 2),
            "direction_accuracy": round(summary["direction_accuracy"], 3),
            "direction_by": by_motion((len(o), o) for o in objects)}


def main() -> None:
    folder_benchmark(__doc__.splitlines()[0], "first_frame", split)


if __name__ == "__main__":
    cli(main)
