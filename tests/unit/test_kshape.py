"""mesp.clustering.KShape: parity with tslearn, idle rows, determinism, repair, validation, select_k."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone

from mesp.clustering import KShape, select_k
from mesp.manifest import IDLE_CLUSTER_ID
from mesp.sbd import CentroidSpectra, sbd_to_centroids, znorm


def shapes(n_per: int = 20, m: int = 96, seed: int = 0, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Raw counts of k shape families with random shifts, scales and noise; returns (X, true family)."""
    rng = np.random.default_rng(seed)
    t = np.arange(m)
    fams = [
        lambda s: 10 + 8 * np.sin(2 * np.pi * (t + s) / m),  # one smooth wave
        lambda s: 5 + 20 * (((t + s) % 24) < 3),  # a timer every 24 steps
        lambda s: 2 + 40 * np.exp(-0.5 * ((t - m / 2 - s / 4) / 3) ** 2),  # a single bump
    ][:k]
    X, y = [], []
    for f, fam in enumerate(fams):
        for _ in range(n_per):
            base = fam(rng.integers(0, 12)) * rng.lognormal(0, 0.5)
            X.append(np.maximum(0, base + rng.normal(0, 0.6, m)))
            y.append(f)
    return np.array(X), np.array(y)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.slow  # numba compiles tslearn first
def test_matches_tslearn_from_the_same_init():
    from tslearn.clustering import KShape as TsKShape

    X, _ = shapes(n_per=15, m=64, seed=3)
    Z = znorm(X)
    rng = np.random.default_rng(0)
    init = Z[rng.choice(len(Z), 3, replace=False)]
    ref = TsKShape(n_clusters=3, max_iter=5, tol=1e-9, init=init[:, :, None].astype(np.float64))
    ref.fit(Z[:, :, None].astype(np.float64))  # tslearn's fit needs z-normalised (n, m, 1) input
    ours = KShape(3, init=init, max_iter=5, tol=1e-9).fit(X)  # ours z-normalises raw counts itself
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_[:, :, 0], atol=1e-4)


def test_recovers_families_and_predict_matches_labels():
    X, y = shapes()
    km = KShape(3, random_state=0, n_init=2).fit(X)
    assert km.fit(X) is km
    assert same_partition(km.labels_, y)
    assert km.cluster_centers_.shape == (3, X.shape[1]) and km.cluster_centers_.dtype == np.float32
    np.testing.assert_allclose(km.cluster_centers_.mean(1), 0, atol=1e-5)
    np.testing.assert_allclose(km.cluster_centers_.std(1), 1, atol=1e-4)
    np.testing.assert_array_equal(km.predict(X), km.labels_)
    d, _ = sbd_to_centroids(znorm(X), CentroidSpectra(km.cluster_centers_))
    assert km.inertia_ == pytest.approx(float(d.min(1).mean()), abs=1e-6)
    np.testing.assert_allclose(km.distances_, d.min(1), atol=1e-6)
    assert km.n_iter_ >= 1 and km.inertia_history_[-1] <= km.inertia_history_[0]


def test_fit_is_scale_invariant_and_deterministic():
    X, _ = shapes(seed=1)
    a = KShape(3, random_state=7).fit(X)
    b = KShape(3, random_state=7).fit(X * 1000 + 5)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, atol=1e-4)


def test_gram_path_equals_members_path(monkeypatch):
    import mesp.clustering.kshape as ks

    X, _ = shapes(seed=2)
    init = znorm(X[[0, 25, 50]])
    a = KShape(3, init=init, max_iter=4, tol=0, chunk_size=7).fit(X)
    monkeypatch.setattr(ks, "_MEMBERS_BYTES", 0)  # force S = Mᵀ M accumulation
    b = KShape(3, init=init, max_iter=4, tol=0).fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, atol=1e-4)


def test_idle_rows_get_the_idle_label():
    X, _ = shapes()
    idle_rows = np.zeros((4, X.shape[1]))
    idle_rows[1] = 3.0
    idle_rows[2, 10] = 100
    idle_rows[3, [5, 50]] = 1
    km = KShape(3, random_state=0).fit(np.vstack([X, idle_rows]))
    assert km.n_idle_ == 4
    assert np.all(km.labels_[-4:] == IDLE_CLUSTER_ID) and np.all(km.labels_[:-4] >= 0)
    assert np.isnan(km.distances_[-4:]).all() and np.isfinite(km.inertia_)
    assert np.all(km.predict(idle_rows) == IDLE_CLUSTER_ID)


def test_empty_cluster_is_repaired():
    X, _ = shapes(k=2)
    Z = znorm(X)
    far = -Z[0]  # a centroid nobody is nearest to at first
    km = KShape(3, init=np.vstack([Z[0], Z[30], far]), max_iter=10).fit(X)
    assert np.unique(km.labels_).size == 3


def test_n_init_keeps_the_best_run():
    X, _ = shapes(seed=4)
    runs = [KShape(3, init="random", random_state=s).fit(X).inertia_ for s in range(3)]
    best = KShape(3, init="random", n_init=3, random_state=0).fit(X).inertia_
    assert best <= max(runs) + 1e-9
    assert clone(KShape(4, tol=0.1)).get_params()["tol"] == 0.1


@pytest.mark.parametrize("params, X, match", [
    ({"n_clusters": 0}, None, "n_clusters"),
    ({"n_clusters": 2, "init": "bogus"}, None, "init"),
    ({"n_clusters": 2, "init": np.ones((3, 96))}, None, r"shape \(n_clusters, m\)=\(2, 96\)"),
    ({"n_clusters": 2, "max_iter": 0}, None, "max_iter"),
    ({"n_clusters": 2}, np.ones(10), "shape"),
    ({"n_clusters": 2}, np.full((5, 8), np.nan), "NaN"),
    ({"n_clusters": 99}, None, "n_clusters=99"),
])
def test_wrong_inputs(params, X, match):
    if X is None:
        X = shapes()[0]
    with pytest.raises(ValueError, match=match):
        KShape(**params).fit(X)


def test_predict_checks_length():
    X, _ = shapes()
    km = KShape(3, random_state=0, max_iter=2).fit(X)
    with pytest.raises(ValueError, match="n_steps=50"):
        km.predict(X[:, :50])


def test_select_k_picks_the_true_number_of_families():
    X, _ = shapes(n_per=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = select_k(X, range(2, 6), score_sample_size=60, min_cluster_size=5, random_state=0, max_iter=10)
    assert res.best_k == 3
    assert [p["k"] for p in res.curve] == [2, 3, 4, 5]
    assert all(-1 <= p["silhouette"] <= 1 for p in res.curve)
    assert "silhouette" in res.criterion
