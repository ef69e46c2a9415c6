"""The MESP forecast API (HTTP API, payload v2): what ForecastFunction runs and ``mesp serve`` serves.

``functions/forecast/app.py`` re-exports :func:`lambda_handler` from here so the Lambda handler string stays
``app.lambda_handler``; keeping the code in the package lets ``mesp serve`` and ``mesp forecast`` run the very
same handler from an installed package.

Routes: ``POST /forecast`` (one series or a batch), ``GET /model`` (manifest summary), ``GET /health``.
The model store comes from ``MESP_MODEL_URI`` (a directory or ``s3://bucket/prefix``); the model is loaded
on the first request of a container and kept (see :mod:`mesp.runtime` for verification, hot swap and
fallbacks). Everything about models lives in the core package; this module only parses, calls and answers.

Errors: bad input -> 4xx whose ``message`` starts with the field name (``series[3]: ...``); no model at
all -> 503; anything unexpected -> an opaque 500 (logged with the request id, never a stack trace out).

No ``from __future__ import annotations`` here: Powertools reads the route annotations at runtime.
"""

import base64
import binascii
import json
import os
import time
from typing import Annotated, Any

import numpy as np
import pydantic_core
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

import mesp
from mesp.errors import ModelStoreError
from mesp.runtime import Prediction, Predictor
from mesp.schemas import (
    MAX_BODY_BYTES,
    BatchRequest,
    BatchResponse,
    ErrorResponse,
    ForecastBody,
    ForecastRequest,
    ForecastResponse,
    HealthResponse,
    ModelSummary,
    RequestError,
    check_against_model,
    quantile_key,
)

def _json_loads(text: str) -> Any:
    """pydantic-core's JSON parser (several times faster than ``json.loads`` on megabyte bodies).

    Failures are re-raised as ``json.JSONDecodeError``, which Powertools turns into a 422 on ``body``.
    """
    try:
        return pydantic_core.from_json(text, allow_inf_nan=True)
    except ValueError as err:
        raise json.JSONDecodeError(str(err).split(" at line")[0], text if isinstance(text, str) else "", 0) from None


logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayHttpResolver(enable_validation=True, json_body_deserializer=_json_loads)

_predictor: Predictor | None = None


# --------------------------------------------------------------------------------------------- the model
def get_predictor() -> Predictor:
    """The container's predictor, created on first use from ``MESP_MODEL_URI``."""
    global _predictor
    if _predictor is None:
        uri = os.environ.get("MESP_MODEL_URI", "")
        if not uri:
            raise ModelStoreError("MESP_MODEL_URI is not set")
        _predictor = Predictor(uri, ttl_seconds=float(os.environ.get("MESP_MODEL_TTL_SECONDS", "60")),
                               listener=_on_runtime_event)
    return _predictor


def set_predictor(predictor: Predictor | None) -> None:
    """Install a predictor (local server, tests); ``None`` re-reads ``MESP_MODEL_URI`` on next use."""
    global _predictor
    if predictor is not None and predictor.listener is None:
        predictor.listener = _on_runtime_event
    _predictor = predictor


def _on_runtime_event(event: str, fields: dict) -> None:
    if event == "model_loaded":
        metrics.add_metric(name="ModelLoads", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="ModelLoadTime", unit=MetricUnit.Milliseconds, value=fields["seconds"] * 1000)
        if fields["degraded"]:
            logger.warning("model loaded degraded", extra={"event": event, **fields})
        else:
            logger.info("model loaded", extra={"event": event, **fields})
    elif event == "version_refused":
        metrics.add_metric(name="VersionRefused", unit=MetricUnit.Count, value=1)
        logger.error("new model version refused; still serving the current one", extra={"event": event, **fields})
    elif event == "refresh_failed":
        metrics.add_metric(name="RefreshFailures", unit=MetricUnit.Count, value=1)
        # Logged once per outage: repeats are only counted. With no model at all the 503 handler logs it.
        if not fields.get("repeat") and fields.get("version") is not None:
            logger.warning("model store check failed; still serving the current version",
                           extra={"event": event, **fields})
    elif event == "runner_failed":
        metrics.add_metric(name="ExpertFailures", unit=MetricUnit.Count, value=1)


# ------------------------------------------------------------------------------------------------ errors
def _field_path(loc: tuple) -> str:
    parts = [p for p in loc if p not in ("body", "single", "batch", "response")]
    text = ""
    for p in parts:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else str(p))
    return text or "body"


def _error(status: int, field: str, message: str, more: list[dict] | None = None) -> Response:
    errors = more or [{"field": field, "message": message}]
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON,
                    body=json.dumps({"message": f"{field}: {message}", "errors": errors}))


@app.exception_handler(RequestValidationError)
def _validation_error(err: RequestValidationError) -> Response:
    details = []
    for e in err.errors()[:20]:
        loc = tuple(e.get("loc", ()))
        if e.get("type") == "json_invalid":
            details.append({"field": "body", "message": f"not valid JSON ({e.get('ctx', {}).get('error', '')})"})
        elif e.get("type") == "missing" and loc in {("body",), ()}:
            details.append({"field": "body", "message": "a JSON object with 'series' or 'items' is required"})
        else:  # pydantic's message without the offending input: bodies can be megabytes and are not logged
            details.append({"field": _field_path(loc), "message": e.get("msg", "invalid")})
    if not details:
        details.append({"field": "body", "message": "invalid request"})
    first = details[0]
    metrics.add_metric(name="ClientErrors", unit=MetricUnit.Count, value=1)
    return _error(422, first["field"], first["message"], details)


@app.exception_handler(RequestUnsupportedContentType)
def _content_type_error(err: RequestUnsupportedContentType) -> Response:
    metrics.add_metric(name="ClientErrors", unit=MetricUnit.Count, value=1)
    return _error(415, "content-type", "must be application/json")


@app.exception_handler(RequestError)
def _request_error(err: RequestError) -> Response:
    metrics.add_metric(name="ClientErrors", unit=MetricUnit.Count, value=1)
    return _error(err.status, err.field, err.message)


@app.exception_handler(ModelStoreError)
def _no_model(err: ModelStoreError) -> Response:
    metrics.add_metric(name="Unavailable", unit=MetricUnit.Count, value=1)
    logger.error("no model to serve", extra={"reason": str(err)})
    return _error(503, "model", "no verified model version is available; try again later")


@app.exception_handler(ServiceError)
def _service_error(err: ServiceError) -> Response:
    if isinstance(err, NotFoundError):
        event = app.current_event
        return _error(404, "path", f"no route {event.request_context.http.method} {event.raw_path}")
    return _error(err.status_code, "request", err.msg)


@app.exception_handler(Exception)
def _unexpected(err: Exception) -> Response:
    logger.exception("unexpected error")
    metrics.add_metric(name="ServerErrors", unit=MetricUnit.Count, value=1)
    return _error(500, "server", f"internal error (request {app.current_event.request_context.request_id})")


# ------------------------------------------------------------------------------------------------ routes
_JSON = content_types.APPLICATION_JSON
_ERRORS = {
    413: {"description": "Body too large", "content": {_JSON: {"model": ErrorResponse}}},
    415: {"description": "Not JSON", "content": {_JSON: {"model": ErrorResponse}}},
    422: {"description": "Invalid request; `message` names the field", "content": {_JSON: {"model": ErrorResponse}}},
    503: {"description": "No verified model available", "content": {_JSON: {"model": ErrorResponse}}},
}


@app.post(
    "/forecast",
    summary="Forecast the next steps of one series or a batch",
    description="Body: `{series, horizon?, quantiles?}` or `{items: [{id, series}], horizon?, quantiles?}`. "
                "A series needs at least the model's context length; its last `context` values are used.",
    responses={200: {"description": "Forecast (single) or per-item forecasts (batch)",
                     "content": {_JSON: {"model": ForecastResponse | BatchResponse}}}, **_ERRORS},
)
def forecast(body: Annotated[ForecastBody, Body()]):
    started = time.perf_counter()
    predictor = get_predictor()
    model = predictor.model()
    m = model.manifest
    if isinstance(body, BatchRequest):
        series = [item.series for item in body.items]
        names = [f"items[{i}].series" for i in range(len(series))]
    else:
        series, names = [body.series], ["series"]
    horizon, quantiles = check_against_model(
        body.horizon, body.quantiles, [len(s) for s in series], context=m.context, model_horizon=m.horizon,
        model_quantiles=m.quantiles, field_names=names)
    X = np.array([s[-m.context:] for s in series], dtype=np.float32)
    # A subsegment rather than @tracer.capture_method on the route: that decorator logs every exception
    # raised through it (client errors and 503s included) with a stack trace, a second log line per failure.
    with tracer.provider.in_subsegment("## predict"):
        pred = predictor.predict(X, horizon=horizon, quantiles=quantiles, model=model)
    items = _items(pred)
    if isinstance(body, BatchRequest):
        for item, req in zip(items, body.items):
            item["id"] = req.id
        payload: dict[str, Any] = {"items": items, "model_version": pred.version, "count": len(items),
                                   "novel": int(pred.novel.sum()), "degraded": int(pred.degraded.sum())}
    else:
        payload = items[0]
    _record(pred, time.perf_counter() - started)
    return Response(status_code=200, content_type=_JSON, body=pydantic_core.to_json(payload).decode())


@app.get("/model", summary="The served model version",
         responses={200: {"description": "Manifest summary", "content": {_JSON: {"model": ModelSummary}}},
                    503: _ERRORS[503]})
def model_summary():
    model = get_predictor().model()
    m = model.manifest
    failed = {cid for cid, r in model.experts.items() if r is None}
    summary = ModelSummary(
        version=m.version, created=m.created, step_seconds=m.step_seconds, context=m.context, horizon=m.horizon,
        quantiles=m.quantiles, novelty_threshold=m.router.novelty_threshold if model.router is not None else None,
        clusters=[{"id": c.id, "label": c.label, "size": c.size, "family": c.expert.family,
                   "available": c.id not in failed} for c in m.clusters],
        dense=m.dense.family, fallback=m.fallback, degraded=model.degraded, problems=model.problems)
    return Response(status_code=200, content_type=_JSON, body=summary.model_dump_json())


@app.get("/health", summary="Liveness and model status",
         responses={200: {"description": "Serving (possibly degraded)", "content": {_JSON: {"model": HealthResponse}}},
                    503: {"description": "No model", "content": {_JSON: {"model": HealthResponse}}}})
def health():
    try:
        model = get_predictor().model()
    except ModelStoreError as err:
        body = HealthResponse(status="unavailable", model_version=None, detail=str(err))
        return Response(status_code=503, content_type=_JSON, body=body.model_dump_json())
    body = HealthResponse(status="degraded" if model.degraded else "ok", model_version=model.version,
                          detail="; ".join(model.problems) or None)
    return Response(status_code=200, content_type=_JSON, body=body.model_dump_json())


def _items(pred: Prediction) -> list[dict]:
    """Per-item response dicts (ForecastResponse fields), built from whole arrays at once."""
    values = np.round(pred.values.astype(np.float64), 4).tolist()        # (n, Q, H)
    point = np.round(pred.forecast.astype(np.float64), 4).tolist()       # (n, H)
    keys = [quantile_key(q) for q in pred.quantiles]
    distances = pred.distances.tolist()
    novel, degraded = pred.novel.tolist(), pred.degraded.tolist()
    out = []
    for i, cid in enumerate(pred.cluster_ids):
        cluster = None
        if cid is not None:
            d = distances[i]
            cluster = {"id": cid, "label": pred.cluster_labels[i],
                       "distance": None if cid == -1 or d != d else round(d, 6)}
        out.append({"forecast": point[i], "quantiles": dict(zip(keys, values[i])), "cluster": cluster,
                    "expert": {"family": pred.families[i]}, "model_version": pred.version,
                    "novel": novel[i], "degraded": degraded[i]})
    return out


def _record(pred: Prediction, seconds: float) -> None:
    n = len(pred.cluster_ids)
    metrics.add_metric(name="Forecasts", unit=MetricUnit.Count, value=n)
    metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=seconds * 1000)
    metrics.add_metric(name="Novel", unit=MetricUnit.Count, value=int(pred.novel.sum()))
    metrics.add_metric(name="Degraded", unit=MetricUnit.Count, value=int(pred.degraded.sum()))
    metrics.add_metadata(key="model_version", value=pred.version)
    # One metric per routed cluster in the same EMF blob (K + 2 names at most); a `cluster` dimension would
    # need one blob per cluster per request, which costs more than the forecast itself.
    counts: dict[str, int] = {}
    for cid in pred.cluster_ids:
        key = "RoutedNone" if cid is None else ("RoutedIdle" if cid == -1 else f"RoutedCluster{cid}")
        counts[key] = counts.get(key, 0) + 1
    for name, count in counts.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=count)
    logger.info("forecast", extra={"items": n, "novel": int(pred.novel.sum()),
                                   "degraded": int(pred.degraded.sum()), "ms": round(seconds * 1000, 3),
                                   "model_version": pred.version})


# ------------------------------------------------------------------------------------------------ entry
def _precheck(event: dict) -> dict | None:
    """Limits checked before any parsing: body size and content type (answers built here directly)."""
    body = event.get("body") or ""
    body = body if isinstance(body, str) else ""
    method = (event.get("requestContext", {}).get("http", {}) or {}).get("method", "")
    if event.get("isBase64Encoded") and body and method == "POST":
        # `mesp serve` (and API Gateway, for binary media types) send bodies that are not UTF-8 as base64;
        # Powertools would decode them inside the route and fail with a 500, so refuse them here.
        try:
            raw = base64.b64decode(body, validate=True)
            raw.decode("utf-8")
            size = len(raw)
        except (binascii.Error, UnicodeDecodeError):
            metrics.add_metric(name="ClientErrors", unit=MetricUnit.Count, value=1)
            return _raw(422, "body", "not valid JSON (base64 body that does not decode to UTF-8 text)")
    else:  # the limit is in bytes, as Lambda counts it, not in characters
        size = len(body) if body.isascii() else len(body.encode("utf-8", "surrogatepass"))
    limit = _body_limit()
    if size > limit:
        metrics.add_metric(name="ClientErrors", unit=MetricUnit.Count, value=1)
        return _raw(413, "body", f"{size} bytes exceeds the limit of {limit} bytes")
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    content_type = str(headers.get("content-type", "")).strip().lower()
    if method == "POST" and content_type and not content_type.startswith("application/json"):
        metrics.add_metric(name="ClientErrors", unit=MetricUnit.Count, value=1)
        return _raw(415, "content-type", f"must be application/json, got {content_type[:60]!r}")
    return None


def _body_limit() -> int:
    """``MESP_MAX_BODY_BYTES`` or Lambda's 6 MB synchronous payload limit (a larger value only helps in-process)."""
    raw = os.environ.get("MESP_MAX_BODY_BYTES", "")
    return int(raw) if raw.isdigit() else MAX_BODY_BYTES


def _raw(status: int, field: str, message: str) -> dict:
    return {"statusCode": status, "headers": {"Content-Type": _JSON}, "isBase64Encoded": False,
            "body": json.dumps({"message": f"{field}: {message}", "errors": [{"field": field, "message": message}]})}


# log_event=False explicitly: left unset, POWERTOOLS_LOGGER_LOG_EVENT=true would log every event, headers
# (Authorization) and body included.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
    early = _precheck(event)
    if early is not None:
        return early
    return app.resolve(event, context)


def openapi_json() -> str:
    """The OpenAPI document checked in as ``docs/openapi.json``."""
    doc = app.get_openapi_json_schema(title="MESP forecast API", version=mesp.__version__,
                                      summary="Mixture-of-Experts forecasts of serverless invocations")
    return json.dumps(json.loads(doc), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # python -m mesp.api > docs/openapi.json
    print(openapi_json(), end="")
