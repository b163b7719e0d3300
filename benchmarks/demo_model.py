"""The demo model's scores (docs/model-card.md): `vidgen eval` over every mode, both prompt splits, the
token-path-only adapter, the independent-images baseline, and drift over 64 and 256 autoregressive frames.

Each run is the same as one `vidgen eval` command (printed as it starts); a run whose folder already holds
`eval.json` from the same command (its `command.txt`) is read back, so an interrupted benchmark continues where
it stopped, and one made by another command is made again.

    python benchmarks/demo_model.py --token-adapter runs/adapter-token/adapter
    # writes benchmarks/results/demo_model.{json,md} and docs/images/demo_{metrics,drift}.png
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import cli, eval_command, machine, pyplot, timed_eval  # noqa: E402
from vidgen.errors import check  # noqa: E402
from vidgen.eval.scorer import score_video  # noqa: E402
from vidgen.shipped import ADAPTER, BASE  # noqa: E402
from vidgen.video import read_video  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
IMAGES = ROOT / "docs" / "images"
WINDOW = 16  # drift: scores of consecutive 16-frame windows


def runs(args) -> list[dict]:
    """name, adapter, mode, split, frames, prompts, videos per prompt."""
    p, k = args.num_prompts, args.videos_per_prompt
    out = []
    for split in ("train", "heldout"):
        out += [dict(name=f"autoregressive-{split}", adapter=args.adapter, mode="autoregressive", split=split),
                dict(name=f"joint-{split}", adapter=args.adapter, mode="joint", split=split),
                dict(name=f"token-only-{split}", adapter=args.token_adapter, mode="autoregressive", split=split),
                dict(name=f"independent-{split}", adapter=args.adapter, mode="independent", split=split)]
        # independent: the adapter's weights are not used, only its generation settings (the same as the others)
    for run in out:
        run.update(frames=16, prompts=p, per_prompt=k)
    out += [dict(name=f"drift-{f}", adapter=args.adapter, mode="autoregressive", split="train", frames=f,
                 prompts=args.drift_prompts, per_prompt=1) for f in args.drift]
    return [r for r in out if r["adapter"] is not None or r["mode"] == "independent"]


def generation(run: dict, args) -> dict:
    """`generate_folder`'s keywords for one row (in the order of its `vidgen eval` flags)."""
    return dict(mode=run["mode"], split=run["split"], num_prompts=run["prompts"], per_prompt=run["per_prompt"],
                frames=run["frames"], seed=args.seed)


def windows(folder: Path) -> list[dict]:
    """Mean scores of each consecutive WINDOW-frame slice over the videos in `folder` (drift)."""
    from vidgen.data.video_folder import read_captions

    per = []
    for path, caption in read_captions(folder):
        video = read_video(path)
        per.append([score_video(video[s:s + WINDOW], caption) for s in range(0, len(video) - WINDOW + 1, WINDOW)])
    out = []
    for w in range(min(len(p) for p in per)):
        scores = [p[w] for p in per]
        out.append({"start": w * WINDOW,
                    **{m: float(np.nanmean([getattr(s, m) for s in scores]))
                       for m in ("attributes_correct", "identity_consistency", "direction_accuracy")},
                    "trajectory_rmse": float(np.sqrt(np.nanmean([s.trajectory_rmse ** 2 for s in scores])))})
    return out


def run_all(args) -> dict:
    results = {}
    before = json.loads((RESULTS / "demo_model.json").read_text()) if args.keep else {}
    for run in runs(args):
        if args.only and run["name"] not in args.only:
            continue
        folder = Path(args.work) / run["name"]
        line = eval_command(args.model, run["adapter"], folder, **generation(run, args))
        if run["name"] in (args.keep or []):
            row = before["results"].get(run["name"], {})
            check(row.get("command") == line, "keep", run["name"],
                  "rows whose command is unchanged in benchmarks/results/demo_model.json")
            # a kept row names the benchmark command that measured it, however many times it was kept since
            results[run["name"]] = {**row, "kept_from": row.get("kept_from", before["meta"]["command"])}
            print(f"[{run['name']}] kept from the results before", flush=True)
            continue
        print(f"[{run['name']}] {line}", flush=True)
        report, seconds, _ = timed_eval(folder, args.model, run["adapter"], frechet=run["frames"] == 16,
                                        **generation(run, args))
        results[run["name"]] = {**run, "command": line, "summary": report.summary,
                                "generation_seconds": seconds}
        if run["name"].startswith("drift"):
            results[run["name"]]["windows"] = windows(folder)
        print(f"[{run['name']}] " + ", ".join(f"{k} {v:.3f}" for k, v in report.summary.items()
                                              if isinstance(v, float)), flush=True)
    return results


COLUMNS = [("attributes_correct", "attributes", "{:.1%}"), ("identity_consistency", "identity", "{:.1%}"),
           ("trajectory_rmse", "trajectory px", "{:.2f}"), ("direction_accuracy", "direction", "{:.1%}"),
           ("count_correct", "count", "{:.1%}"), ("flicker", "flicker", "{:.2f}"),
           ("frechet_distance", "FD", "{:.0f}")]


def markdown(results: dict, meta: dict) -> str:
    lines = [f"Machine: {meta['machine']}. Command: `{meta['command']}`.", "",
             "| run | frames | videos | " + " | ".join(c[1] for c in COLUMNS) + " |",
             "|---|---|---|" + "---|" * len(COLUMNS)]
    for name, r in results.items():
        s = r["summary"]
        cells = [fmt.format(s[key]) if s.get(key) is not None else "–" for key, _, fmt in COLUMNS]
        lines.append(f"| {name} | {r['frames']} | {s['videos']} | " + " | ".join(cells) + " |")
    lines += ["", "Each row is one `vidgen eval` command:", ""]
    lines += [f"- {name}: `{r['command']}`" + (f" (kept from `{r['kept_from']}`)" if "kept_from" in r else "")
              for name, r in results.items()]
    return "\n".join(lines) + "\n"


def plot(results: dict) -> None:
    plt = pyplot()

    kinds = ["autoregressive", "joint", "token-only", "independent"]
    metrics = [("attributes_correct", "attribute accuracy", 1), ("identity_consistency", "identity consistency", 1),
               ("direction_accuracy", "direction accuracy", 1), ("trajectory_rmse", "trajectory error (px RMS)", None)]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
    x = np.arange(len(kinds))
    for ax, (key, label, top) in zip(axes, metrics):
        for j, split in enumerate(("train", "heldout")):
            values = [results.get(f"{k}-{split}", {}).get("summary", {}).get(key, np.nan) for k in kinds]
            ax.bar(x + (j - 0.5) * 0.38, values, 0.38, label=f"{split} prompts")
        ax.set_xticks(x, kinds, rotation=20)
        ax.set_title(label)
        if top:
            ax.set_ylim(0, 1.02)
    axes[0].legend(loc="lower left", fontsize=8)
    fig.suptitle("Demo model, 16 frames at 64×64, default settings (vidgen eval)")
    fig.tight_layout()
    fig.savefig(IMAGES / "demo_metrics.png", dpi=110)

    fig, axes = plt.subplots(1, 3, figsize=(15, 3.4))
    for name in (n for n in results if n.startswith("drift-")):
        w = results[name]["windows"]
        starts = [v["start"] + WINDOW / 2 for v in w]
        axes[0].plot(starts, [v["attributes_correct"] for v in w], "o-", label=f"{name} attributes")
        axes[0].plot(starts, [v["identity_consistency"] for v in w], "s--", label=f"{name} identity")
        axes[1].plot(starts, [v["direction_accuracy"] for v in w], "o-", label=name)
        axes[2].plot(starts, [v["trajectory_rmse"] for v in w], "o-", label=name)
    for ax in axes[:2]:
        ax.set_ylim(0, 1.02)
    axes[1].set_ylabel("direction accuracy")
    axes[2].set_ylabel("trajectory error within the window (px)")
    for ax in axes:
        ax.set_xlabel("frame (centre of 16-frame window)")
        ax.legend(fontsize=7)
    fig.suptitle("Autoregressive drift: scores of consecutive 16-frame windows")
    fig.tight_layout()
    fig.savefig(IMAGES / "demo_drift.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(BASE.relative_to(ROOT)))
    parser.add_argument("--adapter", default=str(ADAPTER.relative_to(ROOT)))
    parser.add_argument("--token-adapter", help="a token-path-only adapter (vidgen train --no-spatial-path)")
    parser.add_argument("--work", default="runs/demo-eval")
    parser.add_argument("--num-prompts", type=int, default=12)
    parser.add_argument("--videos-per-prompt", type=int, default=2)
    parser.add_argument("--drift-prompts", type=int, default=4)
    parser.add_argument("--drift", type=lambda text: [int(f) for f in text.split(",")], default=[64, 256],
                        help="autoregressive video lengths for the drift runs (comma-separated)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=lambda text: text.split(","), help="take these rows (comma-separated "
                        "names) from the committed results as they are, e.g. token-only-train,independent-train "
                        "when only the shipped adapter's weights changed: the token-only rows use their own "
                        "adapter, the independent rows only the generation settings; their command must match")
    parser.add_argument("--only", type=lambda text: text.split(","), help="run just these rows (comma-separated "
                        "names, e.g. joint-train,drift-64) and write nothing: to run rows in parallel processes; "
                        "the run without it reads them back and writes the results")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    names = [run["name"] for run in runs(args)]
    for option in ("only", "keep"):
        check(set(getattr(args, option) or []) <= set(names), option, getattr(args, option), f"names among {names}")
    if not args.only:
        pyplot()  # before the measurements
    results = run_all(args)
    if args.only:
        return
    meta = {"machine": machine(),
            "command": "python benchmarks/demo_model.py " + " ".join(
                f"--{k.replace('_', '-')} {','.join(map(str, v)) if isinstance(v, list) else v}"
                for k, v in vars(args).items() if v is not None and k != "only")}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "demo_model.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    (RESULTS / "demo_model.md").write_text(markdown(results, meta))
    plot(results)
    print((RESULTS / "demo_model.md").read_text())


if __name__ == "__main__":
    cli(main)
