"""ForecastFunction end to end in-process: events/*.json -> lambda_handler -> response, logs and EMF."""

from __future__ import annotations

import io
import json
import logging

import numpy as np
import pytest
from aws_lambda_powertools.metrics.provider import cold_start
from moto import mock_aws

from mesp.runtime import Predictor
from support.events import http_event, load_event, load_forecast_app
from support.stores import build_store, corrupt, sample_series

app = load_forecast_app()


@pytest.fixture(autouse=True)
def clean_metrics():
    app.metrics.clear_metrics()
    app.metrics.clear_default_dimensions()
    cold_start.is_cold_start = True
    yield
    app.set_predictor(None)
    app.metrics.clear_metrics()


@pytest.fixture(params=["local", "s3"])
def built(request, tmp_path):
    if request.param == "local":
        b = build_store(str(tmp_path / "store"))
        app.set_predictor(Predictor(b.store, ttl_seconds=0, threads=1))
        yield b
        return
    with mock_aws():
        import boto3

        boto3.client("s3").create_bucket(Bucket="mesp-models")
        b = build_store("s3://mesp-models/prod")
        app.set_predictor(Predictor("s3://mesp-models/prod", ttl_seconds=0, threads=1))
        yield b


def call(event, ctx):
    response = app.lambda_handler(event, ctx)
    return response["statusCode"], json.loads(response["body"])


def emf_blobs(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"_aws"' in line]


def metric_names(blobs: list[dict]) -> set[str]:
    return {m["Name"] for b in blobs for d in b["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}


def test_single_forecast_event(built, lambda_context, capsys):
    status, body = call(load_event("forecast_single.json"), lambda_context)
    assert status == 200
    assert set(body) == {"forecast", "quantiles", "cluster", "expert", "model_version", "novel", "degraded"}
    assert len(body["forecast"]) == 4 and set(body["quantiles"]) == {"0.5", "0.9"}
    assert body["forecast"] == body["quantiles"]["0.5"]
    assert all(hi >= lo for lo, hi in zip(body["quantiles"]["0.5"], body["quantiles"]["0.9"]))
    assert body["model_version"] == "v1" and body["degraded"] is False
    blobs = emf_blobs(capsys.readouterr().out)
    names = metric_names(blobs)
    assert {"Requests", "Forecasts", "Latency", "Novel", "Degraded", "ColdStart"} <= names
    assert any(n.startswith("RoutedCluster") for n in names)


def test_batch_event_routes_each_item(built, lambda_context):
    status, body = call(load_event("forecast_batch.json"), lambda_context)
    assert status == 200 and body["count"] == 4 and body["model_version"] == "v1"
    items = {item["id"]: item for item in body["items"]}
    assert list(items) == ["orders-api", "nightly-timer", "dormant", "bursty-queue"]
    assert items["dormant"]["cluster"] == {"id": -1, "label": "idle", "distance": None}
    assert items["dormant"]["expert"]["family"] == "rule:idle" and items["dormant"]["forecast"] == [0.0] * 4
    assert all(len(i["forecast"]) == 4 and set(i["quantiles"]) == {"0.1", "0.5", "0.9"} for i in items.values())


def test_idle_and_novel_events(built, lambda_context):
    status, idle = call(load_event("forecast_idle.json"), lambda_context)
    assert status == 200 and idle["cluster"]["id"] == -1 and idle["expert"]["family"] == "rule:idle"
    status, novel = call(load_event("forecast_novel.json"), lambda_context)
    assert status == 200 and novel["novel"] is True and novel["expert"]["family"] == "dense-mlp"
    assert novel["cluster"]["distance"] > built.manifest.router.novelty_threshold


def test_cluster_series_get_their_expert(built, lambda_context):
    series = sample_series(built, "cluster1")[0].tolist()
    status, body = call(http_event("POST", "/forecast", {"series": [5.0] * 100 + series}), lambda_context)
    assert status == 200 and body["cluster"]["id"] == 1 and body["expert"]["family"] == "mlp"
    level = float(np.mean(series[-4:]))
    assert body["forecast"] == pytest.approx([level + 200.0] * 4, rel=1e-4)  # cluster 1's expert (offset 200)


@pytest.mark.parametrize("event, status, field", [
    ("forecast_invalid_negative.json", 422, "series[10]"),
    ("forecast_invalid_nan.json", 422, "series[2]"),
    ("forecast_invalid_unknown_field.json", 422, "horizn"),
    ("forecast_invalid_short.json", 422, "series"),
    ("forecast_invalid_quantile.json", 422, "quantiles[1]"),
    ("forecast_invalid_horizon.json", 422, "horizon"),
    ("forecast_invalid_json.json", 422, "body"),
    ("forecast_invalid_content_type.json", 415, "content-type"),
    ("forecast_invalid_batch_ids.json", 422, "items"),
])
def test_invalid_events_answer_4xx_naming_the_field(built, lambda_context, capsys, event, status, field):
    got, body = call(load_event(event), lambda_context)
    assert got == status
    assert body["message"].startswith(f"{field}: ") and body["errors"][0]["field"] == field
    assert "Traceback" not in json.dumps(body)
    assert "ClientErrors" in metric_names(emf_blobs(capsys.readouterr().out))


def test_model_fit_errors(built, lambda_context):
    status, body = call(http_event("POST", "/forecast", {"series": [1.0] * 48, "horizon": 5}), lambda_context)
    assert status == 422 and body["message"] == "horizon: 5 exceeds the model's horizon of 4 steps"
    status, body = call(http_event("POST", "/forecast", {"series": [1.0] * 48, "quantiles": [0.25]}), lambda_context)
    assert status == 422 and body["message"].startswith("quantiles[0]: 0.25 is not one of the model's")


def test_oversized_body_is_413(built, lambda_context):
    event = http_event("POST", "/forecast", raw_body='{"series": [' + "1," * 3_500_000 + "1]}")
    status, body = call(event, lambda_context)
    assert status == 413 and body["message"].startswith("body: ")


def test_model_and_health_routes(built, lambda_context):
    status, body = call(load_event("model.json"), lambda_context)
    assert status == 200 and body["version"] == "v1" and body["context"] == 48 and body["degraded"] is False
    assert [c["id"] for c in body["clusters"]] == [0, 1, -1] and body["dense"] == "dense-mlp"
    status, body = call(load_event("health.json"), lambda_context)
    assert status == 200 and body == {"status": "ok", "model_version": "v1", "detail": None}


def test_unknown_route_is_404(built, lambda_context):
    status, body = call(http_event("GET", "/nope"), lambda_context)
    assert status == 404 and body["message"] == "path: no route GET /nope"


@pytest.fixture
def json_logs():
    """The handler's JSON log lines, formatted when emitted (so correlation ids are the live ones)."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(app.logger.registered_formatter)
    std = logging.getLogger(app.logger.name)
    std.addHandler(handler)
    yield lambda: [json.loads(line) for line in buf.getvalue().splitlines()]
    std.removeHandler(handler)


def test_hot_swap_and_refusal_through_the_handler(built, lambda_context, capsys, json_logs):
    event = load_event("forecast_single.json")
    assert call(event, lambda_context)[1]["model_version"] == "v1"
    build_store(built.store, version="v2", reuse_from=built.manifest)
    assert call(event, lambda_context)[1]["model_version"] == "v2"
    build_store(built.store, version="v3")
    corrupt(built.store, "v3", "dense.onnx")
    capsys.readouterr()
    status, body = call(event, lambda_context)
    assert status == 200 and body["model_version"] == "v2" and body["degraded"] is False
    assert "VersionRefused" in metric_names(emf_blobs(capsys.readouterr().out))
    refusal = [line for line in json_logs() if "refused" in line["message"]]
    assert refusal and refusal[0]["level"] == "ERROR" and refusal[0]["version"] == "v3"
    assert refusal[0]["correlation_id"] == event["requestContext"]["requestId"]


def test_cold_start_on_damaged_version_is_degraded(built, lambda_context):
    corrupt(built.store, "v1", "experts/0.onnx")
    status, health = call(load_event("health.json"), lambda_context)
    assert status == 200 and health["status"] == "degraded" and "experts/0.onnx" in health["detail"]
    series = sample_series(built, "cluster0")[0].tolist()
    status, body = call(http_event("POST", "/forecast", {"series": series}), lambda_context)
    assert status == 200 and body["degraded"] is True and body["expert"]["family"] == "dense-mlp"


def test_no_model_is_503_not_a_crash(tmp_path, lambda_context, monkeypatch):
    monkeypatch.setenv("MESP_MODEL_URI", str(tmp_path / "empty"))
    app.set_predictor(None)
    status, body = call(load_event("forecast_single.json"), lambda_context)
    assert status == 503 and body["message"].startswith("model: ")
    status, body = call(load_event("health.json"), lambda_context)
    assert status == 503 and body["status"] == "unavailable"


def test_unexpected_errors_are_opaque_500(built, lambda_context, monkeypatch, capsys):
    def boom(*a, **k):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(Predictor, "predict", boom)
    status, body = call(load_event("forecast_single.json"), lambda_context)
    assert status == 500 and "secret" not in json.dumps(body) and "evt-forecast_single" in body["message"]
    assert "ServerErrors" in metric_names(emf_blobs(capsys.readouterr().out))


def test_logs_carry_no_payload(built, lambda_context, json_logs):
    event = http_event("POST", "/forecast", {"series": [987651.0] * 48})
    assert call(event, lambda_context)[0] == 200
    bad = http_event("POST", "/forecast", {"series": [654321.0] * 40 + [-1.0]})
    assert call(bad, lambda_context)[0] == 422
    logs = json_logs()
    assert logs and not any("987651" in json.dumps(line) or "654321" in json.dumps(line) for line in logs)
    forecast_line = next(line for line in logs if line["message"] == "forecast")
    assert forecast_line["correlation_id"] == event["requestContext"]["requestId"] and forecast_line["items"] == 1


def test_openapi_document_is_current():
    from support.events import ROOT

    checked_in = (ROOT / "docs" / "openapi.json").read_text()
    assert checked_in == app.openapi_json(), "regenerate: python -m mesp.api > docs/openapi.json"
