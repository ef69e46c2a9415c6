"""The expert job: one cluster's Optuna search (or the dense model's), ONNX export with a parity check.

Channels: ``data`` (the same trace files the cluster job read; checked by fingerprint) and ``cluster``
(the cluster job's model folder, or its ``model.tar.gz`` as SageMaker delivers it). Hyperparameter
``cluster`` is a cluster id, or ``dense`` for the rival trained on every window. Model folder written::

    model.onnx     the exported expert (absent when the search defers a tiny cluster to the dense model)
    expert.json    cluster, family, params, file + sha256, quantiles, context/horizon, scaling,
                   val_metrics, parity error, search log, timings

Metrics: ``val_loss`` is the search's rolling-origin validation loss (out of sample); ``fit_wape`` and
``fit_mae`` are the refitted model's point errors on its latest windows (in sample, a sanity check), which
also serve for the ONNX parity check.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from typing import Any

import numpy as np

from mesp.jobs.common import code_version, fingerprint, load_data, windows_for
from mesp.jobs.contract import JobError, JobPaths, Param, emit_metric, read_hyperparameters, run_job, unpack_channel
from mesp.publish import CLUSTER_META, EXPERT_META, EXPERT_MODEL

SPEC = {
    "job": Param(str, "expert", "which job the image runs"),
    "cluster": Param(str, "dense", "cluster id, or dense"),
    "budget_minutes": Param(float, 5.0, "wall-clock budget of the search and refit"),
    "trials": Param(int, 20, "Optuna trials at most"),
    "max_epochs": Param(int, 30, "epochs per trial at most"),
    "families": Param(str, "", "comma-separated model families (default: all)"),
    "quantiles": Param(str, "0.5,0.9", "comma-separated quantiles; 0.5 is always included"),
    "seed": Param(int, 0, "random seed (each cluster's search derives its own, see search_seed)"),
    "test_fraction": Param(float, 0.0, "share of series held out; must match the cluster job's"),
    "split_seed": Param(int, 0, "seed of that split; must match the cluster job's"),
    "threads": Param(int, 0, "torch threads (0: all cores)"),
    "max_windows": Param(int, 0, "cap on the training windows, sampled with the seed (0: no cap)"),
    "data_format": Param(str, "auto", "mesp.data format of the data channel"),
}


def parse_quantiles(text: str) -> list[float]:
    try:
        qs = sorted({round(float(q), 6) for q in text.split(",") if q.strip()} | {0.5})
    except ValueError:
        raise JobError(f"quantiles={text!r}: use comma-separated numbers like 0.5,0.9") from None
    if not all(0 < q < 1 for q in qs):
        raise JobError(f"quantiles={text!r}: each must lie strictly between 0 and 1")
    return qs


def wape(pred: np.ndarray, y: np.ndarray) -> float:
    total = float(np.abs(y).sum())
    return float(np.abs(pred - y).sum() / total) if total > 0 else math.nan


def search_seed(seed: int, cluster: str) -> int:
    """The search's seed for one job: the run's seed for ``dense``, a distinct one per cluster id.

    With one seed for all, every cluster's Optuna study sampled the same first trials (the same families
    and hyperparameters in the same order); a stable hash of (seed, cluster) decorrelates them while
    keeping a run reproducible.

    >>> search_seed(0, "dense")
    0
    >>> search_seed(0, "0") != search_seed(0, "1")
    True
    """
    if cluster == "dense":
        return seed
    digest = hashlib.sha256(f"{seed}:{cluster}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def run(paths: JobPaths) -> None:
    t_start = time.perf_counter()
    hp = read_hyperparameters(paths, SPEC)
    cluster_dir = unpack_channel(paths.require_channel("cluster"))
    meta_path = cluster_dir / CLUSTER_META
    if not meta_path.exists():
        raise JobError(f"channel 'cluster' has no {CLUSTER_META}: give it the cluster job's output")
    meta = json.loads(meta_path.read_text())
    split = meta["training"].get("split", {"test_fraction": 0.0, "seed": 0})
    # without a holdout (fraction 0) the split seed selects nothing, so only a real difference counts
    if (hp["test_fraction"] != split["test_fraction"]
            or (hp["test_fraction"] and hp["split_seed"] != split["seed"])):
        raise JobError(f"test_fraction={hp['test_fraction']} split_seed={hp['split_seed']} differ from the "
                       f"cluster job's ({split['test_fraction']}, {split['seed']})")
    dataset, files = load_data(paths.require_channel("data"), hp["data_format"], hp["test_fraction"],
                               hp["split_seed"])
    if fingerprint(files) != meta["training"]["data"]["fingerprint"]:
        raise JobError("the data channel differs from what the cluster job read (fingerprint mismatch)")
    windows, sizes = windows_for(dataset, f"{meta['context']}steps", f"{meta['horizon']}steps",
                                 f"{meta['stride']}steps")
    with np.load(cluster_dir / "assignment.npz", allow_pickle=False) as a:
        assigned, origin = a["cluster"], a["origin"]
    if len(assigned) != len(windows) or not np.array_equal(origin, windows.origin):
        raise JobError(f"the cluster job assigned {len(assigned)} windows, this job cut {len(windows)}")

    dense = hp["cluster"] == "dense"
    seed = search_seed(hp["seed"], hp["cluster"])
    if dense:
        mine = windows
    else:
        try:
            cid = int(hp["cluster"])
        except ValueError:
            raise JobError(f"cluster={hp['cluster']!r}: a cluster id or 'dense'") from None
        known = [c["id"] for c in meta["clusters"] if c["id"] >= 0]
        if cid not in known:
            raise JobError(f"cluster {cid} is not one of the cluster job's clusters {known}")
        mine = windows.subset(assigned == cid)
    if hp["max_windows"] and len(mine) > hp["max_windows"]:
        rng = np.random.default_rng(seed)
        mine = mine.subset(np.sort(rng.choice(len(mine), hp["max_windows"], replace=False)))
    quantiles = parse_quantiles(hp["quantiles"])
    families = [f.strip() for f in hp["families"].split(",") if f.strip()] or None
    threads = hp["threads"] or os.cpu_count() or 1
    label = {"cluster": hp["cluster"]}

    from mesp.search import search_dense, search_expert

    search = search_dense if dense else search_expert
    try:
        result = search(mine, quantiles=quantiles, budget_seconds=hp["budget_minutes"] * 60,
                        n_trials=hp["trials"], seed=seed, families=families, max_epochs=hp["max_epochs"],
                        threads=threads)
    except ValueError as err:  # e.g. an unknown family name
        raise JobError(str(err)) from None
    out: dict[str, Any] = {
        "cluster": "dense" if dense else cid, "cluster_run_id": meta["run_id"], "quantiles": quantiles,
        "context": meta["context"], "horizon": meta["horizon"], "n_windows": len(mine),
        "training": {"rule": result.rule, "n_trials": result.n_trials, "n_pruned": result.n_pruned,
                     "search_seconds": round(result.seconds, 3), "budget_minutes": hp["budget_minutes"],
                     "seed": hp["seed"], "search_seed": seed, "trials": result.trials, "code_version": code_version()},
    }
    paths.model.mkdir(parents=True, exist_ok=True)
    if result.deferred:
        # Too few windows to learn from: this cluster is answered by the dense model (publish links it).
        out.update(family="defer:dense", params={}, val_metrics={})
        emit_metric(label, n_trials=0, train_seconds=time.perf_counter() - t_start)
    else:
        from mesp.experts import SCALING, predict
        from mesp.experts.export import export

        # The parity check and the reported metrics use the latest windows (the search's validation side).
        order = np.argsort(mine.origin, kind="stable")
        check = mine.subset(order[-min(len(mine), 256):])
        report = export(result.model, paths.model / EXPERT_MODEL, check.X)
        pred = predict(result.model, check.X)[:, quantiles.index(0.5), :]
        val = {"loss": result.val_loss, "fit_wape": wape(pred, check.Y),
               "fit_mae": float(np.abs(pred - check.Y).mean())}
        out.update(family=result.family, params=result.params, file=EXPERT_MODEL, sha256=report.sha256,
                   scaling=SCALING, val_metrics={k: v for k, v in val.items() if math.isfinite(v)},
                   parity={"max_rel_error": report.max_rel_error, "n_checked": report.n_checked,
                           "opset": report.opset, "ir_version": report.ir_version})
        emit_metric(label, val_loss=val["loss"], fit_wape=val["fit_wape"], fit_mae=val["fit_mae"],
                    n_trials=result.n_trials,
                    parity_max_rel_err=report.max_rel_error, train_seconds=time.perf_counter() - t_start)
    out["training"]["timings"] = {"total_seconds": round(time.perf_counter() - t_start, 3)}
    (paths.model / EXPERT_META).write_text(json.dumps(out, indent=1))


def main(argv: list[str] | None = None) -> int:
    return run_job("expert", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
