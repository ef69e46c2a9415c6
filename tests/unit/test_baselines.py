import numpy as np
import pytest

from mesp.baselines import (Forecaster, GlobalRidge, LocalRidge, MeanLastHour, Naive, NotFittedError,
                            Ridge, SeasonalNaive, default_baselines)
from mesp.errors import MespError
from mesp.windows import make_windows


def _daily(n_days: int, period: int = 24, phase: int = 0, level: float = 50.0) -> np.ndarray:
    t = np.arange(n_days * period) + phase
    return (level * (1.5 + np.sin(2 * np.pi * t / period)) + 7 * (t % period == 5)).astype(np.float32)


def test_naive_repeats_the_last_value():
    w = make_windows([np.arange(20, dtype=np.float32)], context=5, horizon=3)
    m = Naive().fit(w)
    np.testing.assert_array_equal(m.predict(np.array([[1.0, 2.0, 9.0]])), [[9.0, 9.0, 9.0]])


def test_seasonal_naive_is_exact_on_a_pure_daily_pattern_even_past_one_season():
    w = make_windows([_daily(6), _daily(6, phase=7, level=3)], context=48, horizon=30, stride=6)
    m = SeasonalNaive(season_length=24).fit(w)
    np.testing.assert_allclose(m.predict(w.X), w.Y, rtol=1e-6)
    assert m.describe()["effective"] == "seasonal"


def test_seasonal_naive_falls_back_to_naive_and_says_so_when_the_context_is_shorter_than_a_day():
    w = make_windows([_daily(3)], context=12, horizon=4)
    m = SeasonalNaive(season_length=24).fit(w)
    np.testing.assert_array_equal(m.predict(w.X), np.repeat(w.X[:, -1:], 4, axis=1))
    assert m.describe()["effective"].startswith("naive (context 12 < season 24")


def test_mean_last_hour():
    w = make_windows([np.arange(30, dtype=np.float32)], context=10, horizon=2)
    m = MeanLastHour(window=4).fit(w)
    np.testing.assert_allclose(m.predict(np.array([[0, 0, 1, 2, 3, 6.0]])), [[3.0, 3.0]])


def _reference_local_ridge(X, lags, horizon, alpha):
    """Straight per-window ridge on the explicit design matrix (what LocalRidge computes in closed form)."""
    out = []
    for x in X:
        z = np.log1p(x.astype(np.float64))
        rows, targets = [], []
        for s in range(lags, len(z) - horizon + 1):
            w = z[s - lags:s]
            rows.append(np.r_[w - w.mean(), 1.0])
            targets.append(z[s:s + horizon] - w.mean())
        A, B = np.array(rows), np.array(targets)
        G = A.T @ A
        penalty = alpha * np.trace(G[:-1, :-1]) / lags * np.diag(np.r_[np.ones(lags), 0.0])
        W = np.linalg.solve(G + penalty + 1e-12 * np.eye(lags + 1), A.T @ B)
        q = z[-lags:]
        out.append(np.expm1(np.r_[q - q.mean(), 1.0] @ W + q.mean()))
    return np.array(out)


def test_local_ridge_equals_an_explicit_per_window_ridge():
    rng = np.random.default_rng(3)
    series = [rng.poisson(rng.gamma(1.0, 30.0) * (1.2 + np.sin(np.arange(300) / 9.0))).astype(np.float32)
              for _ in range(4)]
    w = make_windows(series, context=120, horizon=12, stride=40)
    m = LocalRidge(lags=15, alphas=(0.3,), max_growth=1e9, zero_below=-1.0, chunk_size=5).fit(w)
    expected = np.maximum(_reference_local_ridge(w.X, 15, 12, 0.3), 0.0)
    np.testing.assert_allclose(m.predict(w.X), expected, rtol=1e-8, atol=1e-8)


def test_local_ridge_continues_a_linear_ramp():
    series = [(1000 + k * 37 + (3 + k) * np.arange(400)).astype(np.float32) for k in range(3)]
    w = make_windows(series, context=120, horizon=24, stride=24)
    m = LocalRidge(lags=12).fit(w)
    np.testing.assert_allclose(m.predict(w.X), w.Y, rtol=2e-3)


def test_global_ridge_continues_ramps_it_was_not_trained_on():
    def ramps(offsets):
        return [(o + s * np.arange(300)).astype(np.float32) for o in offsets for s in (2.0, 5.0, 11.0)]

    train = make_windows(ramps([2000, 3000, 5000, 8000]), context=60, horizon=12, stride=7)
    test = make_windows(ramps([4000]), context=60, horizon=12, stride=12)
    m = GlobalRidge(lags=60, block=10, level_window=10).fit(train)
    np.testing.assert_allclose(m.predict(test.X), test.Y, rtol=3e-3)


def test_ridges_beat_naive_on_noisy_daily_patterns():
    rng = np.random.default_rng(0)
    rates = [rng.gamma(2.0, 500.0) * (1.3 + np.sin(2 * np.pi * (np.arange(480) + rng.integers(48)) / 48))
             for _ in range(60)]
    w = make_windows([rng.poisson(r).astype(np.float32) for r in rates], context=96, horizon=12, stride=12)
    train, test = w.subset(w.series_index < 40), w.subset(w.series_index >= 40)

    def wape(model):
        return np.abs(model.fit(train).predict(test.X) - test.Y).sum() / test.Y.sum()

    naive = wape(Naive())
    global_params = {"lags": 96, "block": 12, "level_window": 12}
    assert wape(LocalRidge(lags=12)) < 0.8 * naive
    assert wape(GlobalRidge(**global_params)) < 0.8 * naive
    assert wape(Ridge(local_params={"lags": 12}, global_params=global_params)) < 0.8 * naive


@pytest.mark.parametrize("model", [Naive(), SeasonalNaive(24), MeanLastHour(6), LocalRidge(lags=8),
                                   GlobalRidge(lags=48, block=6, level_window=6),
                                   Ridge(local_params={"lags": 8},
                                         global_params={"block": 6, "level_window": 6})],
                         ids=lambda m: m.name)
def test_quantiles_are_ordered_nonnegative_and_centred_on_the_point_forecast(model):
    rng = np.random.default_rng(1)
    series = [rng.poisson(20 * (1.2 + np.sin(np.arange(240) / 8.0))).astype(np.float32) for _ in range(30)]
    w = make_windows(series, context=48, horizon=6, stride=6)
    train, test = w.subset(w.series_index < 20), w.subset(w.series_index >= 20)
    model.fit(train)
    q = model.predict_quantiles(test.X, [0.1, 0.5, 0.9])
    assert q.shape == (len(test), 3, 6) and (q >= 0).all()
    assert (np.diff(q, axis=1) >= 0).all()
    np.testing.assert_allclose(q[:, 1], model.predict(test.X), rtol=1e-9, atol=1e-9)
    coverage = (test.Y <= q[:, 2]).mean()
    assert 0.75 < coverage < 0.99  # residual quantiles from training windows carry over to unseen series


@pytest.mark.parametrize("model", [Naive(), LocalRidge(), GlobalRidge(), Ridge()], ids=lambda m: m.name)
def test_predict_before_fit_is_a_clear_error(model):
    with pytest.raises(NotFittedError, match="call fit"):
        model.predict(np.ones((1, 10)))


def test_bad_contexts_are_rejected():
    w = make_windows([np.arange(50, dtype=np.float32)], context=20, horizon=5)
    with pytest.raises(MespError, match="non-negative"):
        Naive().fit(w).predict(-np.ones((1, 20)))
    with pytest.raises(MespError, match="context=20"):
        LocalRidge(lags=4).fit(w).predict(np.ones((1, 30)))
    with pytest.raises(MespError, match="shape"):
        Naive().fit(w).predict(np.ones(20))


def test_local_ridge_shrinks_lags_to_fit_a_short_context():
    w = make_windows([np.arange(100, dtype=np.float32) + 5], context=20, horizon=10, stride=10)
    m = LocalRidge(lags=60).fit(w)
    assert m.lags_ == 4 and m.describe()["effective_lags"] == 4
    assert m.predict(w.X).shape == (len(w), 10)


def test_default_baselines_use_the_step():
    models = default_baselines(step_seconds=300, context=144)
    assert list(models) == ["naive", "seasonal_naive", "mean_last_hour", "ridge", "ridge_local",
                            "ridge_global"]
    assert models["seasonal_naive"].season_length == 288 and models["mean_last_hour"].window == 12
    assert models["ridge_local"].lags == 12 and models["ridge"].local_params == {"lags": 12}
    assert models["ridge_global"].block == 12 and models["ridge_global"].lags == 144
    assert all(isinstance(m, Forecaster) and m.name == k for k, m in models.items())


def test_ridge_averages_its_parts_in_log_space():
    rng = np.random.default_rng(2)
    rates = [rng.gamma(2.0, 100.0) * (1.3 + np.sin(2 * np.pi * (np.arange(240) + rng.integers(24)) / 24))
             for _ in range(30)]
    w = make_windows([rng.poisson(r).astype(np.float32) for r in rates], context=48, horizon=6, stride=6)
    m = Ridge(local_params={"lags": 6}, global_params={"block": 6, "level_window": 6}, weight=0.3).fit(w)
    expected = 0.3 * m.local_model_.log_predict(w.X) + 0.7 * m.global_model_.log_predict(w.X)
    np.testing.assert_allclose(m.log_predict(w.X), expected)
    pred = m.predict(w.X)
    big = expected > np.log1p(1.0)
    np.testing.assert_allclose(pred[big], np.expm1(expected[big]))
    info = m.describe()
    assert info["weight"] == 0.3 and info["global_model"]["class"] == "GlobalRidge"
    with pytest.raises(MespError, match="weight"):
        Ridge(weight=1.5).fit(w)
