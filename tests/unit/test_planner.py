"""Planner math: Little's law, blocks, floor/ceiling, cost cap, smoothing, degraded rule."""

from __future__ import annotations

import numpy as np
import pytest

from mesp.planner import PlannerConfig, little_concurrency, pick_quantile, plan_concurrency

LEVELS = [0.1, 0.5, 0.9]


def forecast(p90: list[float], horizon: int = 60) -> np.ndarray:
    """(3, horizon): the 0.9 row repeats ``p90`` block by block; the other rows are smaller."""
    row = np.repeat(np.asarray(p90, dtype=float), horizon // len(p90))
    return np.stack([row * 0.2, row * 0.5, row])


def plan(q, **kw):
    cfg = kw.pop("config", PlannerConfig(floor=0, ceiling=1000, hysteresis=0, max_step_down=1.0))
    args = dict(duration_s=2.0, memory_mb=1024, step_seconds=60, config=cfg)
    args.update(kw)
    return plan_concurrency(q, LEVELS, **args)


def test_littles_law():
    # 600 calls per minute of 2 s each: 10 calls per second x 2 s = 20 in flight
    assert little_concurrency(np.array([600.0]), 2.0, 60).tolist() == [20.0]
    with pytest.raises(ValueError):
        little_concurrency(np.array([1.0]), -1, 60)


def test_blocks_take_the_peak_with_headroom():
    p = plan(forecast([210, 420, 0, 63]))
    # 210/min x 2 s / 60 = 7 in flight -> 7 / 0.7 = 10; 420 -> 20; 63 -> 2.1/0.7 = 3
    assert p.values == [10, 20, 0, 3] and p.block_minutes == 15 and p.quantile == 0.9
    assert not p.degraded and p.need[0] == pytest.approx(7.0)


def test_quantile_choice():
    assert pick_quantile(LEVELS, 0.9) == 2 and pick_quantile(LEVELS, 0.6) == 2
    assert pick_quantile(LEVELS, 0.5) == 1 and pick_quantile(LEVELS, 0.99) == 2
    p = plan(forecast([210] * 4), config=PlannerConfig(quantile=0.5, ceiling=1000, hysteresis=0))
    assert p.values == [5] * 4 and p.quantile == 0.5  # 105/min -> 3.5 in flight -> 5


def test_floor_and_ceiling_are_final():
    cfg = PlannerConfig(floor=4, ceiling=12, hysteresis=0, max_step_down=1.0)
    p = plan(forecast([210, 420, 0, 63]), config=cfg)
    assert p.values == [10, 12, 4, 4]
    assert any("ceiling" in r for r in p.reasons) and any("floor" in r for r in p.reasons)


def test_cost_cap():
    # 1 GB x 3600 s x price per unit-hour; cap of 5 units' worth
    cfg = PlannerConfig(ceiling=1000, hysteresis=0, max_step_down=1.0, cost_cap_usd_per_hour=5 * 3600 * 0.0000041667)
    p = plan(forecast([210, 420, 0, 63]), config=cfg)
    assert p.values == [5, 5, 0, 3]
    floor_wins = PlannerConfig(floor=8, ceiling=1000, hysteresis=0, cost_cap_usd_per_hour=0.0)
    q = plan(forecast([210, 420, 0, 63]), config=floor_wins)
    assert q.values == [8, 8, 8, 8] and any("floor wins" in r for r in q.reasons)
    assert q.cost_usd_per_hour == pytest.approx(8 * 3600 * 0.0000041667, rel=1e-3)


def test_hysteresis_and_bounded_step_down():
    cfg = PlannerConfig(ceiling=1000, hysteresis=2, max_step_down=0.5)
    p = plan(forecast([210, 210, 0, 0]), config=cfg, previous=11)
    # 10 is within 2 of 11: hold 11; then drops at most by half: 6, 3
    assert p.values == [11, 11, 6, 3]
    up = plan(forecast([420] * 4), config=cfg, previous=1)
    assert up.values == [20] * 4  # scale-up is never delayed


@pytest.mark.parametrize("action, previous, expected", [("hold", 7, 7), ("hold", None, 3), ("floor", 7, 3)])
def test_degraded_forecast_never_sets_concurrency(action, previous, expected):
    cfg = PlannerConfig(floor=3, ceiling=50, degraded_action=action)
    huge = forecast([1e6] * 4)
    p = plan(huge, config=cfg, previous=previous, degraded=True)
    assert p.values == [expected] * 4 and p.degraded


def test_degraded_hold_still_respects_the_bounds():
    cfg = PlannerConfig(floor=3, ceiling=5)
    assert plan(forecast([0] * 4), config=cfg, previous=40, degraded=True).values == [5] * 4
    assert plan(forecast([0] * 4), config=cfg, previous=0, degraded=True).values == [3] * 4


def test_non_finite_forecast_is_degraded():
    q = forecast([210] * 4)
    q[2, 5] = np.nan
    p = plan(q, config=PlannerConfig(floor=2, ceiling=50), previous=None)
    assert p.degraded and p.values == [2] * 4


@pytest.mark.parametrize("kw, match", [
    ({"floor": 5, "ceiling": 2}, "floor <= ceiling"), ({"quantile": 1.0}, "quantile"),
    ({"target_utilization": 0}, "target_utilization"), ({"block_minutes": 0}, "block_minutes"),
    ({"max_step_down": 2}, "max_step_down"), ({"cost_cap_usd_per_hour": -1}, "cost_cap"),
    ({"degraded_action": "panic"}, "degraded_action")])
def test_wrong_config(kw, match):
    with pytest.raises(ValueError, match=match):
        PlannerConfig(**kw)


def test_wrong_forecast_shape():
    with pytest.raises(ValueError, match="shape"):
        plan(np.zeros((2, 60)))


def test_min_probability_gates_blocks_on_the_chance_of_any_call():
    from mesp.planner import invocation_probability, window_probability

    # block 1: a sparse function whose 0.9 quantile crosses one call (P >= 0.1) but whose Little's-law
    # need rounds to 0; block 3: a tiny median of 0.01 calls (P ~ 1 %) and nothing in the upper rows
    q = np.zeros((3, 60))
    q[2, 20] = 1.0
    q[1, 50] = q[2, 50] = 0.01
    cfg = dict(floor=0, ceiling=1000, hysteresis=0, max_step_down=1.0)
    assert plan(q, config=PlannerConfig(**cfg)).values == [0, 1, 0, 1]  # 1/min x 2 s rounds up
    gated = plan(q, config=PlannerConfig(min_probability=0.05, **cfg))
    assert gated.values == [0, 1, 0, 0] and any("below invocation probability" in r for r in gated.reasons)
    assert plan(q, config=PlannerConfig(min_probability=0.5, **cfg)).values == [0, 0, 0, 0]
    p = invocation_probability(q, LEVELS)
    assert p[20] == pytest.approx(0.1) and p[50] == pytest.approx(1 - np.exp(-0.01)) and p[0] == 0
    assert window_probability(np.array([0.5, 0.5]), 0, 1).tolist() == pytest.approx([0.75, 0.5])
    with pytest.raises(ValueError, match="min_probability"):
        PlannerConfig(min_probability=1.5)
