"""Train the demo model's text-to-image part (CLIP-style text encoder + UNet) on single shapes-world frames.

Frames are encoded once by the trained VAE; captions are the full caption or the appearance-only form, half
each, so that every word of the grammar is known to the text encoder. The text is dropped 10% of the time for
classifier-free guidance. The result is saved as a standard diffusers Stable Diffusion folder
(`StableDiffusionPipeline.from_pretrained` loads it), which the video adapter then treats as frozen.

    python -m vidgen.base.text2image --vae runs/vae --out runs/base --steps 6000
    # seeded; resumes from runs/base/state if present; writes the SD folder to runs/base/model

`--init-model FOLDER` starts from a trained SD folder's text encoder and UNet instead of fresh weights (to train
a shipped base on), `--pair-weight W` draws frames of two-object scenes W times as often, and `--ema-decay D`
saves an exponential moving average of the weights (checkpointed with them) as the model. `--preferences N`
(with `--init-model`) adds N preference pairs, each a right frame against the same frame drawn with one of the
base's mistakes (an extra copy, a missing object, a colour leaked or swapped), trained with the Diffusion-DPO loss
against the starting model (`preference`).
"""

from __future__ import annotations

import argparse
import copy
import os
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from torch import nn
import transformers
from transformers import CLIPTextConfig, CLIPTextModel

from ..data.shapes import VOCABULARY, make_video
from ..errors import positive_number
from ..tiny import build_clip_tokenizer
from .loop import fit
from .preference import dpo_loss, make_pair

MAX_TOKENS = 32
TEXT = dict(hidden_size=128, intermediate_size=256, num_attention_heads=4, num_hidden_layers=3,
            max_position_embeddings=MAX_TOKENS)
UNET = dict(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(64, 128, 128),
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=128,
            attention_head_dim=4, norm_num_groups=16)
SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                 set_alpha_to_one=False, steps_offset=1)


class TextToImage(nn.Module):
    """Text encoder and UNet trained together (one module, one optimizer, one checkpoint)."""

    def __init__(self, vocab_size: int, bos: int, eos: int):
        super().__init__()
        self.text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=vocab_size, bos_token_id=bos, eos_token_id=eos,
                                                         pad_token_id=eos, **TEXT))
        self.unet = UNet2DConditionModel(**UNET)

    def forward(self, x_t, t, ids):
        return self.unet(x_t, t, encoder_hidden_states=self.text_encoder(ids)[0]).sample


def load_model(folder: Path, tokenizer) -> TextToImage:
    """The text encoder and UNet of a Stable Diffusion folder (stored fp16) as one fp32 `TextToImage`."""
    model = TextToImage(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)
    model.text_encoder.load_state_dict(CLIPTextModel.from_pretrained(folder / "text_encoder").float().state_dict())
    model.unet.load_state_dict(UNet2DConditionModel.from_pretrained(folder / "unet").float().state_dict())
    return model


@torch.no_grad()
def encode(vae: AutoencoderKL, tokenizer, frames: list[np.ndarray], captions: list[str]) -> tuple[torch.Tensor,
                                                                                                  torch.Tensor]:
    """Frames (S, S, 3) uint8 → their latents (scaled), 256 at a time; captions → token ids."""
    latents = []
    for start in range(0, len(frames), 256):
        x = torch.from_numpy(np.stack(frames[start:start + 256])).permute(0, 3, 1, 2).float() / 127.5 - 1
        latents.append(vae.encode(x).latent_dist.mode() * vae.config.scaling_factor)
    return torch.cat(latents), tokenizer(captions, padding="max_length", max_length=MAX_TOKENS, truncation=True,
                                         return_tensors="pt").input_ids


def encode_dataset(vae: AutoencoderKL, tokenizer, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor,
                                                                               torch.Tensor]:
    """n single frames of shapes videos (latents, scaled), their token ids (full or appearance-only) and whether
    each frame's scene holds two objects."""
    rng = np.random.default_rng([seed, 99])
    frames, captions, pairs = [], [], []
    for _ in range(n):
        video, scene, _ = make_video(int(rng.integers(2 ** 31)), frames=8, canvas=64)
        frames.append(video[rng.integers(8)])
        captions.append(scene.caption(motion=bool(rng.random() < 0.5)))
        pairs.append(len(scene.objects) == 2)
    return *encode(vae, tokenizer, frames, captions), torch.tensor(pairs)


def encode_preferences(vae: AutoencoderKL, tokenizer, n: int, seed: int, pair_share: float = 0.75):
    """n preference pairs (`preference.make_pair`): winners' and losers' latents and the captions' token ids
    (full or appearance-only, half each)."""
    made = [make_pair(int(np.random.SeedSequence([seed, 31, i]).generate_state(1)[0]), pair_share)
            for i in range(n)]
    rng = np.random.default_rng([seed, 32])
    captions = [scene.caption(motion=bool(rng.random() < 0.5)) for _, _, scene, _ in made]
    winners, ids = encode(vae, tokenizer, [w for w, _, _, _ in made], captions)
    losers, _ = encode(vae, tokenizer, [lo for _, lo, _, _ in made], captions)
    print(f"{n} preference pairs: {dict(Counter(flaw for *_, flaw in made))}")
    return winners, losers, ids


def train_base(vae_dir: Path, out: Path, steps: int = 6000, batch_size: int = 32, lr: float = 3e-4,
               frames: int = 20000, seed: int = 0, init: Path | None = None, pair_weight: float = 1.0,
               ema_decay: float = 0.0, stop_at: int | None = None, preferences: int = 0, preference_batch: int = 16,
               beta: float = 2000.0, preference_from: int = 0, anchor: float = 0.0) -> Path:
    """Train (or, from `init`, train on) the text encoder and UNet; → the SD folder written to `out/model`, which
    holds the EMA weights when `ema_decay` > 0. With `stop_at`, training stops at that step of the `steps`
    schedule (checkpointed) and the model is written from there. With `preferences` > 0, each step also takes
    `preference_batch` of that many preference pairs (`preference`) through the Diffusion-DPO loss at `beta`,
    against the model it starts from, frozen, at levels t ≥ `preference_from` (where the layout is decided),
    the winner anchored by `anchor` (`preference.dpo_loss`)."""
    torch.manual_seed(seed)
    tokenizer = build_clip_tokenizer(VOCABULARY, MAX_TOKENS)
    vae = AutoencoderKL.from_pretrained(vae_dir).eval()
    latents, ids, pairs = encode_dataset(vae, tokenizer, frames, seed)
    weights = torch.where(pairs, pair_weight, 1.0)
    print(f"{int(pairs.sum())} of {frames} frames hold two objects, drawn {pair_weight:g}x as often")
    null_ids = tokenizer([""], padding="max_length", max_length=MAX_TOKENS, return_tensors="pt").input_ids
    model = TextToImage(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id) if init is None else \
        load_model(init, tokenizer)  # a trained base's weights (stored fp16) as the start
    if preferences:
        winners, losers, pref_ids = encode_preferences(vae, tokenizer, preferences, seed)
        reference = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    scheduler = DDIMScheduler(**SCHEDULER)
    abar = scheduler.alphas_cumprod
    def loss_at(step: int):
        g = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, step]).generate_state(1)[0]))
        idx = torch.randint(len(latents), (batch_size,), generator=g) if pair_weight == 1 else \
            torch.multinomial(weights, batch_size, replacement=True, generator=g)
        x0, tok = latents[idx], ids[idx].clone()
        tok[torch.rand(batch_size, generator=g) < 0.1] = null_ids[0]  # text dropout for guidance
        t = torch.randint(len(abar), (batch_size,), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        a = abar[t].view(-1, 1, 1, 1)
        loss = F.mse_loss(model(a.sqrt() * x0 + (1 - a).sqrt() * noise, t, tok), noise)
        if not preferences:
            return loss, loss.item()
        p = torch.randint(preferences, (preference_batch,), generator=g)
        t = torch.randint(preference_from, len(abar), (preference_batch,), generator=g)
        dpo, ahead = dpo_loss(model, reference, winners[p], losers[p], t, torch.randn(winners[p].shape, generator=g),
                              abar, pref_ids[p], beta, anchor)
        return loss + dpo, {"loss": loss.item(), "dpo": dpo.item(), "ahead": ahead}

    _, ema = fit(model, optimizer, out / "state", steps, loss_at, clip=1.0, ema_decay=ema_decay, stop_at=stop_at,
                 lr_at=lambda step: lr * min(1.0, (step + 1) / 200) * 0.5 * (1 + np.cos(np.pi * step / steps)))
    if ema is not None:
        model.load_state_dict(ema)
    return save_model(model, vae, tokenizer, out / "model")


def save_model(model: TextToImage, vae: AutoencoderKL, tokenizer, folder: Path) -> Path:
    """Write a standard Stable Diffusion folder (fp16) that `StableDiffusionPipeline.from_pretrained` loads."""
    from diffusers import StableDiffusionPipeline  # here: importing the pipelines makes transformers print a note

    pipe = StableDiffusionPipeline(vae=vae, text_encoder=model.text_encoder, tokenizer=tokenizer, unet=model.unet,
                                   scheduler=DDIMScheduler(**SCHEDULER), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.to(torch.float16).save_pretrained(folder)
    return folder


def sd_folder(value: str) -> Path:
    """argparse type: a Stable Diffusion folder holding a text encoder and a UNet."""
    folder = Path(value)
    if not ((folder / "text_encoder" / "config.json").is_file() and (folder / "unet" / "config.json").is_file()):
        raise argparse.ArgumentTypeError(f"got {value!r}; expected a Stable Diffusion folder with text_encoder/ "
                                         "and unet/ (e.g. models/shapes-base)")
    return folder


def vae_folder(value: str) -> Path:
    """argparse type: a diffusers VAE folder (or a Stable Diffusion folder's vae/)."""
    folder = Path(value)
    if not (folder / "config.json").is_file():
        raise argparse.ArgumentTypeError(f"got {value!r}; expected a diffusers AutoencoderKL folder with config.json "
                                         "(e.g. models/shapes-vae)")
    return folder


def positive(value: str) -> float:
    """argparse type: a finite number > 0."""
    number = positive_number(value)
    if number is None:
        raise argparse.ArgumentTypeError(f"got {value!r}; expected a finite number > 0")
    return number


def step_count(value: str) -> int:
    """argparse type: a whole number > 0."""
    if not value.isdigit() or int(value) == 0:
        raise argparse.ArgumentTypeError(f"got {value!r}; expected a whole number of steps > 0, e.g. 2000")
    return int(value)


def as_float(value: str) -> float:
    """The number `value` spells, NaN if none (NaN fails every range check)."""
    try:
        return float(value)
    except ValueError:
        return float("nan")


def non_negative(value: str) -> float:
    """argparse type: a finite number ≥ 0."""
    number = as_float(value)
    if not 0 <= number < float("inf"):
        raise argparse.ArgumentTypeError(f"got {value!r}; expected a finite number ≥ 0, e.g. 50")
    return number


def ema_decay(value: str) -> float:
    """argparse type: a number in [0, 1)."""
    number = as_float(value)
    if not 0 <= number < 1:
        raise argparse.ArgumentTypeError(f"got {value!r}; expected a number in [0, 1), e.g. 0.999")
    return number


def main() -> None:
    transformers.utils.logging.set_verbosity_error()  # as the vidgen command: a harmless note on torchvision
    parser = argparse.ArgumentParser(description="Train the demo model's text encoder and UNet on shapes frames.")
    parser.add_argument("--vae", type=vae_folder, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learning-rate", type=positive, default=3e-4, help="peak of the warm-up + cosine schedule")
    parser.add_argument("--init-model", type=sd_folder, help="start from this SD folder's text encoder and UNet")
    parser.add_argument("--pair-weight", type=positive, default=1.0,
                        help="draw frames of two-object scenes this many times as often")
    parser.add_argument("--ema-decay", type=ema_decay, default=0.0,
                        help="keep an EMA of the weights with this decay and save it as the model (0: off)")
    parser.add_argument("--preferences", type=step_count, default=None,
                        help="also train on this many preference pairs (a right frame against it drawn with one of "
                        "the base's mistakes) with the Diffusion-DPO loss, against the starting model")
    parser.add_argument("--preference-batch", type=step_count, default=16, help="preference pairs per step")
    parser.add_argument("--beta", type=positive, default=2000.0, help="the Diffusion-DPO loss's β")
    parser.add_argument("--anchor", type=non_negative, default=0.0, metavar="LAMBDA",
                        help="count a winner's error rising above the starting model's LAMBDA times against its pair "
                        "(DPO-Positive; default 0: plain DPO)")
    parser.add_argument("--preference-from", type=int, choices=range(0, 1000), default=0, metavar="T",
                        help="noise the preference pairs only to levels t ≥ T (0-999; default 0: all)")
    parser.add_argument("--stop-at", type=step_count, help="stop at this step of the --steps schedule and write the "
                        "model from there (run again without it, or with a later one, to go on)")
    args = parser.parse_args()
    if args.preferences and args.init_model is None:
        parser.error("--preferences needs --init-model: the Diffusion-DPO loss measures the model against the one "
                     "it starts from")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 2)))  # OMP_NUM_THREADS=1 beside another job
    print(train_base(args.vae, args.out, args.steps, args.batch_size, args.learning_rate, args.frames, args.seed,
                     args.init_model, args.pair_weight, args.ema_decay, args.stop_at, preferences=args.preferences or 0,
                     preference_batch=args.preference_batch, beta=args.beta, preference_from=args.preference_from,
                     anchor=args.anchor))


if __name__ == "__main__":
    main()
