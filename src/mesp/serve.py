"""A local HTTP server for the forecast API, without Docker: ``mesp serve --model STORE``.

Each request becomes an HTTP API (payload v2) event for the same :func:`mesp.api.lambda_handler` that runs on
Lambda, so ``curl -d @req.json localhost:3000/forecast`` answers exactly what API Gateway would. Connections
are handled by threads (``ThreadingHTTPServer``) but the handler runs one request at a time, as a Lambda
container does; Powertools' metrics buffer is not thread-safe, and a forecast takes about a millisecond.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from mesp.schemas import MAX_BODY_BYTES

_DRAIN_LIMIT = 64 * 1024 * 1024


@dataclass
class LocalContext:
    """What Powertools reads from a Lambda context."""

    function_name: str = "mesp-forecast-local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 2048
    invoked_function_arn: str = "arn:aws:lambda:local:000000000000:function:mesp-forecast-local"
    aws_request_id: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def to_event(method: str, target: str, headers: dict[str, str], body: bytes | None, client_ip: str) -> dict:
    """An HTTP API v2 event for one request (the shape API Gateway sends to Lambda)."""
    url = urlsplit(target)
    text, is_b64 = None, False
    if body:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text, is_b64 = base64.b64encode(body).decode(), True
    now = time.time()
    request_id = str(uuid.uuid4())
    query = dict(parse_qsl(url.query, keep_blank_values=True))
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": url.path or "/",
        "rawQueryString": url.query,
        "headers": {k.lower(): v for k, v in headers.items()},
        "queryStringParameters": query or None,
        "requestContext": {
            "accountId": "000000000000", "apiId": "local", "domainName": headers.get("Host", "localhost"),
            "domainPrefix": "local",
            "http": {"method": method, "path": url.path or "/", "protocol": "HTTP/1.1", "sourceIp": client_ip,
                     "userAgent": headers.get("User-Agent", "")},
            "requestId": request_id, "routeKey": "$default", "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)), "timeEpoch": int(now * 1000),
        },
        "body": text,
        "isBase64Encoded": is_b64,
    }


class ForecastServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler=None, quiet: bool = False):
        import mesp.api

        self.lambda_handler = handler or mesp.api.lambda_handler
        self.quiet = quiet
        self.invoke_lock = threading.Lock()
        super().__init__(address, _RequestHandler)


class _RequestHandler(BaseHTTPRequestHandler):
    server: ForecastServer
    protocol_version = "HTTP/1.1"
    server_version = "mesp-serve"

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES + 1024:  # refuse without holding the body in memory
            remaining = length if length <= _DRAIN_LIMIT else 0
            while remaining > 0:  # drain, so the client reads our 413 instead of a broken pipe
                chunk = self.rfile.read(min(remaining, 1 << 16))
                if not chunk:
                    break
                remaining -= len(chunk)
            self._send(413, {"content-type": "application/json"}, json.dumps(
                {"message": f"body: {length} bytes exceeds the limit of {MAX_BODY_BYTES} bytes",
                 "errors": [{"field": "body", "message": "too large"}]}).encode())
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else None
        event = to_event(self.command, self.path, dict(self.headers.items()), body, self.client_address[0])
        context = LocalContext(aws_request_id=event["requestContext"]["requestId"])
        with self.server.invoke_lock:
            result = self.server.lambda_handler(event, context)
        payload = result.get("body") or ""
        data = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode()
        headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
        headers.setdefault("content-type", "application/json")
        headers["x-request-id"] = event["requestContext"]["requestId"]
        self._send(int(result.get("statusCode", 500)), headers, data)

    def _send(self, status: int, headers: dict, data: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            if key not in {"content-length", "connection"}:
                self.send_header(key, str(value))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's signature
        if not self.server.quiet:
            super().log_message(format, *args)


def make_server(model: str, host: str = "127.0.0.1", port: int = 3000, *, ttl_seconds: float = 60.0,
                quiet: bool = False) -> ForecastServer:
    """A server bound to ``host:port`` serving the store ``model``; the model is loaded before returning."""
    import mesp.api
    from mesp.runtime import Predictor

    predictor = Predictor(model, ttl_seconds=ttl_seconds)
    mesp.api.set_predictor(predictor)
    predictor.model()  # fail fast (one line) on a store without any usable version
    return ForecastServer((host, port), quiet=quiet)
