"""Quality against time for sampler settings of the demo model (16 autoregressive frames at 64×64): for each
scheduler:steps[:guidance] setting, the same prompts and seeds through `vidgen eval`, and the generation time per video
measured in the same process, side by side (ratios to the first setting), so the default can be chosen on both.

    python benchmarks/sampler_settings.py --settings ddim:25,dpm++:15,dpm++:10,dpm++:8
    # writes benchmarks/results/sampler_settings.{json,md} and docs/images/sampler_settings.png

Run it with nothing else running: two torch processes on 2 cores slow each other several-fold.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

from common import cli, machine, pyplot, timed_eval  # noqa: E402
from vidgen.pipeline import GenerationConfig  # noqa: E402
from vidgen.shipped import ADAPTER, BASE  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KEYS = [("attributes_correct", "attributes", "{:.1%}"), ("identity_consistency", "identity", "{:.1%}"),
        ("trajectory_rmse", "trajectory px", "{:.2f}"), ("direction_accuracy", "direction", "{:.1%}"),
        ("flicker", "flicker", "{:.2f}")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="ddim:25,dpm++:15,dpm++:10,dpm++:8")
    parser.add_argument("--model", default=str(BASE.relative_to(ROOT)))
    parser.add_argument("--adapter", default=str(ADAPTER.relative_to(ROOT)))
    parser.add_argument("--work", default="runs/sampler-settings")
    parser.add_argument("--num-prompts", type=int, default=4)
    parser.add_argument("--videos-per-prompt", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--name", default="sampler_settings", help="results/NAME.{json,md}, docs/images/NAME.png")
    args = parser.parse_args()
    pyplot()  # before the measurements
    torch.set_num_threads(os.cpu_count() or 1)
    results = {}
    for setting in args.settings.split(","):
        scheduler, steps, *guidance = setting.split(":")
        guidance = float(guidance[0]) if guidance else GenerationConfig.guidance_scale
        folder = Path(args.work) / setting.replace(":", "-")
        report, seconds, line = timed_eval(folder, args.model, args.adapter, frechet=False, reuse=False,
                                           num_prompts=args.num_prompts, per_prompt=args.videos_per_prompt,
                                           seed=args.seed, scheduler=scheduler, num_inference_steps=int(steps),
                                           guidance_scale=guidance)
        seconds /= args.num_prompts * args.videos_per_prompt
        summary = report.summary
        results[setting] = {"seconds_per_video": seconds, "summary": summary,
                            "command": line}
        print(setting, f"{seconds:.2f} s/video", {k: round(summary[k], 3) for k, _, _ in KEYS}, flush=True)
    first = next(iter(results.values()))["seconds_per_video"]
    meta = {"machine": machine(),
            "command": "python benchmarks/sampler_settings.py " + " ".join(
                f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items())}
    lines = [f"Machine: {meta['machine']}. Command: `{meta['command']}`.", "",
             "| setting | s / video (generation) | time vs first | " + " | ".join(k[1] for k in KEYS) + " |",
             "|---|---|---|" + "---|" * len(KEYS)]
    for setting, r in results.items():
        cells = [fmt.format(r["summary"][key]) for key, _, fmt in KEYS]
        lines.append(f"| {setting} | {r['seconds_per_video']:.2f} | {r['seconds_per_video'] / first:.2f} | "
                     + " | ".join(cells) + " |")
    results_dir = ROOT / "benchmarks" / "results"
    (results_dir / f"{args.name}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    (results_dir / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    plot(results, ROOT / "docs" / "images" / f"{args.name}.png")
    print("\n".join(lines))


def plot(results: dict, path: Path) -> None:
    plt = pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    seconds = [r["seconds_per_video"] for r in results.values()]
    for ax, (key, label) in zip(axes, [("attributes_correct", "attribute accuracy"),
                                       ("trajectory_rmse", "trajectory error (px RMS)")]):
        ax.plot(seconds, [r["summary"][key] for r in results.values()], "o")
        for s, (name, r) in zip(seconds, results.items()):
            ax.annotate(name, (s, r["summary"][key]), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel("generation time per 16-frame video (s)")
        ax.set_title(label)
    fig.suptitle("Demo model: sampler settings, quality against time (autoregressive, train prompts)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    cli(main)
