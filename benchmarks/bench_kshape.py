"""K-Shape: mesp.clustering.KShape vs tslearn KShape on real patterns, and mesp at trace scale.

Part 1 (peers side by side): the same real daily patterns (non-idle rows of
../shared/data/azure2019/daily_patterns_train.csv.gz), the same explicit z-normalised init, 3 iterations
each (tslearn's numba code compiled beforehand). Reported: wall time, their ratio, mean SBD of each
result (computed the same way for both: every series to its nearest final centroid) and label agreement.

Part 2 (scale): 10k / 100k / 650k patterns x 1,440 made by **resampling the real patterns** (random row,
random circular time shift of up to ±2 h, a log-normal rate factor and Gaussian noise of 10% of the row's
std, clipped at 0) -- synthetic in volume, real in shape. Each size runs in its own process, so the peak
RSS (which includes the float32 input itself) is that size's alone. k=8, default tol, k-means++ seeding.

Usage::

    python benchmarks/bench_kshape.py                 # part 1 + 10k + 100k
    python benchmarks/bench_kshape.py --sizes 650000  # one scale point (appends to the results)

Writes benchmarks/results/kshape.json and kshape.md (scale points accumulate in kshape_scale.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MESP_SHARED_DATA", ROOT.parent / "shared" / "data"))
PATTERNS = DATA / "azure2019" / "daily_patterns_train.csv.gz"
RESULTS = ROOT / "benchmarks" / "results"


def real_patterns() -> np.ndarray:
    from mesp.data import load
    from mesp.sbd import is_idle

    ds = load([str(PATTERNS)])
    X = np.stack([s.values for s in ds.series]).astype(np.float32)
    return X[~is_idle(X)]


def mean_sbd(Z: np.ndarray, C: np.ndarray) -> float:
    from mesp.sbd import CentroidSpectra, sbd_to_centroids

    return float(sbd_to_centroids(Z, CentroidSpectra(C))[0].min(axis=1).mean())


def vs_tslearn(X: np.ndarray, cases: list[tuple[int, int]], iters: int = 3) -> list[dict]:
    from sklearn.metrics import adjusted_rand_score
    from tslearn.clustering import KShape as TsKShape

    from mesp.clustering import KShape
    from mesp.sbd import znorm

    rng = np.random.default_rng(0)
    warm = znorm(X[:20])
    TsKShape(n_clusters=2, max_iter=1, init=warm[:2, :, None].astype(np.float64)).fit(
        warm[:, :, None].astype(np.float64))  # numba compile, not timed
    rows = []
    for n, k in cases:
        D = X[rng.choice(len(X), n, replace=False)]
        Z = znorm(D)
        init = Z[rng.choice(n, k, replace=False)]
        t = time.perf_counter()
        ts = TsKShape(n_clusters=k, max_iter=iters, tol=0.0, init=init[:, :, None].astype(np.float64))
        ts.fit(Z[:, :, None].astype(np.float64))
        t_ts = time.perf_counter() - t
        t = time.perf_counter()
        ours = KShape(k, init=init, max_iter=iters, tol=0.0).fit(D)
        t_ours = time.perf_counter() - t
        row = {"n": n, "m": X.shape[1], "k": k, "iterations": iters,
               "tslearn_s": round(t_ts, 3), "mesp_s": round(t_ours, 3), "speedup": round(t_ts / t_ours, 1),
               "tslearn_mean_sbd": round(mean_sbd(Z, ts.cluster_centers_[:, :, 0]), 5),
               "mesp_mean_sbd": round(mean_sbd(Z, ours.cluster_centers_), 5),
               "tslearn_n_iter": int(ts.n_iter_), "mesp_n_iter": int(ours.n_iter_),
               "label_ari": round(float(adjusted_rand_score(ts.labels_, ours.labels_)), 4)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def resample(X: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """n rows built from real patterns: time shift, rate factor, 10% noise (see the module docstring)."""
    rng = np.random.default_rng(seed)
    m = X.shape[1]
    out = np.empty((n, m), dtype=np.float32)
    std = X.std(axis=1, keepdims=True)
    cols = np.arange(m)
    for a in range(0, n, 8192):
        b = min(n, a + 8192)
        src = rng.integers(0, len(X), b - a)
        shift = rng.integers(-120, 121, b - a)
        rows = np.take_along_axis(X[src], (cols[None, :] - shift[:, None]) % m, axis=1)
        rows *= rng.lognormal(0.0, 0.5, (b - a, 1)).astype(np.float32)
        rows += rng.standard_normal((b - a, m), dtype=np.float32) * (0.1 * std[src])
        out[a:b] = np.maximum(rows, 0)
    return out


def scale_point(n: int, k: int) -> dict:
    from mesp.clustering import KShape

    X = resample(real_patterns(), n)
    t = time.perf_counter()
    km = KShape(k, random_state=0, verbose=True).fit(X)
    wall = time.perf_counter() - t
    return {"n": n, "m": X.shape[1], "k": k, "fit_s": round(wall, 1), "n_iter": km.n_iter_,
            "s_per_iter": round(wall / max(km.n_iter_ + 1, 1), 1), "mean_sbd": round(km.inertia_, 5),
            "n_idle": km.n_idle_, "input_gb": round(X.nbytes / 2**30, 2),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "load_avg_1m_after": round(os.getloadavg()[0], 2)}


def write_markdown(doc: dict) -> None:
    lines = ["# K-Shape benchmark", "", f"Machine: {doc['machine']}. Generated by `benchmarks/bench_kshape.py`.",
             "", "## mesp vs tslearn (real Azure 2019 daily patterns, same init, 3 iterations)", "",
             "| n x m | k | tslearn s | mesp s | speedup | tslearn mean SBD | mesp mean SBD | ARI |",
             "|---|---|---|---|---|---|---|---|"]
    for r in doc.get("vs_tslearn", []):
        lines.append(f"| {r['n']} x {r['m']} | {r['k']} | {r['tslearn_s']} | {r['mesp_s']} | {r['speedup']}x | "
                     f"{r['tslearn_mean_sbd']} | {r['mesp_mean_sbd']} | {r['label_ari']} |")
    lines += ["", "## Scale (real patterns resampled with time shifts, rate factors and noise; k=8)", "",
              "| n x m | fit s | iterations | s / pass | mean SBD | idle | input GB | peak RSS GB | load 1m |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(doc.get("scale", []), key=lambda r: r["n"]):
        lines.append(f"| {r['n']:,} x {r['m']} | {r['fit_s']} | {r['n_iter']} | {r['s_per_iter']} | "
                     f"{r['mean_sbd']} | {r['n_idle']} | {r['input_gb']} | {r['peak_rss_gb']} | "
                     f"{r['load_avg_1m_after']} |")
    lines += ["", "The machine (2 cores) is shared with other jobs: the load column shows the contention."]
    (RESULTS / "kshape.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--skip-tslearn", action="store_true")
    ap.add_argument("--point", type=int, help=argparse.SUPPRESS)  # one scale point, in a child process
    args = ap.parse_args()
    if args.point:
        print(json.dumps(scale_point(args.point, args.k)))
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "kshape.json"
    doc = json.loads(out.read_text()) if out.exists() else {}
    doc["machine"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    if not args.skip_tslearn:
        doc["vs_tslearn"] = vs_tslearn(real_patterns(), [(500, 3), (2000, 8)])
        out.write_text(json.dumps(doc, indent=2))
        write_markdown(doc)
    for n in args.sizes:
        proc = subprocess.run([sys.executable, __file__, "--point", str(n), "--k", str(args.k)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            return 1
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        print(json.dumps(row), flush=True)
        doc = json.loads(out.read_text()) if out.exists() else doc
        doc["scale"] = [r for r in doc.get("scale", []) if r["n"] != n] + [row]
        out.write_text(json.dumps(doc, indent=2))
        write_markdown(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
