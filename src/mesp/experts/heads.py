"""Quantile output: non-crossing quantiles and the pinball loss that trains them."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def check_quantiles(quantiles: Sequence[float]) -> tuple[float, ...]:
    q = tuple(float(v) for v in quantiles)
    if 0.5 not in q or list(q) != sorted(set(q)) or not all(0.0 < v < 1.0 for v in q):
        raise ValueError(f"quantiles={q} must be strictly increasing, inside (0, 1) and include 0.5")
    return q


class MonotoneQuantiles(nn.Module):
    """raw (B, Q, H) -> (B, Q, H) non-crossing quantiles.

    The channel of 0.5 is the median; every other channel is a softplus increment stacked outwards from
    it, so q_i <= q_j whenever i < j, by construction rather than by penalty.
    """

    def __init__(self, quantiles: Sequence[float]):
        super().__init__()
        self.quantiles = check_quantiles(quantiles)
        self.median = self.quantiles.index(0.5)

    def forward(self, raw: Tensor) -> Tensor:
        m = self.median
        mid = raw[:, m:m + 1]  # (B, 1, H)
        parts = [mid]
        if m + 1 < raw.shape[1]:
            parts.append(mid + torch.cumsum(F.softplus(raw[:, m + 1:]), dim=1))
        if m > 0:
            below = torch.cumsum(F.softplus(raw[:, :m].flip(1)), dim=1).flip(1)
            parts.insert(0, mid - below)
        return torch.cat(parts, dim=1) if len(parts) > 1 else mid


def pinball_loss(pred: Tensor, target: Tensor, quantiles: Sequence[float]) -> Tensor:
    """Mean pinball (quantile) loss. pred (B, Q, H), target (B, H) -> scalar.

    For q = 0.5 it is half the absolute error, so the median channel is trained like an MAE model.
    """
    q = torch.tensor(quantiles, dtype=pred.dtype, device=pred.device).view(1, -1, 1)  # (1, Q, 1)
    diff = target.unsqueeze(1) - pred  # (B, Q, H)
    return torch.maximum(q * diff, (q - 1.0) * diff).mean()
