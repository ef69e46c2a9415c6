"""Trade-off curves: p75 cold-start rate against normalised wasted memory time, one curve per policy family.

Each family is swept over its own knob (keep-alive minutes; histogram head/tail percentiles; forecast
quantile x threshold). The curve of a family is its Pareto front (no other point of the family has both
fewer cold starts and less waste); the dominated points stay in the JSON, flagged.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mesp.simulate.engine import SimulationReport
from mesp.simulate.policies import (FixedKeepAlive, ForecastCache, ForecastPolicy, Forecaster, HybridHistogram,
                                    OraclePolicy, Policy)

KEEP_ALIVE_MINUTES = (1, 2, 3, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240)
HISTOGRAM_PERCENTILES = ((0.05, 0.99), (0.01, 0.99), (0.10, 0.99), (0.05, 0.995), (0.01, 0.999),
                         (0.05, 0.95), (0.05, 0.90), (0.10, 0.80), (0.25, 0.75))
# The forecast policy's grid, fixed up front (not fitted to any test set): probability of a call near t,
# the +- window in minutes, and the keep-alive after actual calls in minutes.
PROBABILITIES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
WINDOWS = (0, 2, 5)
FORECAST_KEEP_ALIVES = (0, 2, 5, 10)
HEADLINE_FORECAST = (0.1, 2, 2)  # probability, window, keep-alive of the --no-sweep point

Y_KEY = "cold_rate_p75"
X_KEY = "wasted_memory_normalised"


def default_policies(forecasters: dict[str, Forecaster] | None = None, *, replan: int = 60,
                     sweep: bool = True, keep_alive: float | None = None) -> list[Policy]:
    """The headline policies (fixed 10/20, hybrid p5/p99, oracle, forecast families) and their sweeps.

    ``keep_alive`` fixes the forecast policies' keep-alive minutes (default: swept, or the headline's).
    """
    minutes = KEEP_ALIVE_MINUTES if sweep else (10, 20)
    policies: list[Policy] = [FixedKeepAlive(m) for m in minutes]
    pct = HISTOGRAM_PERCENTILES if sweep else HISTOGRAM_PERCENTILES[:1]
    policies += [HybridHistogram(head=h, tail=t) for h, t in pct]
    for family, forecaster in (forecasters or {}).items():
        cache = ForecastCache(forecaster, replan=replan)
        p0, w0, k0 = HEADLINE_FORECAST
        kas = (keep_alive,) if keep_alive is not None else (FORECAST_KEEP_ALIVES if sweep else (k0,))
        grid = ([(p, w, k) for p in PROBABILITIES for w in WINDOWS for k in kas] if sweep
                else [(p0, w0, k) for k in kas])
        policies += [ForecastPolicy(cache, family=family, probability=p, window=w, keep_alive=k)
                     for p, w, k in grid]
        if sweep and keep_alive is None:  # the forecast on top of the hybrid histogram: its own curve
            policies += [ForecastPolicy(cache, family=f"{family}+hybrid", probability=p, window=w,
                                        keep_alive="hybrid") for p in PROBABILITIES for w in WINDOWS]
    policies.append(OraclePolicy())
    return policies


def pareto_mask(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """True for points no other point beats on both axes (lower is better on both)."""
    keep = np.ones(x.size, dtype=bool)
    for i in range(x.size):
        worse = (x <= x[i]) & (y <= y[i]) & ((x < x[i]) | (y < y[i]))
        keep[i] = not worse.any()
    return keep


METRICS = ("cold_rate_p75", "cold_rate_p90", "cold_rate_mean", "cold_rate_overall")


def curves(report: SimulationReport, y_key: str = Y_KEY) -> dict[str, list[dict]]:
    """Points per family, sorted by waste, each with ``pareto`` set; ``y`` is the ``y_key`` cold-start rate."""
    out: dict[str, list[dict]] = {}
    for r in report.results:
        o = r.overall
        out.setdefault(r.family, []).append({
            "policy": r.policy, "params": r.params, "x": o[X_KEY], "y": o[y_key],
            "cold_rate_overall": o["cold_rate_overall"], "cold_starts": o["cold_starts"],
            "wasted_memory": o["wasted_memory"], "warm_instance_minutes": o["warm_instance_minutes"]})
    for family, points in out.items():
        valid = [p for p in points if p["x"] is not None and p["y"] is not None]
        if valid:
            mask = pareto_mask(np.array([p["x"] for p in valid]), np.array([p["y"] for p in valid]))
            for p, m in zip(valid, mask):
                p["pareto"] = bool(m)
        points.sort(key=lambda p: (p["x"] is None, p["x"] or 0.0))
    return out


def interpolate_at_waste(points: list[dict], waste: float, key: str = "y") -> float | None:
    """The family's Pareto-front ``key`` (default the p75 cold-start rate) at a given normalised waste.

    Linear between front points; None outside the front's waste range (no extrapolation).
    """
    front = sorted((p for p in points if p.get("pareto")), key=lambda p: p["x"])
    if not front or waste < front[0]["x"] - 1e-12 or waste > front[-1]["x"] + 1e-12:
        return None
    xs = np.array([p["x"] for p in front])
    ys = np.array([p[key] for p in front], dtype=np.float64)
    return float(np.interp(waste, xs, ys))


def interpolate_at_cold(points: list[dict], cold: float) -> float | None:
    """The family's least normalised waste that reaches a p75 cold-start rate <= ``cold`` (None: never)."""
    front = sorted((p for p in points if p.get("pareto")), key=lambda p: p["x"])
    ok = [p for p in front if p["y"] <= cold + 1e-12]
    if not ok:
        return None
    best = ok[0]
    i = front.index(best)
    if i == 0:
        return float(best["x"])
    prev = front[i - 1]  # interpolate on the segment that crosses the target cold-start rate
    if prev["y"] == best["y"]:
        return float(best["x"])
    frac = (prev["y"] - cold) / (prev["y"] - best["y"])
    return float(prev["x"] + frac * (best["x"] - prev["x"]))


def compare(curve: dict[str, list[dict]], reference: str = "hybrid-p5-p99") -> dict:
    """Each family against a reference point (default: the paper's hybrid histogram).

    At the reference's wasted memory: the family's cold-start rate (the curve's metric) and its overall
    cold-start rate, and their change; at the reference's cold-start rate: the family's waste and its change
    (SPES reports both directions).
    """
    ref = next((p for pts in curve.values() for p in pts if p["policy"] == reference), None)
    if ref is None or ref["x"] is None:
        return {}
    out: dict = {"reference": reference, "reference_point": {k: ref[k] for k in ("x", "y", "cold_rate_overall")},
                 "families": {}}
    for family, points in curve.items():
        y = interpolate_at_waste(points, ref["x"])
        overall = interpolate_at_waste(points, ref["x"], key="cold_rate_overall")
        x = interpolate_at_cold(points, ref["y"])
        out["families"][family] = {
            "rate_at_ref_waste": y,
            "rate_change_at_ref_waste": None if y is None or not ref["y"] else y / ref["y"] - 1,
            "overall_cold_rate_at_ref_waste": overall,
            "overall_change_at_ref_waste": (None if overall is None or not ref["cold_rate_overall"]
                                            else overall / ref["cold_rate_overall"] - 1),
            "waste_at_ref_rate": x,
            "waste_change_at_ref_rate": None if x is None or not ref["x"] else x / ref["x"] - 1,
        }
    return out


def write_json(report: SimulationReport, path: str | Path, extra: dict | None = None,
               with_units: bool = False) -> dict:
    by_metric = {m: curves(report, m) for m in METRICS}
    doc = {**report.to_dict(with_units), "curves": by_metric,
           "comparison": {m: compare(c) for m, c in by_metric.items()}, **(extra or {})}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=float))
    tmp.replace(path)  # nothing half-written
    return doc


def plot(curve: dict[str, list[dict]], path: str | Path, title: str = "", y_label: str = Y_KEY) -> None:
    """PNG of every family's points and Pareto front (x: waste normalised to fixed-10, y: cold-start %)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    markers = {"fixed": "o", "hybrid": "s", "oracle": "*", "mesp": "D", "dense": "^", "mesp+hybrid": "d",
               "dense+hybrid": "<"}
    for family, points in sorted(curve.items()):
        pts = [p for p in points if p["x"] is not None and p["y"] is not None]
        if not pts:
            continue
        xs, ys = np.array([p["x"] for p in pts]), 100 * np.array([p["y"] for p in pts])
        front = np.array([p.get("pareto", False) for p in pts])
        marker = markers.get(family, "v")
        line, = ax.plot(xs[front], ys[front], marker=marker, label=family, ms=9 if family == "oracle" else 5)
        ax.scatter(xs[~front], ys[~front], marker=marker, color=line.get_color(), alpha=0.3, s=14)
        for p in pts:
            if p["policy"] in ("fixed-10", "fixed-20", "hybrid-p5-p99"):
                ax.annotate(p["policy"], (p["x"], 100 * p["y"]), textcoords="offset points", xytext=(5, 5),
                            fontsize=8)
    # Cold-start rates span four decades and the interesting region is near zero: symmetric log scale
    # (linear below 0.01 %, so the oracle's 0 stays on the plot).
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set_xlabel("wasted memory time, normalised to the 10-minute fixed keep-alive")
    labels = {"cold_rate_p75": "75th-percentile cold-start rate across units (%)",
              "cold_rate_p90": "90th-percentile cold-start rate across units (%)",
              "cold_rate_mean": "mean cold-start rate across units (%)",
              "cold_rate_overall": "cold starts / all invocations (%)"}
    ax.set_ylabel(labels.get(y_label, y_label))
    ax.set_title(title or "cold starts vs wasted memory")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


class StoreForecaster:
    """Adapts :class:`mesp.runtime.Predictor` to :class:`~mesp.simulate.policies.Forecaster`.

    ``which="mesp"`` routes every context through the mixture (router + experts, exactly as served);
    ``which="dense"`` calls the version's dense model on every context. ``degraded_rows`` counts the rows
    the runtime answered with a fallback.
    """

    def __init__(self, store: str, which: str = "mesp"):
        from mesp.errors import MespError
        from mesp.runtime import Predictor

        if which not in ("mesp", "dense"):
            raise MespError(f"forecaster {which!r} must be 'mesp' or 'dense'")
        self.which = which
        self.predictor = Predictor(store, ttl_seconds=float("inf"))
        self.model = self.predictor.model()
        manifest = self.model.manifest
        if which == "dense" and self.model.dense is None:
            raise MespError(f"model store {store}: version {manifest.version} has no usable dense model")
        self.quantiles = list(manifest.quantiles)
        self.context = manifest.context
        self.horizon = manifest.horizon
        self.version = manifest.version
        self.degraded_rows = 0
        self.rows = 0

    def predict(self, contexts: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(contexts, dtype=np.float32)
        self.rows += X.shape[0]
        if self.which == "dense":
            return self.model.dense(X, self.model.manifest)  # type: ignore[misc]
        pred = self.predictor.predict(X, model=self.model)
        self.degraded_rows += int(np.asarray(pred.degraded).sum())
        return pred.values
