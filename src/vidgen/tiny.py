"""Tiny, randomly initialised Stable Diffusion folders, built offline.

Used by the tests, the benchmarks, and `vidgen tiny-model` (the README's main job until the demo model
ships). The result is a real diffusers Stable Diffusion folder: `StableDiffusionPipeline.from_pretrained`
loads it, and so does `VideoPipeline.from_pretrained`.
"""

from __future__ import annotations

from pathlib import Path

import torch

DEFAULT_WORDS = ("a red green blue yellow circle square triangle cross moving left right up down quickly "
                 "slowly standing still and on black gray white background small large").split()


def _bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """Byte-pair encode one word with merge `ranks` (lowest rank first), as CLIP's BPE does."""
    pieces = list(word[:-1]) + [word[-1] + "</w>"]
    while len(pieces) > 1:
        pairs = [(ranks.get((a, b), len(ranks) + 1), i) for i, (a, b) in enumerate(zip(pieces, pieces[1:]))]
        rank, i = min(pairs)
        if rank > len(ranks):
            break
        pieces = pieces[:i] + [pieces[i] + pieces[i + 1]] + pieces[i + 2:]
    return pieces


def build_clip_tokenizer(words=DEFAULT_WORDS, max_length: int = 16):
    """A CLIP tokenizer built in memory: byte-level BPE whose merges make each of `words` one token.

    Merges are appended (at the lowest priority) only while a word still splits, so adding a word never
    changes how an earlier one is split."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    chars = sorted(ByteLevel.alphabet())
    vocab = chars + [c + "</w>" for c in chars]
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        while len(pieces := _bpe(word, ranks)) > 1:
            ranks[(pieces[0], pieces[1])] = len(ranks)
            vocab.append(pieces[0] + pieces[1])
    vocab = list(dict.fromkeys(vocab)) + ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={tok: i for i, tok in enumerate(vocab)}, merges=list(ranks),
                         model_max_length=max_length)


def build_tiny_sd(folder: str | Path, seed: int = 0, block_out_channels=(32, 64), cross_attention_dim: int = 32,
                  prediction_type: str = "epsilon") -> Path:
    """Save a tiny random SD model (VAE ×2, 2-block UNet, 2-layer CLIP text encoder) to `folder`."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = Path(folder)
    tokenizer = build_clip_tokenizer()
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=tuple(block_out_channels), layers_per_block=1, sample_size=16, in_channels=4,
        out_channels=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=cross_attention_dim,
        attention_head_dim=8, norm_num_groups=8)
    vae = AutoencoderKL(block_out_channels=(16, 32), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=8, sample_size=32)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=len(tokenizer) - 2, eos_token_id=len(tokenizer) - 1, pad_token_id=len(tokenizer) - 1,
        hidden_size=cross_attention_dim, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
        vocab_size=len(tokenizer), max_position_embeddings=tokenizer.model_max_length, layer_norm_eps=1e-5))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1,
                              prediction_type=prediction_type)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return folder
