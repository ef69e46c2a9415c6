"""In-graph scaling: raw counts in, raw non-negative counts out, so serving does exactly what training did.

Every expert is ``Forecaster(core, quantiles)``::

    x (B, L) counts ──log1p──> z ──minus level──> z - level (B, L) ──core──> raw (B, Q, H)
        ──monotone quantiles──> s (B, Q, H) ──plus level──exp - 1──relu──> counts (B, Q, H)

``level`` is the per-window mean of ``log1p(x)``, so the core sees a scale-free, shift-normalised window
(counts span 8 orders of magnitude). Because ``log1p`` and ``expm1`` are monotone, a quantile of the
scaled target *is* the same quantile of the counts: training the pinball loss in the scaled space
trains count quantiles, and the 0.5 quantile is the count median (the point forecast).

The output is capped at ``MAX_GROWTH`` times (1 + the context's busiest step): the exponential turns a
modest error of an extrapolating core into astronomic counts (1e11 from a context whose maximum was 8e3
was seen before the cap), and a provisioning plan built on that is worse than useless. The cap is a
``min`` in log space, applied to every quantile alike, so the quantiles stay ordered; training sees it
too, so serving computes exactly what was trained.

``log(1 + x)`` and ``exp(s) - 1`` are written out instead of ``log1p``/``expm1`` because ONNX has no
such ops; writing them the way the graph computes them keeps torch and onnxruntime bit-close.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mesp.experts.heads import MonotoneQuantiles

SCALING = "log1p-mean, capped at 10x the context's busiest step"
MAX_GROWTH = 10.0


def scale_input(x: Tensor) -> tuple[Tensor, Tensor]:
    """x (B, L) counts -> (z (B, L) centred log counts, level (B, 1))."""
    z = torch.log(x.clamp(min=0.0) + 1.0)
    level = z.mean(dim=-1, keepdim=True)
    return z - level, level


def scale_target(y: Tensor, level: Tensor) -> Tensor:
    """y (B, H) counts -> (B, H) in the core's output space, using the context's level (B, 1)."""
    return torch.log(y.clamp(min=0.0) + 1.0) - level


def unscale_output(s: Tensor, level: Tensor) -> Tensor:
    """s (B, Q, H) scaled quantiles, level (B, 1) -> (B, Q, H) non-negative counts."""
    return torch.relu(torch.exp(s + level.unsqueeze(-1)) - 1.0)


class Forecaster(nn.Module):
    """The exported unit: a family's core wrapped in the shared scaling and quantile head.

    ``core`` maps the centred log window (B, L) to unconstrained (B, Q, H). ``forward(x)`` is the
    serving contract (ONNX input ``context``, output ``quantiles``); ``scaled(x)`` is what the trainer
    needs to compute the loss in the scaled space.
    """

    def __init__(self, core: nn.Module, quantiles: Sequence[float]):
        super().__init__()
        self.core = core
        self.head = MonotoneQuantiles(quantiles)
        self.quantiles = self.head.quantiles

    def scaled(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, L) counts -> (s (B, Q, H) scaled quantiles, level (B, 1))."""
        z, level = scale_input(x)
        s = self.head(self.core(z))  # (B, Q, H)
        ceiling = z.amax(dim=-1, keepdim=True).unsqueeze(-1) + math.log(MAX_GROWTH)  # (B, 1, 1)
        return torch.minimum(s, ceiling), level

    def forward(self, x: Tensor) -> Tensor:
        """x (B, L) raw counts -> (B, Q, H) non-negative counts."""
        s, level = self.scaled(x)
        return unscale_output(s, level)
