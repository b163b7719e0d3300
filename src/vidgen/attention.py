"""Decoupled cross-attention (IP-Adapter style) wrapped around a frozen model's cross-attention processors.

In every cross-attention layer:  out = stock(h, text) + g · W_o′ · Attn(W_q′ h, W_k′ ctx, W_v′ ctx),
with the gate g initialised to zero, so an untrained adapter leaves the base model bit-identical.

The trainable weights live in `DecoupledAttention` modules owned by the adapter. What is installed on the
base model is a `DecoupledProcessor`: a plain callable (not an `nn.Module`), so nothing of the adapter becomes
a submodule of the base network or enters its state dict. The context keys/values are handed to the
processors through state (`set_kv`), never through `cross_attention_kwargs`, which also reach the
self-attention processors and are dropped with a warning at every call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class DecoupledAttention(nn.Module):
    """The trainable half of one decoupled cross-attention layer."""

    def __init__(self, query_dim: int, context_dim: int, inner_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner_dim, bias=False)
        self.to_k = nn.Linear(context_dim, inner_dim, bias=False)
        self.to_v = nn.Linear(context_dim, inner_dim, bias=False)
        self.to_out = nn.Linear(inner_dim, query_dim)
        self.gate = nn.Parameter(torch.zeros(()))

    def project_context(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of the context tokens, split into heads: computed once per frame and cached."""
        k = rearrange(self.to_k(tokens), "b l (h d) -> b h l d", h=self.heads)
        v = rearrange(self.to_v(tokens), "b l (h d) -> b h l d", h=self.heads)
        return k, v

    def forward(self, hidden: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        k, v = kv
        q = rearrange(self.to_q(hidden), "b n (h d) -> b h n d", h=self.heads)  # (b, heads, n, d)
        if k.shape[0] != q.shape[0]:
            raise RuntimeError(f"context batch {k.shape[0]} does not match the model batch {q.shape[0]}")
        out = rearrange(F.scaled_dot_product_attention(q, k, v), "b h n d -> b n (h d)")
        return self.gate * self.to_out(out)


class DecoupledProcessor:
    """Wraps (does not copy) a stock attention processor and adds the decoupled context branch."""

    def __init__(self, stock, layer: DecoupledAttention):
        self.stock = stock
        self.layer = layer
        self.kv: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        out = self.stock(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        if self.kv is None:
            return out
        h = hidden_states
        if h.ndim == 4:  # (b, c, H, W) inputs to a conv-style attention block
            b, c, hh, ww = h.shape
            extra = self.layer(rearrange(h, "b c H W -> b (H W) c"), self.kv)
            extra = rearrange(extra, "b (H W) c -> b c H W", H=hh, W=ww)
        else:
            extra = self.layer(h, self.kv)
        return out + extra / attn.rescale_output_factor


def cross_attention_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Name (as in `model.attn_processors`) → Attention module, for every cross-attention layer of `model`."""
    layers = {}
    for name, module in model.named_modules():
        if getattr(module, "is_cross_attention", False) and hasattr(module, "processor"):
            layers[f"{name}.processor"] = module
    return layers
