"""Autoformer (Wu et al., NeurIPS 2021): series decomposition + auto-correlation, encoder-only.

The scaled context is split into a moving-average trend and a seasonal remainder (as in the paper's
decomposition blocks). The trend goes through a linear map; the seasonal part is cut into patch
tokens (B, N, D) and passes encoder layers of auto-correlation, each followed by a decomposition that
drops the trend it re-creates. A flatten head maps the tokens to (B, Q, H). Differences from the paper,
on purpose: patch tokens instead of one token per step (N = L / patch, so 720 minutes cost what 90
tokens cost), no decoder (the horizon is one hour, a direct head suffices), and the top-k lags are
picked per sample in training too, so training computes exactly what the exported graph computes.

Auto-correlation needs R(tau) = sum_t q[t + tau] k[t] (circular). The paper uses torch.fft; here the
real DFT and its inverse are fixed (N, N // 2 + 1) cos/sin matrices, which is the same arithmetic
(up to float rounding) as plain MatMuls, so the graph exports to any ONNX opset without the DFT op.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mesp.experts.dlinear import MovingAverage


@dataclass(frozen=True)
class AutoformerConfig:
    context: int
    horizon: int
    n_quantiles: int = 2
    patch: int = 8
    d_model: int = 32
    layers: int = 2
    ff: int = 64
    kernel: int = 25  # series decomposition window in steps (input); tokens use kernel // patch
    factor: float = 1.0  # top-k = max(1, int(factor * ln N)) lags
    dropout: float = 0.0


def _odd(n: int) -> int:
    return max(1, n if n % 2 else n - 1)


class TokenDecomposition(nn.Module):
    """x (B, N, D) -> (seasonal (B, N, D), trend (B, N, D)) with a moving average over tokens."""

    def __init__(self, kernel: int):
        super().__init__()
        self.avg = MovingAverage(kernel)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        B, N, D = x.shape
        trend = self.avg(x.transpose(1, 2).reshape(B * D, N)).view(B, D, N).transpose(1, 2)  # (B, N, D)
        return x - trend, trend


class AutoCorrelation(nn.Module):
    """x (B, N, D) -> (B, N, D): aggregate the values rolled by the top-k auto-correlation lags."""

    def __init__(self, n_tokens: int, d_model: int, factor: float):
        super().__init__()
        self.top_k = max(1, min(n_tokens, int(factor * math.log(max(n_tokens, 2)))))
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        n = torch.arange(n_tokens, dtype=torch.float64)
        f = torch.arange(n_tokens // 2 + 1, dtype=torch.float64)
        angle = 2 * math.pi * torch.outer(n, f) / n_tokens  # (N, F)
        # irfft counts each interior frequency twice (it and its mirror); DC and Nyquist once.
        weight = torch.full((f.numel(),), 2.0, dtype=torch.float64)
        weight[0] = 1.0
        if n_tokens % 2 == 0:
            weight[-1] = 1.0
        self.register_buffer("cos", angle.cos().float())  # (N, F)
        self.register_buffer("sin", angle.sin().float())  # (N, F)
        self.register_buffer("icos", (angle.cos() * weight / n_tokens).T.float())  # (F, N)
        self.register_buffer("isin", (angle.sin() * weight / n_tokens).T.float())  # (F, N)
        self.register_buffer("steps", torch.arange(n_tokens))

    def correlation(self, q: Tensor, k: Tensor) -> Tensor:
        """q, k (B, N, D) -> (B, N): channel-mean circular cross-correlation R[tau] = mean_c sum_t q[t+tau] k[t]."""
        qt, kt = q.transpose(1, 2), k.transpose(1, 2)  # (B, D, N)
        q_re, q_im = qt @ self.cos, -(qt @ self.sin)  # rfft: (B, D, F)
        k_re, k_im = kt @ self.cos, -(kt @ self.sin)
        p_re = q_re * k_re + q_im * k_im  # Q * conj(K)
        p_im = q_im * k_re - q_re * k_im
        r = p_re @ self.icos - p_im @ self.isin  # irfft: (B, D, N)
        return r.mean(dim=1)

    def forward(self, x: Tensor) -> Tensor:
        B, N, D = x.shape
        q, k, v = self.q(x), self.k(x), self.v(x)
        corr = self.correlation(q, k) / D  # (B, N), scaled like a dot-product attention logit
        weights, lags = torch.topk(corr, self.top_k, dim=-1)  # (B, k)
        weights = torch.softmax(weights, dim=-1)
        pos = (self.steps.view(1, 1, N) + lags.unsqueeze(-1)) % N  # (B, k, N): roll(v, -lag)
        rolled = torch.gather(v.unsqueeze(1).expand(B, self.top_k, N, D), 2,
                              pos.unsqueeze(-1).expand(B, self.top_k, N, D))  # (B, k, N, D)
        return self.out((weights.view(B, self.top_k, 1, 1) * rolled).sum(dim=1))  # (B, N, D)


class EncoderLayer(nn.Module):
    """x (B, N, D) -> (B, N, D): auto-correlation and feed-forward, each followed by a decomposition."""

    def __init__(self, c: AutoformerConfig, n_tokens: int):
        super().__init__()
        self.attn = AutoCorrelation(n_tokens, c.d_model, c.factor)
        self.decomp1 = TokenDecomposition(_odd(min(max(c.kernel // c.patch, 1), n_tokens)))
        self.ff = nn.Sequential(nn.Linear(c.d_model, c.ff), nn.GELU(), nn.Dropout(c.dropout),
                                nn.Linear(c.ff, c.d_model))
        self.decomp2 = TokenDecomposition(_odd(min(max(c.kernel // c.patch, 1), n_tokens)))

    def forward(self, x: Tensor) -> Tensor:
        x, _ = self.decomp1(x + self.attn(x))
        x, _ = self.decomp2(x + self.ff(x))
        return x


class Autoformer(nn.Module):
    """z (B, L) -> (B, Q, H) = linear(trend) + head(encoder(patch tokens of the seasonal part))."""

    def __init__(self, config: AutoformerConfig):
        super().__init__()
        c = self.config = config
        if not 1 <= c.patch <= c.context:
            raise ValueError(f"patch={c.patch} must lie in [1, context={c.context}]")
        self.n_tokens = c.context // c.patch
        self.decompose = MovingAverage(_odd(min(c.kernel, c.context)))
        out = c.n_quantiles * c.horizon
        self.trend = nn.Linear(c.context, out)
        self.embed = nn.Linear(c.patch, c.d_model)
        self.layers = nn.Sequential(*[EncoderLayer(c, self.n_tokens) for _ in range(c.layers)])
        self.ln = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(self.n_tokens * c.d_model, out)

    def forward(self, z: Tensor) -> Tensor:
        c = self.config
        trend = self.decompose(z)  # (B, L)
        seasonal = z - trend
        used = self.n_tokens * c.patch
        tokens = seasonal[:, z.shape[1] - used:].reshape(-1, self.n_tokens, c.patch)  # (B, N, P)
        x = self.ln(self.layers(self.embed(tokens)))  # (B, N, D)
        y = self.trend(trend) + self.head(x.flatten(1))  # (B, Q * H)
        return y.view(-1, c.n_quantiles, c.horizon)
