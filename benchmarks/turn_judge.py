"""Which videos of a scored folder the whole-video judges flag, and how much of the trajectory error they hold:
each mp4 is encoded again by the shipped VAE and bound by the shipped adapter's word field, and `redraw.turns`
(an object turning back away from the frame's border), `redraw.fade` (an object of frame 0 shrinking to under
FADE of its places), `redraw.strays` (a still object leaving its place) and `redraw.walls` (a fast object late at
a wall; these two read off the mp4's frames as the take's decodes) are read off the bindings, as `retake` reads
them off a take's latents (which bind a little differently from latents encoded again from the mp4, so a flag
here is an estimate of the sampler's).

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
from vidgen.redraw import fade, sightings, strays, turns, walls
from vidgen.video import read_video

PIPE: list[VideoPipeline] = []


@torch.no_grad()
def judge(pipe: VideoPipeline, frames, caption: str) -> tuple[float, int, int, int]:
    """(the worst fade, the turns, the still objects astray, the walls) of a video (f, H, W, 3) uint8 under its
    caption, each read as `VideoPipeline.judge_take` reads it (which adds the turns and the strays)."""
    images = [torch.from_numpy(f).permute(2, 0, 1)[None].float() / 127.5 - 1 for f in frames]
    latents = list(pipe.encode_frames(frames)[:, None])
    text = pipe.encode_prompt(caption)
    bindings = [pipe.bind(x, text)[0, :-1] for x in latents]
    step = pipe.caption_steps(latents[0], text)[0]
    seen = sightings(images, bindings, step, pipe.vae_scale_factor)
    worst = max((fade(bindings[0], b) for b in bindings[1:]), default=0.0)
    return worst, turns(bindings, step, pipe.vae_scale_factor), strays(seen), walls(seen)


def measure(folder: Path) -> dict:
    if not PIPE:
        PIPE.append(VideoPipeline.from_pretrained())
    videos = []
    for path, caption in read_captions(folder):
        frames = read_video(path)
        errors = score_video(frames, caption).details["path_error_by_object"]
        squared = sum(e for errs in errors for e in errs if e is not None)
        count = sum(e is not None for errs in errors for e in errs)
        worst, turned, astray, walled = judge(PIPE[0], frames, caption)
        videos.append({"video": path.name, "caption": caption, "squared_px2": round(squared, 1),
                       "trajectory_rmse": round((squared / max(count, 1)) ** 0.5, 2), "object_frames": count,
                       "fade": round(worst, 3), "turns": turned, "strays": astray,
                       "walls": walled})
    total = sum(v["squared_px2"] for v in videos) or 1.0

    def flagged(rule) -> dict:
        hit = [v for v in videos if rule(v)]
        return {"videos": [f"{v['video']} {v['trajectory_rmse']} px" for v in hit],
                "share_of_squared_error": round(sum(v["squared_px2"] for v in hit) / total, 3)}

    return {"videos": videos, "turns": flagged(lambda v: v["turns"] > 0),
            "fade": flagged(lambda v: v["fade"] > 0),
            "strays": flagged(lambda v: v["strays"] > 0), "walls": flagged(lambda v: v["walls"] > 0),
            "either": flagged(lambda v: v["turns"] > 0 or v["fade"] > 0),
            "any": flagged(lambda v: v["turns"] > 0 or v["fade"] > 0 or v["strays"] > 0 or v["walls"] > 0)}


def show(result: dict) -> str:
    return "; ".join(f"{judge} flags {len(r['videos'])} ({r['share_of_squared_error']:.0%} of the squared error): "
                     + ", ".join(r["videos"]) for judge, r in result.items() if judge != "videos")


def main() -> None:
    folder_benchmark(__doc__.splitlines()[0], "turn_judge", measure, show)


if __name__ == "__main__":
    cli(main)
