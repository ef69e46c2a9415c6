"""HTTP API (payload v2) events for driving handlers in-process, like API Gateway would."""

from __future__ import annotations

import importlib.util
import json
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"


def http_event(method: str, path: str, body: Any = None, *, headers: dict | None = None,
               raw_body: str | None = None, query: dict | None = None) -> dict:
    """A minimal but complete HTTP API v2 event (what the local server also builds)."""
    text = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
    hdrs = {"content-type": "application/json"} if text is not None else {}
    hdrs.update({k.lower(): v for k, v in (headers or {}).items()})
    request_id = str(uuid.uuid4())
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
        "headers": hdrs,
        "queryStringParameters": query or None,
        "requestContext": {
            "accountId": "123456789012", "apiId": "local", "domainName": "localhost", "domainPrefix": "localhost",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": "mesp-tests"},
            "requestId": request_id, "routeKey": f"{method} {path}", "stage": "$default",
            "time": "22/Nov/2026:00:00:00 +0000", "timeEpoch": 1795305600000,
        },
        "body": text,
        "isBase64Encoded": False,
    }


def load_event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def load_forecast_app():
    """Import functions/forecast/app.py as module ``forecast_app`` (Lambda imports it as ``app``).

    The returned module re-exports :mod:`mesp.api`; tests use ``mesp.api`` for everything else.
    """
    if "forecast_app" not in sys.modules:
        spec = importlib.util.spec_from_file_location("forecast_app", ROOT / "functions" / "forecast" / "app.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["forecast_app"] = module
        spec.loader.exec_module(module)
    import mesp.api

    assert sys.modules["forecast_app"].lambda_handler is mesp.api.lambda_handler
    return mesp.api
