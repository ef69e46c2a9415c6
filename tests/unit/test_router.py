"""mesp.router: agrees with KShape.predict, idle and novelty flags, router.npz round trip."""

from __future__ import annotations

import numpy as np
import pytest

from mesp.clustering import KShape
from mesp.manifest import IDLE_CLUSTER_ID
from mesp.router import Router, novelty_threshold
from test_kshape import shapes


@pytest.fixture(scope="module")
def fitted():
    X, _ = shapes(n_per=20, seed=5)
    return X, KShape(3, random_state=0).fit(X)


def test_router_agrees_with_predict(fitted):
    X, km = fitted
    rng = np.random.default_rng(1)
    Xnew = np.vstack([shapes(n_per=10, seed=9)[0], np.zeros((2, X.shape[1])), rng.gamma(1, 3, (5, X.shape[1]))])
    router = Router(km.cluster_centers_, novelty_threshold(km.distances_), km.idle_rule)
    labels, dist, novel, idle = router.route(Xnew)
    want, want_dist = km.transform_labels(Xnew)
    np.testing.assert_array_equal(labels, want)
    np.testing.assert_allclose(dist[~idle], want_dist[~idle], atol=1e-6)
    assert idle.sum() == 2 and np.all(labels[idle] == IDLE_CLUSTER_ID) and np.all(dist[idle] == 0)
    assert not novel[idle].any()


def test_single_pattern_equals_batch_row(fitted):
    X, km = fitted
    router = Router(km.cluster_centers_, 0.5)
    batch = router.route(X[:5])
    for i in range(5):
        one = router.route(X[i])
        assert one[0][0] == batch[0][i] and one[1][0] == pytest.approx(batch[1][i], abs=1e-6)


def test_novelty_flag_and_threshold_helper(fitted):
    X, km = fitted
    thr = novelty_threshold(km.distances_, quantile=0.9)
    assert thr == pytest.approx(np.nanquantile(km.distances_, 0.9))
    router = Router(km.cluster_centers_, thr)
    _, dist, novel, _ = router.route(X)
    np.testing.assert_array_equal(novel, dist > thr)
    assert 0 < novel.mean() <= 0.2
    with pytest.raises(ValueError, match="finite"):
        novelty_threshold([np.nan])


def test_npz_round_trip_without_pickles(fitted, tmp_path):
    _, km = fitted
    router = Router(km.cluster_centers_, 0.3, {"min_active": 5, "rel_std": 1e-3})
    router.save_npz(tmp_path / "router.npz")
    with np.load(tmp_path / "router.npz", allow_pickle=False) as data:
        assert data.files == ["centroids"] and data["centroids"].dtype == np.float32
    again = Router.from_npz(tmp_path / "router.npz", 0.3, router.idle_rule)
    np.testing.assert_array_equal(again.centroids, router.centroids)
    assert again.idle_rule["min_active"] == 5


@pytest.mark.parametrize("X, match", [
    (np.ones((2, 7)), r"shape \(n, 96\)"),
    (np.full((1, 96), np.nan), "NaN"),
])
def test_bad_patterns(fitted, X, match):
    _, km = fitted
    with pytest.raises(ValueError, match=match):
        Router(km.cluster_centers_, 0.3).route(X)


@pytest.mark.realdata
def test_router_agrees_with_predict_on_real_patterns(patterns_path):
    from mesp.data import load

    ds = load([str(patterns_path)])
    X = np.stack([s.values for s in ds.series[:400]])
    km = KShape(4, random_state=0, max_iter=5).fit(X[:300])
    router = Router(km.cluster_centers_, novelty_threshold(km.distances_))
    np.testing.assert_array_equal(router.route(X)[0], km.predict(X))
