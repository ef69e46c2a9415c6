"""Cluster labels claim a weekday/weekend only when the data's dates are real (regression: every
real-data label once said "weekend", because relative Azure days were dated from a Saturday)."""

import numpy as np

from mesp.jobs.cluster import cluster_labels
from mesp.router import Router


def _office_hours(n_days: int, first_weekday: int) -> tuple[np.ndarray, np.ndarray]:
    """One row per day: a 09:00-17:00 bump on weekdays, flat-low on weekends; hourly steps."""
    rows, starts = [], []
    rng = np.random.default_rng(0)
    for d in range(n_days):
        weekday = (first_weekday + d) % 7
        day = np.full(24, 1.0)
        if weekday < 5:
            day[9:17] = 50.0
        rows.append(day + rng.random(24))
        starts.append(d * 24)
    return np.array(rows, dtype=np.float32), np.array(starts)


def test_weekday_claimed_only_with_calendar_dates():
    X, start_steps = _office_hours(28, first_weekday=3)  # 1970-01-01 was a Thursday
    weekday_rows = np.array([(3 + d) % 7 < 5 for d in range(28)])
    labels = np.where(weekday_rows, 0, 1)
    centroids = np.stack([X[labels == 0].mean(0), X[labels == 1].mean(0)])
    router = Router((centroids - centroids.mean(1, keepdims=True)) / centroids.std(1, keepdims=True), 0.5)

    dated = cluster_labels(router, X, labels, 3600, start_steps, calendar=True)
    assert dated[0].endswith("weekday") and dated[1].endswith("weekend")

    undated = cluster_labels(router, X, labels, 3600, start_steps, calendar=False)
    assert not any(("weekday" in v or "weekend" in v) for v in undated.values())
