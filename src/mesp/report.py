"""A markdown report with pictures for one published model on one set of traces (``mesp report``).

What it shows, in the order of ``report.md``:

* ``catalogue.png`` -- the cluster catalogue: each K-Shape centroid with the 10-90% band of the held-out
  patterns the router sends to it, titled with the manifest's label (:func:`mesp.clustering.catalogue.plot_catalogue`);
* ``forecasts.png`` -- forecast vs actual for sample held-out functions of each cluster: the mixture's median
  and its quantile band (through :class:`mesp.runtime.Predictor`, exactly as served) and the dense model's median;
* ``error_by_cluster.png`` -- WAPE and geometric-mean MASE of the mixture, the dense model and the baselines per
  routed cluster, from the evaluation document (:func:`mesp.evaluation.evaluate`, ``per_cluster``);
* ``simulation.png`` -- cold-start rate vs wasted memory of the provisioning policies (:mod:`mesp.simulate`);
* ``routing.png`` -- routing confusion: the cluster of the *true* window (the last ``context`` steps up to the
  end of the horizon, i.e. the pattern once the hour is known) against the cluster the router picked from the
  context alone;
* ``training.png`` -- the training run's budget and where its wall clock went (``manifest.training``).

Held-out functions: the series are split with :func:`mesp.evaluation.split_by_series` (same defaults as
``mesp evaluate``); the baselines are fitted on the training part and every figure is drawn on the test part.
Whether the model itself saw those functions depends on what it was trained on: ``mesp demo`` trains on the
training part only, so its report is out of sample throughout.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mesp.errors import MespError

FIGURES = ("catalogue.png", "forecasts.png", "error_by_cluster.png", "simulation.png", "routing.png",
           "training.png")
REPORT_NAME = "report.md"
MAX_FIGURE_WINDOWS = 20_000     # routing confusion and catalogue bands use at most this many windows
MAX_TRAIN_WINDOWS = 20_000      # the trainable baselines are fitted on a seeded sample of at most this many
SAMPLES_PER_CLUSTER = 2
SHOW_CONTEXT_SECONDS = 3 * 3600  # forecast panels show the last 3 h of context, so the horizon stays readable


# ----------------------------------------------------------------------------------------------- helpers
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    """Write a figure atomically (a reader never sees half a PNG)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", dpi=110)
    _plt().close(fig)
    os.replace(tmp, path)
    return path


def _write_text(path: Path, text: str) -> None:
    """Write atomically, with the usual permissions (``mkstemp`` would make the report private, 0600)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    return f"{float(value):.{digits}g}"


def _cluster_name(key: str, labels: Mapping[int, str]) -> str:
    if key == "novel":
        return "novel (dense)"
    try:
        cid = int(key)
    except ValueError:
        return key
    return f"{cid}: {labels.get(cid, f'cluster {cid}')}"


def _cluster_order(key: str) -> tuple:
    try:
        cid = int(key)
    except ValueError:
        return (2, key)
    return (1, cid) if cid < 0 else (0, cid)


def comparison_sentences(simulation: dict) -> list[str]:
    """One sentence per policy family: its p75 cold-start rate at the hybrid histogram's wasted memory, and
    its wasted memory at the hybrid's p75 rate (from the simulator's ``comparison``)."""
    comparison = (simulation.get("comparison") or {}).get("cold_rate_p75") or {}
    out = []
    for family, c in (comparison.get("families") or {}).items():
        if family in ("hybrid", "oracle"):
            continue
        y, x = c.get("rate_change_at_ref_waste"), c.get("waste_change_at_ref_rate")
        out.append(f"`{family}`: at the hybrid histogram's wasted memory, p75 cold-start rate "
                   f"{'n/a (outside its curve)' if y is None else f'{100 * y:+.1f}%'}; at its p75 cold-start "
                   f"rate, wasted memory {'n/a (never reached)' if x is None else f'{100 * x:+.1f}%'}")
    return out


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


# ------------------------------------------------------------------------------------------- the inputs
@dataclass
class ReportData:
    """A loaded model and dataset, split into training and held-out functions, shared by every step.

    Build it with :func:`prepare`. ``test`` holds the windows of the held-out functions (all windows when
    ``test_fraction`` is 0).
    """

    model_uri: str
    dataset: Any
    models: dict
    info: dict
    route: Callable[[np.ndarray], np.ndarray] | None
    windows: Any
    train_series: np.ndarray
    test_series: np.ndarray
    test_fraction: float
    seed: int
    data_paths: list[str] = field(default_factory=list)

    @property
    def loaded(self) -> Any:
        return self.models["mesp"].loaded

    @property
    def manifest(self) -> Any:
        return self.loaded.manifest

    @property
    def predictor(self) -> Any:
        return self.models["mesp"].predictor

    @property
    def in_sample(self) -> bool:
        return self.test_series.size == 0

    @property
    def test(self) -> Any:
        from mesp.evaluation import windows_of

        return self.windows if self.in_sample else windows_of(self.windows, self.test_series)

    @property
    def train(self) -> Any:
        from mesp.evaluation import windows_of

        return windows_of(self.windows, self.train_series)

    @property
    def labels(self) -> dict[int, str]:
        return dict(self.loaded.labels)


def prepare(model: str, data: Sequence[str] | Any, *, fmt: str = "auto", test_fraction: float = 0.2,
            seed: int = 0, data_paths: Sequence[str] | None = None) -> ReportData:
    """Load the newest verified version of ``model`` and the traces ``data`` (paths or a loaded Dataset).

    ``data_paths`` names where a given Dataset came from (for the report's text and its reproduce command).

    Windows use the model's context and horizon with a stride of one horizon (as ``mesp evaluate``).
    """
    from mesp.data import Dataset, load
    from mesp.evaluation import load_store_models, split_by_series
    from mesp.windows import make_windows

    split_by_series(2, test_fraction, seed)  # validates the fraction before any slow work
    models, info, route = load_store_models(model)
    if isinstance(data, Dataset):
        dataset, paths = data, [str(p) for p in (data_paths or [f"{data.format} dataset"])]
    else:
        paths = [str(p) for p in data]
        dataset = load(paths, fmt=fmt)
    if info["step_seconds"] != dataset.step_seconds:
        raise MespError(f"model {model} was trained on {info['step_seconds']}-second steps but the data has "
                        f"{dataset.step_seconds}-second steps")
    windows = make_windows(dataset, info["context"], info["horizon"], info["horizon"])
    train_series, test_series = split_by_series(len(dataset), test_fraction, seed)
    out = ReportData(model_uri=str(model), dataset=dataset, models=models, info=info, route=route, windows=windows,
                     train_series=train_series, test_series=test_series, test_fraction=test_fraction, seed=seed,
                     data_paths=paths)
    if len(out.test) == 0:
        raise MespError(f"none of the {test_series.size} held-out series has a whole window of "
                        f"{info['context']}+{info['horizon']} steps; use --test-fraction 0")
    return out


# ------------------------------------------------------------------------------------ evaluation, simulation
def run_evaluation(rd: ReportData, *, baselines: Sequence[str] | None = None,
                   max_train_windows: int | None = MAX_TRAIN_WINDOWS, progress: bool = True) -> dict:
    """The evaluation document (:func:`mesp.evaluation.evaluate`) of mesp, dense and the baselines.

    Baselines are fitted on the training functions' windows (on every window when ``test_fraction`` is 0,
    which the document's config then calls in-sample), at most ``max_train_windows`` of them (a seeded
    sample, so a report on a big trace stays quick; the config records it); all models are scored on every
    held-out window.
    """
    from mesp import __version__
    from mesp.baselines import default_baselines
    from mesp.evaluation import evaluate

    step, context, horizon = rd.dataset.step_seconds, rd.info["context"], rd.info["horizon"]
    test = rd.test
    train = rd.windows if rd.in_sample else rd.train
    available = default_baselines(step, context)
    names = list(available) if baselines is None else list(baselines)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise MespError(f"unknown baseline(s) {', '.join(unknown)}; choose from {', '.join(available)}")
    if names and len(train) == 0:
        raise MespError("no training windows for the baselines; lower the test fraction")
    n_train = len(train)
    if max_train_windows is not None and n_train > max_train_windows:
        keep = np.zeros(n_train, dtype=bool)
        keep[_sample(n_train, max_train_windows, rd.seed)] = True
        train = train.subset(keep)
    models: dict = {}
    fit_seconds: dict[str, dict] = {}
    for name in names:
        started = time.perf_counter()
        if progress:
            print(f"  fitting {name} on {len(train):,} windows", file=sys.stderr)
        models[name] = available[name].fit(train)
        fit_seconds[name] = {"fit_seconds": round(time.perf_counter() - started, 3)}
    models.update(rd.models)
    clusters = rd.route(test.X) if rd.route is not None else None
    config = {
        "mesp_version": __version__, "data": rd.data_paths, "format": rd.dataset.format,
        "load_report": rd.dataset.report.summary(), "step_seconds": step,
        "context": context, "horizon": horizon, "stride": horizon,
        "split": {"by": "series", "test_fraction": rd.test_fraction, "seed": rd.seed,
                  "n_series": len(rd.dataset), "n_train_series": int(rd.train_series.size),
                  "n_test_series": int(rd.test_series.size), "n_train_windows": n_train,
                  "n_train_windows_fitted": len(train),
                  "n_test_windows": len(test), "in_sample": rd.in_sample},
        "models": fit_seconds, "model_store": rd.info,
    }
    return evaluate(models, test, clusters, config=config, progress=progress and sys.stderr.isatty())


def run_simulation(rd: ReportData, *, max_units: int | None = 500, sweep: bool = True,
                   progress: bool = True, json_path: str | os.PathLike | None = None) -> dict:
    """Provisioning policies replayed on the held-out functions (:mod:`mesp.simulate`); the JSON document.

    Policies: fixed keep-alive, the hybrid histogram (Shahrad et al.), the oracle, and forecast-driven
    provisioning from the mixture (``mesp``) and from the dense model (``dense``), each swept over its knob.
    The first half of each trace is history, the rest is scored; the forecast policies re-plan every
    horizon. The simulator needs equal-length traces, so only the series of the most common length are used.
    """
    from mesp.simulate import simulate, units_from_dataset
    from mesp.simulate.curves import StoreForecaster, curves, default_policies, write_json

    idx = np.arange(len(rd.dataset)) if rd.in_sample else rd.test_series
    every = units_from_dataset(rd.dataset)
    units = [every[i] for i in idx.tolist()]
    lengths = np.array([len(u.counts) for u in units])
    notes = []
    if lengths.size and np.unique(lengths).size > 1:
        values, counts = np.unique(lengths, return_counts=True)
        common = int(values[np.argmax(counts)])
        notes.append(f"{int((lengths != common).sum())} series of another length than {common} steps left out")
        units = [u for u, n in zip(units, lengths) if n == common]
    if max_units is not None and len(units) > max_units:
        notes.append(f"first {max_units} of {len(units)} held-out functions simulated")
        units = units[:max_units]
    if not units:
        raise MespError("no held-out series to simulate")
    n = len(units[0].counts)
    eval_start = n // 2
    forecasters: dict = {"mesp": StoreForecaster(rd.model_uri, "mesp")}
    if rd.loaded.dense is not None:
        forecasters["dense"] = StoreForecaster(rd.model_uri, "dense")
    step = rd.dataset.step_seconds
    policies = default_policies(forecasters, replan=rd.info["horizon"], sweep=sweep)
    if progress:
        print(f"  simulating {len(units)} functions x {len(policies)} policies; scoring steps "
              f"{eval_start}..{n - 1} of {n}", file=sys.stderr)
    report = simulate(units, policies, eval_start, step, progress=progress and sys.stderr.isatty())
    report.notes.extend(notes)
    for which, f in forecasters.items():
        report.notes.append(f"{which}: {f.rows} forecasts, {f.degraded_rows} degraded")
    extra = {"data": rd.data_paths, "group": "function", "model": rd.model_uri, "version": rd.manifest.version,
             "n_units": len(units)}
    if json_path is not None:
        return write_json(report, json_path, extra=extra)
    from mesp.simulate.curves import METRICS, compare

    by_metric = {m: curves(report, m) for m in METRICS}
    return {**report.to_dict(), "curves": by_metric, "comparison": {m: compare(c) for m, c in by_metric.items()},
            **extra}


def routing_confusion(rd: ReportData, max_windows: int = MAX_FIGURE_WINDOWS) -> dict:
    """Cluster of the true window vs routed cluster of the context, over (a seeded sample of) held-out windows.

    The router compares patterns of exactly ``context`` steps, so "the true day" is the last ``context``
    steps up to the end of the horizon: the pattern the function turned out to follow once the forecast
    hour is known. Returns ``{"ids", "matrix" (true x routed counts), "agreement", "n"}``.
    """
    router = rd.loaded.router
    if router is None:
        return {"ids": [], "matrix": [], "agreement": None, "n": 0}
    test = rd.test
    rows = _sample(len(test), max_windows, rd.seed)
    X, Y = test.X[rows], test.Y[rows]
    h = Y.shape[1]
    truth = np.concatenate([X, Y], axis=1)[:, h:]
    routed = np.asarray(router.route(X)[0])
    true = np.asarray(router.route(truth)[0])
    ids = sorted(set(range(router.n_clusters)) | set(routed.tolist()) | set(true.tolist()),
                 key=lambda c: (c < 0, c))
    pos = {c: i for i, c in enumerate(ids)}
    matrix = np.zeros((len(ids), len(ids)), dtype=np.int64)
    np.add.at(matrix, ([pos[c] for c in true.tolist()], [pos[c] for c in routed.tolist()]), 1)
    n = int(matrix.sum())
    return {"ids": ids, "matrix": matrix.tolist(), "agreement": float(np.trace(matrix) / n) if n else None, "n": n}


def _sample(n: int, k: int, seed: int) -> np.ndarray:
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


# ---------------------------------------------------------------------------------------------- figures
def plot_catalogue_png(rd: ReportData, path: Path) -> Path:
    from mesp.clustering.catalogue import plot_catalogue
    from mesp.manifest import IDLE_CLUSTER_ID

    router = rd.loaded.router
    if router is None:
        raise MespError(f"version {rd.manifest.version} has no usable router: no catalogue to draw")
    test = rd.test
    X = test.X[_sample(len(test), MAX_FIGURE_WINDOWS, rd.seed)]
    labels = np.asarray(router.route(X)[0])
    titles = [rd.labels.get(j, f"cluster {j}") for j in range(router.n_clusters)]
    return plot_catalogue(router.centroids, X, labels, path, titles=titles, step_seconds=rd.manifest.step_seconds,
                          n_idle=int(np.sum(labels == IDLE_CLUSTER_ID)))


def _pick_samples(test: Any, routed: np.ndarray, cid: int, k: int, seen: set[int]) -> list[int]:
    """Up to ``k`` windows of cluster ``cid`` from functions not in ``seen``: the busiest, then one of median
    volume (``seen`` is updated, so no function appears twice in the figure).

    Windows with no call in the forecast hour are skipped when others exist (a flat zero says little).
    """
    idx = np.flatnonzero(routed == cid)
    if idx.size == 0:
        return []
    busy = idx[test.Y[idx].sum(axis=1) > 0]
    idx = busy if busy.size else idx
    volume = test.X[idx].sum(axis=1) + test.Y[idx].sum(axis=1)
    order = idx[np.argsort(-volume, kind="stable")]
    picks: list[int] = []
    for candidate in (order[0], order[len(order) // 2], *order):
        s = int(test.series_index[candidate])
        if s in seen:
            continue
        picks.append(int(candidate))
        seen.add(s)
        if len(picks) == k:
            break
    return picks


def plot_forecasts_png(rd: ReportData, path: Path, per_cluster: int = SAMPLES_PER_CLUSTER) -> tuple[Path, list[dict]]:
    """Forecast vs actual for sample held-out windows of every cluster (rows) -- returns the PNG and the samples."""
    plt = _plt()
    m = rd.manifest
    test = rd.test
    pred_all = rd.predictor.predict(test.X, model=rd.loaded)
    routed = np.array([-2 if c is None else (c if not nov else -3)
                       for c, nov in zip(pred_all.cluster_ids, pred_all.novel.tolist())], dtype=np.int64)
    groups = [c for c in sorted(set(routed.tolist()), key=lambda c: (c < 0, -c if c < 0 else c))]
    seen: set[int] = set()
    rows = [(c, _pick_samples(test, routed, c, per_cluster, seen)) for c in groups]
    rows = [(c, p) for c, p in rows if p]
    if not rows:
        raise MespError("no held-out window to plot")
    ncols = max(len(p) for _, p in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(5.2 * ncols, 2.5 * len(rows)), squeeze=False)
    qs = list(m.quantiles)
    lo_q, hi_q = qs.index(min(qs)), qs.index(max(qs))
    mid_q = qs.index(0.5)
    show = min(m.context, max(1, SHOW_CONTEXT_SECONDS // m.step_seconds))
    hours_ctx = (np.arange(-show, 0) + 1) * m.step_seconds / 3600
    hours_hor = np.arange(1, m.horizon + 1) * m.step_seconds / 3600
    samples = []
    dense = rd.loaded.dense
    for r, (cid, picks) in enumerate(rows):
        for c in range(ncols):
            ax = axes[r][c]
            if c >= len(picks):
                ax.axis("off")
                continue
            i = picks[c]
            x, y = test.X[i], test.Y[i]
            band = pred_all.values[i]
            ax.plot(hours_ctx, x[-show:], color="0.55", lw=0.8, label="context")
            ax.plot(hours_hor, y, color="black", lw=1.0, label="actual")
            if hi_q != lo_q:
                ax.fill_between(hours_hor, band[lo_q], band[hi_q], color="tab:blue", alpha=0.25, lw=0,
                                label=f"mesp q{qs[lo_q]:g}-q{qs[hi_q]:g}")
            ax.plot(hours_hor, band[mid_q], color="tab:blue", lw=1.2, label="mesp median")
            if dense is not None:
                d = dense(np.ascontiguousarray(x[None, :], dtype=np.float32), m)[0, mid_q]
                ax.plot(hours_hor, d, color="tab:orange", lw=1.0, ls="--", label="dense median")
            ax.axvline(0, color="0.3", lw=0.6, ls=":")
            # An upper quantile far above everything else would flatten the panel: clip it, and say so.
            medians = [band[mid_q].max()] + ([float(d.max())] if dense is not None else [])
            top = 1.3 * max(float(x[-show:].max()), float(y.max()), *medians, 1.0)
            if float(band[hi_q].max()) > top:
                ax.set_ylim(bottom=-0.03 * top, top=top)  # counts are never negative
                ax.text(0.99, 0.97, f"q{qs[hi_q]:g} up to {float(band[hi_q].max()):.3g} (clipped)",
                        transform=ax.transAxes, ha="right", va="top", fontsize=7, color="tab:blue")
            sid = rd.dataset.series[int(test.series_index[i])].id
            family = pred_all.families[i]
            label = ("novel -> dense" if cid == -3 else pred_all.cluster_labels[i] or "no router")
            err = float(np.abs(band[mid_q] - y).sum() / y.sum()) if y.sum() > 0 else None
            title = f"{'' if cid < 0 else f'{cid}: '}{label} [{family}]\n{sid[:28]}  WAPE {_fmt(err, 3)}"
            ax.set_title(title, fontsize=8)
            ax.tick_params(labelsize=7)
            if r == len(rows) - 1:
                ax.set_xlabel("hours from the forecast origin", fontsize=8)
            samples.append({"series": sid, "cluster": int(cid), "label": label, "family": family,
                            "origin": int(test.origin[i]), "wape": err})
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"Forecast vs actual on held-out functions (model {m.version}); "
                 f"band: mesp quantiles {qs[lo_q]:g}-{qs[hi_q]:g}", fontsize=10)
    fig.tight_layout()
    return _save(fig, path), samples


def plot_error_by_cluster_png(evaluation: Mapping[str, Any], labels: Mapping[int, str], path: Path) -> Path:
    plt = _plt()
    per = evaluation.get("per_cluster") or {}
    if not per:
        raise MespError("the evaluation has no per-cluster results (it needs a model with a router)")
    keys = sorted(per, key=_cluster_order)
    models = list(evaluation["models"])
    fig, axes = plt.subplots(2, 1, figsize=(min(14.0, max(7.0, 0.28 * len(keys) * len(models) + 2)), 6.5))
    width = 0.8 / max(1, len(models))
    x = np.arange(len(keys))
    colors = {"mesp": "tab:blue", "dense": "tab:orange"}
    others = iter(plt.get_cmap("Set2").colors)
    palette = {name: colors.get(name) or next(others) for name in models}
    for ax, metric, title in ((axes[0], "wape", "WAPE (volume-weighted)"),
                              (axes[1], "mase_gmean", "MASE, geometric mean over functions")):
        for j, name in enumerate(models):
            vals = [per[k].get(name, {}).get(metric) for k in keys]
            heights = [np.nan if v is None else v for v in vals]
            ax.bar(x + (j - (len(models) - 1) / 2) * width, heights, width, label=name, color=palette[name],
                   edgecolor="black" if name == "mesp" else "none", linewidth=0.6)
        ax.set_ylabel(title, fontsize=8)
        ax.set_xticks(x)
        names = [f"{_cluster_name(k, labels)}\n(n={per[k][models[0]].get('n_windows', 0):,})" for k in keys]
        ax.set_xticklabels(names, fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="y", alpha=0.3)
        finite = [v for k in keys for name in models if (v := per[k].get(name, {}).get(metric)) is not None]
        if finite and max(finite) > 8 * np.median(finite):  # one idle cluster's huge error hides the rest
            ax.set_yscale("log")
    axes[0].legend(fontsize=7, ncol=len(models), loc="upper left")
    axes[0].set_title("Error by routed cluster on held-out functions (lower is better)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_simulation_png(simulation: Mapping[str, Any], path: Path, metric: str = "cold_rate_p75") -> Path:
    from mesp.simulate.curves import plot

    curve = simulation.get("curves", {}).get(metric)
    if not curve:
        raise MespError(f"the simulation document has no {metric} curves")
    n_units = simulation.get("n_units")
    title = (f"{n_units} held-out functions, " if n_units else "") + \
        f"scored steps {simulation.get('eval_start')}..{simulation.get('n_steps', 1) - 1}"
    plot(curve, path, title=f"Cold starts vs wasted memory: {title}", y_label=metric)
    return path


def plot_routing_png(confusion: Mapping[str, Any], labels: Mapping[int, str], path: Path) -> Path:
    plt = _plt()
    ids = confusion["ids"]
    M = np.asarray(confusion["matrix"], dtype=np.float64)
    if M.size == 0:
        raise MespError("no router: no routing confusion to draw")
    share = M / np.maximum(M.sum(axis=1, keepdims=True), 1)
    size = max(4.5, 0.75 * len(ids) + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(ids)):
        for j in range(len(ids)):
            if M[i, j]:
                ax.text(j, i, f"{int(M[i, j]):,}\n{100 * share[i, j]:.0f}%", ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.6 else "black")
    names = [_cluster_name(str(c), labels) for c in ids]
    ax.set_xticks(range(len(ids)))
    ax.set_xticklabels(names, rotation=35, ha="right", fontsize=7)
    ax.set_yticks(range(len(ids)))
    ax.set_yticklabels(names, fontsize=7)
    ax.set_xlabel("routed cluster of the context (what serving picks)", fontsize=8)
    ax.set_ylabel("cluster of the true window (context shifted to the end of the horizon)", fontsize=8)
    agreement = confusion.get("agreement")
    ax.set_title(f"Routing confusion on {confusion['n']:,} held-out windows: "
                 f"{_fmt(None if agreement is None else 100 * agreement, 3)}% agree", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the row")
    fig.tight_layout()
    return _save(fig, path)


def _training_phases(training: Mapping[str, Any]) -> list[tuple[str, float]]:
    timings = training.get("timings") or {}
    names = {"cluster_seconds": "clustering", "experts_seconds": "experts (parallel jobs)",
             "dense_seconds": "dense model", "add_cluster_seconds": "add cluster"}
    return [(names.get(k, k.replace("_seconds", "")), float(v)) for k, v in timings.items()
            if isinstance(v, (int, float))]


def plot_training_png(manifest: Any, path: Path) -> Path:
    plt = _plt()
    t = manifest.training or {}
    phases = _training_phases(t)
    experts = t.get("experts") or {}
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [1, 1.3]})
    ax = axes[0]
    budget = (t.get("budget") or {}).get("minutes")
    if phases:
        left = 0.0
        colors = iter(plt.get_cmap("tab10").colors)
        for name, seconds in phases:  # the phases run one after the other: one stacked bar
            ax.barh([0], [seconds], left=left, color=next(colors), label=f"{name} {seconds:.0f} s")
            left += seconds
        if budget:
            ax.axvline(60 * float(budget), color="tab:red", ls="--", lw=1.2, label=f"budget {budget:g} min")
        ax.set_yticks([])
        ax.set_ylim(-0.8, 1.6)
        ax.legend(fontsize=7, loc="upper left", ncol=2)
        ax.set_xlabel("seconds (wall clock)", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no timings in the manifest", ha="center", va="center")
    ax.set_title("Training run: where the wall clock went", fontsize=9)
    ax.tick_params(labelsize=7)
    ax = axes[1]
    families = {str(c.id): c.expert.family for c in manifest.clusters}
    families["dense"] = manifest.dense.family
    rows = []
    for key, info in sorted(experts.items(), key=lambda kv: (kv[0] == "dense", kv[0])):
        if not isinstance(info, Mapping):
            continue
        seconds = (info.get("timings") or {}).get("total_seconds") or info.get("search_seconds")
        budget = info.get("budget_minutes")
        rows.append((key, seconds, None if budget is None else 60 * float(budget), info.get("n_trials"),
                     families.get(key)))
    if rows and any(r[1] is not None for r in rows):
        y = np.arange(len(rows))
        ax.barh(y, [r[1] or 0 for r in rows], color="tab:green", label="used")
        if any(r[2] is not None for r in rows):
            ax.scatter([r[2] if r[2] is not None else np.nan for r in rows], y, marker="|", s=200, color="tab:red",
                       label="budget", zorder=3)
        ax.set_yticks(y)
        ax.set_yticklabels([f"{'dense' if r[0] == 'dense' else 'cluster ' + r[0]}: {r[4] or '?'}"
                            + (f" ({r[3]} trials)" if r[3] is not None else "") for r in rows], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("seconds per job", fontsize=8)
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no per-job timings in the manifest", ha="center", va="center")
        ax.set_yticks([])
    ax.set_title("Expert searches (one job per cluster, and the dense rival)", fontsize=9)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return _save(fig, path)


# --------------------------------------------------------------------------------------------- markdown
@dataclass
class Report:
    """The written report: ``path`` (report.md), every file written, and the figures' sample details."""

    folder: Path
    path: Path
    files: list[Path]
    seconds: float
    confusion: dict
    samples: list[dict]


def write_report(rd: ReportData, out: str | os.PathLike, evaluation: Mapping[str, Any],
                 simulation: Mapping[str, Any], *, title: str | None = None,
                 sections: Sequence[tuple[str, str]] = (), commands: Sequence[str] = ()) -> Report:
    """Draw the figures and write ``report.md`` (and the same text as ``README.md``) into ``out``.

    ``evaluation`` and ``simulation`` are the documents of :func:`run_evaluation` / :func:`run_simulation`
    (or ``mesp evaluate --json`` / ``mesp simulate --json``); they are also saved beside the report.
    ``sections`` are extra ``(heading, markdown)`` parts appended before the reproduction commands.
    """
    from mesp.evaluation import format_table
    from mesp.evaluation import write_json as write_eval_json

    started = time.perf_counter()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    m = rd.manifest
    labels = rd.labels
    files: list[Path] = []
    files.append(plot_catalogue_png(rd, folder / "catalogue.png"))
    forecasts, samples = plot_forecasts_png(rd, folder / "forecasts.png")
    files.append(forecasts)
    files.append(plot_error_by_cluster_png(evaluation, labels, folder / "error_by_cluster.png"))
    files.append(plot_simulation_png(simulation, folder / "simulation.png"))
    confusion = routing_confusion(rd)
    files.append(plot_routing_png(confusion, labels, folder / "routing.png"))
    files.append(plot_training_png(m, folder / "training.png"))
    write_eval_json(evaluation, folder / "evaluation.json")
    write_eval_json(simulation, folder / "simulation.json")
    files += [folder / "evaluation.json", folder / "simulation.json"]

    split = evaluation.get("config", {}).get("split", {})
    n_test = split.get("n_test_series") or len(rd.dataset)
    scope = ("every function (in-sample: the baselines were fitted on the same windows)" if split.get("in_sample")
             else f"{n_test:,} held-out functions ({split.get('n_test_windows', len(rd.test)):,} windows; "
                  f"split seed {split.get('seed')}, test fraction {split.get('test_fraction')})")
    training = m.training or {}
    data_info = training.get("data") or {}
    lines = [f"# {title or f'MESP report: model {m.version}'}", ""]
    lines.append(f"Model `{m.version}` from `{rd.model_uri}`: {sum(1 for c in m.clusters if c.id >= 0)} shape "
                 f"clusters + the idle group, context {m.context} steps -> horizon {m.horizon} steps of "
                 f"{m.step_seconds} s, quantiles {', '.join(f'{q:g}' for q in m.quantiles)}. Data: "
                 f"{', '.join(f'`{p}`' for p in rd.data_paths)} ({len(rd.dataset):,} functions, format "
                 f"{rd.dataset.format}); every figure is on {scope}.")
    lines.append("")
    captions = {
        "catalogue.png": "**Cluster catalogue.** Each K-Shape centroid (z-normalised) with the 10-90% band of the "
                         "held-out patterns routed to it, and its label.",
        "forecasts.png": "**Forecast vs actual** for sample held-out functions of each cluster: the mixture's "
                         "median and quantile band (as served by `mesp.runtime.Predictor`) against the dense "
                         "model's median.",
        "error_by_cluster.png": "**Error by routed cluster**: the mixture (`mesp`), the single global model "
                                "(`dense`) and the baselines.",
        "simulation.png": "**Cold starts vs wasted memory** of the provisioning policies on the held-out "
                          "functions (lower left is better; lines are each family's Pareto front).",
        "routing.png": "**Routing confusion**: the cluster of the true window (context shifted to the end of the "
                       "horizon) against the cluster routed from the context alone.",
        "training.png": "**Training budget and timing** of the run that produced this version.",
    }
    for name in FIGURES:
        lines += [f"![{name[:-4].replace('_', ' ')}]({name})", "", captions[name], ""]

    lines += ["## Model", "", _md_table(
        ["cluster", "label", "training windows", "expert", "validation"],
        [[c.id, c.label, f"{c.size:,}", f"`{c.expert.family}`",
          ", ".join(f"{k} {_fmt(v, 3)}" for k, v in sorted(c.expert.val_metrics.items())[:3]) or "-"]
         for c in sorted(m.clusters, key=lambda c: (c.id < 0, c.id))]
        + [["dense", "every window", f"{data_info.get('n_windows', 0):,}", f"`{m.dense.family}`",
            ", ".join(f"{k} {_fmt(v, 3)}" for k, v in sorted(m.dense.val_metrics.items())[:3]) or "-"]]), ""]

    fitted = split.get("n_train_windows_fitted")
    sampled = (f" The trainable baselines were fitted on a seeded sample of {fitted:,} of the "
               f"{split['n_train_windows']:,} training windows." if fitted and fitted < split.get("n_train_windows", 0)
               else "")
    lines += ["## Accuracy", "", f"On {scope}. Compare `wape` (volume-weighted) and `mase_gmean` (the typical "
              f"function) together; lower is better.{sampled}", "", "```", format_table(evaluation), "```", ""]
    per = evaluation.get("per_cluster") or {}
    if per:
        models = list(evaluation["models"])
        rows = []
        for key in sorted(per, key=_cluster_order):
            cell = per[key]
            best = min((n for n in models if cell.get(n, {}).get("wape") is not None),
                       key=lambda n: cell[n]["wape"], default=None)
            rows.append([_cluster_name(key, labels), f"{cell[models[0]].get('n_windows', 0):,}"]
                        + [("**" + _fmt(cell.get(n, {}).get("wape"), 3) + "**") if n == best
                           else _fmt(cell.get(n, {}).get("wape"), 3) for n in models])
        lines += ["WAPE per routed cluster (best in bold):", "", _md_table(["cluster", "windows", *models], rows), ""]

    lines += ["## Provisioning", ""]
    by_name = {r["policy"]: r for r in simulation.get("results", [])}
    head = ["fixed-10", "fixed-20", "hybrid-p5-p99", "oracle"]
    head += [p for p in by_name if by_name[p]["family"] in ("mesp", "dense")
             and by_name[p].get("params", {}).get("threshold") == 0.5
             and by_name[p].get("params", {}).get("quantile") == max(m.quantiles)]
    rows = []
    for name in head:
        if name in by_name:
            o = by_name[name]["overall"]
            rows.append([name, _fmt(None if o.get("cold_rate_p75") is None else 100 * o["cold_rate_p75"], 3),
                         _fmt(None if o.get("cold_rate_overall") is None else 100 * o["cold_rate_overall"], 3),
                         _fmt(o.get("wasted_memory_normalised"), 3)])
    lines += [_md_table(["policy", "p75 cold-start %", "overall cold-start %", "wasted memory / fixed-10"], rows), ""]
    lines += [f"- {sentence}." for sentence in comparison_sentences(simulation)]
    for note in simulation.get("notes", []):
        lines.append(f"- note: {note}")
    lines.append("")

    lines += ["## Routing", ""]
    agreement = confusion.get("agreement")
    lines.append(f"On {confusion['n']:,} held-out windows the cluster routed from the context is the cluster of the "
                 f"true window {_fmt(None if agreement is None else 100 * agreement, 3)}% of the time; off-diagonal "
                 "cells are functions whose next hour changed their pattern.")
    lines.append("")

    lines += ["## Budget and timing", ""]
    budget = training.get("budget") or {}
    rows = [["mode", training.get("mode", "-")], ["budget", f"{budget.get('minutes', '-')} min, "
                                                            f"{budget.get('workers', '-')} workers"]]
    rows += [[name, f"{seconds:.1f} s"] for name, seconds in _training_phases(training)]
    rows += [["training data", f"{data_info.get('n_series', '-')} series, {data_info.get('n_windows', '-')} windows, "
                               f"format {data_info.get('format', '-')}"],
             ["seed / code", f"{training.get('seed', '-')} / {training.get('code_version', '-')}"],
             ["created", m.created]]
    lines += [_md_table(["", ""], rows), ""]
    for heading, body in sections:
        lines += [f"## {heading}", "", body.rstrip(), ""]
    lines += ["## Reproduce", "", "```"]
    lines += list(commands) or [f"mesp report --model {rd.model_uri} --data {' '.join(rd.data_paths)} "
                                f"--test-fraction {rd.test_fraction} --seed {rd.seed} --out {folder}"]
    lines += ["```", "", f"Files: {', '.join(f'`{f.name}`' for f in files)}. Written in "
              f"{time.perf_counter() - started:.1f} s.", ""]
    text = "\n".join(lines)
    _write_text(folder / REPORT_NAME, text)
    _write_text(folder / "README.md", text)  # the folder opens with the report on GitHub and in file browsers
    files += [folder / REPORT_NAME, folder / "README.md"]
    return Report(folder=folder, path=folder / REPORT_NAME, files=files, seconds=time.perf_counter() - started,
                  confusion=confusion, samples=samples)


def build_report(model: str, data: Sequence[str] | Any, out: str | os.PathLike, *, fmt: str = "auto",
                 test_fraction: float = 0.2, seed: int = 0, evaluation: Mapping[str, Any] | None = None,
                 simulation: Mapping[str, Any] | None = None, max_units: int | None = 500,
                 progress: bool = True) -> Report:
    """Everything at once: load, evaluate and simulate unless given, then :func:`write_report`."""
    rd = prepare(model, data, fmt=fmt, test_fraction=test_fraction, seed=seed)
    if evaluation is None:
        evaluation = run_evaluation(rd, progress=progress)
    if simulation is None:
        simulation = run_simulation(rd, max_units=max_units, progress=progress)
    return write_report(rd, out, evaluation, simulation)
