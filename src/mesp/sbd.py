"""Shape-based distance (SBD) and the idle/sparse rule, shared by training and serving.

SBD (Paparrizos & Gravano, SIGMOD 2015) between two z-normalised series ``x`` and ``c`` of length ``m``::

    SBD(x, c) = 1 - max_L  CC_L(x, c) / (||x|| ||c||),    CC_L(x, c) = sum_t x[t + L] c[t],  |L| < m

with zero padding outside ``[0, m)``. It lies in ``[0, 2]``; 0 means "same shape up to a time shift".
The cross-correlation at every lag is one FFT product: ``irfft(rfft(x, n) * conj(rfft(c, n)))`` with
``n >= 2m - 1`` so that circular wrap-around never mixes lags.

This module is numpy-only on purpose: the Lambda router imports it, and ``mesp.clustering.KShape`` uses the
very same functions (handing in ``scipy.fft`` with threads as the FFT backend), so training and serving
cannot drift apart.

The idle/sparse rule
--------------------
A pattern has no shape to compare when it cannot be z-normalised meaningfully. :func:`is_idle` calls a row
idle when **either**

* it has fewer than ``min_active`` non-zero steps (all-zero rows, a single spike, two spikes), **or**
* its standard deviation is at most ``rel_std * max(|mean|, 1)`` (constant or numerically constant rows).

Idle rows never reach K-Shape; they form the rule-based group ``mesp.manifest.IDLE_CLUSTER_ID``. The rule's
parameters travel in the manifest (``RouterInfo.idle_rule``) so serving applies exactly what training did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

DEFAULT_IDLE_RULE: dict[str, float] = {"min_active": 3, "rel_std": 1e-3}

# Budget for the (rows, k, nfft) float32 cross-correlation buffer of one chunk.
_CHUNK_BYTES = 64 * 2**20


def is_idle(X: np.ndarray, *, min_active: int = 3, rel_std: float = 1e-3) -> np.ndarray:
    """Rows that go to the rule-based idle/sparse group instead of K-Shape.

    Parameters
    ----------
    X : array of shape (n, m) or (m,)
        Raw (non-negative) counts.
    min_active : int
        A row needs at least this many non-zero steps to have a shape.
    rel_std : float
        A row whose std is at most ``rel_std * max(|mean|, 1)`` is constant.

    Returns
    -------
    bool array of shape (n,) (or a 0-d bool for a 1-d input).
    """
    X = np.asarray(X)
    active = np.count_nonzero(X, axis=-1)
    mean = X.mean(axis=-1, dtype=np.float64)
    std = X.std(axis=-1, dtype=np.float64)
    return (active < min_active) | (std <= rel_std * np.maximum(np.abs(mean), 1.0)) | ~np.isfinite(std)


def znorm(X: np.ndarray, axis: int = -1) -> np.ndarray:
    """Z-normalise along ``axis`` (mean 0, population std 1) as float32.

    Rows with zero standard deviation become all zeros instead of NaN (they are idle by
    :func:`is_idle` and never compared by shape).
    """
    X = np.asarray(X, dtype=np.float64)
    mean = X.mean(axis=axis, keepdims=True)
    std = X.std(axis=axis, keepdims=True)
    std = np.where(std > 0, std, np.inf)
    return ((X - mean) / std).astype(np.float32)


def fft_len(m: int) -> int:
    """Smallest 5-smooth length ``>= 2m - 1`` (fast for every FFT library; 2,880 for m = 1,440)."""
    n = max(2 * m - 1, 1)
    while True:
        r = n
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return n
        n += 1


@dataclass(frozen=True)
class FFTBackend:
    """The two transforms SBD needs; numpy by default, ``scipy.fft`` with workers on the training side."""

    rfft: Callable[..., np.ndarray]
    irfft: Callable[..., np.ndarray]


NUMPY_FFT = FFTBackend(rfft=np.fft.rfft, irfft=np.fft.irfft)


class CentroidSpectra:
    """Centroids prepared once for many SBD queries: conjugate spectra and norms.

    Parameters
    ----------
    centroids : array of shape (k, m)
        Z-normalised centroids (any non-constant rows work; norms are taken as given).
    backend : FFTBackend
        Where the FFTs run.
    """

    def __init__(self, centroids: np.ndarray, backend: FFTBackend = NUMPY_FFT):
        C = np.ascontiguousarray(np.atleast_2d(centroids), dtype=np.float32)
        if C.ndim != 2 or C.shape[1] < 1:
            raise ValueError(f"centroids must have shape (k, m), got {np.shape(centroids)}")
        self.centroids = C
        self.k, self.m = C.shape
        self.nfft = fft_len(self.m)
        self.backend = backend
        self.conj_spectra = np.conj(backend.rfft(C, n=self.nfft, axis=-1)).astype(np.complex64)  # (k, nf)
        norms = np.linalg.norm(C.astype(np.float64), axis=1)
        self.inv_norms = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0).astype(np.float32)

    def chunk_rows(self, chunk_size: int | None = None) -> int:
        if chunk_size:
            return int(chunk_size)
        return max(1, _CHUNK_BYTES // (4 * self.k * self.nfft))

    def ncc_max(self, Z: np.ndarray, *, return_shift: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Max normalised cross-correlation of each row of ``Z`` with each centroid (one chunk, no chunking).

        Parameters
        ----------
        Z : array of shape (b, m)
            Z-normalised rows (zero rows give NCC 0).
        return_shift : None, "all" or "best"
            Also return the shift that aligns each row to each centroid ("all": (b, k)) or to its
            nearest centroid only ("best": (b,)). Shift ``s`` means ``aligned[t] = z[t - s]``.

        Returns
        -------
        ncc : float32 array (b, k); shift or None
        """
        b, m = Z.shape
        if m != self.m:
            raise ValueError(f"series have {m} steps but centroids have {self.m}")
        nfft, bk = self.nfft, self.backend
        Fz = bk.rfft(np.asarray(Z, dtype=np.float32), n=nfft, axis=-1)  # (b, nf)
        cc = bk.irfft(Fz[:, None, :] * self.conj_spectra[None], n=nfft, axis=-1)  # (b, k, nfft)
        # Valid lags only: L = 0..m-1 at the front, L = -(m-1)..-1 at the back; the zero padding between
        # them would otherwise cap SBD at 1 for anti-correlated pairs.
        pos, neg = cc[..., :m], cc[..., nfft - m + 1:]
        zn = np.linalg.norm(Z, axis=-1)
        inv_z = np.where(zn > 0, 1.0 / np.where(zn > 0, zn, 1.0), 0.0).astype(np.float32)
        scale = inv_z[:, None] * self.inv_norms[None, :]  # (b, k)
        if return_shift is None:
            best = np.maximum(pos.max(axis=-1), neg.max(axis=-1) if m > 1 else -np.inf)
            return (best * scale).astype(np.float32), None
        if return_shift == "best":
            best = np.maximum(pos.max(axis=-1), neg.max(axis=-1) if m > 1 else -np.inf)
            ncc = (best * scale).astype(np.float32)
            j = ncc.argmax(axis=1)
            rows = cc[np.arange(b), j]  # (b, nfft)
            return ncc, _lag_to_shift(_argmax_lag(rows, m, nfft))
        if return_shift == "all":
            lag = _argmax_lag(cc, m, nfft)  # (b, k)
            val = np.take_along_axis(cc, np.where(lag >= 0, lag, nfft + lag)[..., None], axis=-1)[..., 0]
            return (val * scale).astype(np.float32), _lag_to_shift(lag)
        raise ValueError(f"return_shift must be None, 'all' or 'best', got {return_shift!r}")


def _argmax_lag(cc: np.ndarray, m: int, nfft: int) -> np.ndarray:
    """Lag L (``-(m-1)..m-1``) of the maximum of ``cc[..., :]`` over valid lags."""
    pos, neg = cc[..., :m], cc[..., nfft - m + 1:]
    ip = pos.argmax(axis=-1)
    if m == 1:
        return ip
    ineg = neg.argmax(axis=-1)
    vp = np.take_along_axis(pos, ip[..., None], axis=-1)[..., 0]
    vn = np.take_along_axis(neg, ineg[..., None], axis=-1)[..., 0]
    return np.where(vn > vp, ineg - (m - 1), ip)


def _lag_to_shift(lag: np.ndarray) -> np.ndarray:
    # CC_L peaks when z[t + L] matches c[t], so z shifted right by -L lines up with the centroid.
    return (-lag).astype(np.int64)


def sbd_to_centroids(Z: np.ndarray, spectra: CentroidSpectra, *, chunk_size: int | None = None,
                     return_shift: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """SBD of every row of the z-normalised ``Z`` (n, m) to every centroid, chunked to bound memory.

    Returns ``(dist (n, k) float32, shift or None)``; see :meth:`CentroidSpectra.ncc_max` for shifts.
    """
    Z = np.atleast_2d(np.asarray(Z, dtype=np.float32))
    n = Z.shape[0]
    step = spectra.chunk_rows(chunk_size)
    dist = np.empty((n, spectra.k), dtype=np.float32)
    shift: Any = None
    if return_shift == "all":
        shift = np.empty((n, spectra.k), dtype=np.int64)
    elif return_shift == "best":
        shift = np.empty(n, dtype=np.int64)
    for a in range(0, n, step):
        ncc, sh = spectra.ncc_max(Z[a:a + step], return_shift=return_shift)
        dist[a:a + step] = 1.0 - ncc
        if shift is not None:
            shift[a:a + step] = sh
    np.clip(dist, 0.0, 2.0, out=dist)
    return dist, shift


def sbd(x: np.ndarray, y: np.ndarray) -> float:
    """SBD between two series (each is z-normalised here first)."""
    d, _ = sbd_to_centroids(znorm(np.atleast_2d(x)), CentroidSpectra(znorm(np.atleast_2d(y))))
    return float(d[0, 0])


def apply_shift(Z: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Shift each row right by ``shift[i]`` steps with zero fill: ``out[i, t] = Z[i, t - shift[i]]``."""
    Z = np.atleast_2d(Z)
    n, m = Z.shape
    src = np.arange(m)[None, :] - np.asarray(shift).reshape(-1, 1)
    valid = (src >= 0) & (src < m)
    out = np.take_along_axis(Z, np.clip(src, 0, m - 1), axis=1)
    out[~valid] = 0
    return out
