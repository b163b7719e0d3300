"""Which videos of a scored folder the whole-video judges flag, and how much of the trajectory error they hold:
each mp4 is encoded again by the shipped VAE and bound by the shipped adapter's word field, and `redraw.turns`
(an object turning back away from the frame's border), `redraw.fade` (an object of frame 0 shrinking to under
FADE of its places), `redraw.unnamed` (a caption clause whose object frame 0 does not draw), `redraw.pixel_turns`
(a moving object's pixels coming back away from the border), `redraw.strays` (a still object leaving its place)
and `redraw.walls` (a fast object late at a wall; these three read off the mp4's frames as the take's decodes)
are read off the bindings, as `retake` reads them off a take's latents (which bind a little differently from
latents encoded again from the mp4, so a flag here is an estimate of the sampler's).

Per folder: the videos each judge flags, with their trajectory error, and the share of the folder's squared
error they hold.

    python benchmarks/turn_judge.py runs/sweep/retake-s1 runs/sweep/retake-s2 runs/sweep/retake-s3
    # writes benchmarks/results/turn_judge.json (--name NAME: NAME.json)
"""

from __future__ import annotations

from pathlib import Path

import torch
from common import cli, folder_benchmark

from vidgen import VideoPipeline
from vidgen.data.video_folder import read_captions
from vidgen.eval.scorer import score_video
from vidgen.video import read_video

PIPE: list[VideoPipeline] = []


@torch.no_grad()
def judge(pipe: VideoPipeline, frames, caption: str) -> dict[str, float | int]:
    """`VideoPipeline.take_readings` of a video (f, H, W, 3) uint8 under its caption: the worst fade, the clauses
    frame 0 leaves out, the turns read off the binding and off the pixels, the still objects astray and the walls
    (`judge_take` ranks a clause left out as a fade of FADE, and adds the turns and the strays)."""
    images = [torch.from_numpy(f).permute(2, 0, 1)[None].float() / 127.5 - 1 for f in frames]
    latents = list(pipe.encode_frames(frames)[:, None])
    read = pipe.take_readings(latents, pipe.encode_prompt(caption), images=images, clauses=pipe.clauses(caption))
    return {**read, "fade": round(read["fade"], 3)}


def measure(folder: Path) -> dict:
    if not PIPE:
        PIPE.append(VideoPipeline.from_pretrained())
    videos = []
    for path, caption in read_captions(folder):
        frames = read_video(path)
        errors = score_video(frames, caption).details["path_error_by_object"]
        squared = sum(e for errs in errors for e in errs if e is not None)
        count = sum(e is not None for errs in errors for e in errs)
        videos.append({"video": path.name, "caption": caption, "squared_px2": round(squared, 1),
                       "trajectory_rmse": round((squared / max(count, 1)) ** 0.5, 2), "object_frames": count,
                       **judge(PIPE[0], frames, caption)})
    total = sum(v["squared_px2"] for v in videos) or 1.0

    def flagged(rule) -> dict:
        hit = [v for v in videos if rule(v)]
        return {"videos": [f"{v['video']} {v['trajectory_rmse']} px" for v in hit],
                "share_of_squared_error": round(sum(v["squared_px2"] for v in hit) / total, 3)}

    judges = ("fade", "unnamed", "turns", "pixel_turns", "strays", "walls")
    return {"videos": videos, **{name: flagged(lambda v, name=name: v[name] > 0) for name in judges},
            "either": flagged(lambda v: v["turns"] > 0 or v["fade"] > 0),
            "any": flagged(lambda v: any(v[name] > 0 for name in judges))}


def show(result: dict) -> str:
    return "; ".join(f"{judge} flags {len(r['videos'])} ({r['share_of_squared_error']:.0%} of the squared error): "
                     + ", ".join(r["videos"]) for judge, r in result.items() if judge != "videos")


def main() -> None:
    folder_benchmark(__doc__.splitlines()[0], "turn_judge", measure, show)


if __name__ == "__main__":
    cli(main)
