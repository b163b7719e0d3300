"""Does an adapter's displacement field turn an object at a wall? For single-object moving train videos, each
frame i ≥ 2 given its real context: whether the field at the object's place in frame i−1 has the sign of the
object's true shift i−1 → i, split by where frame i lies relative to the object's bounces (tracked by the
scorer's detector): the bounce step itself (the shift turns against the one before: the field must foresee the
wall), the three frames after it (the context shows the turn), and frames before any bounce. The free field
that signs the word field (`guide`) is read beside it, and how far it runs along the word field, in units of
the word field's length and signed by the caption's direction (`free_field_along`, mean: +1 the caption's full
step, −1 the full step back), beside the object's true step in the same units (`true_step`). `field_length`: the
(signed) field's length along the motion at the object, over the caption's step (median): 1 when the field
carries the object exactly as far as the caption says. `turn_right`: whether the sampler's own decision (the free
field's read over the object, `Context.turn`, below 0 turns it) matches the true step's side of the caption's
direction. Rows by speed, and by size and speed ("large quickly, bounce step"); with `--by-direction`, by size,
speed and the caption's direction instead ("large quickly up, bounce step": which wall the field turns late at).

    python benchmarks/bounce_reading.py --adapter runs/adapter-app3/adapter models/shapes-adapter
    # writes benchmarks/results/bounce_reading.json (--name NAME: NAME.json)
    python benchmarks/bounce_reading.py --adapter models/shapes-adapter --videos 1500 --by-direction \
        --name bounce_reading_sides
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import cli, write_results  # noqa: E402
from hard_frames import TURN, turns  # noqa: E402
from motion_follow import moving_tracks  # noqa: E402
from vidgen.adapter import split_text  # noqa: E402
from vidgen.pipeline import VideoPipeline  # noqa: E402
from vidgen.sampling import FrameContext, context_window  # noqa: E402

def kind(i: int, last_turn: int | None) -> str:
    if last_turn is None:
        return "before any bounce"
    since = i - last_turn
    return "bounce step" if since == 0 else f"{since} after a bounce" if since < 3 else "3+ after a bounce"


def wall_frames(pipe: VideoPipeline, folder: Path, num_videos: int):
    """For the first `num_videos` single-object moving videos of `folder` whose object is found in every frame,
    each frame i ≥ 2 whose true shift i−1 → i tells a direction: a dict with the caption's `speed`, `where` the
    frame lies relative to the object's bounces (`kind`), the true `shift` and the caption's `velocity` along the
    motion's `axis` (px), the object's latent place (`y`, `x`) in frame i−1, and the adapter's context for frame
    i given the real frames before it (`context`, with `frames`, `offsets`, `mask`: its input) and `words`; and
    the frame's index `i` in the clip, its `video` (f, H, W, 3) uint8 and their `latents`."""
    adapter, used = pipe.denoiser.adapter, 0
    for caption, scene, video, tracks in moving_tracks(folder, 1):
        centres, axis, speed = tracks[0]
        if not np.isfinite(centres).all():
            continue
        used += 1
        latents, text = pipe.encode_frames(video), pipe.encode_prompt(caption)
        scale = video.shape[1] / latents.shape[-1]
        shifts = np.diff(centres[:, axis])  # shifts[i − 1]: frame i−1 → i
        turned, last_turn = turns(video, caption), None
        for i in range(1, len(video)):
            if turned[i]:
                last_turn = i
            if i < 2 or abs(shifts[i - 1]) < TURN:  # frame 1's context shows no motion
                continue
            idx = context_window(i, 4)
            ctx = FrameContext.make(latents[idx][None], idx, i, 0.0)
            with torch.no_grad():
                context = adapter.encode(*ctx.as_args(), text)
            x, y = (min(max(int(round(v / scale - 0.5)), 0), latents.shape[-1] - 1) for v in centres[i - 1])
            frames, offsets, _, _, mask = ctx.as_args()
            yield dict(speed=speed, size=scene.objects[0].size, direction=scene.objects[0].direction,
                       where=kind(i, last_turn), shift=shifts[i - 1],
                       axis=axis, scale=scale,
                       velocity=scene.objects[0].velocity(video.shape[1])[axis], y=y, x=x, context=context,
                       frames=frames, offsets=offsets, mask=mask,
                       words=split_text(text, adapter.config.cross_attention_dim)[1], i=i, video=video,
                       latents=latents)
        if used >= num_videos:
            break


def reading(pipe: VideoPipeline, folder: Path, num_videos: int, by_direction: bool = False) -> dict:
    tally: dict[tuple[str, str], list] = {}
    for f in wall_frames(pipe, folder, num_videos):
        shift, velocity, axis, context = f["shift"], f["velocity"], f["axis"], f["context"]
        field = context.flow[0, :, f["y"], f["x"]]
        guide = None if context.guide is None else context.guide[0, :, f["y"], f["x"]]
        free_right = guide is not None and -guide[axis].item() * shift > 0
        if guide is not None:
            forward = float(np.sign(-field[axis].item() * velocity))  # the field runs with the caption here
            free_along = forward * float((field * guide).sum() / (field * field).sum().clamp(min=1e-8))
        turns_right = context.turn is not None and (  # the sampler's decision: it turns where the read is below 0
            context.turn[0, f["y"], f["x"]].item() < 0) == (shift * velocity < 0)
        field_length = abs(field[axis].item()) * f["scale"] / abs(velocity)
        groups = [f"{f['size']} {f['speed']} {f['direction']}"] if by_direction else \
            [f["speed"], f"{f['size']} {f['speed']}"]  # by speed, and by size and speed
        for group in groups:
            row = tally.setdefault((group, f["where"]), [0, 0, 0, [], [], [], 0])
            row[0] += int(-field[axis].item() * shift > 0)  # warp reads p + field
            row[1] += int(free_right)
            if guide is not None:
                row[3].append(free_along)
            row[2] += 1
            row[4].append(shift / velocity)
            row[5].append(field_length)
            row[6] += int(turns_right)
    mean = lambda xs: round(float(np.mean(xs)), 3) if xs else None  # noqa: E731
    return {f"{group}, {where}": {"frames": n, "field_right_sign": round(a / n, 3), "free_field_right_sign":
                                  round(b / n, 3), "turn_right": round(c / n, 3), "free_field_along": mean(along),
                                  "true_step": mean(true), "field_length": round(float(np.median(length)), 3)}
            for (group, where), (a, b, n, along, true, length, c) in sorted(tally.items())}


def adapters_main(description: str, name: str, measure, options: dict | None = None) -> None:
    """The command line both wall readings share: `measure(pipe, data folder, videos, **options)` → {where: row}
    per `--adapter`, printed a row a line and written to benchmarks/results/NAME.json. `options`: flag → help of
    further on/off flags passed on to `measure` (by their names, dashes as underscores)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", default="models/shapes-base")
    parser.add_argument("--adapter", nargs="+", required=True)
    parser.add_argument("--data", type=Path, default=Path("runs/shapes-train"))
    parser.add_argument("--videos", type=int, default=120)
    parser.add_argument("--name", default=name, help="results go to benchmarks/results/NAME.json")
    for flag, text in (options or {}).items():
        parser.add_argument(flag, action="store_true", help=text)
    args = parser.parse_args()
    extra = {flag[2:].replace("-", "_"): getattr(args, flag[2:].replace("-", "_")) for flag in options or {}}
    results = {}
    for adapter in args.adapter:
        results[adapter] = measure(VideoPipeline.from_pretrained(args.model, adapter=adapter), args.data,
                                   args.videos, **extra)
        for where, row in results[adapter].items():
            print(adapter, where, row, flush=True)
    write_results(args.name, {"results": results})


def main() -> None:
    adapters_main(__doc__.splitlines()[0], "bounce_reading", reading,
                  {"--by-direction": "rows by size, speed and the caption's direction"})


if __name__ == "__main__":
    cli(main)
