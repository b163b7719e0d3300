"""Which frames does `vidgen train --hard-frames` draw more often? For the clips of a video folder, the frames where
an object's motion turns (a bounce: its shift i−1 → i against the way it was heading, `turns`, tracked by the
scorer's detector) and the others, each with the share that the run's ranking (its cached field errors) counts as
hard; single objects split by speed.

    python benchmarks/hard_frames.py runs/adapter-hard --data runs/shapes-train --clips 600
    # writes benchmarks/results/hard_frames.json (--name NAME: NAME.json); a run ranked by an init adapter or by
    # its own field (--hard-from) alike
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from common import cli, write_results  # noqa: E402
from motion_follow import axis_of, object_centres  # noqa: E402
from vidgen.data.shapes import parse_caption  # noqa: E402
from vidgen.data.video_folder import read_captions  # noqa: E402
from vidgen.errors import VidgenError  # noqa: E402
from vidgen.training import HARD_SHARE  # noqa: E402
from vidgen.video import read_video  # noqa: E402

TURN = 0.3  # px: a shift smaller than this tells no direction


def turns(video: np.ndarray, caption: str) -> np.ndarray:
    """(f,) bool: frame i's shift from i−1 runs against the way its object was heading, for some moving object. An
    object heads the caption's way until its first turn; shifts of TURN px or less are not counted, so a bounce in
    the first step, or one whose turning step is short, still counts (tracked by the scorer's detector)."""
    scene, out = parse_caption(caption), np.zeros(len(video), bool)
    for k, obj in enumerate(scene.objects):
        if obj.direction is None:
            continue
        axis = axis_of(obj)
        heading = np.sign(obj.velocity(video.shape[1])[axis])
        for i, shift in enumerate(np.diff(object_centres(video, scene, k)[:, axis]), start=1):  # frame i−1 → i
            if np.isfinite(shift) and abs(shift) > TURN and np.sign(shift) != heading:
                out[i], heading = True, -heading
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a vidgen train --out folder trained with --hard-frames")
    parser.add_argument("--data", type=Path, default=Path("runs/shapes-train"))
    parser.add_argument("--clips", type=int, default=600)
    parser.add_argument("--name", default="hard_frames")
    args = parser.parse_args()
    found = sorted((args.run / "cache").glob("*field-errors-*.safetensors"))
    if not found:
        raise VidgenError(f"run: got {str(args.run)!r}, which has no cache/*field-errors-*.safetensors; expected "
                          "the --out folder of a vidgen train run with --hard-frames")
    errors = load_file(found[-1])["errors"].numpy()
    hard = errors >= np.quantile(errors[:, 2:], 1 - HARD_SHARE)  # the rule add_hard_frames applies
    tally: dict[str, list[int]] = {}
    for n, (path, caption) in enumerate(read_captions(args.data)[:args.clips]):
        turned = turns(read_video(path), caption)
        scene = parse_caption(caption)
        objects = len(scene.objects)
        kind = f"1 object {scene.objects[0].speed or 'still'}" if objects == 1 else f"{objects} objects"
        for i in range(2, errors.shape[1]):
            key = f"{kind}, {'turn' if turned[i] else 'other frame'}"
            tally.setdefault(key, [0, 0])
            tally[key][0] += int(hard[n, i])
            tally[key][1] += 1
    result = {k: {"hard": h, "frames": m, "share_hard": round(h / m, 3)} for k, (h, m) in sorted(tally.items())}
    print(result)
    write_results(args.name, {"run": str(args.run), "clips": args.clips, "results": result})


if __name__ == "__main__":
    cli(main)
