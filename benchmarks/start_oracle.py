"""How far could the carried start take motion? Each frame after the first starts from the previous frame warped by
each object's true displacement (an oracle: the object's place is detected in the previous decoded frame, and its
step is read off the ideal path, with bounces, from where it was first found), then runs the last `strength` of
the schedule with the adapter, as the shipped `start carry` does with the adapter's own field. Beside it, the
adapter's own field (`carry`) with the same prompts, seeds and strengths. Scored by `vidgen eval`'s scorer.

    python benchmarks/start_oracle.py --strengths 0.75,0.3
    # writes benchmarks/results/start_oracle.json

What it separates: the oracle's direction is the ceiling of the carried start with a perfect field (what the
denoiser after the warp keeps of the motion), and its trajectory error what is left when the field is perfect
(frame 0: a missing object scores the scorer's full miss distance in every frame).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import cli, machine, pyplot, write_results

from vidgen.data.shapes import BACKGROUNDS, parse_caption
from vidgen.errors import check
from vidgen.eval.evaluate import eval_captions, summarize, video_seed
from vidgen.eval.scorer import colour_masks, detect, expected_path, score_video
from vidgen.fields import warp
from vidgen.pipeline import VideoPipeline
from vidgen.sampling import Start

LABELS = {"oracle-layered": "true steps, each object's last full look composited",
          "oracle-image": "true steps, image-space warp", "oracle-latent": "true steps, latent warp",
          "carry": "the adapter's own field, latent warp"}
KEYS = ("attributes_correct", "identity_consistency", "trajectory_rmse", "trajectory_rmse_found",
        "direction_accuracy", "found")


def oracle_start(pipe: VideoPipeline, caption: str, num_frames: int, space: str = "latent"):
    """start(i, history): x^{i-1} warped by each detected object's step along its ideal path, in latent px
    (`space` latent: bicubic on the latents) or in image px (`space` image: the decoded frame warped bilinearly
    by the step, then encoded again, so that a whole-pixel step moves the object without blurring it)."""
    scene = parse_caption(caption)
    canvas, scale = pipe.native_size, pipe.vae_scale_factor
    background = np.array(BACKGROUNDS[scene.background], np.float32)
    paths = {}

    def start(i, history):
        if i == 0:
            return None
        previous = history[i - 1]
        image = pipe.decode(previous)[0]
        masks = colour_masks(image[None], background, [o.colour for o in scene.objects])
        flow = torch.zeros(1, 2, *(image.shape[:2] if space == "image" else previous.shape[-2:]))
        for obj in scene.objects:
            found = detect(masks[obj.colour][0], canvas)
            if not found.present:
                continue
            if obj.colour not in paths:  # the ideal path from where the object was first found
                paths[obj.colour] = expected_path(obj, found.centre, canvas, num_frames)
            step = paths[obj.colour][i] - paths[obj.colour][i - 1]
            place = torch.from_numpy(masks[obj.colour][0]).float()[None, None]
            if space == "image":  # the object and where it goes: its mask grown by the step and a pixel
                grow = 2 * int(np.ceil(np.abs(step).max())) + 3
                place = F.max_pool2d((place > 0.02).float(), grow, 1, grow // 2)[0, 0] > 0
            else:
                step = step / scale
                place = F.avg_pool2d(place, scale) > 0.02
                place = F.max_pool2d(place.float(), 3, 1, 1)[0, 0] > 0  # one latent pixel of margin
            flow[0, 0][place], flow[0, 1][place] = -float(step[0]), -float(step[1])  # warp reads p + flow
        if space == "latent":
            return warp(previous, flow.to(previous), "bicubic")
        pixels = torch.from_numpy(image).permute(2, 0, 1)[None].float()
        moved = warp(pixels, flow, "bilinear").round().clamp(0, 255).to(torch.uint8)
        return pipe.encode_frames(moved[0].permute(1, 2, 0).numpy()[None])

    return start


FULL = 0.9  # an object whose visible mass is at least this share of the most it ever showed is in full view


def layered_start(pipe: VideoPipeline, caption: str, num_frames: int):
    """start(i, history): the image-space oracle with layers. Each object keeps its last full look (its pixels
    and soft mask from the latest frame that showed at least FULL of its largest mass), moved by its true step
    every frame; the frame is drawn again on the background from those looks, objects now partly hidden first,
    so that one that passes behind another comes out whole where its path puts it. What a layered carry (each
    object's last full look warped by its own displacement, composited) would give with a perfect field and
    perfect layers."""
    scene = parse_caption(caption)
    canvas = pipe.native_size
    background = np.array(BACKGROUNDS[scene.background], np.float32)
    paths, looks, most = {}, {}, {}

    def start(i, history):
        if i == 0:
            return None
        image = pipe.decode(history[i - 1])[0].astype(np.float32)
        masks = colour_masks(image[None], background, [o.colour for o in scene.objects])
        layers = []
        for obj in scene.objects:
            mask = masks[obj.colour][0]
            found = detect(mask, canvas)
            if obj.colour not in paths and found.present:
                paths[obj.colour] = expected_path(obj, found.centre, canvas, num_frames)
            if obj.colour not in paths:
                continue
            mass = float(mask.sum())
            if mass >= FULL * most.get(obj.colour, 0.0):  # in full view: its look now
                most[obj.colour] = max(mass, most.get(obj.colour, 0.0))
                looks[obj.colour] = np.concatenate([image, mask[..., None]], axis=-1)
            step = paths[obj.colour][i] - paths[obj.colour][i - 1]
            look = torch.from_numpy(looks[obj.colour]).permute(2, 0, 1)[None]
            flow = torch.tensor([-float(step[0]), -float(step[1])]).view(1, 2, 1, 1).expand(1, 2, *image.shape[:2])
            looks[obj.colour] = warp(look, flow.contiguous(), "bilinear")[0].permute(1, 2, 0).numpy()
            layers.append((mass >= FULL * most[obj.colour], looks[obj.colour]))
        out = np.broadcast_to(background, image.shape).copy()
        for _, look in sorted(layers, key=lambda layer: layer[0]):  # partly hidden first, behind
            alpha = look[..., 3:]
            out = out * (1 - alpha) + look[..., :3] * alpha
        return pipe.encode_frames(np.clip(out.round(), 0, 255).astype(np.uint8)[None])

    return start


def crossing_videos(folder: Path, eval_seed: int) -> tuple[list[str], list[int]]:
    """The captions and generator seeds (`evaluate.generate_folder`'s) of a scored folder's two-object videos
    whose caption paths from frame 0 cross (`crossing.crosses`)."""
    from crossing import crosses

    from vidgen.data.video_folder import read_captions
    from vidgen.video import read_video

    captions, seeds = [], []
    for path, caption in read_captions(folder):
        frames = read_video(path)
        if crosses(frames[:1], caption, len(frames)):
            p, k = (int(part) for part in Path(path).stem.split("_")[1:])
            captions.append(caption)
            seeds.append(video_seed(eval_seed, p, k))
    return captions, seeds


def video(pipe: VideoPipeline, caption: str, seed: int, field: str, strength: float, num_frames: int) -> dict:
    guess = layered_start(pipe, caption, num_frames) if field == "oracle-layered" else \
        oracle_start(pipe, caption, num_frames, field.split("-")[1]) if field.startswith("oracle") else None
    frames = np.stack(list(pipe.stream(caption, num_frames=num_frames, start=Start.CARRY.value, strength=strength,
                                       guess=guess, generator=torch.Generator().manual_seed(seed))))
    return asdict(score_video(frames, caption))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="base model folder (default: the shipped one)")
    parser.add_argument("--adapter", help="adapter folder (default: the shipped one)")
    parser.add_argument("--strengths", default="0.75,0.3")
    parser.add_argument("--num-prompts", type=int, default=24)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--fields", default="oracle-latent,carry",
                        help=f"starts to compare, among {', '.join(LABELS)} (carry: the adapter's own field)")
    parser.add_argument("--name", default="start_oracle", help="results file name")
    parser.add_argument("--videos", type=Path, help="instead of --num-prompts captions: the two-object videos of "
                        "this `vidgen eval --videos` folder whose caption paths cross, drawn again from their seeds")
    parser.add_argument("--eval-seed", type=int, default=1, help="the --seed that eval folder was made with")
    args = parser.parse_args()
    pyplot()  # before the measurements
    strengths = [float(s) for s in args.strengths.split(",")]
    check(set(args.fields.split(",")) <= set(LABELS), "fields", args.fields,
          f"a comma-separated list of {', '.join(LABELS)}")
    check(all(0 < s <= 1 for s in strengths), "strengths", args.strengths, "comma-separated numbers in (0, 1]")
    pipe = VideoPipeline.from_pretrained(args.model, args.adapter)
    check(pipe.denoiser.adapter.config.get("spatial_flow", False), "adapter", args.adapter,
          "an adapter with spatial_flow (its own field is the comparison)")
    if args.videos is None:
        captions = eval_captions("train", args.num_prompts, 1)
        seeds = [1000 + k for k in range(len(captions))]
    else:
        captions, seeds = crossing_videos(args.videos, args.eval_seed)
    results = {}
    for strength in strengths:
        for field in args.fields.split(","):
            scores = [video(pipe, c, seed, field, strength, args.frames) for c, seed in zip(captions, seeds)]
            summary = summarize(scores)
            missed = [c for c, s in zip(captions, scores) if s["found"] < 1]
            results[f"{field}:{strength}"] = {**{k: summary[k] for k in KEYS}, "videos": len(scores),
                                              "videos_missing_an_object_somewhere": len(missed),
                                              "per_video": [[round(sc[k], 3) for k in KEYS] for sc in scores]}
            print(field, strength, {k: round(summary[k], 3) for k in KEYS}, "videos missing an object somewhere:",
                  len(missed), flush=True)
    write_results(args.name, {"machine": machine(), "results": results})
    if len(strengths) > 1:
        plot(results, args.name)


def plot(results: dict, name: str) -> None:
    """docs/images/NAME.png: direction and trajectory error over found frames against strength, per start."""
    plt = pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for field in dict.fromkeys(key.split(":")[0] for key in results):
        rows = sorted((float(key.split(":")[1]), row) for key, row in results.items() if key.startswith(field + ":"))
        strengths = [s for s, _ in rows]
        label = LABELS.get(field, field)
        axes[0].plot(strengths, [r["direction_accuracy"] for _, r in rows], "o-", label=label)
        axes[1].plot(strengths, [r["trajectory_rmse_found"] for _, r in rows], "o-", label=label)
    axes[0].set_ylabel("direction accuracy")
    axes[1].set_ylabel("trajectory error over found frames (px RMS)")
    for ax in axes:
        ax.set_xlabel("strength (share of the schedule a carried frame runs)")
        ax.legend(fontsize=8)
    fig.suptitle("Carried start: the adapter's field against each object's true step, warped in latent or image space")
    fig.tight_layout()
    fig.savefig(Path(__file__).resolve().parents[1] / "docs" / "images" / f"{name}.png", dpi=110)


if __name__ == "__main__":
    cli(main)
