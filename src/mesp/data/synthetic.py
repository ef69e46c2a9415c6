"""A synthetic serverless fleet for the demo and unit tests, never for claims about real traces.

Each function is drawn from one archetype seen in the Azure 2019 characterisation (Shahrad et al. 2020):
cron timers with several periods, diurnal HTTP traffic (office hours with quiet weekends, or consumer
traffic with busier evenings and weekends), midnight batch jobs, bursty queues, steady event streams,
near-idle and idle functions. Base rates are log-normal with a wide spread, so the fleet spans six or more
orders of magnitude of daily volume like the real one. Counts are Poisson draws around each archetype's
rate (timers fire exact counts). ``Series.meta`` holds ``kind`` (the archetype) and ``trigger``.
Deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np

from mesp.data.model import Dataset, LoadReport, Series
from mesp.errors import DataError

#: archetype -> (share of the fleet, trigger)
ARCHETYPES: dict[str, tuple[float, str]] = {
    "timer": (0.24, "timer"),
    "http_office": (0.16, "http"),
    "http_consumer": (0.14, "http"),
    "midnight_batch": (0.07, "timer"),
    "bursty_queue": (0.12, "queue"),
    "event_stream": (0.08, "event"),
    "near_idle": (0.11, "http"),
    "idle": (0.08, "http"),
}
TIMER_PERIODS_MIN = (1, 5, 10, 15, 30, 60, 120, 360, 720, 1440)


def generate(n_functions: int = 200, days: int = 7, seed: int = 0, step_seconds: int = 60,
             start_weekday: int = 0) -> Dataset:
    """Generate ``n_functions`` series of ``days`` days at ``step_seconds``.

    Parameters
    ----------
    n_functions : int
        Number of functions (series).
    days : int
        Length in whole days.
    seed : int
        Seed of the generator; the same arguments give the same Dataset.
    step_seconds : int
        The step; must divide one day.
    start_weekday : int
        Weekday of day 0 (0 = Monday), so weekends fall on days ``5 - start_weekday`` and after.
    """
    if n_functions <= 0 or days <= 0:
        raise DataError(f"n_functions={n_functions} and days={days} must be positive")
    if step_seconds <= 0 or 86400 % step_seconds:
        raise DataError(f"step_seconds={step_seconds} must divide a day (86400 s)")
    rng = np.random.default_rng(seed)
    per_day = 86400 // step_seconds
    n = days * per_day
    sec = np.arange(n, dtype=np.int64) * step_seconds
    hour = (sec % 86400) / 3600.0
    weekend = ((sec // 86400 + start_weekday) % 7) >= 5
    minutes_per_step = step_seconds / 60.0

    kinds = list(ARCHETYPES)
    shares = np.array([ARCHETYPES[k][0] for k in kinds])
    drawn = rng.choice(len(kinds), size=n_functions, p=shares / shares.sum())
    series = []
    for i, k in enumerate(drawn):
        kind = kinds[k]
        # log10 of the per-minute base rate: about 1e-3 .. 1e4 across the fleet (heavy right tail)
        rate = 10 ** np.clip(rng.normal(0.3, 1.3), -3.0, 4.3)
        values, extra = _ARCHETYPE_FUNCS[kind](rng, sec, hour, weekend, rate * minutes_per_step, step_seconds)
        meta = {"kind": kind, "trigger": ARCHETYPES[kind][1], **extra}
        series.append(Series(id=f"syn{i:05d}", values=values.astype(np.float32), step_seconds=step_seconds,
                             start=0, meta=meta))
    report = LoadReport(files=[f"synthetic(n_functions={n_functions}, days={days}, seed={seed})"],
                        rows=n_functions, rows_by_file={"synthetic": n_functions})
    return Dataset(series=series, step_seconds=step_seconds, format="synthetic", report=report)


def _bump(hour: np.ndarray, centre: float, width: float) -> np.ndarray:
    """A smooth daily bump (von Mises shape on the 24 h circle), 1 at its centre."""
    return np.exp((np.cos((hour - centre) / 24.0 * 2 * np.pi) - 1.0) * (24.0 / (2 * np.pi * width)) ** 2)


def _timer(rng, sec, hour, weekend, rate, step):
    periods = [p for p in TIMER_PERIODS_MIN if p * 60 >= step and (p * 60) % step == 0]
    period = int(rng.choice(periods)) * 60
    phase = int(rng.integers(0, period // step)) * step
    fires = ((sec - phase) % period) < step
    per_fire = max(1, int(round(min(rate * period / step, 50.0) ** 0.5)))  # a timer fires a few calls, not a flood
    values = fires * float(per_fire)
    if rng.random() < 0.3:  # some timers only run on weekdays
        values = values * ~weekend
    # occasional missed or doubled runs keep it from being a perfect comb
    jitter = rng.random(sec.size)
    values = np.where(fires & (jitter < 0.01), 0.0, values)
    values = np.where(fires & (jitter > 0.995), values * 2, values)
    return values, {"period_minutes": period // 60}


def _http_office(rng, sec, hour, weekend, rate, step):
    start, end = rng.uniform(7.5, 9.5), rng.uniform(16.5, 19.0)
    day = 1.0 / (1.0 + np.exp(-(hour - start) * 3)) / (1.0 + np.exp((hour - end) * 3))
    weekend_level = rng.uniform(0.05, 0.4)
    shape = 0.05 + day * np.where(weekend, weekend_level, 1.0) + 0.3 * day * _bump(hour, 12.5, 1.0)
    return rng.poisson(rate * 4 * shape), {"office_hours": [round(start, 2), round(end, 2)]}


def _http_consumer(rng, sec, hour, weekend, rate, step):
    peak = rng.uniform(18.0, 22.0)
    shape = 0.25 + _bump(hour, peak, 3.5) + 0.4 * _bump(hour, 12.5, 2.0)
    shape = shape * np.where(weekend, rng.uniform(1.0, 1.5), 1.0)
    # slow day-to-day drift: a multiplicative random walk per day
    days = sec // 86400
    drift = np.exp(np.cumsum(rng.normal(0, 0.08, days.max() + 1)))[days]
    return rng.poisson(rate * 2 * shape * drift), {"peak_hour": round(peak, 2)}


def _midnight_batch(rng, sec, hour, weekend, rate, step):
    length_h = rng.uniform(0.25, 1.5)
    tod = (sec % 86400) / 3600.0
    active = tod < length_h
    values = rng.poisson(rate * 30 * active + 0.002 * rate)
    return values, {"batch_hours": round(length_h, 2)}


def _bursty_queue(rng, sec, hour, weekend, rate, step):
    n = sec.size
    per_day = 86400 // step
    bursts_per_day = rng.uniform(1, 12)
    on = np.zeros(n, dtype=bool)
    starts = np.flatnonzero(rng.random(n) < bursts_per_day / per_day)
    lengths = rng.geometric(min(1.0, step / rng.uniform(300, 3600)), size=starts.size)
    for s, length in zip(starts, lengths):
        on[s:s + length] = True
    daytime = 0.5 + _bump(hour, rng.uniform(10, 16), 4.0)  # bursts are likelier in the day
    intensity = rate * rng.uniform(5, 40) * daytime
    values = rng.poisson(np.where(on, intensity, 0.01 * rate))
    return values, {"bursts_per_day": round(bursts_per_day, 2)}


def _event_stream(rng, sec, hour, weekend, rate, step):
    shape = 1.0 + 0.3 * np.sin((hour - rng.uniform(0, 24)) / 24.0 * 2 * np.pi)
    wobble = np.exp(np.convolve(rng.normal(0, 0.15, sec.size), np.ones(30) / 30, mode="same") * 5)
    return rng.poisson(rate * shape * wobble), {}


def _near_idle(rng, sec, hour, weekend, rate, step):
    per_day = rng.uniform(0.5, 20)  # a handful of calls a day, mostly in working hours
    lam = per_day / (86400 / step) * (0.3 + 1.4 * _bump(hour, rng.uniform(9, 17), 3.0))
    return rng.poisson(lam), {"calls_per_day": round(per_day, 2)}


def _idle(rng, sec, hour, weekend, rate, step):
    return np.zeros(sec.size), {}


_ARCHETYPE_FUNCS = {"timer": _timer, "http_office": _http_office, "http_consumer": _http_consumer,
                    "midnight_batch": _midnight_batch, "bursty_queue": _bursty_queue,
                    "event_stream": _event_stream, "near_idle": _near_idle, "idle": _idle}
