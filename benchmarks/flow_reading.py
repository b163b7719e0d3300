"""How well an adapter's displacement field (`--spatial-flow`) reads a real motion, and how well any warp could.

For single-object moving train videos, frames i = 1, 5, 10 given their real context: the field's displacement at
the object's place in frame i−1, over the object's true shift (1 = reads it exactly; frame 1 sees only frame 0,
so it must read the caption). And, per interpolation, the one displacement that best warps latent i−1 onto
latent i (a grid search), over the true shift: the bias the displacement loss inherits from the warp itself.

    python benchmarks/flow_reading.py --adapter models/shapes-adapter runs/adapter-bicubic/adapter
    # writes benchmarks/results/flow_reading.json

With `--objects 2`, the same reading in two-object videos whose objects both move at different speeds, each
object at its own place: whether the field binds each object's own speed to it (a field that gives both objects
one displacement reads the slow one about 3× too far, the fast one about 1/3). Writes flow_reading_2.json.

With `--generated N`, the same reading on each adapter's own videos instead of real ones: for the first N
captions of the kind above, a video generated with the adapter's defaults (seed k for the k-th), the field at
each object's generated place given the generated context, over the shift its caption asks for there; and
beside it how far the object then moved, over the same; and the field again over the videos whose generated
first frame holds the caption's objects right (`first_frame`'s test). A field that reads generated frames as
well as real ones while the objects lag would put the loss in the denoising after the warp; a field that
misreads them puts it in the field. With two objects, both readings also say how often the field vector at an
object (both axes) is nearest to its own caption shift, to the other object's, or to none (zero). Writes
flow_reading_generated(_2).json.

With `--from-first-frame`, the real videos' readings again, but each frame's context is the adapter's own video
generated from the real video's frame 0 (`vidgen.own_frames.rollouts`, seed k for the k-th video): the real
first frame and the real path as the truth, and generated frames after it. Set beside the real readings, it
says how much of the loss on generated videos comes from the frames generated after a right first frame (the
contexts `vidgen train --own-context` trains on); `drift` says how far (px) the generated objects are from the
real ones at frames DRIFT_FRAMES (median; share beyond one latent pixel). Writes flow_reading_rollout(_2).json.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import cli, write_results  # noqa: E402
from first_frame import mistakes, objects_right  # noqa: E402
from motion_follow import axis_of, moving_captions, moving_tracks, object_centres  # noqa: E402
from vidgen.eval.scorer import expected_path, score_video  # noqa: E402
from vidgen.fields import INTERPOLATIONS, warp  # noqa: E402
from vidgen.errors import VidgenError  # noqa: E402
from vidgen.own_frames import rollouts  # noqa: E402
from vidgen.pipeline import VideoPipeline  # noqa: E402
from vidgen.sampling import FrameContext, context_window  # noqa: E402

TARGETS = (1, 5, 10)
SHIFTS = torch.linspace(-1.2, 1.2, 97)  # latent px, step 0.025
DRIFT_FRAMES = (1, 3, 7, 11, 15)


def generated_tracks(pipe: VideoPipeline, folder: Path, objects: int):
    """`moving_captions`' captions, each with a video `pipe` generates for it (seed k for the k-th) and the
    generated objects' centres."""
    for k, (_, caption, scene) in enumerate(moving_captions(folder, objects)):
        video = pipe(caption, generator=torch.Generator().manual_seed(k)).frames
        yield caption, scene, video, [(object_centres(video, scene, j), axis_of(o), o.speed)
                                      for j, o in enumerate(scene.objects)]


def cases(pipe: VideoPipeline, folder: Path, num_videos: int, objects: int = 1, generated: bool = False) -> list[dict]:
    """Frames TARGETS of each object: where it is in frame i−1 and its true shift to frame i, in latent px. On
    generated videos the true shift is the one its caption asks for from its generated start, `moved` how far it
    went, and `first_right` whether the generated first frame holds the caption's objects right."""
    out, used = [], 0
    source = generated_tracks(pipe, folder, objects) if generated else moving_tracks(folder, objects)
    for caption, scene, video, tracks in source:
        latents, text = pipe.encode_frames(video), pipe.encode_prompt(caption)
        scale = video.shape[1] / latents.shape[-1]
        first_right = generated and objects_right(score_video(video[:1], caption), *mistakes(video[:1], caption))
        before = len(out)
        paths = [expected_path(o, c[0], video.shape[1], len(video)) if generated and np.isfinite(c[0]).all() else c
                 for o, (c, _, _) in zip(scene.objects, tracks)]
        for n, (centres, axis, speed) in enumerate(tracks):
            if not np.isfinite(centres[0]).all():
                continue
            want = paths[n]
            for i in TARGETS:
                true = (want[i] - want[i - 1])[axis] / scale
                moved = (centres[i] - centres[i - 1])[axis] / scale
                if np.isfinite(true) and abs(true) >= 0.1 and np.isfinite(centres[i - 1]).all():
                    # a bounce between i−1 and i leaves no shift to read
                    at = [min(max(int(round(v / scale - 0.5)), 0), latents.shape[-1] - 1) for v in centres[i - 1]]
                    other = [(p[i] - p[i - 1]) / scale for k, p in enumerate(paths) if k != n]  # the other object's
                    out.append(dict(i=i, axis=axis, true=float(true), moved=float(moved), at=at, speed=speed,
                                    latents=latents, text=text, first_right=first_right, scene=scene,
                                    own=(want[i] - want[i - 1]) / scale, other=other[0] if other else None))
        used += len(out) > before
        if used >= num_videos:
            break
    return out


def from_first_frame(pipe: VideoPipeline, items: list[dict]) -> tuple[list[dict], dict]:
    """`items` of real videos with each video's latents replaced by the adapter's own video from its frame 0, and
    how far the own videos' objects drifted from the real ones."""
    config, own, gaps = pipe._config("a video", {}), {}, []
    for c in items:
        key = id(c["latents"])
        if key not in own:
            own[key] = rollouts(pipe, c["latents"][None], c["text"], config,
                                torch.Generator().manual_seed(len(own)))[0]
            real, made = (np.stack([pipe.decode(x[None])[0] for x in v]) for v in (c["latents"], own[key]))
            gaps += [np.linalg.norm(object_centres(real, c["scene"], k) - object_centres(made, c["scene"], k), axis=1)
                     for k in range(len(c["scene"].objects))]
    gaps = np.array(gaps)
    drift = {f"frame_{i}": {"median_px": round(float(np.nanmedian(gaps[:, i])), 2),
                            "beyond_4px": round(float(np.mean(~(gaps[:, i] <= 4))), 3)} for i in DRIFT_FRAMES}
    return [{**c, "latents": own[id(c["latents"])]} for c in items], drift


def summary(ratios: list[float], frames: list[int]) -> dict:
    r, f = np.array(ratios), np.array(frames)
    lost = ~np.isfinite(r)  # a generated object not found in frame i: no shift to measure
    r, f = r[~lost], f[~lost]
    return {"cases": len(r), **({"not_found": int(lost.sum())} if lost.any() else {}),
            "median": round(float(np.median(r)), 3), "right_sign": round(float(np.mean(r > 0)), 3),
            "frame_1": round(float(np.median(r[f == 1])), 3) if (f == 1).any() else None,
            "later": round(float(np.median(r[f > 1])), 3) if (f > 1).any() else None}


def by_speed(rows: list[tuple[str, int, float]]) -> dict:
    return {s: summary([r for sp, _, r in rows if sp == s], [i for sp, i, _ in rows if sp == s])
            for s in sorted({sp for sp, _, _ in rows})}


def field_reading(pipe: VideoPipeline, items: list[dict]) -> dict:
    rows, nearest = [], []
    for c in items:
        idx = context_window(c["i"], 4)
        ctx = FrameContext.make(c["latents"][idx][None], idx, c["i"], 0.0)
        with torch.no_grad():
            flow = pipe.denoiser.adapter.encode(*ctx.as_args(), c["text"]).flow
        x, y = c["at"]
        rows.append((c["speed"], c["i"], -flow[0, c["axis"], y, x].item() / c["true"]))  # warp samples at p + d
        if c["other"] is not None and np.isfinite(c["other"]).all():  # which motion is the field nearest to?
            d = -flow[0, :, y, x].numpy()
            errors = [np.linalg.norm(d - c["own"]), np.linalg.norm(d - c["other"]), np.linalg.norm(d)]
            nearest.append((c["speed"], ("own", "other", "none")[int(np.argmin(errors))]))
    result = by_speed(rows)
    if nearest:  # two objects: the field at an object is nearest to its own shift, the other's, or none
        result["nearest"] = {s: {k: round(float(np.mean([n == k for sp, n in nearest if sp == s])), 3)
                                 for k in ("own", "other", "none")} for s in sorted({sp for sp, _ in nearest})}
    return result


def best_warp(items: list[dict], mode: str) -> dict:
    rows = []
    for c in items:
        prev, cur = c["latents"][c["i"] - 1][None], c["latents"][c["i"]][None]
        errors = []
        for d in SHIFTS:
            flow = torch.zeros(1, 2, *prev.shape[-2:])
            flow[:, c["axis"]] = d
            errors.append((warp(prev, flow, mode) - cur).square().mean().item())
        rows.append((c["speed"], c["i"], -SHIFTS[int(np.argmin(errors))].item() / c["true"]))
    return by_speed(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/shapes-base")
    parser.add_argument("--adapter", nargs="+", required=True)
    parser.add_argument("--data", type=Path, default=Path("runs/shapes-train"))
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--objects", type=int, choices=(1, 2), default=1)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--generated", action="store_true",
                        help="read each adapter's own generated videos of --videos captions instead of real ones")
    source.add_argument("--from-first-frame", action="store_true",
                        help="read the real videos with contexts the adapter generated from their real frame 0")
    args = parser.parse_args()
    results = {"field": {}, "moved": {}, "field_when_first_frame_right": {}} if args.generated else {"field": {}}
    for adapter in args.adapter:
        pipe = VideoPipeline.from_pretrained(args.model, adapter=adapter)
        if not pipe.denoiser.adapter.config.get("spatial_flow", False):
            raise VidgenError(f"adapter: got {adapter!r}, which has no displacement field; expected one trained "
                              "with --spatial-flow")
        items = cases(pipe, args.data, args.videos, args.objects, args.generated)
        if args.from_first_frame:
            items, results.setdefault("drift", {})[adapter] = from_first_frame(pipe, items)
            print(f"{adapter}: own objects' distance from the real ones {results['drift'][adapter]}", flush=True)
        results["field"][adapter] = field_reading(pipe, items)
        print(f"{adapter}: field / true shift {results['field'][adapter]}", flush=True)
        if args.generated:
            results["moved"][adapter] = by_speed([(c["speed"], c["i"], c["moved"] / c["true"]) for c in items])
            print(f"{adapter}: moved / true shift {results['moved'][adapter]}", flush=True)
            right = [c for c in items if c["first_right"]]
            results["field_when_first_frame_right"][adapter] = field_reading(pipe, right)
            print(f"{adapter}: the same, first frame right {results['field_when_first_frame_right'][adapter]}")
    if not (args.generated or args.from_first_frame):
        results["best_warp"] = {mode: best_warp(items, mode) for mode in INTERPOLATIONS}
        print(f"best single displacement / true shift: {results['best_warp']}")
    kind = "_generated" if args.generated else "_rollout" if args.from_first_frame else ""
    name = "flow_reading" + kind + ("_2" if args.objects == 2 else "")
    write_results(name, {"results": results})


if __name__ == "__main__":
    cli(main)
