"""The causal Transformer block shared by the sequence models (SASRec+, the facet model).

Pre-norm blocks over left-padded sequences: the last column is the most recent event, a
position reads only itself and earlier real events, and padded positions stay exactly zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which a position reads only itself and earlier real items.

    ``allowed`` [batch, 1, width, width] is the causal mask AND the key padding mask, plus each
    position's own key, so that no row is empty and padded rows stay finite. One fused
    ``scaled_dot_product_attention`` call with this mask trained 2.5x faster on CPU than
    ``nn.MultiheadAttention`` with the two masks; dropout acts on the output, because dropout on
    the attention weights made the call 15x slower on CPU.
    """

    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        batch, width, hidden = x.shape
        q, k, v = self.qkv(x).view(batch, width, 3, self.heads, hidden // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        return self.out(y.transpose(1, 2).reshape(batch, width, hidden))


class Block(nn.Module):
    """Pre-norm Transformer block: ``x + attention(norm(x))``, then ``x + feed_forward(norm(x))``."""

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden)
        self.attention = CausalSelfAttention(hidden, heads)
        self.norm2 = nn.LayerNorm(hidden)
        # SASRec's point-wise feed-forward keeps the hidden width (not GPT's 4x).
        self.feed_forward = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attention(self.norm1(x), allowed))
        return x + self.dropout(self.feed_forward(self.norm2(x)))


def causal_allowed(padding: torch.Tensor) -> torch.Tensor:
    """[batch, 1, width, width]: query t may read key j when j <= t and j is real, or j == t."""
    width = padding.shape[1]
    earlier = torch.ones(width, width, dtype=torch.bool, device=padding.device).tril()
    itself = torch.eye(width, dtype=torch.bool, device=padding.device)
    return (earlier & (~padding[:, None, :] | itself)).unsqueeze(1)


def init_weights(module: nn.Module) -> None:
    """Small normal weights (GPT-2 style): tied output logits start near zero, the loss near log(n_items)."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
        if module.padding_idx is not None:
            nn.init.zeros_(module.weight[module.padding_idx])
