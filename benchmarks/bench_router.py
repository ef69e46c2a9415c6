"""Router latency: one pattern (and a batch) against k centroids, as the Lambda handler calls it.

Centroids are K-Shape centroids of real daily patterns (non-idle rows of
../shared/data/azure2019/daily_patterns_train.csv.gz, fitted on a sample); queries are other real patterns.
For the 720-step context, the last 720 minutes of each pattern are used. Reported: median and p99 of
``Router.route`` for one pattern (idle check + z-normalisation + SBD to every centroid + argmin), and
per-pattern time in a batch of 1,000. Writes benchmarks/results/router.json and router.md.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
RESULTS = ROOT / "benchmarks" / "results"


def main() -> int:
    from bench_kshape import real_patterns

    from mesp.clustering import KShape
    from mesp.router import Router, novelty_threshold

    X = real_patterns()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    fit_rows, query_rows = X[order[:1500]], X[order[1500:2500]]
    rows = []
    for m in (1440, 720):
        for k in (8, 16, 32):
            km = KShape(k, random_state=0, max_iter=5).fit(fit_rows[:, -m:])
            router = Router(km.cluster_centers_, novelty_threshold(km.distances_))
            Q = query_rows[:, -m:]
            for i in range(50):
                router.route(Q[i])
            times = []
            for i in range(2000):
                q = Q[i % len(Q)]
                t = time.perf_counter()
                router.route(q)
                times.append(time.perf_counter() - t)
            t = time.perf_counter()
            router.route(Q)
            batch = (time.perf_counter() - t) / len(Q)
            row = {"context": m, "k": k, "single_median_ms": round(float(np.median(times)) * 1e3, 3),
                   "single_p99_ms": round(float(np.percentile(times, 99)) * 1e3, 3),
                   "batch1000_per_pattern_ms": round(batch * 1e3, 4)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    doc = {"machine": f"{os.cpu_count()} cores, shared", "load_avg_1m": round(os.getloadavg()[0], 2), "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "router.json").write_text(json.dumps(doc, indent=2))
    lines = ["# Router latency (mesp.router.Router.route, numpy only)", "",
             f"Load average during the run: {doc['load_avg_1m']} on {os.cpu_count()} cores (shared machine).", "",
             "| context | k | one pattern median ms | one pattern p99 ms | batch of 1000, ms per pattern |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['context']} | {r['k']} | {r['single_median_ms']} | {r['single_p99_ms']} | "
              f"{r['batch1000_per_pattern_ms']} |" for r in rows]
    (RESULTS / "router.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
