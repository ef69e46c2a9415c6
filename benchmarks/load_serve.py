"""Load on the local forecast server (`mesp serve`) over loopback: fixed rate, burst, and memory over many requests.

    .venv/bin/python benchmarks/load_serve.py                      # 30 s at 100 req/s, then a 3,000-request burst
    .venv/bin/python benchmarks/load_serve.py --requests 100000    # + RSS of the server over 100k requests

The server is started as a subprocess (`python -m mesp serve --port 0`) on 127.0.0.1 over a tiny verified model
store (tests/support/stores.py: 48-step context, 2 K-Shape experts, dense, idle rule) unless --model is given.
Requests mix what the API sees: single series of every routing kind, batches of 10, and 5 % invalid bodies
(which must come back 422). An *error* is anything else: a 5xx, a wrong status, a refused connection.

* fixed rate: open loop, requests are *scheduled* at the rate and latency is measured from the scheduled time,
  so a stalled server shows up as queueing delay (no coordinated omission); service time is reported too;
* burst: closed loop, ``--concurrency`` connections back to back, as fast as the server answers;
* memory: closed loop for ``--requests``; the server's RSS is sampled from /proc; the slope (least squares
  over the samples after the first 10 %) is reported in KiB per 10k requests.

Writes benchmarks/results/load_serve.json and .md. The server handles one request at a time (like a Lambda
container), on the same 2 cores as this client, so throughput here is a floor, not a Lambda figure.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


# ------------------------------------------------------------------------------------------------ requests
def request_mix(store_uri: str, seed: int = 0) -> list[tuple[bytes, int]]:
    """(body, expected status) pairs: singles of each routing kind, batches of 10, 5 % invalid."""
    sys.path.insert(0, str(ROOT / "tests"))
    from mesp.store import open_store
    from support.stores import centroid_shapes, sample_series

    store = open_store(store_uri)
    manifest = store.read_manifest(store.latest_version())
    built = type("Built", (), {"manifest": manifest, "centroids": centroid_shapes(
        sum(1 for c in manifest.clusters if c.id >= 0), manifest.context)})
    kinds = [f"cluster{c.id}" for c in manifest.clusters if c.id >= 0] + ["novel", "idle"]
    mix: list[tuple[bytes, int]] = []
    for i in range(200):
        kind = kinds[i % len(kinds)]
        series = sample_series(built, kind, seed=seed + i)[0].tolist()
        if i % 20 == 19:
            mix.append((json.dumps({"series": series[:-1] + [-1.0]}).encode(), 422))
        elif i % 10 == 9:
            items = [{"id": f"fn-{i}-{j}", "series": sample_series(built, kinds[j % len(kinds)], seed=i * 10 + j)[0]
                      .tolist()} for j in range(10)]
            mix.append((json.dumps({"items": items}).encode(), 200))
        else:
            mix.append((json.dumps({"series": series, "quantiles": [0.5, 0.9]}).encode(), 200))
    return mix


# ------------------------------------------------------------------------------------------------- client
@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)   # seconds, from scheduled (fixed rate) or send time
    service: list[float] = field(default_factory=list)     # seconds, from send time
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, status: int | None, expected: int, latency: float, service: float, detail: str = "") -> None:
        with self.lock:
            self.latencies.append(latency)
            self.service.append(service)
            if status is not None:
                self.statuses[status] = self.statuses.get(status, 0) + 1
            if status != expected:
                self.errors += 1
                if len(self.error_samples) < 5:
                    self.error_samples.append(f"status {status}, expected {expected}: {detail[:200]}")

    def summary(self, seconds: float) -> dict:
        lat = np.asarray(self.latencies) * 1000
        svc = np.asarray(self.service) * 1000
        pct = (lambda a, q: round(float(np.percentile(a, q)), 3) if a.size else None)
        return {"requests": len(lat), "seconds": round(seconds, 3),
                "throughput_rps": round(len(lat) / seconds, 1) if seconds else None,
                "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "max_ms": round(float(lat.max()), 3) if lat.size else None,
                "service_p50_ms": pct(svc, 50), "service_p99_ms": pct(svc, 99),
                "errors": self.errors, "error_samples": self.error_samples,
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())}}


class Client:
    """One keep-alive connection; reconnects once if the server closed it."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.conn = http.client.HTTPConnection(host, port, timeout=30)

    def post(self, body: bytes) -> tuple[int, bytes]:
        for attempt in (0, 1):
            try:
                self.conn.request("POST", "/forecast", body, {"Content-Type": "application/json"})
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def _send(client: Client, tally: Tally, body: bytes, expected: int, scheduled: float) -> None:
    sent = time.perf_counter()
    try:
        status, data = client.post(body)
        detail = data.decode(errors="replace") if status != expected else ""
    except OSError as err:
        status, detail = None, f"{type(err).__name__}: {err}"
    done = time.perf_counter()
    tally.record(status, expected, done - scheduled, done - sent, detail)


def fixed_rate(host: str, port: int, mix: list[tuple[bytes, int]], rate: float, seconds: float,
               workers: int = 8) -> dict:
    """Open loop at ``rate`` requests/s for ``seconds``; latency from each request's scheduled time."""
    tally, jobs = Tally(), queue.Queue()

    def worker() -> None:
        client = Client(host, port)
        while (job := jobs.get()) is not None:
            body, expected, scheduled = job
            _send(client, tally, body, expected, scheduled)
        client.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        body, expected = mix[i % len(mix)]
        jobs.put((body, expected, scheduled))
    for _ in threads:
        jobs.put(None)
    for t in threads:
        t.join()
    return {"mode": "fixed rate", "rate_rps": rate, **tally.summary(time.perf_counter() - start)}


def closed_loop(host: str, port: int, mix: list[tuple[bytes, int]], total: int, concurrency: int,
                on_progress=None) -> dict:
    """``concurrency`` connections sending back to back until ``total`` requests are answered."""
    tally, counter, lock = Tally(), [0], threading.Lock()

    def worker() -> None:
        client = Client(host, port)
        while True:
            with lock:
                i = counter[0]
                if i >= total:
                    break
                counter[0] += 1
            body, expected = mix[i % len(mix)]
            _send(client, tally, body, expected, time.perf_counter())
            if on_progress is not None:
                on_progress(i)
        client.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"mode": "closed loop", "concurrency": concurrency, **tally.summary(time.perf_counter() - start)}


# ------------------------------------------------------------------------------------------------- server
def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Server:
    """`python -m mesp serve --port 0` in a subprocess; the port is read from its start-up line."""

    def __init__(self, model: str, ttl: float = 60.0):
        env = {**os.environ, "POWERTOOLS_TRACE_DISABLED": "1", "MESP_ORT_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "mesp", "serve", "--model", model, "--port", "0",
                                      "--quiet", "--ttl", str(ttl)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stderr.readline()  # "mesp serve: model v1 from ... on http://127.0.0.1:PORT (...)"
        if "http://" not in line:
            self.stop()
            raise RuntimeError(f"mesp serve did not start: {line}{self.proc.stderr.read()[-2000:]}")
        address = line.split("http://", 1)[1].split()[0]
        self.host, port = address.rsplit(":", 1)
        self.port = int(port)
        # keep draining stderr so the server can never block on a full pipe
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def memory_run(server: Server, mix: list[tuple[bytes, int]], total: int, concurrency: int) -> dict:
    samples: list[tuple[int, int]] = [(0, rss_kib(server.pid))]
    every = max(total // 50, 1)
    lock = threading.Lock()

    def progress(i: int) -> None:
        if i % every == 0 and i:
            with lock:
                samples.append((i, rss_kib(server.pid)))

    result = closed_loop(server.host, server.port, mix, total, concurrency, on_progress=progress)
    samples.append((total, rss_kib(server.pid)))
    samples.sort()
    x = np.array([s[0] for s in samples], dtype=float)
    y = np.array([s[1] for s in samples], dtype=float)
    keep = x >= 0.1 * total
    slope = float(np.polyfit(x[keep], y[keep], 1)[0]) if keep.sum() >= 3 else float("nan")
    return {**result, "mode": "memory", "rss_start_kib": samples[0][1], "rss_after_warmup_kib": int(y[keep][0]),
            "rss_end_kib": samples[-1][1], "rss_max_kib": int(y.max()),
            "rss_slope_kib_per_10k": round(slope * 10_000, 2), "rss_samples": samples}


# --------------------------------------------------------------------------------------------------- main
def tiny_store(folder: str) -> str:
    sys.path.insert(0, str(ROOT / "tests"))
    from support.stores import build_store

    build_store(folder)
    return folder


def markdown(report: dict) -> str:
    rows = [("fixed rate", report["fixed_rate"]), ("burst", report["burst"])]
    if report.get("memory"):
        rows.append(("memory", report["memory"]))
    lines = ["# Load on `mesp serve` (loopback)", "",
             f"`{report['command']}` on {report['machine']}; one request at a time in the server (as a Lambda "
             "container), client on the same cores.", "",
             "| phase | requests | throughput (req/s) | p50 (ms) | p99 (ms) | service p99 (ms) | errors |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows:
        label = f"{name} ({r['rate_rps']:.0f} req/s offered)" if name == "fixed rate" else \
            f"{name} ({r['concurrency']} connections)"
        lines.append(f"| {label} | {r['requests']} | {r['throughput_rps']} | {r['p50_ms']} | {r['p99_ms']} | "
                     f"{r['service_p99_ms']} | {r['errors']} |")
    fr, b = report["fixed_rate"], report["burst"]
    lines += ["", f"Burst vs fixed rate: throughput x{b['throughput_rps'] / fr['throughput_rps']:.2f}, "
                  f"p50 x{b['p50_ms'] / fr['p50_ms']:.1f}, p99 x{b['p99_ms'] / fr['p99_ms']:.1f} (the burst queues "
                  "behind a server that answers one request at a time)."]
    if report.get("memory"):
        m = report["memory"]
        lines += ["", f"Server RSS over {m['requests']:,} requests: {m['rss_start_kib'] / 1024:.1f} MiB at start, "
                      f"{m['rss_after_warmup_kib'] / 1024:.1f} MiB after warm-up, {m['rss_end_kib'] / 1024:.1f} MiB "
                      f"at the end; slope {m['rss_slope_kib_per_10k']} KiB per 10k requests."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="model store (default: a tiny one built in a temp dir)")
    p.add_argument("--rate", type=float, default=100.0, help="fixed-rate phase, requests/s (below capacity)")
    p.add_argument("--duration", type=float, default=30.0, help="fixed-rate phase, seconds")
    p.add_argument("--burst", type=int, default=3000, help="burst phase, requests")
    p.add_argument("--concurrency", type=int, default=16, help="burst/memory connections")
    p.add_argument("--requests", type=int, default=0, help="memory phase: requests (e.g. 100000); 0 skips it")
    p.add_argument("--out", default=str(RESULTS), help="folder for load_serve.json/.md")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or tiny_store(os.path.join(tmp, "store"))
        mix = request_mix(model)
        server = Server(model)
        try:
            closed_loop(server.host, server.port, mix, 200, 4)  # warm-up: sessions, caches, JIT-free paths
            print(f"fixed rate: {args.rate:g} req/s for {args.duration:g} s ...", file=sys.stderr)
            fixed = fixed_rate(server.host, server.port, mix, args.rate, args.duration)
            print(f"burst: {args.burst} requests on {args.concurrency} connections ...", file=sys.stderr)
            burst = closed_loop(server.host, server.port, mix, args.burst, args.concurrency)
            memory = None
            if args.requests:
                print(f"memory: {args.requests} requests ...", file=sys.stderr)
                memory = memory_run(server, mix, args.requests, args.concurrency)
        finally:
            server.stop()
    report = {"command": "python benchmarks/load_serve.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}",
              "fixed_rate": fixed, "burst": burst, "memory": memory}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "load_serve.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "load_serve.md").write_text(markdown(report))
    print(markdown(report))
    errors = fixed["errors"] + burst["errors"] + (memory["errors"] if memory else 0)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
