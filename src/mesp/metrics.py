"""Forecast accuracy metrics, exactly as issue 2 defines them.

Serverless counts are intermittent and span eight orders of magnitude, so no single number ranks models
honestly. A plain mean of per-window MASE is dominated by a few near-idle windows; a volume-weighted error
is dominated by the busiest functions. We report both families and compare models on ``wape`` and
``mase_gmean`` together:

* ``wape`` = Σ|ŷ − y| / Σ|y| over every window and step (volume-weighted: what capacity cost follows);
* MASE of a window = MAE / scale, with scale = the one-step naive MAE over all of the series' history before
  the window's origin (:attr:`mesp.windows.Windows.scale`); windows with zero scale are left out;
  MASE of a series = the mean over its scored windows; series with no scored window are left out and counted;
* across series: ``mase_gmean`` (geometric mean, each series' MASE floored at :data:`MASE_FLOOR`),
  ``mase_median`` and ``mase_mean``;
* ``mae``, ``rmse`` over all windows and steps, ``n_windows``, ``n_series``.

This module is numpy-only so serving code and training jobs can both import it.
"""

from __future__ import annotations

import math

import numpy as np

MASE_FLOOR = 1e-3
METRIC_NAMES = ("wape", "mase_gmean", "mase_median", "mase_mean", "mae", "rmse", "n_windows", "n_series")


def forecast_metrics(y_true: np.ndarray, y_pred: np.ndarray, scale: np.ndarray,
                     series_index: np.ndarray) -> dict[str, float | int | None]:
    """All point-forecast metrics for one model over a set of windows.

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (n_windows, horizon)
    scale : ndarray of shape (n_windows,)
        MASE denominator of each window (``Windows.scale``).
    series_index : ndarray of shape (n_windows,)
        Which series each window belongs to (any integer labels).

    Returns
    -------
    dict
        The keys of :data:`METRIC_NAMES` plus ``n_series_unscored`` (series left out of the MASE figures
        because every one of their windows has zero scale) and ``n_windows_unscored``. ``n_series`` counts
        every series with a window; the MASE figures average over ``n_series - n_series_unscored``.
        A figure that cannot be computed (no volume, no scored series) is ``None``.
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    series_index = np.asarray(series_index)
    if y_true.shape != y_pred.shape or y_true.ndim != 2:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must be the same "
                         "(n_windows, horizon)")
    if scale.shape != (y_true.shape[0],) or series_index.shape != (y_true.shape[0],):
        raise ValueError(f"scale {scale.shape} and series_index {series_index.shape} "
                         f"must be ({y_true.shape[0]},)")
    n_windows = int(y_true.shape[0])
    labels, inverse = np.unique(series_index, return_inverse=True)
    if n_windows == 0:
        return {"wape": None, "mase_gmean": None, "mase_median": None, "mase_mean": None, "mae": None,
                "rmse": None, "n_windows": 0, "n_series": 0, "n_series_unscored": 0, "n_windows_unscored": 0}

    abs_err = np.abs(y_pred - y_true)
    volume = float(np.abs(y_true).sum())
    window_mae = abs_err.mean(axis=1)

    scored = scale > 0
    # Mean per series of the per-window MASE, over scored windows only.
    window_mase = np.divide(window_mae, scale, out=np.zeros_like(window_mae), where=scored)
    per_series_n = np.bincount(inverse, weights=scored.astype(np.float64), minlength=labels.size)
    per_series_sum = np.bincount(inverse, weights=window_mase, minlength=labels.size)
    has_score = per_series_n > 0
    series_mase = per_series_sum[has_score] / per_series_n[has_score]

    out: dict[str, float | int | None] = {
        "wape": float(abs_err.sum() / volume) if volume > 0 else None,
        "mase_gmean": None, "mase_median": None, "mase_mean": None,
        "mae": float(abs_err.mean()),
        "rmse": float(math.sqrt(np.square(y_pred - y_true).mean())),
        "n_windows": n_windows,
        "n_series": int(labels.size),
        "n_series_unscored": int((~has_score).sum()),
        "n_windows_unscored": int((~scored).sum()),
    }
    if series_mase.size:
        out["mase_gmean"] = float(np.exp(np.log(np.maximum(series_mase, MASE_FLOOR)).mean()))
        out["mase_median"] = float(np.median(series_mase))
        out["mase_mean"] = float(series_mase.mean())
    return out


def per_cluster_metrics(y_true: np.ndarray, y_pred: np.ndarray, scale: np.ndarray, series_index: np.ndarray,
                        clusters: np.ndarray) -> dict[str, dict]:
    """:func:`forecast_metrics` for each cluster label (one label per window), keyed by ``str(label)``."""
    clusters = np.asarray(clusters)
    if clusters.shape != (np.asarray(y_true).shape[0],):
        raise ValueError(f"clusters {clusters.shape} must hold one label per window "
                         f"({np.asarray(y_true).shape[0]})")
    result = {}
    for label in np.unique(clusters):
        m = clusters == label
        result[str(label.item() if hasattr(label, "item") else label)] = forecast_metrics(
            y_true[m], y_pred[m], scale[m], series_index[m])
    return result


def pinball_loss(y_true: np.ndarray, y_quantiles: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Pinball (quantile) loss per quantile, summed over windows and steps and divided by Σ|y| (like WAPE).

    ``y_quantiles`` has shape (n, Q, horizon) as every forecaster's ``predict_quantiles`` returns.
    """
    y = np.asarray(y_true, dtype=np.float64)[:, None, :]
    q = np.asarray(quantiles, dtype=np.float64)[None, :, None]
    diff = y - np.asarray(y_quantiles, dtype=np.float64)
    loss = np.maximum(q * diff, (q - 1) * diff).sum(axis=(0, 2))
    volume = np.abs(y).sum()
    return loss / volume if volume > 0 else np.full(q.shape[1], np.nan)
