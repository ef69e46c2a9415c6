"""The evaluation harness every issue measures with.

``split_by_series`` holds out whole functions (not time ranges): a model is scored on functions it never
saw, which is what serving a new function looks like and what keeps the per-window MASE scale honest.
``evaluate`` scores already-fitted forecasters on one set of windows and returns the JSON document of
issue 2::

    {"config": {...}, "models": {"<name>": {"wape", "mase_gmean", "mase_median", "mase_mean", "mae",
     "rmse", "n_windows", "n_series", ...}}, "per_cluster": {"<cluster>": {"<name>": {...}}}}

Names: the mixture is ``mesp``, the single global model ``dense``, baselines keep their own names.
Compare models on ``wape`` and ``mase_gmean`` together (see :mod:`mesp.metrics`).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mesp.baselines import Forecaster
from mesp.errors import MespError
from mesp.metrics import METRIC_NAMES, forecast_metrics, per_cluster_metrics
from mesp.windows import Windows

TABLE_METRICS = ("wape", "mase_gmean", "mase_median", "mase_mean", "mae", "rmse", "n_windows", "n_series")


def split_by_series(n_series: int, test_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train/test split of series indices ``0..n_series-1``.

    ``round(n_series * test_fraction)`` series (at least one when the fraction is positive, at most
    ``n_series - 1``) go to test, chosen by ``numpy.random.default_rng(seed)``. ``test_fraction=0`` gives
    an empty test set. Returns ``(train, test)``, each sorted.
    """
    if not 0 <= test_fraction < 1:
        raise MespError(f"test fraction {test_fraction} must be in [0, 1)")
    if n_series < 0:
        raise MespError(f"n_series={n_series} must be non-negative")
    n_test = 0
    if test_fraction > 0:
        if n_series < 2:
            raise MespError(f"cannot hold out a test part of {n_series} series; use --test-fraction 0")
        n_test = min(max(1, round(n_series * test_fraction)), n_series - 1)
    order = np.random.default_rng(seed).permutation(n_series)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def holdout(dataset: Any, test_fraction: float, seed: int = 0, part: str = "train") -> Any:
    """The ``part`` ("train" or "test") of a :class:`mesp.data.Dataset` under :func:`split_by_series`.

    The one function ``mesp train``, ``mesp evaluate`` and ``mesp simulate`` share, so the same
    ``--test-fraction F --seed S`` selects the same functions in all three (series in load order).
    ``test_fraction=0`` keeps every series for ``"train"`` and none for ``"test"``.
    """
    import dataclasses

    if part not in ("train", "test"):
        raise MespError(f"part {part!r} must be 'train' or 'test'")
    train, test = split_by_series(len(dataset), test_fraction, seed)
    keep = train if part == "train" else test
    return dataclasses.replace(dataset, series=[dataset.series[i] for i in keep.tolist()])


def windows_of(windows: Windows, series: np.ndarray) -> Windows:
    """The windows whose series index is in ``series``."""
    return windows.subset(np.isin(windows.series_index, series))


def predict_checked(model: Forecaster, X: np.ndarray, horizon: int, batch_size: int = 16384) -> np.ndarray:
    """``model.predict`` in batches, with its output checked against the forecaster contract."""
    name = getattr(model, "name", type(model).__name__)
    parts = []
    for lo in range(0, X.shape[0], batch_size):
        pred = np.asarray(model.predict(X[lo:lo + batch_size]), dtype=np.float64)
        n = min(batch_size, X.shape[0] - lo)
        if pred.shape != (n, horizon):
            raise MespError(f"model {name!r} returned shape {pred.shape}, expected ({n}, {horizon})")
        if not np.isfinite(pred).all() or (pred < 0).any():
            raise MespError(f"model {name!r} returned negative or non-finite forecasts")
        parts.append(pred)
    return np.concatenate(parts) if parts else np.zeros((0, horizon))


def evaluate(models: Mapping[str, Forecaster], windows: Windows, clusters: np.ndarray | None = None, *,
             config: Mapping[str, Any] | None = None, progress: bool = False) -> dict:
    """Score fitted forecasters on ``windows``.

    Parameters
    ----------
    models : mapping of name -> fitted forecaster
        The key is the name results are reported under.
    windows : Windows
        The windows to score (normally the test part of :func:`split_by_series`).
    clusters : ndarray of shape (n_windows,), optional
        A cluster label per window; adds ``per_cluster``.
    config : mapping, optional
        Merged into the document's ``config`` (data, split, ...). The harness adds the window shape and,
        per model, its ``describe()`` (when it has one) and the prediction time.
    progress : bool
        Show a tqdm bar over models on stderr.
    """
    if len(windows) == 0:
        raise MespError("no windows to evaluate")
    if not models:
        raise MespError("no models to evaluate")
    if clusters is not None:
        clusters = np.asarray(clusters)
        if clusters.shape != (len(windows),):
            raise MespError(f"clusters has shape {clusters.shape}; "
                            f"expected one label per window ({len(windows)})")
    horizon = int(windows.Y.shape[1])
    doc_config: dict[str, Any] = dict(config or {})
    doc_config.setdefault("context", int(windows.X.shape[1]))
    doc_config.setdefault("horizon", horizon)
    doc_config["n_windows"] = len(windows)
    doc_config["n_series"] = int(np.unique(windows.series_index).size)
    doc_config["metrics"] = list(METRIC_NAMES)
    model_config: dict[str, Any] = dict(doc_config.get("models", {}))
    results: dict[str, dict] = {}
    per_cluster: dict[str, dict] = {}

    names = list(models)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(names, desc="evaluate", unit="model", leave=False)
    for name in names:
        if bar is not None:
            bar.set_postfix_str(name)
        model = models[name]
        started = time.perf_counter()
        pred = predict_checked(model, windows.X, horizon)
        seconds = time.perf_counter() - started
        results[name] = forecast_metrics(windows.Y, pred, windows.scale, windows.series_index)
        describe = getattr(model, "describe", None)
        entry = dict(model_config.get(name, {}))
        entry.update(describe() if callable(describe) else {"class": type(model).__name__})
        entry["predict_seconds"] = round(seconds, 3)
        model_config[name] = entry
        if clusters is not None:
            for label, metrics in per_cluster_metrics(windows.Y, pred, windows.scale, windows.series_index,
                                                      clusters).items():
                per_cluster.setdefault(label, {})[name] = metrics
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    doc_config["models"] = model_config
    return {"config": doc_config, "models": results, "per_cluster": per_cluster}


def format_table(result: Mapping[str, Any], metrics: tuple[str, ...] = TABLE_METRICS) -> str:
    """Models x metrics as an aligned plain-text table (rows in the document's order)."""
    header = ["model", *metrics]
    rows = [header]
    for name, m in result["models"].items():
        row = [name]
        for key in metrics:
            value = m.get(key)
            row.append("-" if value is None else f"{value:d}" if isinstance(value, int) else f"{value:.4f}")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(r, widths))) for r in rows]
    return "\n".join(lines)


class StoreForecaster:
    """A model-store version as a forecaster: ``mesp`` (router + experts, exactly as served) or ``dense``.

    Wraps :class:`mesp.runtime.Predictor` (serving code, numpy + onnxruntime). ``fit`` is a no-op: the model
    was trained by ``mesp train``. ``predict`` returns the 0.5 quantile (the contract's point forecast).
    """

    def __init__(self, predictor: Any, loaded: Any, which: str) -> None:
        self.predictor = predictor
        self.loaded = loaded
        self.which = which
        self.name = which
        self.degraded_rows_ = 0

    def fit(self, windows: Windows) -> "StoreForecaster":
        return self

    def predict_quantiles(self, X: np.ndarray, quantiles) -> np.ndarray:
        manifest = self.loaded.manifest
        quantiles = [float(q) for q in np.asarray(quantiles).ravel()]
        missing = [q for q in quantiles if q not in manifest.quantiles]
        if missing:
            raise MespError(f"model {manifest.version} has quantiles {manifest.quantiles}, not {missing}")
        X = np.ascontiguousarray(X, dtype=np.float32)
        if self.which == "dense":
            out = self.loaded.dense(X, manifest)
            return out[:, [manifest.quantiles.index(q) for q in quantiles], :]
        pred = self.predictor.predict(X, quantiles=quantiles, model=self.loaded)
        self.degraded_rows_ += int(np.asarray(pred.degraded).sum())
        return pred.values

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_quantiles(X, [0.5])[:, 0, :]

    def describe(self) -> dict:
        m = self.loaded.manifest
        info = {"class": "StoreForecaster", "version": m.version, "step_seconds": m.step_seconds,
                "context": m.context, "horizon": m.horizon, "quantiles": list(m.quantiles)}
        if self.which == "dense":
            info["family"] = m.dense.family
        else:
            info["experts"] = {str(c.id): c.expert.family for c in m.clusters}
            info["degraded_rows"] = self.degraded_rows_
        return info


def load_store_models(store: str) -> tuple[dict[str, StoreForecaster], dict, Any]:
    """``mesp`` and ``dense`` from the newest verified version in ``store``, plus its facts and a router.

    Returns ``(models, info, route)``: ``info`` has the manifest's ``version``, ``step_seconds``,
    ``context``, ``horizon`` and training summary; ``route(X)`` gives the cluster label of each window as
    served (a cluster id, ``-1`` for the idle group, ``"novel"`` for windows sent to the dense model), or
    ``route`` is None when the version has no usable router. ``dense`` is left out when the version has no
    usable dense model (the runtime then serves a fallback rule in its place).
    """
    try:
        from mesp.runtime import Predictor
    except ImportError as err:  # the serving runtime needs onnxruntime (the "serve" extra)
        raise MespError(f"--model needs the serving runtime (mesp.runtime): {err}; "
                        "install the 'serve' extra (pip install 'mesp[serve]')") from None
    predictor = Predictor(store, ttl_seconds=float("inf"))
    loaded = predictor.model()
    manifest = loaded.manifest
    models: dict[str, StoreForecaster] = {"mesp": StoreForecaster(predictor, loaded, "mesp")}
    if loaded.dense is not None:
        models["dense"] = StoreForecaster(predictor, loaded, "dense")
    info = {"uri": str(store), "version": manifest.version, "step_seconds": manifest.step_seconds,
            "context": manifest.context, "horizon": manifest.horizon, "quantiles": list(manifest.quantiles),
            "degraded": bool(loaded.degraded), "problems": list(loaded.problems),
            "training": manifest.training.get("data", {})}
    router = loaded.router

    def route(X: np.ndarray) -> np.ndarray:
        labels, _, novel, idle = router.route(np.ascontiguousarray(X, dtype=np.float32))
        out = np.asarray(labels).astype(object)
        out[np.asarray(novel, dtype=bool) & ~np.asarray(idle, dtype=bool)] = "novel"
        return out.astype(str)

    return models, info, (route if router is not None else None)


def _jsonable(value: Any) -> Any:
    """NaN/inf become null (strict JSON); numpy scalars and tuples become plain JSON values."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(result: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write the document atomically (a reader never sees half a file)."""
    path = Path(path)
    if path.parent and not path.parent.is_dir():
        raise MespError(f"cannot write {path}: folder {path.parent} does not exist")
    text = json.dumps(_jsonable(result), indent=2, allow_nan=False)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text + "\n")
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a results file is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
