"""Hand-computed traces for every policy, the hybrid histogram's windows, causality and the oracle bound."""

from __future__ import annotations

import numpy as np
import pytest

from mesp.errors import MespError
from mesp.simulate import (FixedKeepAlive, ForecastCache, ForecastPolicy, HybridHistogram, OraclePolicy, Unit,
                           instances_needed, simulate)
from mesp.simulate.engine import score
from mesp.simulate.policies import IdleHistogram, RecentQuantileForecaster, ar1_forecast


def trace(n: int, minutes: list[int], count: float = 1.0) -> np.ndarray:
    c = np.zeros(n)
    c[minutes] = count
    return c


def test_fixed_keep_alive_hand_computed():
    # uses at 0, 5, 20, 31; a 10-minute keep-alive loads minutes a+1..a+10 after a use at a
    unit = Unit("f", trace(40, [0, 5, 20, 31]))
    warm = FixedKeepAlive(10).warm(unit, 1, 60)
    r = score(unit, warm, eval_start=1)
    assert r.cold_starts == 2                 # 20 (loaded until 15) and 31 (loaded until 30)
    assert r.idle_instance_minutes == 32      # 1-4, 6-15, 21-30, 32-39
    assert r.warm_instance_minutes == 35      # 32 idle + 3 busy
    assert r.invocations == 3 and r.cold_rate == pytest.approx(2 / 3)


def test_fixed_keep_alive_with_concurrency():
    need = np.array([3, 0, 1, 0, 0, 2])
    unit = Unit("f", need * 60.0, duration_s=1.0)  # 60 calls of 1 s keep one instance busy a minute
    assert unit.need().tolist() == need.tolist()
    warm = FixedKeepAlive(2).warm(unit, 0, 60)
    assert warm.tolist() == [0, 3, 3, 1, 1, 0]
    r = score(unit, warm, 0)
    assert r.cold_starts == 5 and r.idle_instance_minutes == 7


def test_instances_needed_littles_law():
    assert instances_needed(np.array([0, 30, 60, 61, 600]), 2.0).tolist() == [0, 1, 2, 3, 20]
    assert instances_needed(np.array([2, 5]), 600.0).tolist() == [2, 5]   # never more than one per call
    assert instances_needed(np.array([0.0, 7.0]), None).tolist() == [0, 1]


def periodic(n: int = 600, period: int = 30) -> Unit:
    return Unit("timer", trace(n, list(range(0, n, period))))


def test_hybrid_learns_a_timer_and_prewarms():
    unit = periodic()
    warm = HybridHistogram().warm(unit, 300, 60)
    r = score(unit, warm, 300)
    # after 5 ITs of 29 idle minutes: pre-warm floor(29*0.9)=26, keep-alive until ceil(30*1.1)=33
    assert r.cold_starts == 0
    assert r.idle_instance_minutes == 9 * 3 + 3   # 27..29 after each of 9 uses, 597..599 after the last
    fixed = score(unit, FixedKeepAlive(10).warm(unit, 300, 60), 300)
    assert fixed.cold_starts == 10 and fixed.idle_instance_minutes == 100


def test_hybrid_before_enough_samples_is_a_four_hour_keep_alive():
    unit = periodic(200, 30)
    warm = HybridHistogram().warm(unit, 1, 60)
    # windows after uses at 0..120 see < 5 ITs: loaded from a+1 up to the next use
    assert warm[1:151].all()
    assert not warm[151:177].any() and warm[177:181].all()


def hist_of(its: list[int], n_bins: int = 240) -> tuple[IdleHistogram, list[int]]:
    h, raw = IdleHistogram.empty(n_bins), []
    for it in its:
        h.add(it, raw)
    return h, raw


def test_histogram_percentiles_on_crafted_distribution():
    h, raw = hist_of([10] * 95 + [100] * 5)
    assert h.percentile_bin(0.05) == 10 and h.percentile_bin(0.99) == 100
    assert h.cv() == pytest.approx(14.7, abs=0.1)
    assert HybridHistogram().windows(h, raw) == (9, 112, "histogram")   # floor(10*.9), ceil(101*1.1)
    assert HybridHistogram(head=0.01, tail=0.9).windows(h, raw) == (9, 13, "histogram")  # ceil(11*1.1)


def test_histogram_not_representative_falls_back():
    flat, raw = hist_of(list(range(240)))
    assert HybridHistogram().windows(flat, raw) == (0, 240, "uncertain")     # CV 0
    few, raw = hist_of([7, 7, 7])
    assert HybridHistogram().windows(few, raw) == (0, 240, "uncertain")      # < min_samples


def test_histogram_out_of_bounds_uses_the_it_forecast():
    h, raw = hist_of([300] * 6 + [5, 5])
    assert h.oob == 6 and h.total == 2
    pre, end, kind = HybridHistogram().windows(h, raw)
    pred = ar1_forecast(raw)
    assert kind == "oob" and pre == int(np.floor(pred * 0.85)) and end == int(np.ceil(pred * 1.15)) + 1
    same, raw2 = hist_of([300] * 6)
    assert HybridHistogram().windows(same, raw2) == (255, 346, "oob")


def test_ar1_forecast_follows_a_trend():
    assert ar1_forecast([5]) == 5
    # alternating ITs: phi = -1, clipped to -0.99 for stationarity, so 620 - 0.99 * 300
    assert ar1_forecast([300, 320, 300, 320, 300]) == pytest.approx(323)


class ConstantForecaster:
    """Test double for a model: every quantile is ``value``; records the contexts it was given."""

    def __init__(self, value: float, context: int = 4, horizon: int = 5):
        self.quantiles, self.context, self.horizon, self.value = [0.5, 0.9], context, horizon, value
        self.seen: list[np.ndarray] = []

    def predict(self, contexts):
        self.seen.append(np.array(contexts))
        return np.full((len(contexts), 2, self.horizon), self.value, dtype=np.float32)


def test_forecast_policy_warms_where_a_call_is_likely():
    unit = Unit("f", trace(20, [12, 13, 18], count=3.0))
    f = ConstantForecaster(0.4)  # median 0.4 read as a Poisson rate: P(call) = 1 - exp(-0.4) = 0.33
    cache = ForecastCache(f, replan=5)
    on = ForecastPolicy(cache, probability=0.3, window=0, keep_alive=0)
    on.prepare([unit], 10, 60)
    w = on.warm(unit, 10, 60)
    assert w[10:].tolist() == [1] * 10 and not w[:10].any()
    assert score(unit, w, 10).cold_starts == 0 and score(unit, w, 10).idle_instance_minutes == 7
    off = ForecastPolicy(cache, probability=0.5, window=0, keep_alive=0)
    assert score(unit, off.warm(unit, 10, 60), 10).cold_starts == 3
    # origins 10 and 15, contexts are the 4 steps before each
    assert [c.tolist() for c in f.seen[0]] == [unit.counts[6:10].tolist(), unit.counts[11:15].tolist()]
    assert len(f.seen) == 1  # the second policy reused the cached forecasts


class SpikeForecaster(ConstantForecaster):
    """Median 0 everywhere, the 0.9 quantile one call at ``at`` steps after every origin (P >= 0.1 there)."""

    def __init__(self, at: int, horizon: int = 5):
        super().__init__(0.0, context=4, horizon=horizon)
        self.at = at

    def predict(self, contexts):
        out = np.zeros((len(contexts), 2, self.horizon), dtype=np.float32)
        out[:, 1, self.at] = 1.0
        return out


def test_forecast_window_covers_a_call_a_minute_off():
    unit = Unit("f", trace(20, [14, 19]))  # calls one step after the forecast spikes at 13 and 18
    cache = ForecastCache(SpikeForecaster(at=3), replan=5)
    exact = ForecastPolicy(cache, probability=0.1, window=0, keep_alive=0)
    exact.prepare([unit], 10, 60)
    w0 = exact.warm(unit, 10, 60)
    assert np.flatnonzero(w0).tolist() == [13, 18]
    assert score(unit, w0, 10).cold_starts == 2
    near = ForecastPolicy(cache, probability=0.1, window=1, keep_alive=0)
    w1 = near.warm(unit, 10, 60)
    assert np.flatnonzero(w1).tolist() == [12, 13, 14, 17, 18, 19]
    assert score(unit, w1, 10).cold_starts == 0 and score(unit, w1, 10).idle_instance_minutes == 4
    # a 10 % chance is not enough when 20 % is asked for
    assert not ForecastPolicy(cache, probability=0.2, window=1, keep_alive=0).warm(unit, 10, 60).any()


def test_forecast_window_never_reads_the_next_origins_forecast():
    # the spike sits on the last step of each 5-step forecast: the window must not reach back into the
    # previous block from a later origin (that forecast is made after the step it would warm)
    unit = Unit("f", trace(20, []))
    policy = ForecastPolicy(ForecastCache(SpikeForecaster(at=0), replan=5), probability=0.1, window=2,
                            keep_alive=0)
    policy.prepare([unit], 10, 60)
    assert np.flatnonzero(policy.warm(unit, 10, 60)).tolist() == [10, 11, 12, 15, 16, 17]


def test_forecast_keep_alive_and_concurrency_from_the_upper_quantile():
    counts = trace(20, [11], count=5.0)
    unit = Unit("f", counts, duration_s=1.0)  # 60 calls of 1 s keep one instance busy for a minute
    quiet = ForecastPolicy(ForecastCache(ConstantForecaster(0.0), replan=5), probability=0.5, window=0,
                           keep_alive=3)
    quiet.prepare([unit], 10, 60)
    assert quiet.warm(unit, 10, 60).tolist() == FixedKeepAlive(3).warm(unit, 10, 60).tolist()
    busy = ForecastPolicy(ForecastCache(ConstantForecaster(180.0), replan=5), probability=0.5, window=0,
                          keep_alive=0)
    busy.prepare([unit], 10, 60)
    assert busy.warm(unit, 10, 60)[10:].tolist() == [3] * 10  # 180 calls/min x 1 s = 3 in flight


def test_forecast_policy_needs_history():
    unit = Unit("f", trace(20, [12]))
    policy = ForecastPolicy(ForecastCache(ConstantForecaster(1.0, context=12), replan=5))
    with pytest.raises(MespError, match="needs 12 steps of history"):
        policy.prepare([unit], 10, 60)
    with pytest.raises(MespError, match="re-plan interval 9"):
        ForecastPolicy(ForecastCache(ConstantForecaster(1.0), replan=9)).prepare([unit], 10, 60)


def test_forecast_on_top_of_the_hybrid_histogram():
    unit = Unit("f", trace(200, list(range(0, 200, 15))))  # a 15-minute timer the histogram learns
    hybrid = HybridHistogram().warm(unit, 100, 60)
    zero = ForecastPolicy(ForecastCache(ConstantForecaster(0.0), replan=5), probability=0.5, keep_alive="hybrid")
    zero.prepare([unit], 100, 60)
    assert zero.warm(unit, 100, 60).tolist() == hybrid.tolist()
    spike = ForecastPolicy(ForecastCache(SpikeForecaster(at=2), replan=5), probability=0.1, window=0,
                           keep_alive="hybrid")
    spike.prepare([unit], 100, 60)
    w = spike.warm(unit, 100, 60)
    assert (w >= hybrid).all() and w[102] == 1 and spike.name.endswith("-kahybrid")
    with pytest.raises(MespError, match="minutes or 'hybrid'"):
        ForecastPolicy(ForecastCache(ConstantForecaster(0.0)), keep_alive="forever")


def random_units(seed: int = 0, n_units: int = 8, n: int = 300) -> list[Unit]:
    rng = np.random.default_rng(seed)
    units = []
    for i in range(n_units):
        rate = rng.choice([0.02, 0.2, 3.0, 40.0])
        counts = rng.poisson(rate, size=n).astype(float)
        units.append(Unit(f"u{i}", counts, duration_s=float(rng.choice([0.1, 2.0, 30.0])), memory_mb=128.0))
    return units


def all_policies():
    cache = ForecastCache(RecentQuantileForecaster(context=30, horizon=60), replan=30)
    return [FixedKeepAlive(1), FixedKeepAlive(10), FixedKeepAlive(20), HybridHistogram(),
            HybridHistogram(head=0.01, tail=0.9), ForecastPolicy(cache, probability=0.1, window=5),
            ForecastPolicy(cache, probability=0.7, keep_alive=5), ForecastPolicy(cache, keep_alive="hybrid"),
            ForecastPolicy(ForecastCache(RecentQuantileForecaster(context=30, horizon=30), replan=30),
                           probability=0.05, window=10, keep_alive=0), OraclePolicy()]


def test_oracle_is_a_lower_bound():
    report = simulate(random_units(), all_policies(), eval_start=120)
    res = report.by_name()
    oracle = res["oracle"].overall
    assert oracle["cold_starts"] == 0 and oracle["wasted_memory"] == 0
    for r in report.results:
        assert r.overall["cold_starts"] >= 0 and r.overall["wasted_memory"] >= 0
        assert r.overall["warm_instance_minutes"] >= oracle["warm_instance_minutes"]
    assert res["fixed-10"].overall["wasted_memory_normalised"] == pytest.approx(1.0)
    # a longer keep-alive never has more cold starts, and never less waste
    assert res["fixed-20"].overall["cold_starts"] <= res["fixed-10"].overall["cold_starts"]
    assert res["fixed-20"].overall["wasted_memory"] >= res["fixed-10"].overall["wasted_memory"]


@pytest.mark.parametrize("policy", all_policies()[:-1], ids=lambda p: p.name)
def test_policies_are_causal(policy):
    units = random_units(seed=1, n_units=3)
    t = 200
    changed = [Unit(u.id, np.concatenate([u.counts[:t], np.random.default_rng(9).poisson(50, len(u.counts) - t)]),
                    u.duration_s, u.memory_mb) for u in units]
    for a, b in zip(units, changed):
        policy.prepare([a], 120, 60)
        wa = policy.warm(a, 120, 60)
        policy.prepare([b], 120, 60)
        wb = policy.warm(b, 120, 60)
        assert wa[: t + 1].tolist() == wb[: t + 1].tolist()
