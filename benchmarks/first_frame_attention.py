"""Does the base model's cross-attention tell a right two-object first frame from a wrong one?

The base's frame-0 mistakes on two-object captions are mostly one object drawn twice and the other missing
("catastrophic neglect", which Attend-and-Excite (Chefer et al. 2023) fixes by steering the latents until every
subject word draws strong attention somewhere). Before building that, this measures whether the signal is there:
for two-object train captions the shipped pipeline draws K first frames each (`first_frame_candidates`, the
shipped defaults), judged by the shapes scorer as in `first_frame.py`. Each is noised at a few levels and run
through the base UNet alone with the caption; at every cross-attention layer the attention probabilities of each
object's colour word (and shape word) are averaged over heads and their maximum over places taken, then averaged
over layers and levels. A frame's score is the weaker object's: min over the two objects. Reported, with the
attention negated so that lower is preferred as for the shipped pick's denoising error beside it: how often it
ranks a right candidate below a wrong one of the same caption, and how often the lowest of 2 and of K is right.

    python benchmarks/first_frame_attention.py --num-prompts 48 --candidates 4
    # writes benchmarks/results/first_frame_attention.json

Run it with nothing else running.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import cli, machine, write_results  # noqa: E402
from first_frame import mistakes, objects_right  # noqa: E402
from first_frame_contrast import pick_scores, rank_right_below_wrong, two_object_scenes  # noqa: E402
from first_frame_pick import candidate_args  # noqa: E402
from vidgen.adapter import split_text  # noqa: E402
from vidgen.data.shapes import parse_caption  # noqa: E402
from vidgen.eval.scorer import score_video  # noqa: E402
from vidgen.pipeline import VideoPipeline  # noqa: E402

LEVELS = (250, 500, 750)


class Recorder:
    """A cross-attention processor (diffusers' plain computation) that keeps each call's probabilities."""

    def __init__(self, store: list):
        self.store = store

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *a, **k):
        q = attn.head_to_batch_dim(attn.to_q(hidden_states))
        key = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
        value = attn.head_to_batch_dim(attn.to_v(encoder_hidden_states))
        probs = attn.get_attention_scores(q, key, attention_mask)  # (b·heads, places, tokens)
        self.store.append(probs.unflatten(0, (-1, attn.heads)).mean(1))  # (b, places, tokens)
        out = attn.batch_to_head_dim(torch.bmm(probs, value))
        return attn.to_out[1](attn.to_out[0](out)) / attn.rescale_output_factor


def word_positions(caption: str) -> tuple[list[int], list[int]]:
    """The token positions of each object's colour word and shape word (one token per word, after the start
    token)."""
    words = caption.split()
    objects = parse_caption(caption).objects
    colour_at = [words.index(o.colour) + 1 for o in objects]
    shape_at = [1 + next(i for i, w in enumerate(words) if w == o.shape and i > words.index(o.colour))
                for o in objects]
    return colour_at, shape_at


def word_attention(pipe: VideoPipeline, latents: torch.Tensor, caption: str, generator) -> dict[str, np.ndarray]:
    """Per candidate (K,): the weaker object's peak attention on its colour word and on its shape word."""
    unet = pipe.denoiser.unet
    text = split_text(pipe.encode_prompt(caption), unet.config.cross_attention_dim)[0].expand(len(latents), -1, -1)
    colour_at, shape_at = word_positions(caption)
    saved, store = unet.attn_processors, []
    unet.set_attn_processor({name: Recorder(store) if name.endswith("attn2.processor") else proc
                             for name, proc in saved.items()})
    try:
        peaks = []
        for level in LEVELS:
            store.clear()
            noise = torch.randn(latents.shape, generator=generator)
            t = torch.full((len(latents),), level, dtype=torch.long)
            unet(pipe.scheduler.add_noise(latents, noise, t), t, encoder_hidden_states=text)
            peaks.append(torch.stack([p.amax(1) for p in store]).mean(0))  # (K, tokens): peak over places
    finally:
        unet.set_attn_processor(saved)
    peak = torch.stack(peaks).mean(0).numpy()
    return {"colour": peak[:, colour_at].min(1), "shape": peak[:, shape_at].min(1),
            "colour and shape": (peak[:, colour_at] + peak[:, shape_at]).min(1)}


def judged_candidates(pipe: VideoPipeline, args, measure, shown: tuple[str, ...]) -> list[list[dict]]:
    """For `args.num_prompts` two-object captions, `args.candidates` first frames each (the shipped defaults,
    seeded by the caption's index): per candidate whether the scorer finds its objects right, the shipped pick's
    error, and, negated so that lower is preferred, each score `measure(latents, caption, index)` gives
    ({name: (K,) array}); the `shown` ones are printed as it goes."""
    chosen = []
    with torch.no_grad():
        for i, caption in enumerate(scene.caption() for scene in two_object_scenes(args.num_prompts)):
            frames, pick = pipe.first_frame_candidates(caption, generator=torch.Generator().manual_seed(i),
                                                       first_frame_candidates=args.candidates)
            measured = measure(pipe.encode_frames(frames), caption, i)
            group = [{"right": objects_right(score_video(image[None], caption), *mistakes(image[None], caption)),
                      "pick": float(pick[j]), **{name: -float(a[j]) for name, a in measured.items()}}
                     for j, image in enumerate(frames)]
            chosen.append(group)
            print(i, [(c["right"], *(round(-c[name], 3) for name in shown)) for c in group], flush=True)
    return chosen


def main() -> None:
    args = candidate_args(__doc__.splitlines()[0], "first_frame_attention", 48)
    pipe = VideoPipeline.from_pretrained()
    chosen = judged_candidates(pipe, args, lambda latents, caption, i: word_attention(
        pipe, latents, caption, torch.Generator().manual_seed(i)), ("colour",))
    scores = {"the shipped pick's error": lambda c: c["pick"],
              **{f"minus the weaker object's attention on its {word} word": (lambda c, w=word: c[w])
                 for word in ("colour", "shape", "colour and shape")}}
    results = {"captions": len(chosen),
               "candidates_right": round(float(np.mean([c["right"] for g in chosen for c in g])), 3),
               "right_wrong_pairs": rank_right_below_wrong(chosen, scores["the shipped pick's error"])[1],
               "levels": LEVELS, "scores": pick_scores(chosen, scores, args.candidates)}
    print(results)
    write_results(args.name, {"machine": machine(), "results": results})


if __name__ == "__main__":
    cli(main)
