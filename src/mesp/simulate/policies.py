"""Provisioning policies replayed by :mod:`mesp.simulate.engine`.

Every policy maps a unit's trace to ``warm[t]``, the instances loaded at the start of step ``t``, and
decides ``warm[t]`` from steps ``< t`` only (causality is tested), except :class:`OraclePolicy`.

* :class:`FixedKeepAlive`: an instance stays loaded ``K`` minutes after its last use (AWS ~10, Azure 20).
* :class:`HybridHistogram`: Shahrad et al., "Serverless in the Wild", USENIX ATC 2020, section 4.
* :class:`ForecastPolicy`: MESP's policy (and the same with the dense model): re-plan every ``replan``
  steps from the last ``context`` steps; warm where a call is likely near, plus a short keep-alive.
* :class:`OraclePolicy`: knows the future; ``warm = need`` is the bound (zero cold starts, zero waste at
  this resolution), the corner every curve is measured against.

Concurrency: window policies (keep-alive, histogram) treat instance ``k`` as used in step ``t`` when
``need[t] >= k`` and apply their rule to each instance's own on/off sequence; with one instance (no
durations) this is exactly the per-app model of the paper.
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from mesp.errors import MespError
from mesp.simulate.engine import Unit, instances_needed


class Policy(ABC):
    """A warm-instance rule. ``family`` groups the points of one trade-off curve."""

    family: str = "policy"

    @property
    def name(self) -> str:
        return self.family

    def params(self) -> dict:
        return {}

    def prepare(self, units: list[Unit], eval_start: int, step_seconds: int) -> None:
        """Batch work over all units before :meth:`warm` (forecast policies forecast here)."""

    @abstractmethod
    def warm(self, unit: Unit, eval_start: int, step_seconds: int) -> np.ndarray:
        """Instances loaded at the start of each step, shape ``(n,)``, int64."""


def _steps(minutes: float, step_seconds: int) -> int:
    return max(0, int(math.ceil(minutes * 60 / step_seconds - 1e-9)))


class FixedKeepAlive(Policy):
    """Keep each instance loaded ``minutes`` after its last use: ``warm[t] = max(need[t-K:t])``."""

    family = "fixed"

    def __init__(self, minutes: float = 10):
        self.minutes = minutes

    @property
    def name(self) -> str:
        return f"fixed-{self.minutes:g}"

    def params(self) -> dict:
        return {"keep_alive_minutes": self.minutes}

    def warm(self, unit: Unit, eval_start: int, step_seconds: int) -> np.ndarray:
        need = unit.need(step_seconds)
        k = _steps(self.minutes, step_seconds)
        if k == 0:
            return np.zeros_like(need)
        padded = np.concatenate([np.zeros(k, dtype=need.dtype), need])
        # warm[t] = max(need[t-k .. t-1]); the window ending before t keeps it causal
        windows = np.lib.stride_tricks.sliding_window_view(padded, k)[: need.size]
        return windows.max(axis=1)


@dataclass
class IdleHistogram:
    """Idle times (ITs) of one instance in ``bins`` one-step bins, plus the out-of-bounds (OOB) count."""

    bins: np.ndarray
    oob: int = 0

    @classmethod
    def empty(cls, n_bins: int) -> "IdleHistogram":
        return cls(np.zeros(n_bins, dtype=np.int64))

    def add(self, it: int, raw: list[int], times: int = 1) -> None:
        raw.extend([it] * times)
        if it < self.bins.size:
            self.bins[it] += times
        else:
            self.oob += times

    @property
    def total(self) -> int:
        return int(self.bins.sum())

    def percentile_bin(self, p: float) -> int:
        """First bin at which the cumulative share of in-bound ITs reaches ``p``."""
        cum = np.cumsum(self.bins)
        return int(np.searchsorted(cum, p * cum[-1] - 1e-9))

    def cv(self) -> float:
        """Coefficient of variation of the bin counts (sample std over all bins / mean)."""
        mean = self.bins.mean()
        return float(self.bins.std(ddof=1) / mean) if mean > 0 else 0.0


def ar1_forecast(its: list[int], max_history: int = 100) -> float:
    """Next idle time from an AR(1) with intercept fitted by least squares on the last ITs.

    The documented stand-in for the paper's per-app ARIMA: ARIMA(1,0,0) estimated by OLS in numpy (no
    statsmodels in this project). With fewer than 3 ITs, or no variation, it predicts the mean.
    """
    x = np.asarray(its[-max_history:], dtype=np.float64)
    if x.size < 3 or np.ptp(x[:-1]) == 0:
        return float(x.mean())
    a = np.column_stack([np.ones(x.size - 1), x[:-1]])
    (c, phi), *_ = np.linalg.lstsq(a, x[1:], rcond=None)
    phi = float(np.clip(phi, -0.99, 0.99))  # keep the fitted process stationary
    return float(max(0.0, c + phi * x[-1]))


class HybridHistogram(Policy):
    """Shahrad et al.'s hybrid histogram policy (USENIX ATC 2020, section 4.2), per instance.

    After each execution the policy picks a *pre-warm* window (unload now, load again that long after the
    execution) and a *keep-alive* window (how long it then stays loaded), from the instance's idle-time (IT)
    distribution so far:

    * ITs go into a histogram of one-minute bins over ``range_minutes`` (4 hours); an IT is the number of
      idle steps between two executions (consecutive busy minutes give IT 0).
    * **Out of bounds**: when at least ``oob_threshold`` of the ITs exceed the range, the next IT is predicted
      (the paper: ARIMA; here :func:`ar1_forecast`) and the instance is loaded from
      ``pred * (1 - arima_margin)`` to ``pred * (1 + arima_margin)`` after the execution.
    * **Not representative** (fewer than ``min_samples`` in-bound ITs, or the CV of the bin counts below
      ``cv_threshold``): the standard keep-alive, no pre-warm and keep-alive = the histogram range.
    * **Histogram**: pre-warm = the ``head`` percentile bin less ``margin`` (10 %), keep-alive ends at the
      ``tail`` percentile bin's upper edge plus ``margin``: loaded on steps ``(a + 1 + pre, a + end]`` after
      an execution at ``a``, so ITs within [head, tail] find a warm instance.

    ``min_samples`` is ours: the paper says "too few" without a number, and a histogram with one IT
    has a huge CV. Other defaults follow the paper (and dslab-faas's faithful port): head 5th, tail 99th,
    CV 2, OOB share 0.5, margins 10 % / 15 %.
    """

    family = "hybrid"

    def __init__(self, head: float = 0.05, tail: float = 0.99, range_minutes: int = 240,
                 cv_threshold: float = 2.0, min_samples: int = 5, oob_threshold: float = 0.5,
                 margin: float = 0.10, arima_margin: float = 0.15):
        self.head = head
        self.tail = tail
        self.range_minutes = range_minutes
        self.cv_threshold = cv_threshold
        self.min_samples = min_samples
        self.oob_threshold = oob_threshold
        self.margin = margin
        self.arima_margin = arima_margin

    @property
    def name(self) -> str:
        return f"hybrid-p{self.head * 100:g}-p{self.tail * 100:g}"

    def params(self) -> dict:
        return {"head": self.head, "tail": self.tail, "range_minutes": self.range_minutes,
                "cv_threshold": self.cv_threshold, "min_samples": self.min_samples,
                "oob_threshold": self.oob_threshold, "margin": self.margin, "arima_margin": self.arima_margin}

    def windows(self, hist: IdleHistogram, raw: list[int]) -> tuple[int, int, str]:
        """``(pre_warm, end, pattern)``: loaded on steps ``a+1+pre .. a+end`` after an execution at ``a``."""
        n_range = hist.bins.size
        seen = hist.total + hist.oob
        if seen and hist.oob / seen >= self.oob_threshold:
            pred = ar1_forecast(raw)
            return (int(math.floor(pred * (1 - self.arima_margin))),
                    int(math.ceil(pred * (1 + self.arima_margin))) + 1, "oob")
        if hist.total < self.min_samples or hist.cv() < self.cv_threshold:
            return 0, n_range, "uncertain"
        head_bin = hist.percentile_bin(self.head)
        tail_bin = hist.percentile_bin(self.tail)
        pre = int(math.floor(head_bin * (1 - self.margin)))
        end = int(math.ceil((tail_bin + 1) * (1 + self.margin)))
        return pre, max(end, pre + 1), "histogram"

    def _level(self, active: np.ndarray, n_bins: int) -> np.ndarray:
        """Loaded steps of one instance whose use is ``active`` (bool (n,))."""
        n = active.size
        loaded = np.zeros(n, dtype=bool)
        idx = np.flatnonzero(active)
        if idx.size == 0:
            return loaded
        hist, raw = IdleHistogram.empty(n_bins), []
        breaks = np.flatnonzero(np.diff(idx) > 1)
        starts = idx[np.r_[0, breaks + 1]]
        ends = idx[np.r_[breaks, idx.size - 1]]
        prev_end = None
        pre, end = 0, 0
        for s, e in zip(starts.tolist(), ends.tolist()):
            if prev_end is not None:
                lo, hi = prev_end + 1 + pre, min(prev_end + end, s)
                if lo <= hi:
                    loaded[lo:hi + 1] = True
                hist.add(s - prev_end - 1, raw)
            pre, end, _ = self.windows(hist, raw)
            # Steps s+1..e follow a busy step (IT 0): warm unless the policy unloads after execution.
            t = s + 1
            while t <= e:
                if pre == 0:
                    # Nothing changes the windows' pre-warm while ITs of 0 keep arriving: 0 stays the head.
                    loaded[t:e + 1] = True
                    hist.add(0, raw, times=e - t + 1)
                    pre, end, _ = self.windows(hist, raw)
                    break
                hist.add(0, raw)
                pre, end, _ = self.windows(hist, raw)
                t += 1
            prev_end = e
        lo, hi = prev_end + 1 + pre, min(prev_end + end, n - 1)
        if lo <= hi:
            loaded[lo:hi + 1] = True
        return loaded

    def warm(self, unit: Unit, eval_start: int, step_seconds: int) -> np.ndarray:
        need = unit.need(step_seconds)
        n_bins = max(1, _steps(self.range_minutes, step_seconds))
        warm = np.zeros_like(need)
        for k in range(1, int(need.max(initial=0)) + 1):
            warm += self._level(need >= k, n_bins)
        return warm


class OraclePolicy(Policy):
    """Knows every future step: exactly the instances needed are loaded, just in time."""

    family = "oracle"

    def warm(self, unit: Unit, eval_start: int, step_seconds: int) -> np.ndarray:
        return unit.need(step_seconds).copy()


class Forecaster(Protocol):
    """What a forecast policy needs from a model (``mesp.runtime.Predictor`` adapts to it)."""

    quantiles: list[float]
    context: int
    horizon: int

    def predict(self, contexts: np.ndarray) -> np.ndarray:
        """``(B, context)`` raw counts -> ``(B, len(quantiles), horizon)`` non-negative counts."""


class RecentQuantileForecaster:
    """Model-free reference forecaster: each quantile of the last ``window`` steps, held flat.

    Lets the forecast policy's machinery run (and be compared) without a trained model.
    """

    def __init__(self, quantiles: tuple[float, ...] = (0.5, 0.9, 0.99), context: int = 60, horizon: int = 60):
        self.quantiles = list(quantiles)
        self.context = context
        self.horizon = horizon

    def predict(self, contexts: np.ndarray) -> np.ndarray:
        q = np.quantile(np.asarray(contexts, dtype=np.float64), self.quantiles, axis=1).T  # (B, Q)
        return np.repeat(q[:, :, None], self.horizon, axis=2).astype(np.float32)


class ForecastCache:
    """Forecasts per unit and origin, computed once and shared by every knob setting of a policy."""

    def __init__(self, forecaster: Forecaster, replan: int = 60, batch_size: int = 512):
        self.forecaster = forecaster
        self.replan = replan
        self.batch_size = batch_size
        self.key: tuple | None = None
        self.forecasts: dict[str, np.ndarray] = {}  # unit id -> (n_origins, Q, H)
        self.origins: np.ndarray = np.zeros(0, dtype=np.int64)
        self.plans: dict[tuple, object] = {}  # memoised per-unit plans (see plan)

    def ensure(self, units: list[Unit], eval_start: int) -> None:
        digest = hashlib.blake2b(digest_size=16)
        for u in units:
            digest.update(u.id.encode())
            digest.update(np.ascontiguousarray(u.counts, dtype=np.float64).tobytes())
        key = (digest.hexdigest(), eval_start)
        if self.key == key:
            return
        f = self.forecaster
        if not 0 < self.replan <= f.horizon:
            raise MespError(f"re-plan interval {self.replan} must be within the forecast horizon {f.horizon}")
        if eval_start < f.context:
            raise MespError(f"the model needs {f.context} steps of history but the scored window starts at "
                            f"step {eval_start}; start it later (--history)")
        n = len(units[0].counts)
        self.origins = np.arange(eval_start, n, self.replan)
        contexts = np.stack([u.counts[o - f.context:o] for u in units for o in self.origins]).astype(np.float32)
        out = []
        from tqdm import tqdm

        for i in tqdm(range(0, len(contexts), self.batch_size), desc="forecasting", unit="batch",
                      leave=False, disable=len(contexts) <= self.batch_size):
            out.append(np.asarray(f.predict(contexts[i:i + self.batch_size]), dtype=np.float64))
        pred = np.concatenate(out).reshape(len(units), len(self.origins), len(f.quantiles), f.horizon)
        if not np.isfinite(pred).all():
            raise MespError("the forecaster returned non-finite values")
        self.forecasts = {u.id: np.clip(pred[i], 0, None) for i, u in enumerate(units)}
        self.plans = {}
        self.key = key

    def plan(self, unit: Unit, window: int, step_seconds: int) -> tuple[np.ndarray, np.ndarray]:
        """``(P(a call within +-window steps), instances)`` per step of ``unit``, from each origin's own forecast.

        Each origin's forecast covers ``[o, o + replan)``; the window is truncated at that forecast's end,
        never filled in from a later origin (which is made after the step it would warm). Memoised: every
        knob setting of a policy family shares it.
        """
        from mesp.planner import invocation_probability, window_probability

        key = (unit.id, window)
        if key not in self.plans:
            n = len(unit.counts)
            levels = self.forecaster.quantiles
            upper = int(np.argmax(levels))
            near = np.zeros(n, dtype=np.float64)
            instances = np.zeros(n, dtype=np.int64)
            for j, o in enumerate(self.origins.tolist()):
                q = self.forecasts[unit.id][j]  # (Q, horizon) from origin o
                stop = min(n, o + self.replan)
                near[o:stop] = window_probability(invocation_probability(q, levels), window, window)[: stop - o]
                instances[o:stop] = instances_needed(np.maximum(q[upper, : stop - o], 1.0), unit.duration_s,
                                                     step_seconds)
            self.plans[key] = (near, instances)
        return self.plans[key]


class ForecastPolicy(Policy):
    """Pre-warm where the forecast makes an invocation likely: MESP's policy (``family="mesp"``), the same
    with the dense model's or the model-free reference's forecasts.

    Every ``replan`` steps the last ``context`` steps are forecast (:class:`ForecastCache`). Then, from
    that one forecast only (causal: no later origin is looked at):

    1. ``P(N_t >= 1)`` per step from the quantiles (:func:`mesp.planner.invocation_probability`: the
       median read as a Poisson rate, and the upper quantiles' crossings of one call);
    2. ``P(a call within [t - window, t + window])`` (:func:`mesp.planner.window_probability`, truncated
       at the forecast's end), so a call forecast a few minutes off still finds a warm instance;
    3. the unit is kept warm in step ``t`` when that reaches ``probability``; the instances are the upper
       quantile's count through the engine's instance model (Little's law), at least one;
    4. after every actual use, a short keep-alive of ``keep_alive`` minutes, because a call makes the next
       one likely whatever the forecast said (bursts inside an hour the forecast smooths over); or, with
       ``keep_alive="hybrid"``, the hybrid histogram's own windows (:class:`HybridHistogram`, defaults):
       the per-function idle-time histogram keeps what it learns about long regular gaps, and the forecast
       adds pre-warming where it expects calls the histogram does not.

    Knobs, swept together to draw the family's curve (:data:`mesp.simulate.curves.PROBABILITIES` ...):
    ``probability`` (lower: more pre-warming), ``window`` and ``keep_alive`` minutes.
    """

    def __init__(self, cache: ForecastCache, family: str = "mesp", probability: float = 0.1,
                 window: float = 2, keep_alive: float | str = 2):
        if isinstance(keep_alive, str) and keep_alive != "hybrid":
            raise MespError(f"keep_alive={keep_alive!r} must be minutes or 'hybrid'")
        self.cache = cache
        self.family = family
        self.probability = probability
        self.window = window
        self.keep_alive = keep_alive

    @property
    def name(self) -> str:
        ka = self.keep_alive if isinstance(self.keep_alive, str) else f"{self.keep_alive:g}"
        return f"{self.family}-p{self.probability:g}-w{self.window:g}-ka{ka}"

    def params(self) -> dict:
        return {"probability": self.probability, "window_minutes": self.window,
                "keep_alive_minutes": self.keep_alive, "replan": self.cache.replan,
                "context": self.cache.forecaster.context}

    def prepare(self, units: list[Unit], eval_start: int, step_seconds: int) -> None:
        self.cache.ensure(units, eval_start)

    def warm(self, unit: Unit, eval_start: int, step_seconds: int) -> np.ndarray:
        near, instances = self.cache.plan(unit, _steps(self.window, step_seconds), step_seconds)
        warm = np.where(near >= self.probability - 1e-9, instances, 0)
        if self.keep_alive == "hybrid":
            key = (unit.id, "hybrid")
            if key not in self.cache.plans:  # the same for every knob setting: computed once per unit
                self.cache.plans[key] = HybridHistogram().warm(unit, eval_start, step_seconds)
            warm = np.maximum(warm, self.cache.plans[key])
        elif self.keep_alive:
            warm = np.maximum(warm, FixedKeepAlive(self.keep_alive).warm(unit, eval_start, step_seconds))
        return warm
