"""Load, short version: the local server under the benchmark's own load generator, for a few seconds.

Fails on any error (a 5xx, a wrong status, a dropped connection) and on leak signals that do not depend on
timing: Python objects that survive requests, a metrics buffer that is not flushed, sessions, caches, log keys
or threads that grow with the request count. Never on latency (``benchmarks/load_serve.py`` measures that,
and the server's RSS over 100k requests).
"""

from __future__ import annotations

import gc
import importlib.util
import logging
import sys
import threading

import pytest

from harness import ROOT, api
from support.stores import build_store


def load_bench():
    spec = importlib.util.spec_from_file_location("load_serve", ROOT / "benchmarks" / "load_serve.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["load_serve"] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def server(tmp_path):
    from mesp.serve import make_server

    built = build_store(str(tmp_path / "store"))
    srv = make_server(built.store.uri, "127.0.0.1", 0, ttl_seconds=0.05, quiet=True)  # re-checks LATEST often
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield built, srv
    srv.shutdown()
    srv.server_close()
    api.set_predictor(None)
    api.metrics.clear_metrics()


def state(predictor) -> dict:
    """Everything that could grow per request without being a bug nobody sees for days."""
    return {"metrics": len(api.metrics.metric_set), "metadata": len(api.metrics.metadata_set),
            "dimensions": len(api.metrics.dimension_set), "sessions": len(predictor._sessions),
            "reported": len(predictor._reported), "refused": len(predictor._refused),
            "log_keys": len(api.logger.get_current_keys())}


def live_objects() -> int:
    # pytest's logging plugin keeps every record of the test for its report (Lambda's root handler does not:
    # Powertools filters its records out of it), so drop those before counting.
    for handler in logging.getLogger().handlers:
        if hasattr(handler, "reset"):
            handler.reset()
    gc.collect()
    return sys.getallocatedblocks()  # every live allocation, containers or not (gc.get_objects misses atoms)


def test_short_load_has_no_errors_and_no_leak_signal(server):
    bench = load_bench()
    built, srv = server
    host, port = srv.server_address[:2]
    mix = bench.request_mix(built.store.uri)
    predictor = api.get_predictor()

    warm = bench.closed_loop(host, port, mix, 300, 4)
    threads_before, before, objects_before = threading.active_count(), state(predictor), live_objects()

    fixed = bench.fixed_rate(host, port, mix, rate=150, seconds=2.0, workers=4)
    burst = bench.closed_loop(host, port, mix, 600, 8)
    n = fixed["requests"] + burst["requests"]

    for phase in (warm, fixed, burst):
        assert phase["errors"] == 0, phase["error_samples"]
    assert fixed["statuses"]["422"] > 0 and burst["statuses"]["200"] > 0  # the mix really had both kinds
    assert state(predictor) == before
    growth = live_objects() - objects_before
    assert growth < n // 4, f"{growth} memory blocks survived {n} requests"
    # client connections are closed: their handler threads end (a thread per connection must not pile up)
    for _ in range(50):
        if threading.active_count() <= threads_before + 1:
            break
        threading.Event().wait(0.05)
    assert threading.active_count() <= threads_before + 1
