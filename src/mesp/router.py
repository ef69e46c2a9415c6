"""The serving-side router: which cluster's expert answers a pattern (numpy only).

A pattern (the last ``context`` raw counts of a function) is routed in three steps, exactly as
``mesp.clustering.KShape.predict`` labels training patterns:

1. :func:`mesp.sbd.is_idle` with the manifest's ``idle_rule`` sends idle/sparse patterns to the rule-based
   group ``IDLE_CLUSTER_ID`` (distance reported as 0, never novel: a rule answers them);
2. the rest are z-normalised and compared by SBD to every centroid (spectra precomputed once);
3. the nearest centroid wins; a distance above ``novelty_threshold`` flags the pattern as *novel* (no cluster
   really fits it, so serving may prefer the dense model).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mesp.manifest import IDLE_CLUSTER_ID
from mesp.sbd import DEFAULT_IDLE_RULE, CentroidSpectra, is_idle, sbd_to_centroids, znorm


def novelty_threshold(distances: np.ndarray, quantile: float = 0.99) -> float:
    """Novelty threshold from training members' SBD to their own centroid: their ``quantile``.

    With the default, about 1% of training patterns would be flagged novel; the value is clipped into
    ``(0, 2]`` as :class:`mesp.manifest.RouterInfo` requires.
    """
    d = np.asarray(distances, dtype=np.float64).ravel()
    d = d[np.isfinite(d)]
    if d.size == 0:
        raise ValueError("novelty_threshold needs at least one finite distance")
    if not 0 < quantile <= 1:
        raise ValueError(f"quantile must lie in (0, 1], got {quantile}")
    return float(np.clip(np.quantile(d, quantile), 1e-6, 2.0))


class Router:
    """Nearest-centroid routing by SBD, vectorised over a batch.

    Parameters
    ----------
    centroids : array of shape (k, m)
        Z-normalised K-Shape centroids; ``m`` is the serving context length.
    novelty_threshold : float
        SBD above which a routed pattern is flagged novel.
    idle_rule : dict or None
        Keyword arguments of :func:`mesp.sbd.is_idle`; ``None`` means :data:`mesp.sbd.DEFAULT_IDLE_RULE`.
    """

    def __init__(self, centroids: np.ndarray, novelty_threshold: float, idle_rule: dict | None = None):
        centroids = np.asarray(centroids, dtype=np.float32)
        if centroids.ndim != 2 or centroids.shape[0] < 1 or centroids.shape[1] < 2:
            raise ValueError(f"centroids must have shape (k >= 1, m >= 2), got {centroids.shape}")
        if not np.isfinite(centroids).all():
            raise ValueError("centroids contain NaN or inf")
        self.novelty_threshold = float(novelty_threshold)
        self.idle_rule = dict(DEFAULT_IDLE_RULE if idle_rule is None else idle_rule)
        self._spectra = CentroidSpectra(centroids)

    @property
    def centroids(self) -> np.ndarray:
        return self._spectra.centroids

    @property
    def context(self) -> int:
        return self._spectra.m

    @property
    def n_clusters(self) -> int:
        return self._spectra.k

    def route(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Route raw count patterns.

        Parameters
        ----------
        X : array of shape (n, m) or (m,)
            Raw counts, ``m`` equal to the centroids' length.

        Returns
        -------
        labels : int64 (n,)  cluster id, ``IDLE_CLUSTER_ID`` for idle rows
        distances : float32 (n,)  SBD to the chosen centroid (0 for idle rows)
        novel : bool (n,)  distance above the novelty threshold
        idle : bool (n,)  routed by the idle rule
        """
        X = np.asarray(X, dtype=np.float32)
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2 or X.shape[1] != self.context:
            raise ValueError(f"patterns must have shape (n, {self.context}), got {X.shape}")
        if not np.isfinite(X).all():
            raise ValueError("patterns contain NaN or inf")
        n = X.shape[0]
        idle = np.asarray(is_idle(X, **self.idle_rule), dtype=bool).reshape(n)
        labels = np.full(n, IDLE_CLUSTER_ID, dtype=np.int64)
        distances = np.zeros(n, dtype=np.float32)
        active = np.flatnonzero(~idle)
        if active.size:
            d, _ = sbd_to_centroids(znorm(X[active]), self._spectra)
            best = d.argmin(axis=1)
            labels[active] = best
            distances[active] = d[np.arange(active.size), best]
        novel = ~idle & (distances > self.novelty_threshold)
        return labels, distances, novel, idle

    def save_npz(self, path: str | Path) -> None:
        """Write ``router.npz`` (DESIGN.md §4): ``centroids`` (k, context) float32, no pickles."""
        with open(path, "wb") as fh:
            np.savez(fh, centroids=self.centroids)

    @classmethod
    def from_npz(cls, path: str | Path, novelty_threshold: float, idle_rule: dict | None = None) -> "Router":
        """Load ``router.npz``; threshold and idle rule come from the manifest's ``RouterInfo``."""
        with np.load(path, allow_pickle=False) as data:
            if "centroids" not in data.files:
                raise ValueError(f"{path}: no 'centroids' array")
            centroids = data["centroids"]
        return cls(centroids, novelty_threshold, idle_rule)
