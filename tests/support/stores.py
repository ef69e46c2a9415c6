"""Build small but real model stores for tests: tiny ONNX graphs, router.npz and a valid manifest.

Every ONNX model here follows the serving contract of :mod:`mesp.manifest` (input ``context`` float32
``(B, context)`` -> output ``quantiles`` float32 ``(B, Q, horizon)``) and answers
``relu(mean(last `horizon` inputs) * multiplier[q] + offset)``: each expert gets its own ``offset`` so a
test can tell from the numbers which model answered (see :func:`expected_forecast`).

Typical use::

    store = LocalStore(tmp_path)                 # or S3Store("bucket", "models") under moto
    manifest = build_store(store, version="v1")  # publishes v1 and flips LATEST
    X, kinds = routed_inputs(manifest, store)    # series that route to cluster 0, 1, novel, idle
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass

import numpy as np

from mesp.manifest import ClusterInfo, ExpertInfo, Manifest, RouterInfo
from mesp.store import LATEST_KEY, ModelStore, open_store, version_key

CONTEXT = 48          # one day at 30-minute steps keeps everything tiny
HORIZON = 4
STEP_SECONDS = 1800
QUANTILES = (0.1, 0.5, 0.9)
MULTIPLIERS = {0.1: 0.8, 0.5: 1.0, 0.9: 1.25}
DENSE_OFFSET = 1000.0


def expert_offset(cluster_id: int) -> float:
    """The constant each cluster's expert adds, so answers identify their expert."""
    return 100.0 * (cluster_id + 1)


def onnx_model_bytes(context: int = CONTEXT, horizon: int = HORIZON, quantiles=QUANTILES,
                     offset: float = 0.0) -> bytes:
    """A valid expert graph (opset 17, IR 8: what onnxruntime 1.31 accepts)."""
    from onnx import TensorProto, helper

    q = len(quantiles)
    mult = np.array([MULTIPLIERS.get(x, 1.0) for x in quantiles], dtype=np.float32)
    scale = np.repeat(mult[None, :, None], horizon, axis=2).astype(np.float32)  # (1, Q, H)
    inits = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [-horizon]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [np.iinfo(np.int64).max]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        helper.make_tensor("unsq", TensorProto.INT64, [1], [2]),
        helper.make_tensor("scale", TensorProto.FLOAT, list(scale.shape), scale.ravel().tolist()),
        helper.make_tensor("offset", TensorProto.FLOAT, [], [float(offset)]),
    ]
    nodes = [
        helper.make_node("Slice", ["context", "starts", "ends", "axes"], ["tail"]),
        helper.make_node("ReduceMean", ["tail"], ["level"], axes=[1], keepdims=1),   # (B, 1)
        helper.make_node("Unsqueeze", ["level", "unsq"], ["level3"]),                 # (B, 1, 1)
        helper.make_node("Mul", ["level3", "scale"], ["scaled"]),                     # (B, Q, H)
        helper.make_node("Add", ["scaled", "offset"], ["shifted"]),
        helper.make_node("Relu", ["shifted"], ["quantiles"]),
    ]
    graph = helper.make_graph(
        nodes, "mesp_test_expert",
        [helper.make_tensor_value_info("context", TensorProto.FLOAT, ["batch", context])],
        [helper.make_tensor_value_info("quantiles", TensorProto.FLOAT, ["batch", q, horizon])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="mesp-tests")
    model.ir_version = 8
    return model.SerializeToString()


def expected_forecast(X: np.ndarray, offset: float, horizon: int = HORIZON, quantiles=QUANTILES) -> np.ndarray:
    """What :func:`onnx_model_bytes` returns for ``X`` (B, context): (B, Q, horizon)."""
    level = X[:, -horizon:].astype(np.float64).mean(axis=1)
    mult = np.array([MULTIPLIERS.get(x, 1.0) for x in quantiles])
    out = level[:, None, None] * mult[None, :, None] + offset
    return np.maximum(np.repeat(out, horizon, axis=2), 0.0)


def centroid_shapes(k: int = 2, context: int = CONTEXT) -> np.ndarray:
    """k z-normalised, clearly different daily shapes: (k, context) float32."""
    t = np.arange(context) / context
    shapes = []
    for j in range(k):
        if j % 2 == 0:  # a single daytime bump, shifted per cluster
            s = np.exp(-0.5 * ((t - 0.3 - 0.25 * (j // 2)) / 0.06) ** 2)
        else:           # a narrow spike train (timer-like)
            s = np.zeros(context)
            s[(j // 2) % 4::max(4, context // 6)] = 1.0
        s = (s - s.mean()) / s.std()
        shapes.append(s)
    return np.asarray(shapes, dtype=np.float32)


def router_npz_bytes(centroids: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, centroids=np.asarray(centroids, dtype=np.float32))
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class BuiltStore:
    store: ModelStore
    manifest: Manifest
    centroids: np.ndarray


def build_store(store: ModelStore | str, *, version: str = "v1", k: int = 2, context: int = CONTEXT,
                horizon: int = HORIZON, quantiles=QUANTILES, step_seconds: int = STEP_SECONDS,
                novelty_threshold: float = 0.5, idle: bool = True, dense: bool = True,
                publish: bool = True, reuse_from: Manifest | None = None,
                created: str = "2026-11-22T00:00:00Z") -> BuiltStore:
    """Write one complete version (ONNX experts, dense, router, manifest) and flip LATEST.

    ``reuse_from`` reuses that version's expert files byte for byte (same sha256), as publishing
    "cluster K+1" does. ``dense=False`` leaves the dense model out (the fallback tests).
    """
    store = open_store(store)
    centroids = centroid_shapes(k, context)

    def put(file: str, data: bytes) -> str:
        store.put_bytes(version_key(version, file), data)
        return _sha(data)

    router_sha = put("router.npz", router_npz_bytes(centroids))
    clusters = []
    for cid in range(k):
        file = f"experts/{cid}.onnx"
        data = onnx_model_bytes(context, horizon, quantiles, offset=expert_offset(cid))
        if reuse_from is not None:
            old = next((c for c in reuse_from.clusters if c.id == cid and c.expert.file), None)
            if old is not None:
                data = store.get_bytes(version_key(reuse_from.version, old.expert.file))
        clusters.append(ClusterInfo(id=cid, label=f"shape {cid}", size=10 + cid, expert=ExpertInfo(
            family="mlp", params={"offset": expert_offset(cid)}, file=file, sha256=put(file, data),
            val_metrics={"mase": 0.5})))
    if idle:
        clusters.append(ClusterInfo(id=-1, label="idle", size=5, expert=ExpertInfo(family="rule:idle")))
    if dense:
        dense_info = ExpertInfo(family="dense-mlp", file="dense.onnx",
                                sha256=put("dense.onnx", onnx_model_bytes(context, horizon, quantiles,
                                                                          offset=DENSE_OFFSET)))
    else:
        dense_info = ExpertInfo(family="rule:seasonal_naive")
    manifest = Manifest(
        version=version, created=created, step_seconds=step_seconds, context=context, horizon=horizon,
        quantiles=list(quantiles), scaling="none (test graphs)",
        router=RouterInfo(file="router.npz", sha256=router_sha, novelty_threshold=novelty_threshold),
        clusters=clusters, dense=dense_info, fallback="rule:seasonal_naive",
        training={"source": "tests/support/stores.py"})
    store.put_bytes(version_key(version, "manifest.json"), manifest.model_dump_json(indent=2).encode())
    if publish:
        store.put_bytes(LATEST_KEY, json.dumps({"version": version}).encode())
    return BuiltStore(store, manifest, centroids)


def corrupt(store: ModelStore, version: str, file: str) -> None:
    """Flip bytes in a stored file so its sha256 no longer matches the manifest."""
    key = version_key(version, file)
    data = bytearray(store.get_bytes(key))
    data[len(data) // 2] ^= 0xFF
    store.put_bytes(key, bytes(data))


def sample_series(built: BuiltStore, kind: str, n: int = 1, seed: int = 0) -> np.ndarray:
    """Inputs (n, context) for ``kind`` in {"cluster0", "cluster1", ..., "novel", "idle"}."""
    rng = np.random.default_rng(seed)
    context = built.manifest.context
    if kind == "idle":
        return np.zeros((n, context), dtype=np.float32)
    if kind == "novel":  # white noise around a level: far (in SBD) from every smooth centroid
        return (50 + 20 * rng.standard_normal((n, context))).clip(0).round().astype(np.float32)
    if kind.startswith("cluster"):
        shape = built.centroids[int(kind[len("cluster"):])]
        level = rng.uniform(20, 200, size=(n, 1))
        noisy = level * (1.5 + shape[None, :] * 0.5) + rng.normal(0, 0.5, size=(n, context))
        return noisy.clip(0).round().astype(np.float32)
    raise ValueError(kind)
