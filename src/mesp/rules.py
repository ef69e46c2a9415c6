"""Rule experts in numpy (serving-safe): forecasts that need no model file.

``predict_rule(family, X, horizon, quantiles, step_seconds) -> (B, Q, H)`` non-negative counts, with
the same output contract as the ONNX experts (:mod:`mesp.manifest`), so serving treats them alike.

* ``rule:naive``: the last value, repeated. Other quantiles add the empirical quantile of the
  context's own h-step changes ``x[t + h] - x[t]`` to it, so the spread grows with the lead time.
* ``rule:seasonal_naive``: the value one season (one day, from ``step_seconds``) before each target
  step, spread as above with the seasonal changes. When the context is shorter than a season it
  cannot see last season and answers as ``rule:naive`` (stated, not hidden).
* ``rule:idle``: for the idle / sparse group. Each quantile is the empirical quantile of the context's
  values, flat over the horizon: for a function called a few times a day that is 0 at the median and
  a small count at 0.9, which is what provisioning needs; for an all-zero context it is all zeros.

Quantiles never cross: they are computed in sorted order and made monotone with a running max.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RULES = ("rule:naive", "rule:seasonal_naive", "rule:idle")
SEASON_SECONDS = 86_400


def _validate(family: str, X: np.ndarray, horizon: int, quantiles: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    if family not in RULES:
        raise ValueError(f"unknown rule expert {family!r}; known: {', '.join(RULES)}")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] < 1:
        raise ValueError(f"X must have shape (batch, context >= 1); got {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or infinite values")
    if int(horizon) < 1:
        raise ValueError(f"horizon={horizon} must be positive")
    q = np.asarray(quantiles, dtype=np.float64)
    if q.ndim != 1 or q.size == 0 or np.any((q <= 0) | (q >= 1)) or np.any(np.diff(q) <= 0):
        raise ValueError(f"quantiles={list(quantiles)} must be strictly increasing inside (0, 1)")
    return np.clip(X, 0.0, None), q


def _spread(X: np.ndarray, lags: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Empirical quantiles of the context's changes over each lag: (B, Q, H) offsets (0 where unknown)."""
    B, L = X.shape
    out = np.zeros((B, q.size, lags.size))
    for j, lag in enumerate(lags):
        if 0 < lag < L:
            out[:, :, j] = np.quantile(X[:, lag:] - X[:, :-lag], q, axis=1).T  # (B, Q)
    return out


def _finish(base: np.ndarray, offsets: np.ndarray, q: np.ndarray) -> np.ndarray:
    """base (B, H) point forecast at q=0.5, offsets (B, Q, H) -> monotone non-negative (B, Q, H) float32."""
    out = base[:, None, :] + offsets
    if 0.5 in q:  # the point forecast is the rule itself, not the rule plus the median change
        out[:, int(np.flatnonzero(q == 0.5)[0])] = base
    out = np.maximum.accumulate(np.clip(out, 0.0, None), axis=1)
    return out.astype(np.float32)


def predict_rule(family: str, X: np.ndarray, horizon: int, quantiles: Sequence[float] = (0.5, 0.9),
                 step_seconds: int = 60) -> np.ndarray:
    """X (B, L) raw counts -> (B, Q, horizon) float32 non-negative count quantiles."""
    X, q = _validate(family, X, horizon, quantiles)
    B, L = X.shape
    h = np.arange(1, int(horizon) + 1)
    if family == "rule:idle":
        levels = np.quantile(X, q, axis=1).T  # (B, Q)
        out = np.repeat(levels[:, :, None], horizon, axis=2)
        return np.maximum.accumulate(out, axis=1).astype(np.float32)
    season = max(1, SEASON_SECONDS // max(int(step_seconds), 1))
    if family == "rule:seasonal_naive" and L >= season:
        # target step t + h (1-based) one season back is context index L - season + h - 1, wrapping by
        # whole seasons when the horizon runs past the end of the context.
        idx = L - season + (h - 1) % season
        return _finish(X[:, idx], _spread(X, np.full(h.size, season), q), q)
    return _finish(np.repeat(X[:, -1:], h.size, axis=1), _spread(X, h, q), q)
