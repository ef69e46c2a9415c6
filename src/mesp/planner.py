"""Forecast quantiles -> provisioned concurrency: the pure core of the planner (numpy only, serving-safe).

The conversion is Little's law: the mean number of requests in flight equals the arrival rate times the
time each one spends in the system, ``L = lambda * W``. With ``c`` invocations per step of ``s`` seconds
and a mean duration of ``d`` seconds, the concurrency needed is ``c * d / s``. The planner sizes provisioned
concurrency so that this forecast load uses at most ``target_utilization`` of it (the same 0.7 AWS suggests
for target tracking on ``LambdaProvisionedConcurrencyUtilization``): the headroom absorbs sub-minute bursts
that per-minute counts cannot show.

Order of the rules, each one documented on :class:`PlannerConfig`::

    forecast quantile -> Little's law / utilisation -> per-block peak -> hysteresis + bounded step-down
                      -> ceiling -> cost cap -> floor (last: the operator's floor always wins)

A *degraded* forecast (the runtime fell back to a rule, the metrics were incomplete ...) never sets the
concurrency: the plan holds the previous value (or drops to the floor, by configuration), and the floor and
ceiling still apply.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

# AWS Lambda price of provisioned concurrency, x86, us-east-1 (USD per GB-second the concurrency is
# configured; aws.amazon.com/lambda/pricing). Only used for the cost cap; override per region.
PC_PRICE_PER_GB_SECOND = 0.0000041667

__all__ = ["PC_PRICE_PER_GB_SECOND", "Plan", "PlannerConfig", "invocation_probability", "little_concurrency",
           "pick_quantile", "plan_concurrency", "window_probability"]


def little_concurrency(counts: np.ndarray, duration_s: float, step_seconds: int) -> np.ndarray:
    """Mean concurrency from invocation counts per step: ``counts * duration / step`` (Little's law).

    >>> little_concurrency(np.array([60.0, 0.0, 600.0]), 0.5, 60).tolist()
    [0.5, 0.0, 5.0]
    """
    if duration_s < 0 or step_seconds <= 0:
        raise ValueError(f"duration_s={duration_s} must be >= 0 and step_seconds={step_seconds} > 0")
    return np.asarray(counts, dtype=np.float64) * float(duration_s) / float(step_seconds)


def pick_quantile(levels: list[float], wanted: float) -> int:
    """Index of the smallest forecast quantile level >= ``wanted`` (the highest level if none is)."""
    levels_arr = np.asarray(levels, dtype=np.float64)
    if levels_arr.ndim != 1 or levels_arr.size == 0:
        raise ValueError("the forecast has no quantile levels")
    above = np.flatnonzero(levels_arr >= wanted - 1e-9)
    return int(above[np.argmin(levels_arr[above])]) if above.size else int(np.argmax(levels_arr))


def invocation_probability(quantiles: np.ndarray, levels: list[float]) -> np.ndarray:
    """P(at least one invocation) per step, from forecast quantiles of the counts (rows in ``levels`` order).

    Two readings of the forecast, the larger wins (both are lower bounds of the probability):

    * the median as a Poisson rate: ``1 - exp(-q50)``. The median of counts tracks the rate once calls are
      frequent; for sparse functions it is ~0 and this reading says little;
    * quantile crossings: a level ``p`` whose forecast reaches one invocation (``q_p >= 0.5``, i.e. one
      after rounding) states ``P(N >= 1) >= 1 - p``, however small the median is. This is what the upper
      quantiles are for: a sparse function's 0.9 quantile crosses one when a call is more than 10 % likely.

    >>> invocation_probability(np.array([[0.0, 0.0, 2.0], [0.2, 1.0, 4.0]]), [0.5, 0.9]).round(3).tolist()
    [0.0, 0.1, 0.865]
    """
    q = np.clip(np.nan_to_num(np.asarray(quantiles, dtype=np.float64), nan=0.0), 0, None)
    lv = np.asarray(levels, dtype=np.float64)
    if q.ndim != 2 or q.shape[0] != lv.size:
        raise ValueError(f"quantiles must have shape (len(levels)={lv.size}, steps), got {q.shape}")
    median = q[pick_quantile(list(levels), 0.5)]
    prob = 1.0 - np.exp(-median)
    crossed = np.where(q >= 0.5, (1.0 - lv)[:, None], 0.0).max(axis=0)
    return np.maximum(prob, crossed)


def window_probability(prob: np.ndarray, before: int, after: int) -> np.ndarray:
    """P(at least one invocation in steps ``[t - before, t + after]``), steps independent, truncated at the ends.

    A forecast rarely puts a call in exactly the right minute; keeping the instance warm while a call is
    likely *near* ``t`` turns timing errors of up to ``before``/``after`` steps into warm starts.

    >>> window_probability(np.array([0.0, 0.5, 0.0, 0.0]), 1, 1).tolist()
    [0.5, 0.5, 0.5, 0.0]
    """
    p = np.clip(np.asarray(prob, dtype=np.float64), 0.0, 1.0 - 1e-12)
    if before < 0 or after < 0:
        raise ValueError(f"window before={before} and after={after} must be >= 0")
    log_none = np.concatenate([[0.0], np.cumsum(np.log1p(-p))])
    idx = np.arange(p.size)
    lo, hi = np.maximum(idx - before, 0), np.minimum(idx + after + 1, p.size)
    return 1.0 - np.exp(log_none[hi] - log_none[lo])


@dataclass(frozen=True)
class PlannerConfig:
    """Rules that turn a forecast into provisioned concurrency.

    Parameters
    ----------
    floor, ceiling : int
        Hard bounds on the provisioned concurrency (the ceiling is also the scalable target's MaxCapacity).
    quantile : float
        Forecast quantile to provision for (the smallest available level >= this one is used).
    target_utilization : float in (0, 1]
        Forecast concurrency / provisioned concurrency; 0.7 leaves 30 % headroom.
    block_minutes : int
        The next hour is cut into blocks; each block gets the peak need within it (one scheduled action each).
    hysteresis : int
        Changes smaller than this many units from the previous value are ignored (no churn for +-1 jitter).
    max_step_down : float in [0, 1]
        Scale-down is smoothed: one block may drop at most this fraction of the previous value. Scale-up is
        never delayed: a missed cold start costs more than a minute of idle concurrency.
    cost_cap_usd_per_hour : float or None
        Upper bound on the hourly provisioned-concurrency bill of one function (floor still wins).
    price_per_gb_second : float
        Provisioned-concurrency price used by the cost cap.
    degraded_action : {"hold", "floor"}
        What a degraded forecast does: keep the previous value, or fall back to the floor.
    min_probability : float in [0, 1]
        A block gets at least one unit when the forecast's probability of any invocation in it
        (:func:`invocation_probability`, :func:`window_probability`) reaches this, and none (before the
        floor) when it does not: the rule the simulator's forecast policy uses. 0 (default): off, the
        quantile alone decides.
    """

    floor: int = 0
    ceiling: int = 100
    quantile: float = 0.9
    target_utilization: float = 0.7
    block_minutes: int = 15
    hysteresis: int = 1
    max_step_down: float = 0.5
    cost_cap_usd_per_hour: float | None = None
    price_per_gb_second: float = PC_PRICE_PER_GB_SECOND
    degraded_action: str = "hold"
    min_probability: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.floor <= self.ceiling:
            raise ValueError(f"need 0 <= floor <= ceiling, got floor={self.floor} ceiling={self.ceiling}")
        if not 0 < self.quantile < 1:
            raise ValueError(f"quantile={self.quantile} must lie in (0, 1)")
        if not 0 < self.target_utilization <= 1:
            raise ValueError(f"target_utilization={self.target_utilization} must lie in (0, 1]")
        if self.block_minutes < 1:
            raise ValueError(f"block_minutes={self.block_minutes} must be >= 1")
        if self.hysteresis < 0 or not 0 <= self.max_step_down <= 1:
            raise ValueError(f"hysteresis={self.hysteresis} must be >= 0 and "
                             f"max_step_down={self.max_step_down} in [0, 1]")
        if self.cost_cap_usd_per_hour is not None and self.cost_cap_usd_per_hour < 0:
            raise ValueError(f"cost_cap_usd_per_hour={self.cost_cap_usd_per_hour} must be >= 0")
        if self.price_per_gb_second <= 0:
            raise ValueError(f"price_per_gb_second={self.price_per_gb_second} must be > 0")
        if not 0 <= self.min_probability <= 1:
            raise ValueError(f"min_probability={self.min_probability} must lie in [0, 1]")
        if self.degraded_action not in ("hold", "floor"):
            raise ValueError(f"degraded_action={self.degraded_action!r} must be 'hold' or 'floor'")

    def cost_cap_units(self, memory_mb: float) -> int | None:
        """Most provisioned units whose hourly price stays within the cost cap (None: no cap)."""
        if self.cost_cap_usd_per_hour is None:
            return None
        per_unit_hour = self.price_per_gb_second * (memory_mb / 1024.0) * 3600.0
        return int(math.floor(self.cost_cap_usd_per_hour / per_unit_hour + 1e-9))


@dataclass
class Plan:
    """Provisioned concurrency for the next blocks, and why it is what it is."""

    values: list[int]
    block_minutes: int
    need: list[float]  # forecast concurrency per step (before utilisation headroom), for the record
    quantile: float
    degraded: bool
    reasons: list[str] = field(default_factory=list)
    cost_usd_per_hour: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def plan_concurrency(quantiles: np.ndarray, levels: list[float], *, duration_s: float, memory_mb: float,
                     step_seconds: int, config: PlannerConfig, previous: int | None = None,
                     degraded: bool = False) -> Plan:
    """Turn one function's forecast into provisioned concurrency per block.

    Parameters
    ----------
    quantiles : ndarray of shape (n_quantiles, horizon)
        Forecast invocation counts per step, rows in the order of ``levels``.
    levels : list of float
        The quantile levels of the rows.
    duration_s, memory_mb : float
        Mean duration of one invocation, and the function's configured memory (for the cost cap).
    previous : int or None
        The value currently applied, for hysteresis, smoothing and the degraded rule.
    degraded : bool
        The forecast is not trustworthy; it is then not used at all.
    """
    q = np.asarray(quantiles, dtype=np.float64)
    if q.ndim != 2 or q.shape[0] != len(levels) or q.shape[1] == 0:
        raise ValueError(f"quantiles must have shape (len(levels)={len(levels)}, horizon), got {q.shape}")
    block_steps = max(1, int(round(config.block_minutes * 60 / step_seconds)))
    n_blocks = math.ceil(q.shape[1] / block_steps)
    row = pick_quantile(levels, config.quantile)
    need = little_concurrency(np.clip(np.nan_to_num(q[row], nan=0.0), 0, None), duration_s, step_seconds)
    reasons: list[str] = []
    bad = degraded or not np.isfinite(q).all()
    if bad:
        base = previous if (config.degraded_action == "hold" and previous is not None) else config.floor
        reasons.append(f"degraded forecast: {config.degraded_action} at {base}")
        values = np.full(n_blocks, base, dtype=np.int64)
    else:
        padded = np.pad(need, (0, n_blocks * block_steps - need.size))
        peak = padded.reshape(n_blocks, block_steps).max(axis=1) / config.target_utilization
        raw = np.ceil(peak - 1e-9).astype(np.int64)
        if config.min_probability > 0:
            prob = np.pad(invocation_probability(q, levels), (0, n_blocks * block_steps - need.size))
            block_prob = window_probability(prob, 0, block_steps - 1)[::block_steps]  # each block's span
            likely = block_prob >= config.min_probability
            raw = np.where(likely, np.maximum(raw, 1), 0)
            if (~likely).any():
                reasons.append(f"{int((~likely).sum())} block(s) below invocation probability "
                               f"{config.min_probability}")
        values = np.empty_like(raw)
        last = previous
        for i, v in enumerate(raw):
            if last is not None:
                if abs(int(v) - last) < config.hysteresis:
                    v = last
                elif v < last:
                    v = max(int(v), math.ceil(last * (1 - config.max_step_down)))
            values[i] = v
            last = int(v)
        if (values != raw).any():
            reasons.append("smoothed (hysteresis / bounded step-down)")
    if (values > config.ceiling).any():
        reasons.append(f"ceiling {config.ceiling}")
    values = np.minimum(values, config.ceiling)
    cap = config.cost_cap_units(memory_mb)
    if cap is not None and (values > cap).any():
        reasons.append(f"cost cap {config.cost_cap_usd_per_hour} USD/h = {cap} units")
        values = np.minimum(values, cap)
    if (values < config.floor).any():
        reasons.append(f"floor {config.floor}")
        if cap is not None and cap < config.floor:
            reasons.append("floor above the cost cap: the floor wins")
    values = np.maximum(values, config.floor)
    hourly = float(values.mean()) * (memory_mb / 1024.0) * 3600.0 * config.price_per_gb_second
    return Plan(values=[int(v) for v in values], block_minutes=int(block_steps * step_seconds // 60),
                need=[round(float(x), 4) for x in need], quantile=float(levels[row]), degraded=bool(bad),
                reasons=reasons, cost_usd_per_hour=round(hourly, 6))
