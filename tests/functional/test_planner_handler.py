"""PlannerFunction end to end under moto: CloudWatch -> forecast -> plan -> S3 / Application Auto Scaling."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import sys

import boto3
import pytest
from moto import mock_aws

from support.events import EVENTS, ROOT, load_event
from support.stores import build_store, corrupt

BUCKET = "mesp-plans"
RESOURCE = "function:mesp-forecast:live"
DIM = "lambda:function:ProvisionedConcurrency"


def load_planner_app():
    if "planner_app" in sys.modules:
        return sys.modules["planner_app"]
    spec = importlib.util.spec_from_file_location("planner_app", ROOT / "functions" / "planner" / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["planner_app"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def app(tmp_path, monkeypatch):
    built = build_store(str(tmp_path / "store"), context=60, horizon=60, step_seconds=60)
    monkeypatch.setenv("MESP_MODEL_URI", str(tmp_path / "store"))
    monkeypatch.setenv("PLAN_BUCKET", BUCKET)
    monkeypatch.setenv("FORECAST_FUNCTION_NAME", "mesp-forecast")
    monkeypatch.delenv("PLANNER_FUNCTIONS", raising=False)
    module = load_planner_app()
    module.client.cache_clear()
    module.predictor.cache_clear()
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        now = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
        cw = boto3.client("cloudwatch")
        dims = [{"Name": "FunctionName", "Value": "mesp-forecast"}]
        for k in range(1, 61):  # 600 calls a minute of 2 s: 20 in flight
            ts = now - dt.timedelta(minutes=k)
            cw.put_metric_data(Namespace="AWS/Lambda", MetricData=[
                {"MetricName": "Invocations", "Dimensions": dims, "Timestamp": ts, "Value": 600.0},
                {"MetricName": "Duration", "Dimensions": dims, "Timestamp": ts, "Value": 2000.0}])
        module.built = built
        yield module
    module.client.cache_clear()
    module.predictor.cache_clear()


def plans_in_s3() -> list[dict]:
    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    return [json.loads(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()) for k in keys]


def scalable_targets() -> list[dict]:
    return boto3.client("application-autoscaling").describe_scalable_targets(
        ServiceNamespace="lambda")["ScalableTargets"]


def test_event_file_is_the_raw_scheduler_input():
    assert load_event("scheduler_planner.json") == {"action": "plan"}
    assert (EVENTS / "scheduler_planner.json").exists()


def test_dry_run_writes_the_plan_only(app, lambda_context, capsys):
    event = {**load_event("scheduler_planner.json"), "functions": [{"name": "mesp-forecast", "memory_mb": 2048}]}
    out = app.lambda_handler(event, lambda_context)
    assert out["dry_run"] is True and "error" not in out["plans"][0]
    [plan] = plans_in_s3()
    assert plan["resource"] == RESOURCE and plan["dry_run"] and "applied" not in plan
    assert plan["duration_ms"] == pytest.approx(2000.0) and plan["history_invocations"] == pytest.approx(36000)
    assert len(plan["plan"]["values"]) == 4 and plan["plan"]["values"][0] >= 1
    assert scalable_targets() == []
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any("PlannedConcurrency" in blob for blob in emf)


def test_apply_registers_target_and_schedules_within_bounds(app, lambda_context):
    event = {"dry_run": False, "functions": [{"name": "mesp-forecast", "memory_mb": 2048, "floor": 2,
                                              "ceiling": 5}]}
    out = app.lambda_handler(event, lambda_context)
    assert "error" not in out["plans"][0], out
    [target] = scalable_targets()
    assert target["ResourceId"] == RESOURCE and target["ScalableDimension"] == DIM
    assert 2 <= target["MinCapacity"] <= 5 and target["MaxCapacity"] <= 5
    actions = boto3.client("application-autoscaling").describe_scheduled_actions(
        ServiceNamespace="lambda", ResourceId=RESOURCE)["ScheduledActions"]
    assert sorted(a["ScheduledActionName"] for a in actions) == ["mesp-block-1", "mesp-block-2", "mesp-block-3"]
    for a in actions:
        assert a["Schedule"].startswith("at(")
        assert 2 <= a["ScalableTargetAction"]["MinCapacity"] <= 5
    [plan] = plans_in_s3()
    assert plan["applied"] and all(2 <= v <= 5 for v in plan["plan"]["values"])


def test_degraded_forecast_holds_the_floor(app, lambda_context):
    corrupt(app.built.store, "v1", "router.npz")  # the runtime serves leniently and flags every answer
    event = {"dry_run": False, "functions": [{"name": "mesp-forecast", "memory_mb": 2048, "floor": 3,
                                              "ceiling": 50}]}
    out = app.lambda_handler(event, lambda_context)
    assert out["plans"][0]["degraded"] is True and out["plans"][0]["values"] == [3, 3, 3, 3]
    [target] = scalable_targets()
    assert target["MinCapacity"] == 3


def test_one_failing_function_does_not_stop_the_others(app, lambda_context, monkeypatch):
    monkeypatch.setenv("PLANNER_FUNCTIONS", "mesp-forecast:live,ghost:live")
    out = app.lambda_handler({}, lambda_context)  # ghost has no memory_mb and no Lambda function in moto
    by_name = {p["function"]: p for p in out["plans"]}
    assert "error" in by_name["ghost"] and "error" in by_name["mesp-forecast"]  # memory unknown for both
    out = app.lambda_handler({"functions": [{"name": "mesp-forecast", "memory_mb": 512},
                                            {"name": "ghost"}]}, lambda_context)
    by_name = {p["function"]: p for p in out["plans"]}
    assert "error" not in by_name["mesp-forecast"] and "error" in by_name["ghost"]


def test_missing_configuration_fails_clearly(app, lambda_context, monkeypatch):
    monkeypatch.delenv("PLAN_BUCKET")
    with pytest.raises(ValueError, match="PLAN_BUCKET"):
        app.lambda_handler({}, lambda_context)


def test_handler_imports_stay_serving_safe():
    import subprocess

    code = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location('p', 'functions/planner/app.py');"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); import mesp.runtime;"
            "print(sorted(x for x in ('torch', 'tslearn', 'optuna', 'pandas', 'scipy', 'matplotlib', 'sagemaker')"
            " if x in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "POWERTOOLS_TRACE_DISABLED": "1"})
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
