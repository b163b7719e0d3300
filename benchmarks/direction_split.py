"""Direction accuracy split by what the caption asks of each object (fast, slow, standing still) and by the
number of objects in the video, over scored folders (their eval.json; a folder scored before the scorer kept the
split is scored again). The overall figure mixes speeds that behave differently; this shows which one lags.
"moving, before a bounce" and "moving, after a bounce" split the moving objects' pairs by whether the caption's
motion then runs forwards or, after a bounce off a wall, backwards (what a model that does not turn misses).
Each folder's own eval.json summary (attributes, identity, trajectory, direction) is kept beside it under "all".

    python benchmarks/direction_split.py runs/sweep/fl-carry05 runs/nb-eval/autoregressive-train
    # writes benchmarks/results/direction_split.json; --plot PNG --labels A,B draws before/after a bounce
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from common import cli, folder_benchmark, pyplot
from vidgen.data.video_folder import read_captions
from vidgen.errors import VidgenError
from vidgen.eval.scorer import parse_caption, score_video
from vidgen.video import read_video


def report(folder: Path) -> dict:
    """A scored folder's eval.json."""
    path = folder / "eval.json"
    if not path.is_file():
        raise VidgenError(f"folder: got {str(folder)!r}, which has no eval.json; expected a folder scored by "
                          "vidgen eval")
    return json.loads(path.read_text())


def rows(folder: Path, videos: list[dict]) -> list[tuple[int, list[dict]]]:
    """(objects in the caption, per-object direction hits) for each video of a scored folder (`videos`: its
    eval.json's)."""
    if all("reversed_pairs" in o for v in videos for o in v.get("direction_by_object", [{}])):
        return [(len(parse_caption(v["caption"]).objects), v["direction_by_object"]) for v in videos]
    return [(len(parse_caption(caption).objects), score_video(read_video(path), caption).details[
        "direction_by_object"]) for path, caption in read_captions(folder)]


def by_motion(rows) -> dict:
    """Direction accuracy pooled over frame pairs per "N object(s), motion", from (object count, per-object
    hits) rows."""
    hits, pairs = defaultdict(int), defaultdict(int)
    for count, objects in rows:
        for obj in objects:
            key = f"{count} object{'s' if count > 1 else ''}, {obj['motion']}"
            hits[key] += obj["hits"]
            pairs[key] += obj["pairs"]
            if obj["motion"] != "still":
                for part, h, n in (("after", obj["reversed_hits"], obj["reversed_pairs"]),
                                   ("before", obj["hits"] - obj["reversed_hits"], obj["pairs"] - obj["reversed_pairs"])):
                    hits[f"moving, {part} a bounce"] += h
                    pairs[f"moving, {part} a bounce"] += n
    return {k: {"accuracy": round(hits[k] / pairs[k], 3) if pairs[k] else None, "pairs": pairs[k]}
            for k in sorted(pairs)}


SUMMARY = ("videos", "attributes_correct", "identity_consistency", "trajectory_rmse", "trajectory_rmse_found",
           "direction_accuracy")


def split(folder: Path) -> dict:
    scored = report(folder)
    return {"all": {k: scored["summary"][k] for k in SUMMARY if k in scored["summary"]},
            **by_motion(rows(folder, scored["videos"]))}


def plot_bounces(results: dict, path: Path) -> None:
    """Bars: each folder's direction accuracy over moving pairs before and after a bounce."""
    plt = pyplot()

    labels = list(results)
    fig, ax = plt.subplots(figsize=(1.6 * len(labels) + 2, 3.6))
    for k, (part, colour) in enumerate((("before", "tab:blue"), ("after", "tab:orange"))):
        values = [results[label].get(f"moving, {part} a bounce", {}).get("accuracy") or 0 for label in labels]
        bars = ax.bar([i + (k - 0.5) * 0.38 for i in range(len(labels))], values, 0.38, color=colour,
                      label=f"{part} a bounce")
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.axhline(0.9, color="gray", lw=0.8, ls="--")
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("direction accuracy (moving pairs)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    folder_benchmark(__doc__.splitlines()[0], "direction_split", split,
                     lambda result: {k: f"{v['accuracy']} (n={v['pairs']})" for k, v in result.items() if k != "all"},
                     plot_bounces)


if __name__ == "__main__":
    cli(main)
