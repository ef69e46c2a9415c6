"""Serving runtime: verified loading, routing to experts, fallbacks, hot swap and refusal."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from mesp.errors import ModelStoreError
from mesp.runtime import Predictor, Runner
from mesp.store import LocalStore, version_key
from support.stores import (
    DENSE_OFFSET,
    build_store,
    corrupt,
    expected_forecast,
    expert_offset,
    onnx_model_bytes,
    sample_series,
)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def built(tmp_path):
    return build_store(LocalStore(tmp_path / "store"))


def events_of(predictor):
    seen = []
    predictor.listener = lambda event, fields: seen.append((event, fields))
    return seen


def test_routes_each_kind_to_its_model(built):
    p = Predictor(built.store, threads=1)
    kinds = ["cluster0", "cluster1", "novel", "idle"]
    X = np.concatenate([sample_series(built, k, n=3, seed=i) for i, k in enumerate(kinds)])
    pred = p.predict(X)
    assert pred.version == "v1" and pred.values.shape == (12, 3, 4)
    by_kind = {k: slice(3 * i, 3 * i + 3) for i, k in enumerate(kinds)}
    assert pred.cluster_ids[by_kind["cluster0"]] == [0, 0, 0]
    assert pred.cluster_ids[by_kind["cluster1"]] == [1, 1, 1]
    assert pred.cluster_ids[by_kind["idle"]] == [-1, -1, -1]
    assert pred.novel.tolist() == [False] * 6 + [True] * 3 + [False] * 3
    assert not pred.degraded.any()
    assert pred.families == ["mlp"] * 6 + ["dense-mlp"] * 3 + ["rule:idle"] * 3
    np.testing.assert_allclose(pred.values[by_kind["cluster0"]],
                               expected_forecast(X[by_kind["cluster0"]], expert_offset(0)), rtol=1e-5)
    np.testing.assert_allclose(pred.values[by_kind["cluster1"]],
                               expected_forecast(X[by_kind["cluster1"]], expert_offset(1)), rtol=1e-5)
    np.testing.assert_allclose(pred.values[by_kind["novel"]],
                               expected_forecast(X[by_kind["novel"]], DENSE_OFFSET), rtol=1e-5)
    assert (pred.values[by_kind["idle"]] == 0).all()
    assert pred.cluster_labels[:1] == ["shape 0"] and pred.cluster_labels[-1] == "idle"


def test_batch_calls_each_expert_once(built, monkeypatch):
    calls = []
    original = Runner.__call__

    def counting(self, X, manifest):
        calls.append((self.family, X.shape[0]))
        return original(self, X, manifest)

    p = Predictor(built.store, threads=1)
    p.model()  # load first: loading smoke-tests each runner once
    monkeypatch.setattr(Runner, "__call__", counting)
    X = np.concatenate([sample_series(built, "cluster0", 40), sample_series(built, "cluster1", 30, seed=1),
                        sample_series(built, "novel", 20), sample_series(built, "idle", 10)])
    rng = np.random.default_rng(0)
    X = X[rng.permutation(len(X))]
    p.predict(X)
    assert sorted(calls) == sorted([("mlp", 40), ("mlp", 30), ("dense-mlp", 20), ("rule:idle", 10)])


def test_horizon_and_quantile_subset(built):
    p = Predictor(built.store, threads=1)
    X = sample_series(built, "cluster0", 2)
    pred = p.predict(X, horizon=2, quantiles=[0.9])
    assert pred.values.shape == (2, 1, 2) and pred.quantiles == [0.9]
    np.testing.assert_allclose(pred.values[:, 0], expected_forecast(X, 100.0)[:, 2, :2], rtol=1e-5)
    np.testing.assert_allclose(pred.forecast, pred.values[:, 0])  # no 0.5 requested: the one level given


def test_hot_swap_reuses_identical_experts(built):
    clock = FakeClock()
    p = Predictor(built.store, ttl_seconds=30, threads=1, clock=clock)
    seen = events_of(p)
    v1 = p.model()
    build_store(built.store, version="v2", reuse_from=built.manifest)
    clock.now = 10
    assert p.model() is v1  # within the TTL nothing is re-read
    clock.now = 31
    v2 = p.model()
    assert v2.version == "v2" and v2 is p.loaded
    assert v2.experts[0].session is v1.experts[0].session  # same sha256 -> same session, no reload
    assert [e for e, _ in seen] == ["model_loaded", "model_loaded"]
    assert p.predict(sample_series(built, "cluster0")).version == "v2"


def test_corrupted_new_version_is_refused_and_current_keeps_serving(built):
    clock = FakeClock()
    p = Predictor(built.store, ttl_seconds=5, threads=1, clock=clock)
    seen = events_of(p)
    p.model()
    build_store(built.store, version="v2")
    corrupt(built.store, "v2", "experts/1.onnx")
    clock.now = 6
    assert p.model().version == "v1"
    assert seen[-1][0] == "version_refused" and "experts/1.onnx fails verification" in seen[-1][1]["reason"]
    clock.now = 12
    assert p.refresh() == "refused"  # remembered: not downloaded and verified again every TTL
    assert [e for e, _ in seen].count("version_refused") == 1
    build_store(built.store, version="v3")  # a good version after the bad one is taken
    clock.now = 18
    assert p.model().version == "v3"


def test_store_outage_keeps_the_warm_version(built, monkeypatch):
    clock = FakeClock()
    p = Predictor(built.store, ttl_seconds=1, threads=1, clock=clock)
    seen = events_of(p)
    p.model()

    def down(*a, **k):
        raise ModelStoreError("cannot read s3://b/LATEST: Throttling")

    monkeypatch.setattr(built.store, "get_bytes", down)
    monkeypatch.setattr(built.store, "exists", lambda key: True)
    clock.now = 5
    assert p.model().version == "v1"
    assert seen[-1][0] == "refresh_failed" and "Throttling" in seen[-1][1]["reason"]


def test_cold_start_with_corrupt_expert_degrades_to_dense(built):
    corrupt(built.store, "v1", "experts/0.onnx")
    p = Predictor(built.store, threads=1)
    model = p.model()
    assert model.degraded and model.experts[0] is None and "cluster 0 expert" in model.problems[0]
    X = np.concatenate([sample_series(built, "cluster0", 2), sample_series(built, "cluster1", 2)])
    pred = p.predict(X)
    assert pred.families == ["dense-mlp", "dense-mlp", "mlp", "mlp"]
    assert pred.degraded.tolist() == [True, True, False, False]
    assert pred.cluster_ids == [0, 0, 1, 1] and not pred.novel.any()
    np.testing.assert_allclose(pred.values[:2], expected_forecast(X[:2], DENSE_OFFSET), rtol=1e-5)


def test_missing_dense_and_expert_fall_back_to_rules(built):
    built.store.delete(version_key("v1", "dense.onnx"))
    corrupt(built.store, "v1", "experts/1.onnx")
    p = Predictor(built.store, threads=1)
    X = np.concatenate([sample_series(built, "cluster1", 2), sample_series(built, "novel", 2)])
    pred = p.predict(X)
    assert pred.families == ["rule:seasonal_naive"] * 4
    assert pred.degraded.all() and pred.novel.tolist() == [False, False, True, True]
    # seasonal naive with a one-day context: tomorrow's first steps are today's first steps
    np.testing.assert_allclose(pred.forecast, X[:, :4])


def test_damaged_router_sends_everything_to_dense(built):
    corrupt(built.store, "v1", "router.npz")
    p = Predictor(built.store, threads=1)
    pred = p.predict(sample_series(built, "cluster0", 3))
    assert pred.cluster_ids == [None] * 3 and pred.families == ["dense-mlp"] * 3 and pred.degraded.all()


def test_router_npz_with_pickles_is_refused(built):
    buf = io.BytesIO()
    np.savez(buf, centroids=np.array([{"evil": 1}, None], dtype=object))
    data = buf.getvalue()
    built.store.put_bytes(version_key("v1", "router.npz"), data)
    doc = json.loads(built.manifest.model_dump_json())
    import hashlib

    doc["router"]["sha256"] = hashlib.sha256(data).hexdigest()  # verified bytes, but pickled content
    built.store.put_bytes(version_key("v1", "manifest.json"), json.dumps(doc).encode())
    model = Predictor(built.store, threads=1).model()
    assert model.router is None and "allow_pickle" in model.problems[0]


def test_graph_with_wrong_shape_is_caught_at_load(built):
    data = onnx_model_bytes(horizon=5)  # manifest says horizon 4
    built.store.put_bytes(version_key("v1", "experts/0.onnx"), data)
    doc = json.loads(built.manifest.model_dump_json())
    import hashlib

    doc["clusters"][0]["expert"]["sha256"] = hashlib.sha256(data).hexdigest()
    built.store.put_bytes(version_key("v1", "manifest.json"), json.dumps(doc).encode())
    model = Predictor(built.store, threads=1).model()
    assert model.experts[0] is None and "expected (1, 3, 4)" in model.problems[0]


def test_runtime_failure_of_an_expert_falls_through(built, monkeypatch):
    p = Predictor(built.store, threads=1)
    model = p.model()
    seen = events_of(p)

    class Broken:
        def run(self, *a, **k):
            raise RuntimeError("onnxruntime exploded")

    model.experts[0].session = Broken()
    pred = p.predict(sample_series(built, "cluster0", 2))
    assert pred.families == ["dense-mlp"] * 2 and pred.degraded.all()
    assert seen[0][0] == "runner_failed" and "exploded" in seen[0][1]["error"]


def test_latest_pointing_at_missing_version_serves_an_older_one(built):
    built.store.put_bytes("LATEST", json.dumps({"version": "v9"}).encode())
    model = Predictor(built.store, threads=1).model()
    assert model.version == "v1" and model.degraded and "serving older version v1" in model.problems[0]


def test_empty_store_raises(tmp_path):
    with pytest.raises(ModelStoreError, match="no usable model version"):
        Predictor(LocalStore(tmp_path), threads=1).model()


def test_loads_from_s3():
    from moto import mock_aws

    with mock_aws():
        import boto3

        boto3.client("s3").create_bucket(Bucket="models")
        built = build_store("s3://models/mesp")
        p = Predictor("s3://models/mesp", threads=1)
        pred = p.predict(sample_series(built, "cluster1", 2))
        assert pred.families == ["mlp", "mlp"] and pred.version == "v1"


def test_thread_count_follows_lambda_memory(monkeypatch):
    from mesp.runtime import default_threads

    monkeypatch.delenv("MESP_ORT_THREADS", raising=False)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "2048")
    assert default_threads() == 1
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "10240")
    assert default_threads() == 5
    monkeypatch.setenv("MESP_ORT_THREADS", "2")
    assert default_threads() == 2


HEAVY = ["torch", "tslearn", "optuna", "pandas", "sagemaker", "scipy", "matplotlib", "sklearn", "numba"]

SERVING_PROBE = r"""
import importlib.util, json, os, sys
os.environ.update(POWERTOOLS_SERVICE_NAME="probe", POWERTOOLS_METRICS_NAMESPACE="Probe",
                  POWERTOOLS_TRACE_DISABLED="1", MESP_MODEL_URI=sys.argv[2])
sys.path.insert(0, sys.argv[3])
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
app = importlib.util.module_from_spec(spec); spec.loader.exec_module(app)
import mesp.runtime, mesp.store, mesp.schemas, mesp.router, mesp.sbd, mesp.rules, mesp.manifest, mesp.serve
from support.events import http_event
from support.stores import CONTEXT
class Ctx:
    function_name = "probe"; memory_limit_in_mb = 128; aws_request_id = "r"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:probe"
for body in ({"series": [float(i % 7) for i in range(CONTEXT)]}, {"items": [{"id": "a", "series": [0.0] * CONTEXT}]}):
    assert app.lambda_handler(http_event("POST", "/forecast", body), Ctx())["statusCode"] == 200
sys.stdout.flush()
print("MODULES=" + json.dumps(sorted(m.split(".")[0] for m in sys.modules)))
"""


def test_serving_path_imports_no_training_stack(built, tmp_path):
    """Handler + runtime + store + schemas, through real forecasts, never import the heavy stack."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", SERVING_PROBE, str(root / "functions/forecast/app.py"),
                          built.store.uri, str(root / "tests")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("MODULES="))
    loaded = set(json.loads(line[len("MODULES="):]))
    assert "onnxruntime" in loaded and "numpy" in loaded  # the probe really ran a forecast
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
