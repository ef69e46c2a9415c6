"""Forecasting windows: the one definition of (context, horizon, stride) used everywhere.

Origins run ``t = context, context + stride, ...`` while ``t + horizon <= len(series)``. A window's
context is ``series[t - context:t]`` and its target ``series[t:t + horizon]``. Its MASE scale is the
one-step naive MAE over all of the series' history before ``t`` (``mean |diff(series[:t])|``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mesp.data.model import Dataset
from mesp.errors import WindowError


@dataclass
class Windows:
    """Stacked windows.

    Attributes
    ----------
    X : ndarray (n_windows, context) float32
    Y : ndarray (n_windows, horizon) float32
    series_index : ndarray (n_windows,) int64, index of the source series
    origin : ndarray (n_windows,) int64, the step ``t`` where the horizon starts
    scale : ndarray (n_windows,) float64, mean |first difference| of the series before ``t``
    """

    X: np.ndarray
    Y: np.ndarray
    series_index: np.ndarray
    origin: np.ndarray
    scale: np.ndarray

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def subset(self, mask: np.ndarray) -> "Windows":
        return Windows(self.X[mask], self.Y[mask], self.series_index[mask], self.origin[mask], self.scale[mask])


def origins(length: int, context: int, horizon: int, stride: int) -> np.ndarray:
    if length < context + horizon:
        return np.zeros(0, dtype=np.int64)
    return np.arange(context, length - horizon + 1, stride, dtype=np.int64)


def make_windows(data: Dataset | Sequence[np.ndarray] | np.ndarray, context: int, horizon: int,
                 stride: int | None = None) -> Windows:
    """Cut every series into (context → horizon) windows; raises WindowError when none fits."""
    if context <= 0 or horizon <= 0:
        raise WindowError(f"context={context} and horizon={horizon} must be positive")
    stride = horizon if stride is None else stride
    if stride <= 0:
        raise WindowError(f"stride={stride} must be positive")
    arrays = [s.values for s in data.series] if isinstance(data, Dataset) else list(data)
    Xs, Ys, idx, orig, scales = [], [], [], [], []
    longest = 0
    for i, values in enumerate(arrays):
        values = np.asarray(values, dtype=np.float32)
        longest = max(longest, values.shape[0])
        t = origins(values.shape[0], context, horizon, stride)
        if t.size == 0:
            continue
        view = np.lib.stride_tricks.sliding_window_view(values, context + horizon)
        w = view[t - context]
        Xs.append(w[:, :context])
        Ys.append(w[:, context:])
        idx.append(np.full(t.size, i, dtype=np.int64))
        orig.append(t)
        absdiff = np.abs(np.diff(values.astype(np.float64)))
        csum = np.concatenate([[0.0], np.cumsum(absdiff)])
        scales.append(csum[t - 1] / np.maximum(t - 1, 1))
    if not Xs:
        raise WindowError(f"no window fits: the longest series has {longest} steps but context + horizon = "
                          f"{context} + {horizon} = {context + horizon}")
    return Windows(np.concatenate(Xs).astype(np.float32), np.concatenate(Ys).astype(np.float32),
                   np.concatenate(idx), np.concatenate(orig), np.concatenate(scales))
