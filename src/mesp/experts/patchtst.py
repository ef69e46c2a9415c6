"""PatchTST (Nie et al., ICLR 2023): patch tokens + a transformer encoder + a flatten head.

Univariate, so channel independence is trivial: each series is its own sample. Patches do not
overlap (stride = patch): with stride < patch the token count, and the quadratic attention cost,
grows (stride 8 over 1,440 steps is 179 tokens and ~13 ms per forecast, anchors §5.1).
Attention is written out (nanoGPT style, no causal mask) so the exported graph is plain MatMul/Softmax.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class PatchTSTConfig:
    context: int
    horizon: int
    n_quantiles: int = 2
    patch: int = 16
    d_model: int = 64
    n_heads: int = 4
    layers: int = 2
    ff: int = 128
    dropout: float = 0.0


class SelfAttention(nn.Module):
    """x (B, N, D) -> (B, N, D), multi-head, bidirectional."""

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        B, N, D = x.shape  # batch, tokens, model width
        hs = D // self.n_heads
        q, k, v = self.qkv(x).split(D, dim=2)
        q = q.view(B, N, self.n_heads, hs).transpose(1, 2)  # (B, nh, N, hs)
        k = k.view(B, N, self.n_heads, hs).transpose(1, 2)
        v = v.view(B, N, self.n_heads, hs).transpose(1, 2)
        att = torch.softmax((q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs)), dim=-1)  # (B, nh, N, N)
        y = (self.drop(att) @ v).transpose(1, 2).reshape(B, N, D)  # (B, N, D)
        return self.proj(y)


class Block(nn.Module):
    """Pre-norm transformer block: x (B, N, D) -> (B, N, D)."""

    def __init__(self, c: PatchTSTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(c.d_model)
        self.attn = SelfAttention(c.d_model, c.n_heads, c.dropout)
        self.ln2 = nn.LayerNorm(c.d_model)
        self.mlp = nn.Sequential(nn.Linear(c.d_model, c.ff), nn.GELU(), nn.Linear(c.ff, c.d_model),
                                 nn.Dropout(c.dropout))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class PatchTST(nn.Module):
    """z (B, L) -> (B, Q, H): patches (B, N, P) -> tokens (B, N, D) -> blocks -> flatten (B, N*D) -> linear."""

    def __init__(self, config: PatchTSTConfig):
        super().__init__()
        if not 1 <= config.patch <= config.context:
            raise ValueError(f"patch={config.patch} must lie in [1, context={config.context}]")
        self.config = config
        self.n_patches = config.context // config.patch
        self.embed = nn.Linear(config.patch, config.d_model)
        self.pos = nn.Parameter(torch.zeros(1, self.n_patches, config.d_model))
        nn.init.normal_(self.pos, std=0.02)
        self.blocks = nn.Sequential(*[Block(config) for _ in range(config.layers)])
        self.ln = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(self.n_patches * config.d_model, config.n_quantiles * config.horizon)

    def forward(self, z: Tensor) -> Tensor:
        c = self.config
        used = self.n_patches * c.patch
        patches = z[:, z.shape[1] - used:].reshape(-1, self.n_patches, c.patch)  # (B, N, P)
        x = self.ln(self.blocks(self.embed(patches) + self.pos))  # (B, N, D)
        return self.head(x.flatten(1)).view(-1, c.n_quantiles, c.horizon)  # (B, Q, H)
