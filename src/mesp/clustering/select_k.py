"""Choosing K for ``--clusters auto``.

Criterion (documented, deterministic with a seed):

1. Drop idle rows (:func:`mesp.sbd.is_idle`); fit :class:`KShape` for every K in ``k_range`` on a random
   *fit sample* of at most ``fit_sample_size`` rows.
2. Score each fit with the **silhouette on SBD** (scikit-learn's ``silhouette_score`` on a precomputed
   pairwise SBD matrix) over a *score sample* of at most ``score_sample_size`` rows of the fit sample,
   labelled by the fitted model.
3. A K is *eligible* only when its smallest cluster holds at least
   ``max(min_cluster_size, min_cluster_frac × fit sample)`` series: an expert cannot be trained on a
   handful of patterns.
4. The eligible K with the highest silhouette wins (ties go to the smaller K); if none is eligible, the
   smallest K in the range is returned and ``eligible`` says so.

The whole curve is returned so the training job can report and plot it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mesp.clustering.kshape import KShape, scipy_backend
from mesp.sbd import DEFAULT_IDLE_RULE, CentroidSpectra, is_idle, sbd_to_centroids, znorm


@dataclass
class SelectKResult:
    best_k: int
    criterion: str
    curve: list[dict] = field(default_factory=list)  # one dict per K: k, silhouette, inertia, min_size, eligible

    @property
    def any_eligible(self) -> bool:
        return any(p["eligible"] for p in self.curve)


def pairwise_sbd(Z: np.ndarray, *, n_jobs: int | None = None) -> np.ndarray:
    """Symmetric (n, n) SBD matrix of z-normalised rows, zero diagonal."""
    spectra = CentroidSpectra(Z, scipy_backend(n_jobs))
    D, _ = sbd_to_centroids(Z, spectra)
    D = (D + D.T) / 2  # float rounding differs slightly between the two directions
    np.fill_diagonal(D, 0.0)
    return D


def select_k(X: np.ndarray, k_range=range(2, 11), *, fit_sample_size: int = 20_000,
             score_sample_size: int = 1_000, min_cluster_size: int = 20, min_cluster_frac: float = 0.01,
             random_state: int | None = 0, idle_rule: dict | None = None, **kshape_params) -> SelectKResult:
    """Pick K by silhouette on SBD with a minimum cluster size (see the module docstring).

    ``kshape_params`` go to :class:`KShape` (e.g. ``max_iter``, ``n_init``, ``n_jobs``).
    """
    from sklearn.metrics import silhouette_score

    ks = sorted({int(k) for k in k_range})
    if not ks or ks[0] < 2:
        raise ValueError(f"k_range must hold integers >= 2 (silhouette needs two clusters), got {ks}")
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must have shape (n_series, n_steps), got {X.shape}")
    rule = dict(DEFAULT_IDLE_RULE if idle_rule is None else idle_rule)
    active = np.flatnonzero(~np.asarray(is_idle(X, **rule), dtype=bool))
    rng = np.random.default_rng(random_state)
    if active.size > fit_sample_size:
        active = np.sort(rng.choice(active, size=fit_sample_size, replace=False))
    Xfit = X[active]
    n = Xfit.shape[0]
    if n < ks[-1] + 1:
        raise ValueError(f"{n} non-idle series are too few to try up to K={ks[-1]}")
    score_idx = np.sort(rng.choice(n, size=min(n, score_sample_size), replace=False))
    D = pairwise_sbd(znorm(Xfit[score_idx]), n_jobs=kshape_params.get("n_jobs"))
    floor = max(int(min_cluster_size), int(np.ceil(min_cluster_frac * n)))

    curve = []
    for k in ks:
        model = KShape(k, random_state=random_state, idle_rule=rule, **kshape_params).fit(Xfit)
        sizes = np.bincount(model.labels_[model.labels_ >= 0], minlength=k)
        lab = model.labels_[score_idx]
        sil = float(silhouette_score(D, lab, metric="precomputed")) if np.unique(lab).size > 1 else -1.0
        curve.append({"k": k, "silhouette": sil, "inertia": model.inertia_, "min_size": int(sizes.min()),
                      "eligible": bool(sizes.min() >= floor)})
    eligible = [p for p in curve if p["eligible"]]
    best = max(eligible, key=lambda p: (p["silhouette"], -p["k"]))["k"] if eligible else ks[0]
    criterion = (f"max silhouette on SBD over {len(score_idx)} sampled series; clusters need >= {floor} "
                 f"members of {n}")
    return SelectKResult(best_k=int(best), criterion=criterion, curve=curve)
