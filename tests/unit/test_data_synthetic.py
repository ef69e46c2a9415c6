"""The synthetic fleet: deterministic, every archetype, realistic spread."""

from __future__ import annotations

import numpy as np
import pytest

from mesp.data import parse_duration
from mesp.data.synthetic import ARCHETYPES, generate
from mesp.errors import DataError


@pytest.fixture(scope="module")
def fleet():
    return generate(n_functions=200, days=7, seed=3)


def test_shape_and_meta(fleet) -> None:
    assert fleet.format == "synthetic" and fleet.step_seconds == 60 and len(fleet) == 200
    assert all(len(s) == 7 * 1440 and s.values.dtype == np.float32 for s in fleet)
    assert {s.meta["kind"] for s in fleet} == set(ARCHETYPES)
    assert all(s.meta["trigger"] == ARCHETYPES[s.meta["kind"]][1] for s in fleet)
    assert all((s.values >= 0).all() for s in fleet)


def test_deterministic_with_seed(fleet) -> None:
    again = generate(n_functions=200, days=7, seed=3)
    other = generate(n_functions=200, days=7, seed=4)
    assert all(np.array_equal(a.values, b.values) for a, b in zip(fleet, again))
    assert not all(np.array_equal(a.values, b.values) for a, b in zip(fleet, other))


def test_heavy_tailed_volumes(fleet) -> None:
    daily = np.array([s.values.sum() / 7 for s in fleet])
    active = daily[daily > 0]
    assert np.log10(active.max() / active.min()) >= 6
    share_sparse = np.mean([(s.values > 0).mean() < 0.04 for s in fleet])
    assert 0.05 < share_sparse < 0.6
    assert any(s.values.sum() == 0 for s in fleet if s.meta["kind"] == "idle")


def test_office_http_is_quiet_at_weekends_and_nights(fleet) -> None:
    office = [s for s in fleet if s.meta["kind"] == "http_office" and s.values.sum() > 5000]
    assert office
    for s in office:
        days = s.values.reshape(7, 1440)
        assert days[:5].sum() > 1.5 * days[5:].sum() * 5 / 2  # weekday per-day volume well above weekend
        assert days[:5, 600:900].sum() > 3 * days[:5, 0:300].sum()


def test_timers_are_periodic(fleet) -> None:
    for s in (s for s in fleet if s.meta["kind"] == "timer"):
        fires = np.flatnonzero(s.values)
        if fires.size > 3:
            gaps = np.diff(fires)
            assert np.median(gaps) % s.meta["period_minutes"] == 0


def test_midnight_batch_runs_after_midnight(fleet) -> None:
    for s in (s for s in fleet if s.meta["kind"] == "midnight_batch" and s.values.sum() > 1000):
        days = s.values.reshape(7, 1440)
        assert days[:, :90].sum() > 0.9 * days.sum()


def test_other_steps_and_errors() -> None:
    ds = generate(n_functions=20, days=2, seed=0, step_seconds=300)
    assert len(ds.series[0]) == 2 * 288 and parse_duration("1d", ds.step_seconds) == 288
    with pytest.raises(DataError):
        generate(n_functions=5, days=1, step_seconds=7)
    with pytest.raises(DataError):
        generate(n_functions=0)
