"""Which redraw keeps a rejected frame's objects: the same strength again, or a later start? Generates the
two-object videos of `vidgen eval`'s train prompts at a seed with the adapter's defaults and no redraw; at
every frame the judge rejects (`redraw.jump` > 0), draws it again TRIES times at each of STRENGTHS from the same
start (noise seeded by video and frame) and records each draw's kept share (`redraw.kept_share`; ≥ KEEP is
kept). The video itself goes on from the first draw, so every strength sees the same frames.

    python benchmarks/redraw_strengths.py --seed 3 --num-prompts 48 --strengths 0.75,0.625,0.5 --tries 2
    # writes benchmarks/results/redraw_strengths.json (--name NAME: NAME.json)
"""

import argparse
import json
import os
import zlib
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

import vidgen.sampling as sampling  # noqa: E402
from vidgen.eval.evaluate import eval_captions, video_seed  # noqa: E402
from vidgen.pipeline import VideoPipeline  # noqa: E402
from vidgen.redraw import KEEP, kept_share  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/shapes-base")
    parser.add_argument("--adapter", default="models/shapes-adapter")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--num-prompts", type=int, default=24)
    parser.add_argument("--strengths", default="0.75,0.625,0.5")
    parser.add_argument("--tries", type=int, default=2)
    parser.add_argument("--name", default="redraw_strengths")
    args = parser.parse_args()
    strengths = [float(s) for s in args.strengths.split(",")]
    pipe = VideoPipeline.from_pretrained(args.model, args.adapter)
    captions = eval_captions("train", args.num_prompts, args.seed)  # vidgen eval's prompts
    real, state, rows = sampling.sample_frame, {}, []

    @torch.no_grad()
    def sample_frame(denoiser, scheduler, shape, n, guess, strength=1.0, generator=None, device="cpu",
                     dtype=torch.float32, later=0):
        x = real(denoiser, scheduler, shape, n, guess, strength, generator, device, dtype, later)
        if shape[0] != 1 or guess is None:  # frame 0's candidates, or no start to judge against
            return x
        state["frame"] += 1
        start = pipe.bind(guess, state["text"])[0, :-1]
        first = kept_share(start, pipe.bind(x, state["text"])[0, :-1])
        if first >= KEEP:
            return x
        noise = torch.Generator().manual_seed(zlib.crc32(f"{state['video']}/{state['frame']}".encode()))
        row = {"video": state["video"], "frame": state["frame"], "first": first}
        for s in strengths:
            row[str(s)] = []
            for _ in range(args.tries):
                scheduler.set_timesteps(n, device=device)
                y = real(denoiser, scheduler, shape, n, guess, s, noise, device, dtype)
                row[str(s)].append(kept_share(start, pipe.bind(y, state["text"])[0, :-1]))
        rows.append(row)
        scheduler.set_timesteps(n, device=device)
        return x

    sampling.sample_frame = sample_frame
    for p, caption in enumerate(captions):
        if " and a " not in caption:
            continue
        for k in range(2):
            state.update(text=pipe.encode_prompt(caption), video=f"gen_{p:04d}_{k:02d}", frame=0)
            pipe(caption, redraw=0, generator=torch.Generator().manual_seed(video_seed(args.seed, p, k)))
    summary = {str(s): {"kept_by_first_redraw": sum(r[str(s)][0] >= KEEP for r in rows),
                        "kept_by_any": sum(max(r[str(s)]) >= KEEP for r in rows)} for s in strengths}
    out = {"command": "python benchmarks/redraw_strengths.py " + " ".join(
               f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
           "rejected_frames": len(rows), "summary": summary, "frames": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(summary, indent=1), f"of {len(rows)} rejected frames")


if __name__ == "__main__":
    main()
