"""N-BEATS (Oreshkin et al., ICLR 2020): doubly residual stacks of fully connected blocks.

Each block reads the residual context (B, L), emits a backcast (B, L) that is subtracted from it and a
forecast (B, Q, H) that is added to the output. ``generic`` blocks learn both projections;
``interpretable`` uses a trend stack (polynomial basis of degree ``degree``) followed by a seasonality
stack (Fourier basis with ``harmonics`` harmonics), so the forecast splits into trend + seasonality.
The forecast basis is shared by all quantiles: each quantile gets its own coefficients.
Keep ``width`` <= 256: at 512 the ONNX files reach ~55 MB (anchors §5.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class NBEATSConfig:
    context: int
    horizon: int
    n_quantiles: int = 2
    stack: str = "generic"  # "generic" or "interpretable"
    blocks: int = 3  # blocks per stack (the interpretable model has two stacks)
    width: int = 256
    layers: int = 4  # fully connected layers per block
    degree: int = 3  # trend polynomial degree (interpretable)
    harmonics: int = 4  # Fourier harmonics (interpretable)


def trend_basis(degree: int, length: int) -> Tensor:
    """(degree + 1, length): t^p for t in [0, 1)."""
    t = torch.arange(length, dtype=torch.float32) / length
    return torch.stack([t ** p for p in range(degree + 1)])


def seasonality_basis(harmonics: int, length: int) -> Tensor:
    """(1 + 2 * harmonics, length): a constant, then cos/sin of 1..harmonics cycles over the length."""
    t = torch.arange(length, dtype=torch.float32) / length
    rows = [torch.ones(length)]
    for k in range(1, harmonics + 1):
        rows += [torch.cos(2 * torch.pi * k * t), torch.sin(2 * torch.pi * k * t)]
    return torch.stack(rows)


class Block(nn.Module):
    """x (B, L) -> (backcast (B, L), forecast (B, Q, H)).

    With bases given, theta are basis coefficients (fixed basis); without, the projections are learned.
    """

    def __init__(self, c: NBEATSConfig, backcast_basis: Tensor | None = None,
                 forecast_basis: Tensor | None = None):
        super().__init__()
        self.c = c
        layers: list[nn.Module] = []
        width_in = c.context
        for _ in range(c.layers):
            layers += [nn.Linear(width_in, c.width), nn.ReLU()]
            width_in = c.width
        self.fc = nn.Sequential(*layers)
        if backcast_basis is None or forecast_basis is None:
            self.backcast = nn.Linear(c.width, c.context)
            self.forecast = nn.Linear(c.width, c.n_quantiles * c.horizon)
            self.register_buffer("bb", None)
            self.register_buffer("fb", None)
        else:
            self.backcast = nn.Linear(c.width, backcast_basis.shape[0], bias=False)
            self.forecast = nn.Linear(c.width, c.n_quantiles * forecast_basis.shape[0], bias=False)
            self.register_buffer("bb", backcast_basis)  # (P, L)
            self.register_buffer("fb", forecast_basis)  # (P, H)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        c = self.c
        h = self.fc(x)  # (B, W)
        if self.bb is None:
            return self.backcast(h), self.forecast(h).view(-1, c.n_quantiles, c.horizon)
        theta_f = self.forecast(h).view(-1, c.n_quantiles, self.fb.shape[0])  # (B, Q, P)
        return self.backcast(h) @ self.bb, theta_f @ self.fb  # (B, L), (B, Q, H)


class NBEATS(nn.Module):
    """z (B, L) -> (B, Q, H): sum of block forecasts over the doubly residual stack."""

    def __init__(self, config: NBEATSConfig):
        super().__init__()
        c = self.config = config
        if c.stack == "generic":
            blocks = [Block(c) for _ in range(c.blocks)]
        elif c.stack == "interpretable":
            trend = [Block(c, trend_basis(c.degree, c.context), trend_basis(c.degree, c.horizon))
                     for _ in range(c.blocks)]
            season = [Block(c, seasonality_basis(c.harmonics, c.context), seasonality_basis(c.harmonics, c.horizon))
                      for _ in range(c.blocks)]
            blocks = trend + season
        else:
            raise ValueError(f"stack={c.stack!r} must be 'generic' or 'interpretable'")
        self.blocks = nn.ModuleList(blocks)

    def forward(self, z: Tensor) -> Tensor:
        residual, forecast = z, None
        for block in self.blocks:
            backcast, f = block(residual)
            residual = residual - backcast
            forecast = f if forecast is None else forecast + f
        return forecast  # (B, Q, H)
