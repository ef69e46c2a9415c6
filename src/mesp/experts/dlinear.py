"""Linear and DLinear (Zeng et al., AAAI 2023, "Are Transformers Effective for Time Series Forecasting?").

``Linear`` maps the scaled context straight to every quantile of every horizon step. ``DLinear``
first splits the context into a moving-average trend and the seasonal remainder and gives each part
its own linear map. Cheap, strong rivals: on FaaS counts, linear models beat foundation models.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn
from torch.nn import functional as F


@dataclass(frozen=True)
class LinearConfig:
    context: int
    horizon: int
    n_quantiles: int = 2


@dataclass(frozen=True)
class DLinearConfig:
    context: int
    horizon: int
    n_quantiles: int = 2
    kernel: int = 25  # moving-average window for the trend, in steps (odd)


class MovingAverage(nn.Module):
    """x (B, L) -> trend (B, L): centred moving average with edge replication (keeps length L)."""

    def __init__(self, kernel: int):
        super().__init__()
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"kernel={kernel} must be a positive odd number")
        self.kernel = kernel

    def forward(self, x: Tensor) -> Tensor:
        pad = (self.kernel - 1) // 2
        padded = F.pad(x.unsqueeze(1), (pad, pad), mode="replicate")  # (B, 1, L + 2 pad)
        return F.avg_pool1d(padded, self.kernel, stride=1).squeeze(1)  # (B, L)


class Linear(nn.Module):
    """z (B, L) -> (B, Q, H)."""

    def __init__(self, config: LinearConfig):
        super().__init__()
        self.config = config
        self.proj = nn.Linear(config.context, config.n_quantiles * config.horizon)

    def forward(self, z: Tensor) -> Tensor:
        c = self.config
        return self.proj(z).view(-1, c.n_quantiles, c.horizon)  # (B, Q, H)


class DLinear(nn.Module):
    """z (B, L) -> (B, Q, H): linear(trend) + linear(z - trend)."""

    def __init__(self, config: DLinearConfig):
        super().__init__()
        self.config = config
        self.decompose = MovingAverage(min(config.kernel, config.context - (1 - config.context % 2)))
        out = config.n_quantiles * config.horizon
        self.trend = nn.Linear(config.context, out)
        self.seasonal = nn.Linear(config.context, out)

    def forward(self, z: Tensor) -> Tensor:
        c = self.config
        trend = self.decompose(z)  # (B, L)
        y = self.trend(trend) + self.seasonal(z - trend)  # (B, Q * H)
        return y.view(-1, c.n_quantiles, c.horizon)
