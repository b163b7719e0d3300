"""Would another rule for turning an object read an adapter's free field better? The shipped rule
(`fields.object_signs`) turns an object when the free field's component along the word field, pooled over the
object's places, is negative. On single-object moving train videos, each frame i ≥ 2 given its real context (as in
bounce_reading.py), this scores other poolings of the same free field over the same object by how often they give
the sign of the object's true shift i−1 → i: at the bounce step (where it must turn), before any bounce and after
one (where it must not change). A rule that turns more bounce steps but also turns objects before any bounce is no
gain: those frames are twenty times as many, and an object turned in mid-canvas keeps going the wrong way.

    python benchmarks/turn_rules.py --adapter models/shapes-adapter
    # writes benchmarks/results/turn_rules.json (--name NAME: NAME.json)
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bounce_reading import adapters_main, wall_frames  # noqa: E402
from common import cli  # noqa: E402
from vidgen.fields import latest_frame, object_signs  # noqa: E402
from vidgen.pipeline import VideoPipeline  # noqa: E402


PEAK_MARGINS = (0.0, 0.1, 0.25, 0.5)  # object_signs' peak reading, turning where the centre is back by so much


def rules(field: torch.Tensor, weights: torch.Tensor, guide: torch.Tensor, y: int, x: int) -> dict[str, float]:
    """Each rule's reading (< 0: turn) for the object at place (y, x). field, guide (2, h, w): the word field
    before its sign and the free field; weights (L, h, w): each place's binding to the words."""
    share = torch.einsum("l,lhw->hw", weights[:, y, x], weights)  # how much each place shares (y, x)'s words
    along, size = (field * guide).sum(0), field.square().sum(0)
    ratio = along / size.clamp(min=1e-12)
    step = -field[:, y, x] / field[:, y, x].norm().clamp(min=1e-8)  # warp reads p + field: it moves along −field
    rows, cols = torch.meshgrid(*(torch.arange(n, dtype=field.dtype) for n in field.shape[1:]), indexing="ij")
    ahead = step[0] * cols + step[1] * rows  # how far forward each place lies
    front = ahead >= (share * ahead).sum() / share.sum()
    core = share >= 0.5 * share.max()
    pooled = lambda w: float((w * along).sum() / (w * size).sum().clamp(min=1e-12))  # noqa: E731
    lowest = float(ratio[core].min())
    mean = pooled(share)
    # each word read at the place that takes it most (an object's centre, for its own words), summed back over
    # (y, x)'s words as the shipped rule sums: where bounce_reading's centre reading turns most bounce steps
    peak = lambda margin: float(object_signs(field[None], weights[None], guide[None], margin,  # noqa: E731
                                             read="peak")[0, 0, y, x])
    return {"mean (shipped)": mean, "mean back by 0.1": mean + 0.1, "mean back by 0.25": mean + 0.25,
            "front half": pooled(share * front), "core": pooled(share * core),
            "10% quantile": float(torch.quantile(ratio[core], 0.1)),
            "25% quantile": float(torch.quantile(ratio[core], 0.25)),
            "a fifth of places back": 0.2 - float((ratio[core] < 0).float().mean()),
            "any place back": lowest, "any place back by 0.25": lowest + 0.25,
            "any place back by 0.5": lowest + 0.5, "any place back by 1": lowest + 1.0,
            "at the centre": float(ratio[y, x]),
            **{f"at each word's peak{f', back by {m}' if m else ''}": peak(m) for m in PEAK_MARGINS}}


def score(pipe: VideoPipeline, folder: Path, num_videos: int) -> dict:
    word_field = pipe.denoiser.adapter.spatial.word_field
    tally: dict[str, dict[str, int]] = {}
    for f in wall_frames(pipe, folder, num_videos):
        with torch.no_grad():
            weights, motions = word_field.bind(latest_frame(f["frames"], f["offsets"], f["mask"]), f["words"])
        field = torch.einsum("blhw,blc->bchw", weights, motions)
        back = bool(np.sign(f["shift"]) != np.sign(f["velocity"]))
        where = f["where"]
        row = tally.setdefault(f"{f['speed']}, {'after a bounce' if 'after' in where else where}", {"frames": 0})
        row["frames"] += 1
        for name, value in rules(field[0], weights[0], f["context"].guide[0], f["y"], f["x"]).items():
            row[name] = row.get(name, 0) + int((value < 0) == back)
    return {where: {"frames": row["frames"], **{name: round(hits / row["frames"], 3) for name, hits in row.items()
                                                 if name != "frames"}} for where, row in sorted(tally.items())}


def main() -> None:
    adapters_main(__doc__.splitlines()[0], "turn_rules", score)


if __name__ == "__main__":
    cli(main)
