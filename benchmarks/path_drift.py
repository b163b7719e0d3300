"""How a single object's trajectory error builds up over a video: per frame, the RMS distance between the object
(the scorer's detector) and its caption's path from where frame 0 put it, split along and across the motion, for
fast, slow and still objects; and whether it builds up as a random walk (each frame's step off by an independent
amount: error ∝ √i) or as a wrong velocity kept for the whole video (error ∝ i), and how heavy-tailed the
steps' errors are (a turn at a wall one frame late is one large step error, not many small ones).

    python benchmarks/path_drift.py runs/sweep/ffb20-s1 runs/sweep/ffb20-s2 runs/sweep/ffb20-s3 --name path_drift
    # writes benchmarks/results/path_drift.json; --plot PNG draws RMS error against frame per kind

Per kind: `rms_by_frame` (px), `step_rms` (px: the RMS of each frame's step minus the caption's step, along and
across), `step_median` and `step_p90` (px, of the steps' absolute errors), `step_correlation` (the
correlation of consecutive step errors within a video: ≈ 0 for a random walk, near 1 for a kept velocity error,
−0.5 for a detector's own independent noise) and `growth` (the exponent of rms ∝ i^g fitted over frames 1 on:
0.5 random walk, 1 velocity). Frames where the object is not found are left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from common import cli, folder_benchmark, pyplot
from motion_follow import axis_of, object_centres

from vidgen.data.shapes import parse_caption
from vidgen.data.video_folder import read_captions
from vidgen.eval.scorer import expected_path
from vidgen.video import read_video

KINDS = ("quickly", "slowly", "still")


def errors(folder: Path) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """Per kind, (along, across) error per frame (f,) of each single-object video whose object frame 0 holds;
    for a still object "along" is x and "across" y. NaN where the object is not found."""
    out = {kind: [] for kind in KINDS}
    for path, caption in read_captions(folder):
        scene = parse_caption(caption)
        if len(scene.objects) != 1:
            continue
        obj, video = scene.objects[0], read_video(path)
        centres = object_centres(video, scene)
        if not np.isfinite(centres[0]).all():
            continue
        want = expected_path(obj, centres[0], video.shape[1], len(video))
        e = centres - want
        if obj.direction is None:
            out["still"].append((e[:, 0], e[:, 1]))
            continue
        axis = axis_of(obj)
        sense = np.sign(np.gradient(want[:, axis]))  # the caption's way along the axis at each frame
        out[obj.speed].append((e[:, axis] * sense, e[:, 1 - axis]))
    return out


def summary_of(tracks: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    if not tracks:
        return {"videos": 0}
    along, across = (np.array([t[k] for t in tracks]) for k in (0, 1))  # videos × frames
    sq = along ** 2 + across ** 2
    rms = np.sqrt(np.nanmean(sq, axis=0))
    frames = np.arange(along.shape[1])
    steps = {name: np.diff(x, axis=1) for name, x in (("along", along), ("across", across))}

    def correlation(d: np.ndarray) -> float:
        a, b = d[:, :-1].ravel(), d[:, 1:].ravel()
        keep = np.isfinite(a) & np.isfinite(b)
        return float(np.corrcoef(a[keep], b[keep])[0, 1])

    fit = np.polyfit(np.log(frames[1:]), np.log(np.maximum(rms[1:], 1e-6)), 1)
    return {"videos": len(tracks), "rms": float(np.sqrt(np.nanmean(sq))),
            "rms_by_frame": [round(float(r), 3) for r in rms],
            "rms_along_by_frame": [round(float(r), 3) for r in np.sqrt(np.nanmean(along ** 2, axis=0))],
            "rms_across_by_frame": [round(float(r), 3) for r in np.sqrt(np.nanmean(across ** 2, axis=0))],
            "step_rms": {k: float(np.sqrt(np.nanmean(d ** 2))) for k, d in steps.items()},
            "step_median": {k: float(np.nanmedian(np.abs(d))) for k, d in steps.items()},
            "step_p90": {k: float(np.nanpercentile(np.abs(d), 90)) for k, d in steps.items()},
            "step_correlation": {k: correlation(d) for k, d in steps.items()},
            "growth": float(fit[0])}


def measure(folder: Path) -> dict:
    return {kind: summary_of(tracks) for kind, tracks in errors(folder).items()}


def show(result: dict) -> str:
    lines = []
    for kind, r in result.items():
        if not r["videos"]:
            continue
        lines.append(f"\n  {kind}: {r['videos']} videos, {r['rms']:.2f} px; by frame {np.round(r['rms_by_frame'], 1)}"
                     f"; step error along/across: RMS {r['step_rms']['along']:.2f}/{r['step_rms']['across']:.2f}, "
                     f"median {r['step_median']['along']:.2f}/{r['step_median']['across']:.2f}, 90th percentile "
                     f"{r['step_p90']['along']:.2f}/{r['step_p90']['across']:.2f} px, correlation "
                     f"{r['step_correlation']['along']:.2f}/{r['step_correlation']['across']:.2f}; growth "
                     f"i^{r['growth']:.2f}")
    return "".join(lines)


def plot(results: dict, path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(KINDS), figsize=(12, 3.6), sharey=True)
    for ax, kind in zip(axes, KINDS):
        for label, result in results.items():
            r = result[kind]
            if r["videos"]:
                ax.plot(r["rms_by_frame"], "o-", ms=3, label=f"{label} ({r['videos']})")
        ax.set_title({"quickly": "fast objects", "slowly": "slow objects", "still": "still objects"}[kind])
        ax.set_xlabel("frame")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("RMS distance from the caption's path (px)")
    fig.suptitle("Single objects: trajectory error by frame")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    folder_benchmark(__doc__.splitlines()[0], "path_drift", measure, show, plot)


if __name__ == "__main__":
    cli(main)
