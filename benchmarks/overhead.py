"""What the adapter costs: time of f frames in each mode against f independent images, and memory of long videos.

Timing: one small SD model (UNet (64, 128), 16×16 latents), batch 1, guidance on (w = 5), DDIM; vidgen's
autoregressive and joint modes against f images made one by one with the plain diffusers
`StableDiffusionPipeline` at the same size, steps and scheduler. Runs are interleaved and medians reported,
because these machines are shared and noisy: compare the ratios, not the seconds.

Memory: peak resident memory of a fresh process that streams 16 and then 1,000 autoregressive frames to an mp4.

    python benchmarks/overhead.py            # writes benchmarks/results/overhead.{json,md,png}
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def build_model(folder: Path) -> Path:
    from vidgen.tiny import build_tiny_sd
    return build_tiny_sd(folder, seed=0, block_out_channels=(64, 128), cross_attention_dim=64)


def time_modes(model: Path, frames: int, steps: int, repeats: int) -> dict:
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    from vidgen import VideoPipeline

    prompt, size = "a red circle moving right", 32
    sd = StableDiffusionPipeline.from_pretrained(model)
    sd.scheduler = DDIMScheduler.from_config(sd.scheduler.config)
    sd.set_progress_bar_config(disable=True)
    ours = VideoPipeline.from_pretrained(model)

    def images():
        for i in range(frames):
            sd(prompt, height=size, width=size, num_inference_steps=steps, guidance_scale=5.0,
               generator=torch.Generator().manual_seed(i), output_type="np")

    def video(mode):
        return lambda: ours(prompt, num_frames=frames, height=size, width=size, num_inference_steps=steps,
                            guidance_scale=5.0, mode=mode, scheduler="ddim", generator=torch.Generator().manual_seed(0))

    runs = {"independent images (diffusers)": images, "autoregressive": video("autoregressive"),
            "joint": video("joint")}
    times = {name: [] for name in runs}
    for name, fn in runs.items():  # warm-up
        fn()
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["independent images (diffusers)"])
    return {name: {"median_s": statistics.median(t), "ratio": statistics.median(t) / base, "runs_s": t}
            for name, t in times.items()}


CHILD = """
import os, sys, resource, torch
from vidgen import VideoPipeline
from vidgen.video import VideoWriter
pipe = VideoPipeline.from_pretrained(sys.argv[1])
rss = []
page = os.sysconf("SC_PAGE_SIZE")
with VideoWriter(sys.argv[3], fps=8) as writer:
    for i, frame in enumerate(pipe.stream("a red circle moving right", num_frames=int(sys.argv[2]), height=32,
                                          width=32, num_inference_steps=2, generator=torch.Generator().manual_seed(0))):
        writer.write(frame)
        if i % 50 == 0:
            rss.append(int(open("/proc/self/statm").read().split()[1]) * page / 2**20)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, rss)
"""


def peak_memory(model: Path, frames: int, out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    result = subprocess.run([sys.executable, "-c", CHILD, str(model), str(frames), str(out)], capture_output=True,
                            text=True, env=env, check=True)
    peak, trace = result.stdout.strip().split(" ", 1)
    return {"frames": frames, "peak_rss_mib": float(peak), "rss_every_50_frames_mib": json.loads(trace)}


def plot(result: dict, path: Path) -> None:
    """Bars of the time ratios and the resident memory while 1,000 frames stream to disk."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    names = list(result["timing"])
    ratios = [result["timing"][n]["ratio"] for n in names]
    left.bar(range(len(names)), ratios, color=["#999999", "#1f77b4", "#ff7f0e"])
    left.axhline(1.10, color="k", ls="--", lw=1, label="target for autoregressive: 1.10×")
    left.set_xticks(range(len(names)), [n.replace(" (", "\n(") for n in names], fontsize=8)
    left.set_ylabel("time / time of independent images")
    left.set_title(f"{result['settings']['frames']} frames, {result['settings']['steps']} DDIM steps, guidance on")
    left.legend(fontsize=8, loc="lower right")
    for m in result["memory"]:
        trace = m["rss_every_50_frames_mib"]
        right.plot([50 * i for i in range(len(trace))], trace, marker="o", ms=3, label=f"{m['frames']} frames")
    right.set_ylim(0, max(max(m["rss_every_50_frames_mib"]) for m in result["memory"]) * 1.2)
    right.set_xlabel("frames streamed to mp4")
    right.set_ylabel("resident memory (MiB)")
    right.set_title("autoregressive streaming: memory is flat")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--long", type=int, default=1000)
    parser.add_argument("--plot-only", action="store_true", help="redraw the plot from the committed results")
    args = parser.parse_args()
    if args.plot_only:
        plot(json.loads((RESULTS / "overhead.json").read_text()), RESULTS / "overhead.png")
        return
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(Path(tmp) / "sd")
        timing = time_modes(model, args.frames, args.steps, args.repeats)
        memory = [peak_memory(model, n, Path(tmp) / f"{n}.mp4") for n in (16, args.long)]
    result = {"command": "python benchmarks/overhead.py " + " ".join(sys.argv[1:]),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or 'cpu'}, "
                         f"torch {torch.__version__}, {torch.get_num_threads()} threads",
              "settings": vars(args), "timing": timing, "memory": memory}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "overhead.json").write_text(json.dumps(result, indent=2))
    lines = ["# Overhead of the adapter\n", f"Command: `{result['command']}`  ", f"Machine: {result['machine']}\n",
             f"{args.frames} frames (or images), {args.steps} DDIM steps, guidance 5, 32×32 px, batch 1; "
             f"medians of {args.repeats} interleaved runs.\n",
             "| run | median (s) | ratio to independent images |", "|---|---|---|"]
    lines += [f"| {name} | {t['median_s']:.2f} | {t['ratio']:.2f}× |" for name, t in timing.items()]
    lines += ["", "| autoregressive frames streamed to mp4 | peak RSS (MiB) |", "|---|---|"]
    lines += [f"| {m['frames']} | {m['peak_rss_mib']:.0f} |" for m in memory]
    (RESULTS / "overhead.md").write_text("\n".join(lines) + "\n")
    plot(result, RESULTS / "overhead.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
