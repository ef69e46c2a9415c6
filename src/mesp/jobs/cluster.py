"""The cluster job: windows -> idle rule -> K-Shape -> router, catalogue and window assignment.

Channel ``data``: trace files in any :mod:`mesp.data` format. Model folder written::

    router.npz        centroids (k, context) float32 (:meth:`mesp.router.Router.save_npz`)
    assignment.npz    per window: series_index, origin, cluster (IDLE_CLUSTER_ID for idle), distance
    cluster.json      run id, sizes in steps, clusters (id, label, size), novelty threshold, idle rule,
                      K selection curve, data summary and fingerprint, timings
    catalogue.png     centroids with member bands (when the catalogue plot is available)

K-Shape is fitted on at most ``max_fit`` non-idle contexts (a seeded sample), then *every* window is
assigned with :class:`mesp.router.Router`, the very code that routes requests in Lambda, so each expert
trains on exactly the windows serving will send it. Clusters that end up empty are dropped (ids stay
0..K-1). The novelty threshold is a high quantile of the windows' distance to their own centroid.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from mesp.jobs.common import code_version, data_summary, load_data, split_info, windows_for
from mesp.jobs.contract import JobError, JobPaths, Param, emit_metric, read_hyperparameters, run_job
from mesp.manifest import IDLE_CLUSTER_ID
from mesp.router import Router, novelty_threshold
from mesp.sbd import DEFAULT_IDLE_RULE, is_idle

SPEC = {
    "job": Param(str, "cluster", "which job the image runs"),
    "run_id": Param(str, "local", "names this training run; expert jobs check it"),
    "context": Param(str, "auto", "context duration (auto: 1d, or 12h for daily-pattern files)"),
    "horizon": Param(str, "1h", "forecast horizon duration"),
    "stride": Param(str, "", "distance between window origins (default: the horizon)"),
    "clusters": Param("int|auto", "auto", "K, or auto to pick it"),
    "k_min": Param(int, 2, "smallest K tried by auto"),
    "k_max": Param(int, 8, "largest K tried by auto"),
    "max_fit": Param(int, 3000, "non-idle contexts K-Shape is fitted on (seeded sample)"),
    "max_iter": Param(int, 30, "K-Shape iterations"),
    "novelty_quantile": Param(float, 0.99, "distance quantile above which a pattern is novel"),
    "seed": Param(int, 0, "random seed"),
    "test_fraction": Param(float, 0.0, "share of series held out (never trained on), mesp.evaluation split"),
    "split_seed": Param(int, 0, "seed of that split"),
    "data_format": Param(str, "auto", "mesp.data format of the data channel"),
}


def choose_k(X: np.ndarray, hp: dict[str, Any]) -> tuple[int, list[dict]]:
    """K as given, or :func:`mesp.clustering.select_k` (silhouette on SBD, minimum size) for ``auto``."""
    if hp["clusters"] != "auto":
        return int(hp["clusters"]), []
    from mesp.clustering import select_k

    k_max = min(hp["k_max"], len(X) - 1)
    if k_max < hp["k_min"]:
        raise JobError(f"clusters=auto needs more than {hp['k_min']} non-idle windows; got {len(X)}")
    try:
        choice = select_k(X, range(hp["k_min"], k_max + 1), random_state=hp["seed"], max_iter=hp["max_iter"],
                          n_jobs=1)
    except ValueError as err:
        raise JobError(f"choosing K failed: {err}") from None
    return int(choice.best_k), [dict(row) for row in choice.curve]


def cluster_windows(X: np.ndarray, hp: dict[str, Any], step_seconds: int) -> dict[str, Any]:
    """Fit K-Shape on a sample of ``X`` (n, context) raw contexts and assign every row; see module doc."""
    from mesp.clustering import KShape

    rule = dict(DEFAULT_IDLE_RULE)
    idle = np.asarray(is_idle(X, **rule), dtype=bool)
    active = np.flatnonzero(~idle)
    if active.size < 2:
        raise JobError(f"only {active.size} of {len(X)} windows have a shape (the rest are idle): "
                       "nothing to cluster")
    rng = np.random.default_rng(hp["seed"])
    sample = np.sort(rng.choice(active, size=min(hp["max_fit"], active.size), replace=False))
    t0 = time.perf_counter()
    k, curve = choose_k(X[sample], hp)
    if k > sample.size:
        raise JobError(f"clusters={k} but only {sample.size} non-idle windows to fit on")
    km = KShape(k, max_iter=hp["max_iter"], random_state=hp["seed"], idle_rule=rule, n_jobs=1).fit(X[sample])
    fit_seconds = time.perf_counter() - t0

    router = Router(km.cluster_centers_, 2.0, rule)
    labels, distances, _, _ = router.route(X)
    used = [c for c in range(k) if np.any(labels == c)]
    if len(used) < k:  # a centroid no window is nearest to: drop it, renumber 0..K'-1
        remap = np.full(k, -99, dtype=np.int64)
        remap[used] = np.arange(len(used))
        labels = np.where(labels >= 0, remap[np.maximum(labels, 0)], labels)
        router = Router(km.cluster_centers_[used], 2.0, rule)
    threshold = novelty_threshold(distances[labels >= 0], hp["novelty_quantile"])
    return {"router": Router(router.centroids, threshold, rule), "labels": labels, "distances": distances,
            "k": len(used), "k_fitted": k, "curve": curve, "inertia": float(km.inertia_),
            "n_iter": int(km.n_iter_), "n_fit": int(sample.size), "fit_seconds": fit_seconds,
            "threshold": threshold, "idle_rule": rule}


def cluster_labels(router: Router, X: np.ndarray, labels: np.ndarray, step_seconds: int,
                   start_steps: np.ndarray | None = None, calendar: bool = False) -> dict[int, str]:
    """Readable labels (:func:`mesp.clustering.describe_clusters`).

    ``start_steps``: each row's first step counted from the series' time origin. With ``calendar`` (wide and
    long files, whose timestamps are real: the origin is the Unix epoch) the dates are known, so weekday and
    weekend can be told apart. Otherwise (Azure traces: day 1 of an unnamed week) only the time of day is
    known, and only when every row starts at the same time of day; no weekday is claimed.
    """
    import datetime as dt

    from mesp.clustering import describe_clusters

    start: dt.datetime | list[dt.datetime] | None = None
    if start_steps is not None and len(start_steps):
        seconds = np.asarray(start_steps, dtype=np.int64) * step_seconds
        if calendar:
            epoch = dt.datetime(1970, 1, 1)
            start = [epoch + dt.timedelta(seconds=int(s)) for s in seconds]
        elif np.unique(seconds % 86_400).size == 1:
            start = dt.datetime(2000, 1, 1) + dt.timedelta(seconds=int(seconds[0] % 86_400))
    names = describe_clusters(router.centroids, X, labels, step_seconds, start=start)
    return {c: str(v) for c, v in enumerate(names)}


def run(paths: JobPaths) -> None:
    t_start = time.perf_counter()
    hp = read_hyperparameters(paths, SPEC)
    dataset, files = load_data(paths.require_channel("data"), hp["data_format"], hp["test_fraction"],
                               hp["split_seed"])
    windows, sizes = windows_for(dataset, hp["context"], hp["horizon"], hp["stride"])
    t_load = time.perf_counter() - t_start
    result = cluster_windows(windows.X, hp, dataset.step_seconds)
    labels, router = result["labels"], result["router"]
    # step of day at each context's first step, when the loader knows where series start
    starts = np.array([s.start if s.start is not None else -1 for s in dataset.series], dtype=np.int64)
    ctx_start = np.where(starts[windows.series_index] >= 0,
                         starts[windows.series_index] // dataset.step_seconds + windows.origin - sizes["context"],
                         -1)
    names = cluster_labels(router, windows.X, labels, dataset.step_seconds,
                           ctx_start if (ctx_start >= 0).all() else None,
                           calendar=dataset.format in ("wide", "long"))

    paths.model.mkdir(parents=True, exist_ok=True)
    router.save_npz(paths.model / "router.npz")
    with open(paths.model / "assignment.npz", "wb") as fh:
        np.savez_compressed(fh, series_index=windows.series_index, origin=windows.origin, cluster=labels,
                            distance=result["distances"])
    clusters = []
    n_idle = int(np.sum(labels == IDLE_CLUSTER_ID))
    if n_idle:
        clusters.append({"id": IDLE_CLUSTER_ID, "label": "idle/sparse", "size": n_idle, "expert": "rule:idle"})
    for c in range(result["k"]):
        members = labels == c
        clusters.append({"id": c, "label": names.get(c, f"cluster {c}"), "size": int(members.sum()),
                         "n_series": int(np.unique(windows.series_index[members]).size)})
    from mesp.clustering import plot_catalogue

    plot_catalogue(router.centroids, windows.X, labels, paths.model / "catalogue.png",
                   titles=[names[c] for c in range(result["k"])], step_seconds=dataset.step_seconds,
                   n_idle=n_idle, seed=hp["seed"])
    summary = data_summary(dataset, files, windows)
    meta = {
        "run_id": hp["run_id"], "step_seconds": dataset.step_seconds, **sizes,
        "novelty_threshold": result["threshold"], "idle_rule": result["idle_rule"], "clusters": clusters,
        "fallback": "rule:seasonal_naive",
        "training": {
            "data": summary, "seed": hp["seed"], "code_version": code_version(),
            "split": split_info(hp["test_fraction"], hp["split_seed"], len(dataset)),
            "hyperparameters": {k: v for k, v in hp.items() if k != "job"},
            "clustering": {"k": result["k"], "k_fitted": result["k_fitted"], "k_selection": result["curve"],
                           "inertia": result["inertia"], "n_iter": result["n_iter"], "n_fit": result["n_fit"],
                           "n_idle_windows": n_idle},
            "timings": {"load_seconds": round(t_load, 3), "cluster_seconds": round(result["fit_seconds"], 3),
                        "total_seconds": round(time.perf_counter() - t_start, 3)},
        },
    }
    (paths.model / "cluster.json").write_text(json.dumps(meta, indent=1))
    best_sil = max((row.get("silhouette", float("nan")) for row in result["curve"]), default=None)
    emit_metric({"job": "cluster"}, n_clusters=result["k"], n_windows=len(windows), n_idle_windows=n_idle,
                inertia=result["inertia"], novelty_threshold=result["threshold"])
    if best_sil is not None:
        emit_metric({"job": "cluster"}, silhouette=best_sil)


def main(argv: list[str] | None = None) -> int:
    return run_job("cluster", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
