"""`vidgen generate | train | tiny-model`. Flags are generated from the configuration dataclasses; the CLI has
no logic of its own. Bad input prints one line (what, the value given, what is accepted) and exits 2."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import types
import typing
from pathlib import Path

from .errors import VidgenError

# generate: flag → GenerationConfig field, where the flag reads better than the field name
GENERATE_FLAGS = {"frames": "num_frames", "steps": "num_inference_steps", "guidance": "guidance_scale",
                  "context_guidance": "context_guidance_scale", "later_guidance": "later_guidance_scale"}


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not usage + message
        raise VidgenError(f"{self.prog}: {message}")


def add_config_flags(parser: argparse.ArgumentParser, cls, skip=(), rename: dict[str, str] | None = None,
                     given_only: bool = False):
    """One flag per dataclass field (`--field-name`, or the name `rename` gives it), typed from its annotation.
    With `given_only`, a flag not given leaves no attribute (the model's own defaults then apply)."""
    by_field = {v: k for k, v in (rename or {}).items()}
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        kind = hints[field.name]
        if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        flag = "--" + by_field.get(field.name, field.name).replace("_", "-")
        default = field.default if field.default is not dataclasses.MISSING else None
        comment = f"(default: {'the adapter’s generation_config.json, else ' if given_only else ''}{default})"
        default = argparse.SUPPRESS if given_only else default
        if kind is bool:
            parser.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction, default=default,
                                help=comment)
        else:
            parser.add_argument(flag, dest=field.name, type=kind, default=default,
                                required=field.default is dataclasses.MISSING, help=comment)


def given(args: argparse.Namespace, cls) -> dict:
    """The fields of `cls` that `args` holds (with `given_only` flags: the ones given on the command line)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}


def config_from(args: argparse.Namespace, cls):
    return cls(**given(args, cls))


def build_parser(preset: str | None = None) -> Parser:
    """With `preset`, `vidgen train`'s flags default to TrainConfig.PRESETS[preset] where it sets them."""
    from .pipeline import GenerationConfig
    from .training import TrainConfig

    parser = Parser(prog="vidgen", description="Text-to-video with a frozen text-to-image model and an adapter.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    gen = sub.add_parser("generate", help="generate a video from a prompt")
    gen.add_argument("prompt")
    gen.add_argument("--model", help="diffusers Stable Diffusion folder (default: the shipped demo model)")
    gen.add_argument("--adapter", help="adapter folder (default: the shipped adapter without --model, else an "
                                       "untrained adapter)")
    gen.add_argument("--out", required=True, help="output: .mp4, .webm, .gif, or a directory ending in '/'")
    gen.add_argument("--fps", type=float, default=8.0)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--image", help="first frame (image-to-video, autoregressive mode)")
    gen.add_argument("--video", help="a clip to continue (autoregressive mode)")
    gen.add_argument("--device", default="cpu")
    add_config_flags(gen, GenerationConfig, rename=GENERATE_FLAGS, given_only=True)

    tr = sub.add_parser("train", help="train an adapter on a folder of captioned videos")
    add_config_flags(tr, TrainConfig)
    tr.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    tr.add_argument("--preset", choices=sorted(TrainConfig.PRESETS), help="start from a named set of defaults "
                    "(demo: the shipped demo adapter's recipe, docs/model-card.md); flags given explicitly win")
    if preset is not None:
        tr.set_defaults(**TrainConfig.PRESETS[preset])

    data = sub.add_parser("data", help="make datasets").add_subparsers(dest="dataset", required=True,
                                                                    parser_class=Parser)
    world = data.add_parser("shapes", help="write shapes-world videos and captions.jsonl (a video folder)")
    world.add_argument("--out", required=True)
    world.add_argument("--videos", type=int, default=100)
    world.add_argument("--frames", type=int, default=16)
    world.add_argument("--size", type=int, default=64)
    world.add_argument("--seed", type=int, default=0)
    world.add_argument("--split", default="train", help="train | heldout")
    world.add_argument("--crossing", type=float, default=0.0, help="share of two-object videos whose objects start "
                       "apart and then cross paths (default 0: kept apart where possible)")

    ev = sub.add_parser("eval", help="score shapes-world videos against their captions")
    ev.add_argument("--videos", help="a video folder with captions.jsonl to score (with --model: the folder to "
                                     "write generated videos to, default vidgen-eval-PROMPTS-seedSEED)")
    ev.add_argument("--model", help="generate with this model, then score")
    ev.add_argument("--adapter", help="adapter folder (with --mode independent only its generation settings, "
                                      "from its generation_config.json, are used)")
    ev.add_argument("--prompts", default="train", help="train | heldout: the split the prompts are drawn from")
    ev.add_argument("--num-prompts", type=int, default=8)
    ev.add_argument("--videos-per-prompt", type=int, default=2)
    ev.add_argument("--frames", type=int, default=16)
    ev.add_argument("--mode", default="autoregressive",
                    help="autoregressive | joint | independent (baseline: f images from the base model alone)")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--report", help="JSON report path (default: VIDEOS/eval.json)")
    ev.add_argument("--no-fd", action="store_true", help="skip the Fréchet distance")
    add_config_flags(ev, GenerationConfig, skip=("num_frames", "mode"), rename=GENERATE_FLAGS, given_only=True)

    tiny = sub.add_parser("tiny-model", help="build a tiny random Stable Diffusion folder (offline)")
    tiny.add_argument("--out", required=True)
    tiny.add_argument("--seed", type=int, default=0)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; `vidgen train --preset NAME` is parsed again with the preset's values as the defaults."""
    args = build_parser().parse_args(argv)
    if getattr(args, "preset", None) is not None:
        args = build_parser(args.preset).parse_args(argv)
    return args


def generate(args) -> None:
    import torch

    from .pipeline import GenerationConfig, VideoPipeline, check_prompt
    from .video import check_output_path

    check_prompt(args.prompt)
    options = given(args, GenerationConfig)  # the flags given; the rest come from the adapter or GenerationConfig
    GenerationConfig(**options).validate(num_train_timesteps=sys.maxsize)  # fail fast, before loading
    check_output_path(args.out)
    if args.image is not None and not os.path.isfile(args.image):
        raise VidgenError(f"--image: got {args.image!r}, which is not a file; expected an image file")
    if args.model is None:
        from .shipped import unknown_words_note

        if note := unknown_words_note(args.prompt):
            print(f"vidgen: note: {note}", file=sys.stderr)
    pipe = VideoPipeline.from_pretrained(args.model, adapter=args.adapter, device=args.device)
    generator = torch.Generator().manual_seed(args.seed)
    video = pipe(args.prompt, image=args.image, video=args.video, generator=generator, output=args.out,
                 fps=args.fps, **options)
    print(f"wrote {len(video.frames)} frames to {args.out}")


def evaluate_command(args) -> None:
    from .eval.evaluate import evaluate_folder, generate_folder
    from .pipeline import GenerationConfig

    if args.model is not None:
        args.videos = args.videos or f"vidgen-eval-{args.prompts}-seed{args.seed}"
        options = {k: v for k, v in given(args, GenerationConfig).items() if k != "mode"}  # eval has its own
        generate_folder(args.model, args.adapter, args.videos, split=args.prompts, num_prompts=args.num_prompts,
                        per_prompt=args.videos_per_prompt, frames=args.frames, mode=args.mode, seed=args.seed,
                        **options)
    elif args.videos is None:
        raise VidgenError("--videos: got nothing; expected a video folder with captions.jsonl (or --model)")
    report = evaluate_folder(args.videos, frechet=not args.no_fd)
    print(report.table())
    for skip in report.skipped:
        print(f"skipped {skip['video']}: {skip['reason']}")
    path = args.report or str(Path(args.videos) / "eval.json")
    report.write(path)
    print(f"report written to {path}")


def main(argv: list[str] | None = None) -> int:
    import transformers

    transformers.utils.logging.set_verbosity_error()  # e.g. a harmless note that torchvision is not installed
    try:
        args = parse_args(argv)
        if args.command == "generate":
            generate(args)
        elif args.command == "train":
            from .training import TrainConfig, train

            print(f"adapter written to {train(config_from(args, TrainConfig), resume=args.resume)}")
        elif args.command == "data":
            from .data.shapes import write_dataset

            out = write_dataset(args.out, args.videos, args.frames, args.size, args.seed, args.split,
                                crossing=args.crossing)
            print(f"wrote {args.videos} {args.split} videos and captions.jsonl to {out}")
        elif args.command == "eval":
            evaluate_command(args)
        elif args.command == "tiny-model":
            from .tiny import build_tiny_sd

            print(f"tiny model written to {build_tiny_sd(args.out, seed=args.seed)}")
    except VidgenError as exc:
        print(f"vidgen: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vidgen: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
