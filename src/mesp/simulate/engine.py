"""Trace-driven cold-start simulation at the trace's own step (one minute for Azure).

Instance model (stated once, used by every policy):

* A *unit* is what gets provisioned: a function, or an Azure app (``group="app"``, Shahrad et al.'s unit:
  its functions' counts summed, memory summed, duration invocation-weighted).
* Instances needed in step ``t`` follow Little's law: ``need[t] = ceil(c[t] * d / step)``, at least 1 when
  ``c[t] > 0`` and at most ``ceil(c[t])`` (one invocation never needs two instances). Without a known
  duration, ``need[t] = 1`` whenever ``c[t] > 0``: the classic one-instance-per-app model of the literature.
* A policy decides ``warm[t]``, the instances loaded at the start of step ``t``. Instances are
  interchangeable, so ``cold[t] = max(0, need[t] - warm[t])``: the invocations that find no warm instance
  start one (they are cold starts); the rest are warm.
* Idle instances ``max(0, warm[t] - need[t])`` are wasted; **wasted memory time** = idle instance-steps x
  memory (MB x minutes; instance-minutes where the memory is unknown). **Warm instance-minutes** =
  ``max(warm, need)`` summed: everything loaded, busy or not. Loading is instant at this resolution.
* **Cold-start rate** of a unit = cold starts / invocations in the scored window; the headline is the 75th
  percentile of that rate across units with at least one invocation (Shahrad et al. 2020; SPES 2024), and
  the wasted memory time is also normalised to the 10-minute fixed keep-alive's (the literature's baseline).

Only steps ``[eval_start, n)`` are scored; the steps before are history every policy may learn from
(keep-alive state, idle-time histograms, forecast contexts), so all policies start from the same state.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mesp.errors import MespError
from mesp.planner import little_concurrency

if TYPE_CHECKING:  # pragma: no cover
    from mesp.data import Dataset
    from mesp.simulate.policies import Policy

BASELINE = "fixed-10"


@dataclass(frozen=True)
class Unit:
    """One provisioned unit: counts per step, and what the trace says about its invocations."""

    id: str
    counts: np.ndarray
    duration_s: float | None = None
    memory_mb: float | None = None

    def need(self, step_seconds: int = 60) -> np.ndarray:
        return instances_needed(self.counts, self.duration_s, step_seconds)


def instances_needed(counts: np.ndarray, duration_s: float | None, step_seconds: int = 60) -> np.ndarray:
    """Instances needed per step (see the module docstring), as int64.

    >>> instances_needed(np.array([0, 1, 120, 3000]), 1.5, 60).tolist()
    [0, 1, 3, 75]
    >>> instances_needed(np.array([0, 1, 120]), None).tolist()
    [0, 1, 1]
    """
    c = np.asarray(counts, dtype=np.float64)
    active = c > 0
    if duration_s is None:
        return active.astype(np.int64)
    conc = np.ceil(little_concurrency(c, duration_s, step_seconds) - 1e-9)
    need = np.minimum(np.maximum(conc, 1.0), np.ceil(c))
    return np.where(active, need, 0).astype(np.int64)


def units_from_dataset(dataset: "Dataset", group: str = "function") -> list[Unit]:
    """Units from a loaded dataset; ``group="app"`` merges an Azure app's functions (needs ``meta['app']``)."""
    if group not in ("function", "app"):
        raise MespError(f"group {group!r} must be 'function' or 'app'")

    def seconds(s) -> float | None:
        ms = s.meta.get("duration_ms")
        return None if ms is None or not np.isfinite(ms) else float(ms) / 1000.0

    if group == "function":
        return [Unit(s.id, np.asarray(s.values, dtype=np.float64), seconds(s),
                     None if s.meta.get("memory_mb") is None else float(s.meta["memory_mb"])) for s in dataset]
    apps: dict[str, list] = {}
    for s in dataset:
        if "app" not in s.meta:
            raise MespError(f"series {s.id!r} has no app identity; --group app needs Azure 2019 files")
        apps.setdefault(f"{s.meta.get('owner', '')}/{s.meta['app']}", []).append(s)
    units = []
    for app, members in apps.items():
        counts = np.sum([np.asarray(m.values, dtype=np.float64) for m in members], axis=0)
        durations = [seconds(m) for m in members]
        weights = np.array([float(np.sum(m.values)) for m in members])
        duration = None
        if all(d is not None for d in durations):
            duration = float(np.average(durations, weights=weights)) if weights.sum() > 0 else float(
                np.mean(durations))
        mems = [m.meta.get("memory_mb") for m in members]
        memory = float(np.sum(mems)) if all(m is not None for m in mems) else None
        units.append(Unit(app, counts, duration, memory))
    return units


@dataclass
class UnitResult:
    id: str
    invocations: float
    cold_starts: int
    cold_rate: float | None  # None when the unit had no invocation in the scored window
    idle_instance_minutes: float
    wasted_memory: float  # idle instance-minutes x memory_mb (x 1 when memory is unknown)
    warm_instance_minutes: float


@dataclass
class PolicyResult:
    policy: str
    family: str
    params: dict
    units: list[UnitResult]
    overall: dict = field(default_factory=dict)

    def to_dict(self, with_units: bool = False) -> dict:
        out = {"policy": self.policy, "family": self.family, "params": self.params, "overall": self.overall}
        if with_units:
            out["units"] = [asdict(u) for u in self.units]
        return out


def score(unit: Unit, warm: np.ndarray, eval_start: int, step_seconds: int = 60) -> UnitResult:
    """Cold starts and waste of one unit under a warm-instance schedule, over steps ``[eval_start, n)``."""
    need = unit.need(step_seconds)
    warm = np.asarray(warm, dtype=np.int64)
    if warm.shape != need.shape:
        raise ValueError(f"warm schedule for {unit.id!r} has shape {warm.shape}, expected {need.shape}")
    if (warm < 0).any():
        raise ValueError(f"warm schedule for {unit.id!r} has negative instance counts")
    n, w = need[eval_start:], warm[eval_start:]
    minutes = step_seconds / 60.0
    cold = int(np.maximum(n - w, 0).sum())
    idle = float(np.maximum(w - n, 0).sum()) * minutes
    invocations = float(unit.counts[eval_start:].sum())
    memory = unit.memory_mb if unit.memory_mb is not None else 1.0
    return UnitResult(id=unit.id, invocations=invocations, cold_starts=cold,
                      cold_rate=(cold / invocations) if invocations > 0 else None,
                      idle_instance_minutes=idle, wasted_memory=idle * memory,
                      warm_instance_minutes=float(np.maximum(w, n).sum()) * minutes)


def summarise(units: list[UnitResult]) -> dict:
    rates = np.array([u.cold_rate for u in units if u.cold_rate is not None], dtype=np.float64)
    invocations = float(sum(u.invocations for u in units))
    cold = int(sum(u.cold_starts for u in units))

    def pct(p: float) -> float | None:
        return float(np.percentile(rates, p)) if rates.size else None

    return {
        "units": len(units),
        "units_invoked": int(rates.size),
        "invocations": invocations,
        "cold_starts": cold,
        "cold_rate_overall": cold / invocations if invocations > 0 else None,
        "cold_rate_p50": pct(50),
        "cold_rate_p75": pct(75),
        "cold_rate_p90": pct(90),
        "cold_rate_mean": float(rates.mean()) if rates.size else None,
        "idle_instance_minutes": float(sum(u.idle_instance_minutes for u in units)),
        "wasted_memory": float(sum(u.wasted_memory for u in units)),
        "warm_instance_minutes": float(sum(u.warm_instance_minutes for u in units)),
    }


@dataclass
class SimulationReport:
    results: list[PolicyResult]
    eval_start: int
    n_steps: int
    step_seconds: int
    memory_known: bool
    notes: list[str] = field(default_factory=list)

    def by_name(self) -> dict[str, PolicyResult]:
        return {r.policy: r for r in self.results}

    def to_dict(self, with_units: bool = False) -> dict:
        return {
            "instance_model": "need = clip(ceil(count * duration / step), 1, ceil(count)) when count > 0 "
                              "(1 per invoked step without a duration); cold = max(0, need - warm); "
                              "idle = max(0, warm - need)",
            "eval_start": self.eval_start, "n_steps": self.n_steps, "step_seconds": self.step_seconds,
            "wasted_memory_unit": "MB x minutes" if self.memory_known else "instance-minutes (memory unknown)",
            "baseline": BASELINE, "notes": self.notes,
            "results": [r.to_dict(with_units) for r in self.results],
        }


def simulate(units: list[Unit], policies: list["Policy"], eval_start: int, step_seconds: int = 60,
             progress: bool = False) -> SimulationReport:
    """Run every policy on every unit and score steps ``[eval_start, n)``.

    The wasted memory of each policy is also given relative to :data:`BASELINE` (the 10-minute fixed
    keep-alive) when that policy is among ``policies``.
    """
    if not units:
        raise MespError("nothing to simulate: no series")
    lengths = {len(u.counts) for u in units}
    if len(lengths) != 1:
        raise MespError(f"series have different lengths {sorted(lengths)[:5]}; simulate equal-length traces")
    n = lengths.pop()
    if not 0 < eval_start < n:
        raise MespError(f"the scored window must start inside the trace: eval_start={eval_start}, length={n}")
    results = []
    iterator = policies
    if progress:
        from tqdm import tqdm

        iterator = tqdm(policies, desc="policies", unit="policy", leave=False)
    for policy in iterator:
        policy.prepare(units, eval_start, step_seconds)
        scored = [score(u, policy.warm(u, eval_start, step_seconds), eval_start, step_seconds) for u in units]
        results.append(PolicyResult(policy.name, policy.family, policy.params(), scored, summarise(scored)))
    base = next((r for r in results if r.policy == BASELINE), None)
    for r in results:
        bw = base.overall["wasted_memory"] if base else None
        r.overall["wasted_memory_normalised"] = (r.overall["wasted_memory"] / bw) if bw else None
    memory_known = all(u.memory_mb is not None for u in units)
    notes = [] if memory_known else ["memory unknown for some units: wasted memory counts instance-minutes"]
    if not math.isclose(step_seconds, 60):
        notes.append(f"step is {step_seconds}s: keep-alive and histogram windows are in steps")
    return SimulationReport(results, eval_start, n, step_seconds, memory_known, notes)
