"""Local training: the SageMaker jobs' own entry points, run on this machine, then a publish.

``train(...)`` runs cluster -> experts (parallel processes) -> dense -> publish. Every job runs through
:func:`mesp.jobs.contract.run_job` in its own ``/opt/ml``-shaped folder under a work directory, exactly
as in a container, so local and SageMaker training produce the same files and the same store layout.

Time budget (``budget_minutes``, wall clock, split as it goes):

* clustering takes what it takes (K-Shape on at most ``max_fit`` contexts: seconds);
* of what is left, 5% is kept for exports and the publish, and the rest ``R`` is split in two equal
  wall-clock halves: the expert phase and the dense phase;
* the expert phase runs ``workers`` jobs at once with one torch thread each, so the experts together get
  ``workers * R/2`` core-seconds, shared over clusters in proportion to their windows with a floor
  (:func:`mesp.search.split_budget`); the dense job then runs alone with ``workers`` threads for ``R/2``.
  Dense and the mixture thus get the same compute, the fairness rule of the expert issue.

``add_cluster=True`` (``mesp train --add-cluster``) instead routes the data with the store's LATEST
router, clusters only the windows it flags as novel (distance above the manifest's threshold), trains
the new experts only, and publishes a version that reuses every old file byte for byte.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from mesp.errors import MespError
from mesp.jobs import cluster as cluster_job
from mesp.jobs import expert as expert_job
from mesp.jobs.contract import JobPaths, run_job, write_hyperparameters
from mesp.publish import CLUSTER_META, Published, draft_add_cluster, draft_from_jobs, publish
from mesp.store import open_store

PUBLISH_RESERVE = 0.05


@dataclass
class TrainOptions:
    """The knobs of one training run (the CLI's flags). Durations are strings like ``12h`` or ``720steps``."""

    context: str = "auto"
    horizon: str = "1h"
    stride: str = ""
    clusters: str = "auto"
    budget_minutes: float = 10.0
    seed: int = 0
    test_fraction: float = 0.0
    workers: int = 2
    trials: int = 20
    max_epochs: int = 30
    families: str = ""
    quantiles: str = "0.5,0.9"
    max_fit: int = 3000
    data_format: str = "auto"
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


class JobFailed(MespError):
    pass


def _stage(root: Path, channels: dict[str, Sequence[Path] | Path], hyperparameters: dict[str, Any]) -> JobPaths:
    """An ``/opt/ml``-shaped folder: channels as symlinks (no copies of big traces), hyperparameters as strings."""
    paths = JobPaths(root)
    for name, source in channels.items():
        channel = paths.channel(name)
        if isinstance(source, Path):
            channel.parent.mkdir(parents=True, exist_ok=True)
            channel.symlink_to(source.resolve(), target_is_directory=True)
        else:
            channel.mkdir(parents=True)
            for path in source:
                (channel / Path(path).name).symlink_to(Path(path).resolve())
    write_hyperparameters(paths, hyperparameters)
    return paths


def _run(name: str, body: Any, paths: JobPaths) -> Path:
    if run_job(name, body, ["--sm-root", str(paths.root)]) != 0:
        reason = paths.failure.read_text() if paths.failure.exists() else "no reason recorded"
        raise JobFailed(f"{name} job failed: {reason}")
    return paths.model


def _expert_worker(root: str) -> str:
    """One expert job in a worker process (top level, so it pickles)."""
    return str(_run("expert", expert_job.run, JobPaths(Path(root))))


def _check_files(data: Sequence[str]) -> list[Path]:
    paths = [Path(p) for p in data]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise MespError(f"data file(s) not found: {', '.join(missing)}")
    names = [p.name for p in paths]
    if len(set(names)) != len(names):
        raise MespError(f"data files must have distinct names (they share one input channel): {names}")
    return paths


class _Progress:
    def __init__(self, total: int, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="mesp train", unit="job", file=sys.stderr, leave=True)

    def step(self, note: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(note, refresh=False)
            self.bar.update(1)

    def grow(self, n: int) -> None:
        if self.bar is not None:
            self.bar.total += n
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _expert_hps(opts: TrainOptions, cluster: str, budget_seconds: float, threads: int) -> dict[str, Any]:
    return {"job": "expert", "cluster": cluster, "budget_minutes": round(budget_seconds / 60, 4),
            "trials": opts.trials, "max_epochs": opts.max_epochs, "families": opts.families,
            "quantiles": opts.quantiles, "seed": opts.seed, "threads": threads, "data_format": opts.data_format,
            "test_fraction": opts.test_fraction, "split_seed": opts.seed}


def _run_experts(work: Path, data: list[Path], cluster_dir: Path, sizes: dict[int, int], budget_seconds: float,
                 opts: TrainOptions, bar: _Progress) -> dict[int, Path]:
    """Expert jobs for ``sizes`` (cluster id -> windows), ``workers`` at a time, one torch thread each."""
    from mesp.search import split_budget

    ids = sorted(sizes)
    shares = split_budget([sizes[i] for i in ids], budget_seconds * max(1, opts.workers))
    roots = {}
    for cid, seconds in zip(ids, shares):
        roots[cid] = _stage(work / f"expert-{cid}", {"data": data, "cluster": cluster_dir},
                            _expert_hps(opts, str(cid), seconds, threads=1)).root
    out: dict[int, Path] = {}
    if opts.workers <= 1 or len(ids) <= 1:
        for cid in ids:
            out[cid] = Path(_expert_worker(str(roots[cid])))
            bar.step(f"expert {cid}")
        return out
    # spawn: the parent may hold BLAS/FFT thread pools that fork would copy in a broken state
    with ProcessPoolExecutor(max_workers=opts.workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(_expert_worker, str(roots[cid])): cid for cid in ids}
        for fut in as_completed(futures):
            out[futures[fut]] = Path(fut.result())
            bar.step(f"expert {futures[fut]}")
    return out


def train(data: Sequence[str], model: str, opts: TrainOptions | None = None,
          workdir: str | os.PathLike[str] | None = None, add_cluster: bool = False) -> Published:
    """Train locally and publish into the store ``model`` (a folder or s3://bucket/prefix)."""
    opts = opts or TrainOptions()
    files = _check_files(data)
    if opts.budget_minutes <= 0:
        raise MespError(f"--budget-minutes must be positive (got {opts.budget_minutes})")
    if not 0 <= opts.test_fraction < 1:
        raise MespError(f"--test-fraction {opts.test_fraction} must be in [0, 1)")
    if add_cluster and opts.test_fraction:
        raise MespError("--add-cluster learns from every series it is given; drop --test-fraction")
    store = open_store(model)
    owned = workdir is None
    work = Path(tempfile.mkdtemp(prefix="mesp-train-")) if owned else Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    try:
        if add_cluster:
            return _add_cluster(files, store, opts, work)
        return _train(files, store, opts, work)
    finally:
        if owned:
            shutil.rmtree(work, ignore_errors=True)


def _train(files: list[Path], store: Any, opts: TrainOptions, work: Path) -> Published:
    t0 = time.perf_counter()
    budget = opts.budget_minutes * 60
    bar = _Progress(3, opts.progress)  # cluster, dense, publish; the experts are added once K is known
    try:
        run_id = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        cluster_paths = _stage(work / "cluster", {"data": files}, {
            "job": "cluster", "run_id": run_id, "context": opts.context, "horizon": opts.horizon,
            "stride": opts.stride, "clusters": opts.clusters, "seed": opts.seed, "max_fit": opts.max_fit,
            "data_format": opts.data_format, "test_fraction": opts.test_fraction, "split_seed": opts.seed})
        cluster_dir = _run("cluster", cluster_job.run, cluster_paths)
        meta = json.loads((cluster_dir / CLUSTER_META).read_text())
        sizes = {int(c["id"]): int(c["size"]) for c in meta["clusters"] if int(c["id"]) >= 0}
        bar.grow(len(sizes))
        bar.step(f"K={len(sizes)}")
        t_cluster = time.perf_counter() - t0
        rest = max(budget - t_cluster, 0.0) * (1 - PUBLISH_RESERVE)
        expert_dirs = _run_experts(work, files, cluster_dir, sizes, rest / 2, opts, bar)
        t_experts = time.perf_counter() - t0 - t_cluster
        dense_paths = _stage(work / "dense", {"data": files, "cluster": cluster_dir},
                             _expert_hps(opts, "dense", rest / 2, threads=max(1, opts.workers)))
        dense_dir = _run("expert", expert_job.run, dense_paths)
        bar.step("dense")
        t_dense = time.perf_counter() - t0 - t_cluster - t_experts
        extra = {"mode": "local", "budget": {"minutes": opts.budget_minutes, "workers": opts.workers,
                                             "expert_phase_seconds": round(rest / 2, 3),
                                             "dense_seconds": round(rest / 2, 3), "split": "see mesp.train"},
                 "timings": {"cluster_seconds": round(t_cluster, 3), "experts_seconds": round(t_experts, 3),
                             "dense_seconds": round(t_dense, 3)}, **opts.extra}
        draft = draft_from_jobs(cluster_dir, [expert_dirs[c] for c in sorted(expert_dirs)], dense_dir, extra)
        result = publish(store, draft)
        bar.step(f"published {result.version}")
        return result
    finally:
        bar.close()


# ------------------------------------------------------------------------------------------- add cluster


def _add_cluster(files: list[Path], store: Any, opts: TrainOptions, work: Path) -> Published:
    """New clusters from the patterns LATEST's router calls novel; old files reused byte for byte."""
    from mesp.jobs.common import code_version, data_summary, load_data, windows_for
    from mesp.router import Router, novelty_threshold

    t0 = time.perf_counter()
    base_version = store.latest_version()
    base = store.read_manifest(base_version)
    raw = store.read_verified(base_version, base.router.file, base.router.sha256)
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        old_centroids = npz["centroids"]
    router = Router(old_centroids, base.router.novelty_threshold, base.router.idle_rule)
    data_dir = work / "data"
    data_dir.mkdir()
    for path in files:
        (data_dir / path.name).symlink_to(path.resolve())
    dataset, _ = load_data(data_dir, opts.data_format)
    if dataset.step_seconds != base.step_seconds:
        raise MespError(f"the data's step is {dataset.step_seconds}s but {base_version} was trained on "
                        f"{base.step_seconds}s steps")
    windows, sizes = windows_for(dataset, f"{base.context}steps", f"{base.horizon}steps",
                                 f"{base.horizon}steps" if not opts.stride else opts.stride)
    labels, distances, novel, _ = router.route(windows.X)
    n_novel = int(novel.sum())
    k_new = 1 if opts.clusters == "auto" else int(opts.clusters)
    if n_novel < max(2, k_new):
        raise MespError(f"{n_novel} of {len(windows)} windows are novel for {base_version} (SBD above "
                        f"{base.router.novelty_threshold:.3f}): nothing to add a cluster for")
    from mesp.clustering import KShape

    km = KShape(k_new, random_state=opts.seed, idle_rule=base.router.idle_rule, n_jobs=1).fit(windows.X[novel])
    k_old = old_centroids.shape[0]
    combined = Router(np.concatenate([old_centroids, km.cluster_centers_]), base.router.novelty_threshold,
                      base.router.idle_rule)
    new_labels, new_dist, _, _ = combined.route(windows.X)
    new_ids = [k_old + j for j in range(k_new) if np.any(new_labels == k_old + j)]
    if not new_ids:
        raise MespError("the novel patterns' new centroids attract no window; nothing to add")
    # One threshold serves all clusters: widen it so the new clusters' own members are not novel
    # (same quantile rule as the cluster job); it never shrinks, so no old pattern becomes novel.
    members = np.isin(new_labels, new_ids)
    threshold = max(base.router.novelty_threshold, novelty_threshold(new_dist[members]))
    combined = Router(combined.centroids, threshold, base.router.idle_rule)
    # Training windows of a new cluster: the novel ones the combined router sends there.
    assignment = np.where(novel & np.isin(new_labels, new_ids), new_labels, -2)
    names = cluster_job.cluster_labels(combined, windows.X, new_labels, dataset.step_seconds)

    cluster_dir = work / "add" / "model"
    cluster_dir.mkdir(parents=True)
    combined.save_npz(cluster_dir / "router.npz")
    with open(cluster_dir / "assignment.npz", "wb") as fh:
        np.savez_compressed(fh, series_index=windows.series_index, origin=windows.origin, cluster=assignment,
                            distance=distances)
    run_id = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    summary = data_summary(dataset, files, windows)
    meta = {"run_id": run_id, "base_version": base_version, "step_seconds": base.step_seconds,
            "context": base.context, "horizon": base.horizon, "stride": sizes["stride"],
            "novelty_threshold": threshold, "idle_rule": base.router.idle_rule,
            "clusters": [{"id": c, "label": names.get(c, f"cluster {c}"), "size": int(np.sum(assignment == c))}
                         for c in new_ids],
            "training": {"data": summary, "seed": opts.seed, "code_version": code_version(),
                         "hyperparameters": {}, "added": {"base_version": base_version, "n_novel": n_novel,
                                                           "new_clusters": new_ids}}}
    (cluster_dir / CLUSTER_META).write_text(json.dumps(meta, indent=1))
    bar = _Progress(len(new_ids), opts.progress)
    try:
        budget = max(opts.budget_minutes * 60 - (time.perf_counter() - t0), 1.0) * (1 - PUBLISH_RESERVE)
        expert_dirs = _run_experts(work, files, cluster_dir, {c: int(np.sum(assignment == c)) for c in new_ids},
                                   budget / max(1, opts.workers), opts, bar)
    finally:
        bar.close()
    draft = draft_add_cluster(store, base_version, cluster_dir, [expert_dirs[c] for c in new_ids],
                              {"mode": "local", "add_cluster_seconds": round(time.perf_counter() - t0, 3)})
    return publish(store, draft)
