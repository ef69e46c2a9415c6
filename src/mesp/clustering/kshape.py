"""K-Shape clustering (Paparrizos & Gravano, SIGMOD 2015), engineered for trace scale.

The algorithm is the paper's: assign each z-normalised series to the centroid with the smallest shape-based
distance (SBD, FFT cross-correlation), then re-extract every centroid as the leading eigenvector of
``Qᵀ S Q`` where ``S = Mᵀ M`` is built from the cluster's members aligned (shifted) to the current centroid
and ``Q = I - 11ᵀ/m`` centres it. What differs from tslearn's implementation is only how it is computed:

* **One pass over the data per iteration.** The assignment to centroids ``C_t`` already yields each
  series' best shift towards its own centroid, which is exactly the alignment the next shape extraction
  needs, so the same chunk that is assigned is also aligned and added to its cluster's ``S``. Each series'
  spectrum is computed once per iteration and multiplied with all ``k`` precomputed centroid spectra.
* **Bounded memory.** Series are z-normalised chunk by chunk from the caller's array (no full copy); the
  per-chunk buffers are ~64 MB; ``S`` is accumulated through float32 ``syrk`` blocks into float64
  (``k`` matrices of ``m × m``).
* **No full eigendecomposition.** The leading eigenvector of ``Qᵀ S Q`` comes from Lanczos
  (``scipy.sparse.linalg.eigsh``) on the implicit operator ``v ↦ Q S Q v``, warm-started at the current
  centroid. Its sign is ambiguous; we keep the sign that correlates positively with the sum of the aligned
  members (the paper compares to a member, tslearn to all members by Euclidean distance).
* float32 data path, ``scipy.fft`` with ``n_jobs`` workers, k-means++ seeding on SBD (greedy, with
  ``2 + log k`` local trials, on a sample), empty clusters re-seeded with the worst-fitting series.

Idle/sparse rows (:func:`mesp.sbd.is_idle`) are not clustered: they get label ``IDLE_CLUSTER_ID``.
Stopping follows tslearn: stop when the mean SBD improves by at most ``tol``; if it got worse, go back
to the previous centroids and labels.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Iterator

import numpy as np
import scipy.fft
from scipy.sparse.linalg import LinearOperator, eigsh
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from mesp.manifest import IDLE_CLUSTER_ID
from mesp.sbd import DEFAULT_IDLE_RULE, CentroidSpectra, FFTBackend, apply_shift, is_idle, sbd_to_centroids, znorm


# Below this size the aligned members are kept and S is never formed (cheaper than an m × m syrk).
_MEMBERS_BYTES = 256 * 2**20


def scipy_backend(n_jobs: int | None = None) -> FFTBackend:
    """``scipy.fft`` transforms with ``n_jobs`` threads (``None``/-1: all cores)."""
    workers = -1 if n_jobs in (None, -1) else int(n_jobs)
    return FFTBackend(rfft=partial(scipy.fft.rfft, workers=workers),
                      irfft=partial(scipy.fft.irfft, workers=workers))


class _Rows:
    """The active (non-idle) rows of the caller's array, served as z-normalised float32 chunks."""

    def __init__(self, X: np.ndarray, active: np.ndarray):
        self.X = X
        self.active = active
        self.all_active = active.size == X.shape[0]
        self.n = active.size
        self.m = X.shape[1]

    def take(self, positions: np.ndarray | slice) -> np.ndarray:
        if self.all_active and isinstance(positions, slice):
            return znorm(self.X[positions])
        return znorm(self.X[self.active[positions]])

    def chunks(self, rows: int) -> Iterator[tuple[slice, np.ndarray]]:
        for a in range(0, self.n, rows):
            sl = slice(a, min(a + rows, self.n))
            yield sl, self.take(sl)


class _GramAccumulator:
    """Per cluster, what shape extraction needs from the aligned members: ``S v`` and ``Σ a``.

    Small data keeps the aligned members ``M`` themselves (``S v = Mᵀ (M v)``, never forming ``m × m``);
    large data accumulates ``S = Mᵀ M`` through float32 syrk blocks into float64, one pass, bounded memory.
    """

    def __init__(self, k: int, m: int, block_rows: int, keep_members: bool):
        self.k, self.m, self.block = k, m, block_rows
        self.keep_members = keep_members
        self.sums = np.zeros((k, m), dtype=np.float64)
        self.members: list[list[np.ndarray]] = [[] for _ in range(k)]
        if not keep_members:
            self.buf = np.empty((k, block_rows, m), dtype=np.float32)
            self.fill = np.zeros(k, dtype=np.int64)
            self.gram = np.zeros((k, m, m), dtype=np.float64)

    def add(self, A: np.ndarray, labels: np.ndarray) -> None:
        order = np.argsort(labels, kind="stable")
        A, labels = A[order], labels[order]
        bounds = np.flatnonzero(np.diff(labels)) + 1
        for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, labels.size]):
            j = int(labels[lo])
            rows = A[lo:hi]
            self.sums[j] += rows.sum(axis=0, dtype=np.float64)
            if self.keep_members:
                self.members[j].append(rows)
                continue
            while rows.shape[0]:
                take = min(self.block - self.fill[j], rows.shape[0])
                self.buf[j, self.fill[j]:self.fill[j] + take] = rows[:take]
                self.fill[j] += take
                rows = rows[take:]
                if self.fill[j] == self.block:
                    self._flush(j)

    def _flush(self, j: int) -> None:
        f = int(self.fill[j])
        if f:
            B = self.buf[j, :f]
            self.gram[j] += B.T @ B  # numpy runs Bᵀ B as syrk
            self.fill[j] = 0

    def finish(self) -> "_GramAccumulator":
        if self.keep_members:
            self.M = [np.concatenate(parts) if parts else np.zeros((0, self.m), np.float32)
                      for parts in self.members]
            self.members = []
        else:
            for j in range(self.k):
                self._flush(j)
            self.buf = np.empty((0,), dtype=np.float32)
            self.gram32 = self.gram.astype(np.float32)  # halves the traffic of each memory-bound matvec
            del self.gram
        return self

    def s_matvec(self, j: int):
        """``v ↦ S_j v`` in float32."""
        if self.keep_members:
            M = self.M[j]
            return lambda v: M.T @ (M @ v)
        G = self.gram32[j]
        return lambda v: G @ v


@dataclass
class _State:
    centroids: np.ndarray  # (k, m) float32
    labels: np.ndarray  # (n_active,) int64
    dist: np.ndarray  # (n_active,) float32
    inertia: float


def extract_shape(s_matvec, sums: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Leading eigenvector of ``Q S Q`` (z-normalised, float32), sign matched to the members' sum.

    ``s_matvec`` computes ``S v`` for ``S = Mᵀ M`` of the aligned members, ``sums`` is ``Σ a`` (m,),
    ``previous`` the current centroid, used as the Lanczos start vector.
    """
    m = sums.shape[0]

    def qsq(v: np.ndarray) -> np.ndarray:
        v = np.ravel(v).astype(np.float32)
        w = s_matvec(v - v.mean()).astype(np.float64)
        return w - w.mean()

    if m <= 32:
        vecs = np.linalg.eigh(np.column_stack([qsq(e) for e in np.eye(m)]))[1]
        vec = vecs[:, -1]
    else:
        v0 = np.asarray(previous, dtype=np.float64) - float(np.mean(previous))
        _, vecs = eigsh(LinearOperator((m, m), matvec=qsq, dtype=np.float64), k=1, which="LA",
                        v0=v0 if np.any(v0) else None, tol=1e-7)
        vec = vecs[:, 0]
    if float(vec @ sums) < 0:
        vec = -vec
    return znorm(vec[None, :])[0]


class KShape(ClusterMixin, BaseEstimator):
    """K-Shape clustering of equal-length series by shape (SBD), fast and memory-bounded.

    Parameters
    ----------
    n_clusters : int
        Number of shape clusters (idle rows are extra, see ``idle_rule``).
    init : {"kmeans++", "random"} or ndarray of shape (n_clusters, m)
        Seeding: greedy k-means++ on SBD over a sample of ``init_sample_size`` rows, ``n_clusters`` random
        rows, or explicit centroids (z-normalised here; ``n_init`` is then 1).
    max_iter : int
        Maximum number of refinement iterations (shape extraction + assignment).
    tol : float
        Stop when the mean SBD improves by at most this much.
    n_init : int
        Independent seedings; the run with the lowest ``inertia_`` is kept.
    random_state : int, RandomState or None
        Seed for the seeding; with a fixed seed, fit is deterministic.
    idle_rule : dict or None
        Keyword arguments of :func:`mesp.sbd.is_idle`; ``None`` means :data:`mesp.sbd.DEFAULT_IDLE_RULE`.
    chunk_size : int or None
        Rows per cross-correlation chunk (``None``: a ~64 MB buffer).
    n_jobs : int or None
        FFT threads (``None``: all cores). BLAS threads follow the BLAS library's own setting.
    init_sample_size : int
        Rows that k-means++ seeding looks at.
    verbose : bool
        Show a progress bar (stderr) over iterations.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, m), float32, z-normalised
    labels_ : ndarray of shape (n_samples,), int64; ``IDLE_CLUSTER_ID`` for idle rows
    distances_ : ndarray of shape (n_samples,), float32; SBD to the own centroid, NaN for idle rows
    inertia_ : float, mean SBD of the non-idle rows to their centroid
    n_iter_ : int, shape-extraction steps of the kept run
    n_idle_ : int, rows routed to the idle group
    inertia_history_ : list of float, mean SBD after each assignment of the kept run
    """

    def __init__(self, n_clusters: int = 8, *, init: str | np.ndarray = "kmeans++", max_iter: int = 100,
                 tol: float = 1e-4, n_init: int = 1, random_state=None, idle_rule: dict | None = None,
                 chunk_size: int | None = None, n_jobs: int | None = None, init_sample_size: int = 20_000,
                 verbose: bool = False):
        self.n_clusters = n_clusters
        self.init = init
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.random_state = random_state
        self.idle_rule = idle_rule
        self.chunk_size = chunk_size
        self.n_jobs = n_jobs
        self.init_sample_size = init_sample_size
        self.verbose = verbose

    # ---------------------------------------------------------------- validation
    def _rule(self) -> dict:
        return dict(DEFAULT_IDLE_RULE if self.idle_rule is None else self.idle_rule)

    def _check_params(self) -> None:
        k = self.n_clusters
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"n_clusters must be an integer >= 1, got {k!r}")
        for name in ("max_iter", "n_init"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if not (isinstance(self.tol, (int, float)) and self.tol >= 0):
            raise ValueError(f"tol must be a number >= 0, got {self.tol!r}")
        if isinstance(self.init, str) and self.init not in ("kmeans++", "random"):
            raise ValueError(f"init must be 'kmeans++', 'random' or an array of shape (n_clusters, m), "
                             f"got {self.init!r}")

    @staticmethod
    def _check_X(X, m: int | None = None) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim == 3 and X.shape[2] == 1:
            X = X[:, :, 0]
        if X.ndim != 2:
            raise ValueError(f"X must have shape (n_series, n_steps), got shape {X.shape}")
        if not np.issubdtype(X.dtype, np.number) or np.iscomplexobj(X):
            raise ValueError(f"X must be real numbers, got dtype {X.dtype}")
        if X.shape[1] < 2:
            raise ValueError(f"series need at least 2 steps, got n_steps={X.shape[1]}")
        if m is not None and X.shape[1] != m:
            raise ValueError(f"X has n_steps={X.shape[1]} but the model was fitted with {m}")
        if not np.isfinite(X).all():
            raise ValueError("X contains NaN or inf")
        return X

    # ---------------------------------------------------------------- fitting
    def fit(self, X, y=None) -> "KShape":
        """Cluster the rows of ``X`` (n_series, n_steps) of raw values; z-normalisation happens here."""
        self._check_params()
        X = self._check_X(X)
        n, m = X.shape
        k = int(self.n_clusters)
        idle = np.asarray(is_idle(X, **self._rule()), dtype=bool)
        active = np.flatnonzero(~idle)
        if active.size < k:
            raise ValueError(f"n_samples={active.size} non-idle series (of {n}, {int(idle.sum())} idle) "
                             f"should be >= n_clusters={k}")
        explicit = not isinstance(self.init, str)
        if explicit:
            init = np.asarray(self.init, dtype=np.float64)
            if init.ndim == 3 and init.shape[2] == 1:
                init = init[:, :, 0]
            if init.shape != (k, m):
                raise ValueError(f"init array must have shape (n_clusters, m)=({k}, {m}), got {init.shape}")
            if not np.isfinite(init).all() or np.any(init.std(axis=1) == 0):
                raise ValueError("init centroids must be finite and non-constant")
        rows = _Rows(X, active)
        backend = scipy_backend(self.n_jobs)
        rng = check_random_state(self.random_state)

        best: _State | None = None
        best_iter, best_hist = 0, []
        for _ in range(1 if explicit else int(self.n_init)):
            C0 = znorm(init) if explicit else self._seed(rows, k, rng, backend)
            state, n_iter, hist = self._fit_one(rows, C0, backend)
            if best is None or state.inertia < best.inertia:
                best, best_iter, best_hist = state, n_iter, hist

        assert best is not None
        labels = np.full(n, IDLE_CLUSTER_ID, dtype=np.int64)
        labels[active] = best.labels
        dist = np.full(n, np.nan, dtype=np.float32)
        dist[active] = best.dist
        if np.unique(best.labels).size < k:
            warnings.warn(f"only {np.unique(best.labels).size} of n_clusters={k} clusters have members",
                          ConvergenceWarning, stacklevel=2)
        self.cluster_centers_ = best.centroids
        self.labels_ = labels
        self.distances_ = dist
        self.inertia_ = float(best.inertia)
        self.n_iter_ = int(best_iter)
        self.n_idle_ = int(idle.sum())
        self.inertia_history_ = best_hist
        return self

    def _pass(self, rows: _Rows, C: np.ndarray, backend: FFTBackend,
              accumulate: bool) -> tuple[np.ndarray, np.ndarray, _GramAccumulator | None]:
        """Assign every active row to its nearest centroid; optionally add its aligned copy to ``S``."""
        k, m = C.shape
        spectra = CentroidSpectra(C, backend)
        step = spectra.chunk_rows(self.chunk_size)
        labels = np.empty(rows.n, dtype=np.int64)
        dist = np.empty(rows.n, dtype=np.float32)
        acc = None
        if accumulate:
            acc = _GramAccumulator(k, m, block_rows=max(64, min(2048, (256 * 2**20) // (4 * k * m))),
                                   keep_members=rows.n * m * 4 <= _MEMBERS_BYTES)
        for sl, Z in rows.chunks(step):
            ncc, shift = spectra.ncc_max(Z, return_shift="best" if accumulate else None)
            lab = ncc.argmax(axis=1)
            labels[sl] = lab
            dist[sl] = np.clip(1.0 - ncc[np.arange(lab.size), lab], 0.0, 2.0)
            if acc is not None:
                acc.add(apply_shift(Z, shift), lab)
        return labels, dist, (acc.finish() if acc is not None else None)

    def _fit_one(self, rows: _Rows, C: np.ndarray, backend: FFTBackend) -> tuple[_State, int, list[float]]:
        max_iter, tol = int(self.max_iter), float(self.tol)
        labels, dist, acc = self._pass(rows, C, backend, accumulate=True)
        state = _State(C, labels, dist, float(dist.mean(dtype=np.float64)))
        history = [state.inertia]
        n_iter = 0
        bar = _progress(max_iter, self.verbose)
        while n_iter < max_iter:
            assert acc is not None
            newC = self._update_centroids(rows, state, acc)
            n_iter += 1
            labels, dist, acc = self._pass(rows, newC, backend, accumulate=n_iter < max_iter)
            new = _State(newC, labels, dist, float(dist.mean(dtype=np.float64)))
            history.append(new.inertia)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(mean_sbd=f"{new.inertia:.4f}")
            if new.inertia > state.inertia:  # K-Shape is not monotone: keep the better previous state
                break
            improved = state.inertia - new.inertia
            state = new
            if improved <= tol:
                break
        if bar is not None:
            bar.close()
        return state, n_iter, history

    def _update_centroids(self, rows: _Rows, state: _State, acc: _GramAccumulator) -> np.ndarray:
        k, m = state.centroids.shape
        counts = np.bincount(state.labels, minlength=k)
        C = np.empty((k, m), dtype=np.float32)
        # gemv is memory-bound: extra BLAS threads only add contention here.
        with threadpool_limits(1, user_api="blas"):
            for j in range(k):
                if counts[j]:
                    C[j] = extract_shape(acc.s_matvec(j), acc.sums[j], state.centroids[j])
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            # Re-seed each empty cluster with one of the worst-fitting series (as k-means implementations do).
            worst = np.argsort(-state.dist, kind="stable")[:empty.size]
            C[empty] = rows.take(np.sort(worst))[np.argsort(np.argsort(worst))]
        return C

    def _seed(self, rows: _Rows, k: int, rng: np.random.RandomState, backend: FFTBackend) -> np.ndarray:
        if self.init == "random":
            pick = np.sort(rng.choice(rows.n, size=k, replace=False))
            return rows.take(pick)
        s = min(rows.n, max(int(self.init_sample_size), k))
        sample = np.sort(rng.choice(rows.n, size=s, replace=False)) if s < rows.n else np.arange(rows.n)
        Z = rows.take(sample)
        trials = 2 + int(math.log(k))
        chosen = [int(rng.randint(s))]
        closest = sbd_to_centroids(Z, CentroidSpectra(Z[chosen], backend))[0][:, 0].astype(np.float64)
        for _ in range(1, k):
            weights = closest ** 2
            total = weights.sum()
            if total <= 0:  # every sampled row duplicates a chosen shape: fall back to unused rows
                cands = rng.choice(np.setdiff1d(np.arange(s), chosen), size=1)
            else:
                cands = rng.choice(s, size=trials, p=weights / total)
            d = sbd_to_centroids(Z, CentroidSpectra(Z[cands], backend))[0].astype(np.float64)
            new_closest = np.minimum(closest[:, None], d)
            best = int(np.argmin((new_closest ** 2).sum(axis=0)))
            chosen.append(int(cands[best]))
            closest = new_closest[:, best]
        return Z[chosen].copy()

    # ---------------------------------------------------------------- prediction
    def predict(self, X) -> np.ndarray:
        """Nearest centroid by SBD for raw rows; idle rows get ``IDLE_CLUSTER_ID``."""
        return self.transform_labels(X)[0]

    def transform_labels(self, X) -> tuple[np.ndarray, np.ndarray]:
        """``(labels, distance to the chosen centroid)`` for raw rows (NaN distance for idle rows)."""
        check_is_fitted(self, ["cluster_centers_"])
        X = self._check_X(X, m=self.cluster_centers_.shape[1])
        idle = np.asarray(is_idle(X, **self._rule()), dtype=bool)
        active = np.flatnonzero(~idle)
        rows = _Rows(X, active)
        spectra = CentroidSpectra(self.cluster_centers_, scipy_backend(self.n_jobs))
        labels = np.full(X.shape[0], IDLE_CLUSTER_ID, dtype=np.int64)
        dist = np.full(X.shape[0], np.nan, dtype=np.float32)
        for sl, Z in rows.chunks(spectra.chunk_rows(self.chunk_size)):
            d, _ = sbd_to_centroids(Z, spectra)
            lab = d.argmin(axis=1)
            labels[active[sl]] = lab
            dist[active[sl]] = d[np.arange(lab.size), lab]
        return labels, dist


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="k-shape", unit="iter", leave=False)
