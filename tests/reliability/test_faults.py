"""Faults: an S3 model store that throttles, times out or denies; damaged artifacts; a broken LATEST.

The store is moto S3 behind the *real* S3 client ``mesp.store.S3Store`` builds (its retry and timeout
configuration included). Faults are injected at botocore's ``before-send`` event, i.e. after signing and
before the wire, so botocore's retry logic sees them exactly as it would see a real 503 SlowDown, a 403
AccessDenied or a socket timeout (backoff sleeps are set to zero to keep the run short).

Properties (see docs/RELIABILITY.md):

* cold start degrades along the documented chain (expert -> dense -> seasonal/naive rules; LATEST
  unusable -> newest readable older version) and every answer it gives that way says ``degraded: true``;
  with no readable version at all it answers 503, and it recovers without a restart when the store does;
* a warm container keeps serving its last good version through any store fault;
* a load that failed only because the store was unavailable is retried later (a container is not left
  degraded, nor a new version refused, by a transient blip); damaged artifacts are not re-fetched;
* every failure is logged once, with its context, and counted as an EMF metric;
* retries are bounded (a Lambda must fail over within its timeout);
* the planner never sets provisioned concurrency from a degraded forecast except through its
  hold/floor/ceiling rules, and a CloudWatch fault changes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import sys
import urllib.parse
from collections import Counter

import boto3
import botocore.retries.standard
import numpy as np
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from harness import ROOT, emf_metrics, invoke
from mesp.planner import PlannerConfig, plan_concurrency
from mesp.runtime import Predictor
from mesp.store import LATEST_KEY, version_key
from support.events import http_event
from support.stores import build_store, corrupt, onnx_model_bytes, sample_series

BUCKET, PREFIX = "mesp-models", "prod"
URI = f"s3://{BUCKET}/{PREFIX}"
KINDS = ["throttle", "read-timeout", "connect-timeout", "denied"]
MAX_ATTEMPTS = 4  # S3Store: botocore retries={"max_attempts": 3} means 1 try + 3 retries
# what the log must name: HEAD errors carry only the status, GET errors S3's code
SIGNATURE = {"throttle": ("503", "SlowDown"), "read-timeout": ("ReadTimeoutError",),
             "connect-timeout": ("ConnectTimeoutError",), "denied": ("403", "AccessDenied")}


def names(kind: str, text: str) -> bool:
    return any(sig in text for sig in SIGNATURE[kind])


class _Raw:
    def __init__(self, data: bytes):
        self.data = data

    def stream(self, *args, **kwargs):
        yield self.data


ERROR_XML = ('<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{msg}</Message>'
             "<RequestId>FAULT</RequestId></Error>")


class Faults:
    """Injects failures into one botocore client's S3 calls; counts every call it sees."""

    def __init__(self, client):
        self.rules: list[tuple[str, str, str]] = []
        self.calls: Counter = Counter()   # (operation, key) -> attempts
        self.injected = 0
        client.meta.events.register_first("before-send.s3", self._hook)

    def add(self, kind: str, key: str = "", op: str = "*") -> Faults:
        self.rules.append((op, key, kind))
        return self

    def clear(self) -> None:
        self.rules.clear()

    def _hook(self, request, event_name: str, **kwargs):
        op = event_name.rsplit(".", 1)[-1]
        url = urllib.parse.unquote(request.url.split("?")[0])
        key = url.split(f"/{BUCKET}/", 1)[-1] if f"/{BUCKET}/" in url else url.split(".com/", 1)[-1]
        self.calls[(op, key)] += 1
        for rule_op, rule_key, kind in self.rules:
            if rule_op in ("*", op) and rule_key in key:
                self.injected += 1
                return self._fail(kind, request)
        return None

    @staticmethod
    def _fail(kind: str, request):
        if kind == "read-timeout":
            raise ReadTimeoutError(endpoint_url=request.url)
        if kind == "connect-timeout":
            raise ConnectTimeoutError(endpoint_url=request.url)
        status, code, msg = {"throttle": (503, "SlowDown", "Please reduce your request rate."),
                             "denied": (403, "AccessDenied", "Access Denied")}[kind]
        body = b"" if request.method == "HEAD" else ERROR_XML.format(code=code, msg=msg).encode()
        return AWSResponse(request.url, status, {"x-amz-request-id": "FAULT"}, _Raw(body))


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0.0)


@pytest.fixture
def s3():
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield


@pytest.fixture
def serving(s3, clean_api):
    """A v1 store on moto S3, a handler predictor with a fake clock (TTL 10 s), and its fault injector."""
    built = build_store(URI)
    clock = Clock()
    predictor = Predictor(URI, ttl_seconds=10, threads=1, clock=clock)
    clean_api.set_predictor(predictor)
    faults = Faults(predictor.store.client)
    return built, predictor, clock, faults


def forecast(built, kind: str, seed: int = 0) -> dict:
    return http_event("POST", "/forecast", {"series": sample_series(built, kind, seed=seed)[0].tolist()})


def problems_with(logs, needle: str) -> list[dict]:
    return [line for line in logs.problems() if needle in json.dumps(line)]


# ------------------------------------------------------------------------------------ store faults
@pytest.mark.parametrize("kind", KINDS)
def test_cold_start_with_the_store_down_is_503_then_recovers(serving, kind, logs, capsys):
    built, predictor, clock, faults = serving
    faults.add(kind)
    for i in range(3):
        event = forecast(built, "cluster0", seed=i)
        status, body, _ = invoke(event)
        assert status == 503 and body["errors"][0]["field"] == "model"
    # bounded retries: throttling and timeouts are retried up to max_attempts, AccessDenied is not retried
    per_call = max(faults.calls.values())
    assert per_call == (1 if kind == "denied" else MAX_ATTEMPTS) * 3, faults.calls
    # one log line per failed request, naming the fault, carrying the request's correlation id
    lines = logs.problems()
    assert len(lines) == 3, [line["message"] for line in lines]
    assert names(kind, json.dumps(lines[-1])) and lines[-1]["correlation_id"] == \
        event["requestContext"]["requestId"]
    metrics = emf_metrics(capsys.readouterr().out)
    assert metrics["Unavailable"] == 3 and metrics["Requests"] == 3
    assert invoke(http_event("GET", "/health"))[0] == 503

    faults.clear()  # the store comes back: no restart needed
    status, body, _ = invoke(forecast(built, "cluster0"))
    assert status == 200 and body["degraded"] is False and body["expert"]["family"] == "mlp"


@pytest.mark.parametrize("kind", KINDS)
def test_cold_start_with_one_expert_unreadable_degrades_to_dense_then_heals(serving, kind, logs, capsys):
    built, predictor, clock, faults = serving
    faults.add(kind, key="experts/0.onnx")
    answers = [invoke(forecast(built, "cluster0", seed=i))[1] for i in range(4)]
    assert all(a["degraded"] is True and a["expert"]["family"] == "dense-mlp" and a["cluster"]["id"] == 0
               for a in answers)
    other = invoke(forecast(built, "cluster1"))[1]
    assert other["degraded"] is False and other["expert"]["family"] == "mlp"
    health = invoke(http_event("GET", "/health"))[1]
    assert health["status"] == "degraded" and "experts/0.onnx" in health["detail"]
    # logged once (at load), with the version and the reason; counted per degraded answer
    lines = logs.problems()
    assert len(lines) == 1 and lines[0]["version"] == "v1" and names(kind, json.dumps(lines[0]))
    metrics = emf_metrics(capsys.readouterr().out)
    assert metrics["ModelLoads"] == 1 and metrics["Degraded"] == 4

    faults.clear()  # a transient fault must not leave the container degraded for its whole life
    clock.now += 11
    healed = invoke(forecast(built, "cluster0"))[1]
    assert healed["degraded"] is False and healed["expert"]["family"] == "mlp"
    assert invoke(http_event("GET", "/health"))[1]["status"] == "ok"


@pytest.mark.parametrize("kind", KINDS)
def test_warm_container_keeps_serving_through_store_faults(serving, kind, logs, capsys):
    built, predictor, clock, faults = serving
    assert invoke(forecast(built, "cluster1"))[1]["model_version"] == "v1"
    faults.add(kind)
    for i in range(6):
        clock.now += 11  # every request re-checks LATEST and fails
        status, body, _ = invoke(forecast(built, "cluster1", seed=i))
        assert status == 200 and body["model_version"] == "v1" and body["degraded"] is False
    metrics = emf_metrics(capsys.readouterr().out)
    assert metrics["RefreshFailures"] == 6
    lines = logs.problems()  # the outage is logged once, not once per check
    assert len(lines) == 1 and names(kind, lines[0]["reason"]) and lines[0]["version"] == "v1"


@pytest.mark.parametrize("kind", ["throttle", "read-timeout"])
def test_new_version_unreadable_for_a_while_is_taken_once_readable(serving, kind, logs):
    built, predictor, clock, faults = serving
    invoke(forecast(built, "cluster0"))
    build_store(URI, version="v2", reuse_from=built.manifest)
    faults.add(kind, key="v2/dense.onnx")
    clock.now += 11
    body = invoke(forecast(built, "cluster0"))[1]
    assert body["model_version"] == "v1" and body["degraded"] is False
    faults.clear()
    clock.now += 11
    assert invoke(forecast(built, "cluster0"))[1]["model_version"] == "v2"


def test_damaged_new_version_is_refused_and_not_fetched_again(serving):
    built, predictor, clock, faults = serving
    invoke(forecast(built, "cluster0"))
    build_store(URI, version="v2")
    corrupt(built.store, "v2", "experts/1.onnx")
    for _ in range(4):
        clock.now += 11
        assert invoke(forecast(built, "cluster0"))[1]["model_version"] == "v1"
    assert faults.calls[("GetObject", f"{PREFIX}/versions/v2/experts/1.onnx")] == 1


# --------------------------------------------------------------------------------- artifact faults
def republish(store, version: str, file: str, data: bytes) -> None:
    """Replace a file *and* its manifest sha256: the bytes verify but are not a usable model."""
    store.put_bytes(version_key(version, file), data)
    doc = json.loads(store.get_bytes(version_key(version, "manifest.json")))
    for cluster in doc["clusters"]:
        if cluster["expert"].get("file") == file:
            cluster["expert"]["sha256"] = hashlib.sha256(data).hexdigest()
    store.put_bytes(version_key(version, "manifest.json"), json.dumps(doc).encode())


GOOD = onnx_model_bytes()


def truncated_onnx(store):
    republish(store, "v1", "experts/0.onnx", GOOD[: len(GOOD) // 2])


def garbage_onnx(store):
    republish(store, "v1", "experts/0.onnx", bytes(range(256)) * 8)


def sha_mismatch(store):
    corrupt(store, "v1", "experts/0.onnx")


def expert_missing(store):
    store.delete(version_key("v1", "experts/0.onnx"))


def latest_missing_version(store):
    store.put_bytes(LATEST_KEY, json.dumps({"version": "v9"}).encode())


def latest_malformed(store):
    store.put_bytes(LATEST_KEY, b'{"version": ')


def manifest_broken(store):
    build_store(store, version="v2")
    store.put_bytes(version_key("v2", "manifest.json"), b'{"schema_version": 1, "version": "v2"}')


# (damage, what answers a cluster-0 series, is that answer degraded, a phrase the problem log must carry)
ARTIFACT_FAULTS = [
    (truncated_onnx, "dense-mlp", "not a loadable ONNX model"),
    (garbage_onnx, "dense-mlp", "not a loadable ONNX model"),
    (sha_mismatch, "dense-mlp", "fails verification"),
    (expert_missing, "dense-mlp", "does not exist"),
    (latest_missing_version, "mlp", "v9"),
    (latest_malformed, "mlp", "LATEST"),
    (manifest_broken, "mlp", "not a valid manifest"),
]


@pytest.mark.parametrize("damage, family, phrase", ARTIFACT_FAULTS, ids=[f[0].__name__ for f in ARTIFACT_FAULTS])
def test_cold_start_on_damaged_artifacts_degrades_and_says_so(serving, logs, capsys, damage, family, phrase):
    built, predictor, clock, faults = serving
    damage(built.store)
    answers = [invoke(forecast(built, "cluster0", seed=i)) for i in range(3)]
    assert all(status == 200 for status, _, _ in answers)
    for _, body, _ in answers:
        assert body["degraded"] is True and body["expert"]["family"] == family and body["model_version"] == "v1"
    health = invoke(http_event("GET", "/health"))[1]
    assert health["status"] == "degraded" and phrase in health["detail"]
    lines = logs.problems()
    assert len(lines) == 1 and phrase in json.dumps(lines[0]), [line["message"] for line in lines]
    metrics = emf_metrics(capsys.readouterr().out)
    assert metrics["Degraded"] == 3 and metrics["ModelLoads"] == 1
    # a damaged immutable version is not downloaded again at every TTL
    before = sum(faults.calls.values())
    for _ in range(3):
        clock.now += 11
        invoke(forecast(built, "cluster0"))
    assert sum(faults.calls.values()) - before <= 3 * 2  # HEAD + GET LATEST per check, nothing more


# ------------------------------------------------------------------------------------------ planner
def load_planner_app():
    if "planner_app" not in sys.modules:
        spec = importlib.util.spec_from_file_location("planner_app", ROOT / "functions" / "planner" / "app.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["planner_app"] = module
        spec.loader.exec_module(module)
    return sys.modules["planner_app"]


RESOURCE = "function:mesp-forecast:live"
DIMENSION = "lambda:function:ProvisionedConcurrency"


@pytest.fixture
def planner(tmp_path, monkeypatch, lambda_context):
    store = str(tmp_path / "store")
    built = build_store(store, context=60, horizon=60, step_seconds=60)
    monkeypatch.setenv("MESP_MODEL_URI", store)
    monkeypatch.setenv("PLAN_BUCKET", "mesp-plans")
    monkeypatch.setenv("FORECAST_FUNCTION_NAME", "mesp-forecast")
    module = load_planner_app()
    module.client.cache_clear()
    module.predictor.cache_clear()
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="mesp-plans")
        now = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
        dims = [{"Name": "FunctionName", "Value": "mesp-forecast"}]
        rng = np.random.default_rng(0)
        data = []
        for k in range(1, 61):  # a busy, shaped minute series: 300-900 calls of 2 s each
            ts = now - dt.timedelta(minutes=k)
            data += [{"MetricName": "Invocations", "Dimensions": dims, "Timestamp": ts,
                      "Value": float(600 + 300 * np.sin(k / 9) + rng.integers(0, 20))},
                     {"MetricName": "Duration", "Dimensions": dims, "Timestamp": ts, "Value": 2000.0}]
        boto3.client("cloudwatch").put_metric_data(Namespace="AWS/Lambda", MetricData=data)

        def run(previous: int | None, floor: int = 3, ceiling: int = 5) -> dict:
            aas = boto3.client("application-autoscaling")
            if previous is not None:
                aas.register_scalable_target(ServiceNamespace="lambda", ResourceId=RESOURCE,
                                             ScalableDimension=DIMENSION, MinCapacity=previous, MaxCapacity=previous)
            event = {"dry_run": False, "functions": [{"name": "mesp-forecast", "memory_mb": 2048, "floor": floor,
                                                      "ceiling": ceiling}]}
            out = module.lambda_handler(event, lambda_context)
            targets = aas.describe_scalable_targets(ServiceNamespace="lambda")["ScalableTargets"]
            actions = aas.describe_scheduled_actions(ServiceNamespace="lambda")["ScheduledActions"]
            return {"plan": out["plans"][0], "targets": targets, "actions": actions}

        yield built, module, run
    module.client.cache_clear()
    module.predictor.cache_clear()


PLANNER_FAULTS = [("router corrupt", lambda s: corrupt(s, "v1", "router.npz")),
                  ("dense and router missing", lambda s: (s.delete(version_key("v1", "dense.onnx")),
                                                          corrupt(s, "v1", "router.npz"))),
                  ("LATEST names a missing version", latest_missing_version)]


@pytest.mark.parametrize("name, damage", PLANNER_FAULTS, ids=[f[0] for f in PLANNER_FAULTS])
@pytest.mark.parametrize("previous, expected", [(7, 5), (4, 4), (1, 3), (None, 3)])
def test_planner_degraded_forecast_only_holds_within_floor_and_ceiling(planner, name, damage, previous, expected):
    built, module, run = planner
    damage(built.store)
    result = run(previous)
    plan = result["plan"]
    assert "error" not in plan, plan
    assert plan["degraded"] is True and plan["values"] == [expected] * 4
    [target] = result["targets"]
    assert target["MinCapacity"] == expected and target["MaxCapacity"] <= 5
    assert all(a["ScalableTargetAction"]["MinCapacity"] == expected for a in result["actions"])


def test_planner_healthy_forecast_is_used_within_bounds(planner):
    built, module, run = planner
    result = run(previous=None, floor=1, ceiling=500)
    assert result["plan"]["degraded"] is False and max(result["plan"]["values"]) > 3  # the forecast is used


def test_planner_cloudwatch_fault_changes_nothing(planner, capsys):
    built, module, run = planner
    cw = module.client("cloudwatch")
    cw.meta.events.register_first("before-send.cloudwatch.GetMetricData",
                                  lambda request, **kw: AWSResponse(request.url, 400, {}, _Raw(
                                      b'{"__type": "ThrottlingException", "message": "Rate exceeded"}')))
    result = run(previous=7)
    assert "error" in result["plan"] and "Throttling" in result["plan"]["error"]
    [target] = result["targets"]
    assert target["MinCapacity"] == 7 and result["actions"] == []   # untouched
    assert emf_metrics(capsys.readouterr().out)["PlanFailed"] == 1


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # inf forecasts, ignored anyway
@settings(max_examples=150, deadline=None, database=None)
@given(forecast=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=12, max_size=12),
       previous=st.one_of(st.none(), st.integers(0, 500)), floor=st.integers(0, 20), span=st.integers(0, 50),
       action=st.sampled_from(["hold", "floor"]), cap=st.one_of(st.none(), st.floats(0, 5)))
def test_degraded_plans_never_depend_on_the_forecast(forecast, previous, floor, span, action, cap):
    config = PlannerConfig(floor=floor, ceiling=floor + span, block_minutes=2, degraded_action=action,
                           cost_cap_usd_per_hour=cap)
    q = np.asarray(forecast, dtype=np.float64).reshape(3, 4)
    plan = plan_concurrency(q, [0.1, 0.5, 0.9], duration_s=1.5, memory_mb=1024, step_seconds=60, config=config,
                            previous=previous, degraded=True)
    base = previous if (action == "hold" and previous is not None) else floor
    limit = config.ceiling if cap is None else min(config.ceiling, config.cost_cap_units(1024))
    assert plan.degraded and plan.values == [max(min(base, limit), floor)] * 2
