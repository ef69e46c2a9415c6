"""`mesp serve` (a real socket on loopback) and `mesp forecast` drive the same handler as the Lambda."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest

from mesp.cli import main
from support.events import load_event, load_forecast_app
from support.stores import build_store, sample_series


@pytest.fixture
def built(tmp_path):
    return build_store(str(tmp_path / "store"))


@pytest.fixture
def server(built):
    load_forecast_app()
    from mesp.serve import make_server

    srv = make_server(built.store.uri, "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()
    import mesp.api

    mesp.api.set_predictor(None)


def request(url, method="GET", body=None, headers=None):
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers=headers or ({"Content-Type": "application/json"} if data else {}))
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def test_forecast_over_http(server, built):
    series = sample_series(built, "cluster1")[0].tolist()
    status, headers, body = request(f"{server}/forecast", "POST", {"series": series})
    assert status == 200 and body["cluster"]["id"] == 1 and body["model_version"] == "v1"
    assert headers["x-request-id"]
    status, _, body = request(f"{server}/forecast", "POST", json.loads(load_event("forecast_batch.json")["body"]))
    assert status == 200 and body["count"] == 4
    assert request(f"{server}/health")[2]["status"] == "ok"
    assert request(f"{server}/model")[2]["version"] == "v1"


def test_errors_over_http(server):
    status, _, body = request(f"{server}/forecast", "POST", {"series": [1, -2]})
    assert status == 422 and body["message"].startswith("series[1]: ")
    status, _, body = request(f"{server}/forecast", "POST", b"series=1", {"Content-Type": "text/plain"})
    assert status == 415 and body["errors"][0]["field"] == "content-type"
    status, _, body = request(f"{server}/nowhere")
    assert status == 404
    big = b'{"series": [' + b"1," * 3_500_000 + b"1]}"
    status, _, body = request(f"{server}/forecast", "POST", big)
    assert status == 413 and body["message"].startswith("body: ")


def test_concurrent_clients(server, built):
    series = sample_series(built, "cluster0")[0].tolist()
    results = []

    def client():
        for _ in range(10):
            results.append(request(f"{server}/forecast", "POST", {"series": series})[0])

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 40


def test_forecast_command(built, tmp_path, capsys):
    req = tmp_path / "req.json"
    req.write_text(json.dumps({"series": sample_series(built, "cluster0")[0].tolist(), "horizon": 2}))
    assert main(["forecast", "--model", built.store.uri, "--input", str(req)]) == 0
    out = json.loads(capsys.readouterr().out)  # stdout holds only the answer (no EMF lines)
    assert out["cluster"]["id"] == 0 and len(out["forecast"]) == 2


@pytest.mark.parametrize("body, message", [
    ({"series": [1.0] * 3}, "series: needs at least 48 values"),
    (None, "cannot read"),
])
def test_forecast_command_errors(built, tmp_path, capsys, body, message):
    req = tmp_path / "req.json"
    if body is not None:
        req.write_text(json.dumps(body))
    assert main(["forecast", "--model", built.store.uri, "--input", str(req)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_forecast_command_without_model(tmp_path, capsys):
    req = tmp_path / "req.json"
    req.write_text("{}")
    assert main(["forecast", "--model", str(tmp_path / "none"), "--input", str(req)]) == 2
    assert "no usable model version" in capsys.readouterr().err
