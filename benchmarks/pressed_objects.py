"""Fast objects pressed into a wall: for every fast object of a scored folder's videos, the frames after frame 0
in which its colour's pixels (the scorer's masks, over ½) lie within a step of the frame's edge along its motion
and span at least WHOLE px less along it than in frame 0 (`redraw.pressed`, the walls judge's reading, made on
the mp4 with the scorer's colours instead of the sampler's binding). Per folder: how many fast objects, how many
pressed, the share of the folder's squared path error they hold, by the caption's direction, and the pressed
ones worst first.

    python benchmarks/pressed_objects.py runs/sweep/slowship-s1 runs/sweep/slowship-s2 runs/sweep/slowship-s3
    # writes benchmarks/results/pressed_objects.json (--name NAME: NAME.json)
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import cli, folder_benchmark  # noqa: E402
from direction_split import report  # noqa: E402
from vidgen.data.shapes import BACKGROUNDS, parse_caption  # noqa: E402
from vidgen.data.video_folder import read_captions  # noqa: E402
from vidgen.eval.scorer import colour_masks  # noqa: E402
from vidgen.redraw import FAST, pressed  # noqa: E402
from vidgen.video import read_video  # noqa: E402


def measure(folder: Path) -> dict:
    scored = {v["video"]: v for v in report(folder)["videos"]}
    total, fast, found, by_direction = 0.0, 0, [], {}
    for path, caption in read_captions(folder):
        errors_by_object = scored[path.name]["path_error_by_object"]
        scene, video, masks = parse_caption(caption), read_video(path), None
        for obj, errors in zip(scene.objects, errors_by_object):
            sq = sum(e for e in errors if e is not None)
            total += sq
            move = torch.tensor(obj.velocity(video.shape[1]))
            if float(move.norm()) < FAST:
                continue
            fast += 1
            if masks is None:
                masks = colour_masks(video, np.array(BACKGROUNDS[scene.background], np.float32),
                                     [o.colour for o in scene.objects])
            seen = [{0: (torch.from_numpy(mask > 0.5), move)} for mask in masks[obj.colour]]
            hits = pressed(seen, 0, int(move.abs().argmax()))
            if hits:
                found.append({"video": path.name, "object": f"{obj.size} {obj.colour} {obj.shape} {obj.direction}",
                              "frames": hits, "squared_error": round(sq, 1)})
                by_direction[obj.direction] = by_direction.get(obj.direction, 0) + 1
    return {"fast_objects": fast, "pressed": len(found),
            "share_of_squared_error": round(sum(p["squared_error"] for p in found) / total, 3) if total else None,
            "pressed_by_direction": by_direction,
            "worst": sorted(found, key=lambda p: -p["squared_error"])}


def show(results: dict) -> str:
    return (f"{results['pressed']} of {results['fast_objects']} fast objects pressed, "
            f"{results['share_of_squared_error']:.1%} of the squared error, by direction "
            f"{results['pressed_by_direction']}")


def main() -> None:
    folder_benchmark(__doc__.splitlines()[0], "pressed_objects", measure, show)


if __name__ == "__main__":
    cli(main)
