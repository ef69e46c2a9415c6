"""The serving runtime: a verified model version in memory, routing, and vectorised expert calls.

:class:`Predictor` is created once per container (Lambda keeps it across warm invocations):

* **Loading**: ``LATEST`` → manifest → every file read through :meth:`ModelStore.read_verified` (sha256
  must match the manifest); ``router.npz`` is opened with ``allow_pickle=False``; one ONNX session per
  distinct file, created from bytes (nothing touches ``/tmp``) and kept by sha256, so a new version that
  reuses an expert byte for byte reuses its session (its stored bytes are still re-verified). Each session is smoke-tested on a zero input, so a
  graph with the wrong shapes is caught at load time, not on a user's request.
* **Hot swap**: at most every ``ttl_seconds`` a request re-reads ``LATEST`` (one small GET). A new version
  is loaded *strictly* beside the current one and swapped in with one reference assignment; if anything in
  it fails verification it is **refused** (remembered, not retried until ``LATEST`` changes again) and the
  current version keeps serving. A version that merely could not be *read* (the store throttled, timed out or
  denied: :class:`~mesp.store.StoreUnavailable`) is not refused but tried again at the next check, and a
  container that started degraded for that reason reloads its version strictly and heals.
* **Cold start degrades instead of failing**: with no version in memory, a damaged version is loaded
  leniently. An expert that is missing/corrupt is replaced by the dense model; a missing dense model by the
  manifest's fallback rule (``rule:seasonal_naive``) and then ``rule:naive``; a damaged router sends
  everything to the dense model. Every such answer says ``degraded``. If ``LATEST`` itself names a version
  that cannot be read, the newest older version that can is served (also ``degraded``). Only a store with
  no readable version at all raises :class:`~mesp.errors.ModelStoreError`.
* **Routing** (:class:`mesp.router.Router`): idle/sparse inputs go to the idle cluster's expert (a rule);
  inputs farther than the novelty threshold from every centroid go to the dense model and are flagged
  ``novel``; the rest go to their nearest cluster's expert. A batch is routed at once and each expert is
  called once with all of its rows.

This module is on the serving path: numpy and onnxruntime only (no torch, pandas, scipy).
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mesp.errors import ModelStoreError
from mesp.manifest import IDLE_CLUSTER_ID, ONNX_INPUT, ONNX_OUTPUT, ExpertInfo, Manifest
from mesp.store import ModelStore, StoreUnavailable, open_store

log = logging.getLogger("mesp.runtime")

LAST_RESORT_RULE = "rule:naive"
NO_CLUSTER = None  # cluster reported when the router itself is unavailable

Listener = Callable[[str, dict], None]


def default_threads() -> int:
    """ONNX intra-op threads: ``MESP_ORT_THREADS``, else Lambda's vCPU share (1,769 MB = 1 vCPU)."""
    if os.environ.get("MESP_ORT_THREADS"):
        return max(1, int(os.environ["MESP_ORT_THREADS"]))
    memory = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    if memory:
        return max(1, min(6, int(memory) // 1769))
    return max(1, min(4, os.cpu_count() or 1))


def session_options(threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning threads burn the fractional vCPU a Lambda gets between requests; the latency cost is tiny.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


class Runner:
    """One way to answer: an ONNX graph or a numpy rule. ``__call__`` returns (B, Q, H) float32 >= 0."""

    def __init__(self, family: str, session=None, sha256: str | None = None):
        self.family, self.session, self.sha256 = family, session, sha256

    @property
    def is_rule(self) -> bool:
        return self.session is None

    def __call__(self, X: np.ndarray, manifest: Manifest) -> np.ndarray:
        if self.session is None:
            from mesp.rules import predict_rule

            out = predict_rule(self.family, X, manifest.horizon, list(manifest.quantiles), manifest.step_seconds)
        else:
            out = self.session.run([ONNX_OUTPUT], {ONNX_INPUT: X})[0]
        out = np.asarray(out, dtype=np.float32)
        expected = (X.shape[0], len(manifest.quantiles), manifest.horizon)
        if out.shape != expected:
            raise ValueError(f"{self.family} returned shape {out.shape}, expected {expected}")
        return np.maximum(out, 0.0, out=out)

    def __repr__(self) -> str:
        return f"Runner({self.family!r}{', onnx' if self.session is not None else ''})"


@dataclass
class LoadedModel:
    """One version in memory. ``problems`` lists what failed verification (empty = healthy)."""

    manifest: Manifest
    router: object | None
    experts: dict[int, Runner | None]
    dense: Runner | None
    fallback: Runner
    last_resort: Runner
    problems: list[str] = field(default_factory=list)
    load_seconds: float = 0.0
    labels: dict[int, str] = field(default_factory=dict)
    # Some problem was the store being unavailable (not damage): the version is loaded again later.
    retry_load: bool = False
    # Served because LATEST could not be used: every answer from it is degraded.
    older_than_latest: bool = False

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def degraded(self) -> bool:
        return bool(self.problems)

    def chain(self, cluster_id: int | None, novel: bool) -> list[Runner | None]:
        """Preferred runner first, then the fallbacks; ``None`` marks a runner that failed to load."""
        tail = [self.dense, self.fallback, self.last_resort]
        if cluster_id is None or novel:
            return tail
        return [self.experts.get(cluster_id)] + tail


@dataclass
class Prediction:
    """A batch of answers. Arrays have one row per input; ``values`` is (n, len(quantiles), horizon)."""

    values: np.ndarray
    quantiles: list[float]
    cluster_ids: list[int | None]
    cluster_labels: list[str | None]
    distances: np.ndarray
    novel: np.ndarray
    degraded: np.ndarray
    families: list[str]
    version: str

    @property
    def forecast(self) -> np.ndarray:
        """The 0.5 quantile when it was requested, else the middle requested one: (n, horizon)."""
        qs = self.quantiles
        i = qs.index(0.5) if 0.5 in qs else len(qs) // 2
        return self.values[:, i, :]


class Predictor:
    """Serves the newest verified version of a model store (see the module docstring).

    Parameters
    ----------
    store : ModelStore or str
        A store or its URI (directory or ``s3://bucket/prefix``).
    ttl_seconds : float
        How often a request may re-check ``LATEST``; 0 checks on every request.
    threads : int, optional
        ONNX intra-op threads; defaults to :func:`default_threads`.
    listener : callable, optional
        ``listener(event, fields)`` for ``model_loaded``, ``version_refused``, ``refresh_failed`` and
        ``runner_failed``; the Lambda handler turns these into logs and metrics.
    clock : callable
        Monotonic seconds (tests pass a fake one).
    """

    def __init__(self, store: ModelStore | str, *, ttl_seconds: float = 60.0, threads: int | None = None,
                 listener: Listener | None = None, clock: Callable[[], float] = time.monotonic):
        self.store = open_store(store)
        self.ttl_seconds = ttl_seconds
        self.threads = threads or default_threads()
        self.listener = listener
        self.clock = clock
        self._model: LoadedModel | None = None
        self._sessions: dict[str, object] = {}   # sha256 -> InferenceSession, for current + loading versions
        self._refused: dict[str, str] = {}        # version -> reason; not retried
        self._checked_at = float("-inf")
        self._lock = threading.Lock()
        self._reported: set[tuple[str, str]] = set()
        self._failing: str | None = None          # reason of the last failed store check, until one succeeds

    # ------------------------------------------------------------------------------------------ loading
    @property
    def loaded(self) -> LoadedModel | None:
        """The version in memory, without touching the store."""
        return self._model

    def model(self) -> LoadedModel:
        """The version to serve now: loads on first use, re-checks ``LATEST`` when the TTL has passed."""
        current = self._model
        if current is not None and self.clock() - self._checked_at < self.ttl_seconds:
            return current
        self.refresh()
        if self._model is None:
            raise ModelStoreError(f"no usable model version in {self.store.uri}"
                                  + (f" ({self._failing})" if self._failing else ""))
        return self._model

    def refresh(self) -> str:
        """Re-read ``LATEST`` now. Returns ``loaded``, ``swapped``, ``unchanged``, ``refused`` or ``failed``."""
        with self._lock:
            current = self._model
            if current is not None and self.clock() - self._checked_at < self.ttl_seconds and self.ttl_seconds:
                return "unchanged"  # another thread refreshed while we waited for the lock
            self._checked_at = self.clock()
            try:
                latest = self.store.latest_version()
            except ModelStoreError as err:
                if current is None:
                    return self._cold_start_without_latest(str(err))
                self._store_failed(str(err), current.version)
                return "failed"
            self._failing = None
            if current is not None and latest == current.version:
                if not current.retry_load:
                    return "unchanged"
                # Loaded degraded because the store was unavailable: try again, keep serving meanwhile.
                try:
                    healed = self._load(latest, strict=True)
                except ModelStoreError:
                    return "unchanged"
                self._install(healed)
                return "swapped"
            if latest in self._refused:
                return "refused"
            try:
                loaded = self._load(latest, strict=current is not None)
            except StoreUnavailable as err:  # not damage: not refused, tried again at the next check
                if current is not None:
                    self._store_failed(str(err), current.version)
                    return "failed"
                return self._cold_start_without_latest(str(err), skip=latest)
            except ModelStoreError as err:
                self._refused[latest] = str(err)  # damaged: remembered, not fetched again
                if current is not None:
                    self._emit("version_refused", version=latest, reason=str(err), serving=current.version)
                    return "refused"
                return self._cold_start_without_latest(str(err), skip=latest)
            self._install(loaded)
            return "swapped" if current is not None else "loaded"

    def _store_failed(self, reason: str, version: str | None) -> None:
        """Report a failed store check; ``repeat`` marks the same failure again (log once, count always)."""
        repeat, self._failing = reason == self._failing, reason
        self._emit("refresh_failed", reason=reason, version=version, repeat=repeat)

    def _cold_start_without_latest(self, reason: str, skip: str | None = None) -> str:
        """Nothing in memory and LATEST unusable: serve the newest older version that loads, degraded."""
        try:
            versions = [v for v in reversed(self.store.list_versions()) if v != skip]
        except ModelStoreError as err:
            versions, reason = [], f"{reason}; {err}"
        for version in versions:
            try:
                loaded = self._load(version, strict=False)
            except ModelStoreError:
                continue
            loaded.problems.insert(0, f"LATEST unusable ({reason}); serving older version {version}")
            loaded.older_than_latest = loaded.retry_load = True  # LATEST is checked again at every TTL
            self._install(loaded)
            return "loaded"
        self._store_failed(reason, None)
        return "failed"

    def _install(self, loaded: LoadedModel) -> None:
        self._model = loaded  # one reference assignment: requests see the old version or the new one
        keep = {r.sha256 for r in [*loaded.experts.values(), loaded.dense] if r is not None and r.sha256}
        self._sessions = {sha: s for sha, s in self._sessions.items() if sha in keep}
        self._emit("model_loaded", version=loaded.version, seconds=round(loaded.load_seconds, 4),
                   degraded=loaded.degraded, problems=list(loaded.problems))

    def _load(self, version: str, *, strict: bool) -> LoadedModel:
        """Load and verify ``version``; with ``strict`` any problem refuses the whole version."""
        started = time.perf_counter()
        manifest = self.store.read_manifest(version)
        problems: list[str] = []
        unavailable = False

        router = None
        try:
            router = self._load_router(manifest)
        except Exception as err:  # noqa: BLE001 - any damage means "no router", reported below
            problems.append(f"router: {_one_line(err)}")
            unavailable |= isinstance(err, StoreUnavailable)

        experts: dict[int, Runner | None] = {}
        for cluster in manifest.clusters:
            try:
                experts[cluster.id] = self._runner(manifest, cluster.expert)
            except Exception as err:  # noqa: BLE001
                experts[cluster.id] = None
                problems.append(f"cluster {cluster.id} expert {cluster.expert.file or cluster.expert.family}: "
                                f"{_one_line(err)}")
                unavailable |= isinstance(err, StoreUnavailable)
        dense = None
        try:
            dense = self._runner(manifest, manifest.dense)
        except Exception as err:  # noqa: BLE001
            problems.append(f"dense {manifest.dense.file or manifest.dense.family}: {_one_line(err)}")
            unavailable |= isinstance(err, StoreUnavailable)
        fallback_family = manifest.fallback if manifest.fallback.startswith("rule:") else "rule:seasonal_naive"

        if strict and problems:
            error = StoreUnavailable if unavailable else ModelStoreError
            raise error(f"version {version} refused: {'; '.join(problems)}")
        labels = {c.id: c.label for c in manifest.clusters}
        labels.setdefault(IDLE_CLUSTER_ID, "idle")
        return LoadedModel(manifest=manifest, router=router, experts=experts, dense=dense,
                           fallback=Runner(fallback_family), last_resort=Runner(LAST_RESORT_RULE),
                           problems=problems, load_seconds=time.perf_counter() - started, labels=labels,
                           retry_load=unavailable)

    def _load_router(self, manifest: Manifest):
        from mesp.router import Router

        info = manifest.router
        data = self.store.read_verified(manifest.version, info.file, info.sha256)
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            if "centroids" not in npz.files:
                raise ValueError(f"{info.file} has no 'centroids' array")
            centroids = np.asarray(npz["centroids"], dtype=np.float32)
        if centroids.ndim != 2 or centroids.shape[1] != manifest.context:
            raise ValueError(f"centroids have shape {centroids.shape}, expected (k, {manifest.context})")
        return Router(centroids, info.novelty_threshold, info.idle_rule)

    def _runner(self, manifest: Manifest, expert: ExpertInfo) -> Runner:
        if expert.file is None:
            runner = Runner(expert.family)
            runner(np.zeros((1, manifest.context), dtype=np.float32), manifest)  # unknown rule names fail here
            return runner
        # Always re-verify the stored bytes, even when a session for this sha256 is cached: a version whose
        # files are damaged in the store is refused here exactly as a cold container would degrade on it.
        data = self.store.read_verified(manifest.version, expert.file, expert.sha256)  # type: ignore[arg-type]
        session = self._sessions.get(expert.sha256)  # type: ignore[arg-type]
        if session is None:
            import onnxruntime as ort

            try:
                session = ort.InferenceSession(data, session_options(self.threads),
                                               providers=["CPUExecutionProvider"])
            except Exception as err:  # onnxruntime raises its own exception types for bad graphs
                raise ValueError(f"not a loadable ONNX model ({_one_line(err)})") from None
        runner = Runner(expert.family, session, expert.sha256)
        runner(np.zeros((1, manifest.context), dtype=np.float32), manifest)  # wrong I/O fails here, not later
        self._sessions[expert.sha256] = session  # type: ignore[index]
        return runner

    # ---------------------------------------------------------------------------------------- predicting
    def predict(self, X: np.ndarray, *, horizon: int | None = None, quantiles: list[float] | None = None,
                model: LoadedModel | None = None) -> Prediction:
        """Forecast every row of ``X`` (n, context) float32 (already cut to the model's context)."""
        model = model or self.model()
        manifest = model.manifest
        X = np.ascontiguousarray(X, dtype=np.float32)
        n = X.shape[0]
        horizon = horizon or manifest.horizon
        quantiles = list(quantiles) if quantiles is not None else list(manifest.quantiles)
        q_index = [manifest.quantiles.index(q) for q in quantiles]

        if model.router is not None:
            labels, distances, novel, idle = model.router.route(X)  # type: ignore[attr-defined]
            labels = np.asarray(labels, dtype=np.int64)
            distances = np.asarray(distances, dtype=np.float64)
            novel = np.asarray(novel, dtype=bool) & ~np.asarray(idle, dtype=bool)
            cluster_ids: list[int | None] = labels.tolist()
        else:
            distances = np.full(n, np.nan)
            novel = np.zeros(n, dtype=bool)
            cluster_ids = [NO_CLUSTER] * n

        values = np.empty((n, len(manifest.quantiles), manifest.horizon), dtype=np.float32)
        level = np.zeros(n, dtype=np.int64)     # index in the chain of the runner that answered
        families: list[str] = [""] * n
        degraded = np.full(n, model.router is None or model.older_than_latest)

        # Group rows by the chain that answers them (novel rows all go to dense, whatever their nearest
        # cluster), so each model runs once per request on all of its rows.
        groups: dict[int | None, list[int]] = {}
        for i, (cid, nov) in enumerate(zip(cluster_ids, novel.tolist())):
            groups.setdefault(None if nov else cid, []).append(i)
        for cid, rows in groups.items():
            chain = model.chain(cid, novel=False)
            pending = np.asarray(rows, dtype=np.int64)
            for depth, runner in enumerate(chain):
                if pending.size == 0:
                    break
                if runner is None:
                    continue
                try:
                    out = runner(X[pending], manifest)
                except Exception as err:  # noqa: BLE001 - a failing runner falls through to the next one
                    self._report_failure(model, runner, err)
                    continue
                ok = np.isfinite(out).all(axis=(1, 2))
                if not ok.all():
                    self._report_failure(model, runner, ValueError("non-finite output"))
                done = pending[ok]
                values[done] = out[ok]
                level[done] = depth
                for i in done.tolist():
                    families[i] = runner.family
                pending = pending[~ok]
            if pending.size:  # unreachable unless even rule:naive fails; keep the contract, answer zeros
                values[pending] = 0.0
                level[pending] = len(chain)
                for i in pending.tolist():
                    families[i] = "none"
        degraded |= level > 0
        return Prediction(
            values=values[:, q_index, :horizon], quantiles=quantiles, cluster_ids=cluster_ids,
            cluster_labels=[model.labels.get(c, f"cluster {c}") if c is not None else None for c in cluster_ids],
            distances=distances, novel=novel, degraded=degraded, families=families, version=model.version)

    # ------------------------------------------------------------------------------------------- events
    def _report_failure(self, model: LoadedModel, runner: Runner, err: Exception) -> None:
        key = (model.version, runner.family + (runner.sha256 or ""))
        if key not in self._reported:  # log once per version and runner; metrics still count every time
            self._reported.add(key)
            log.warning("runner %s of version %s failed: %s", runner.family, model.version, _one_line(err))
        self._emit("runner_failed", family=runner.family, version=model.version, error=_one_line(err))

    def _emit(self, event: str, **fields) -> None:
        if self.listener is not None:
            try:
                self.listener(event, fields)
            except Exception:  # noqa: BLE001 - telemetry must never break serving
                log.exception("listener failed on %s", event)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:300]
