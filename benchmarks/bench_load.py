"""Loading a full-size Azure 2019 day file: time and peak memory, next to pandas.read_csv as a peer.

Writes a realistic day file (46k functions x 1440 minutes from the synthetic fleet: heavy-tailed rates,
mostly sparse rows, ~100+ MB) into a temporary folder (never into the repository), then loads it in a
fresh interpreter per contender and records wall time and peak RSS (``ru_maxrss`` of the child).
Results go to ``benchmarks/results/bench_load.{json,md}``.

    .venv/bin/python benchmarks/bench_load.py [--rows 46000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

CONTENDERS = {
    # the project's loader: streaming, strict validation, float32 series + meta
    "mesp.data.load": "from mesp.data import load; ds = load(PATH); assert len(ds) == ROWS",
    # a peer: pandas' C parser into one DataFrame (no validation beyond parsing, int64 columns)
    "pandas.read_csv": "import pandas as pd; df = pd.read_csv(PATH); assert len(df) == ROWS",
}


def write_day_file(path: Path, rows: int, seed: int = 0) -> None:
    from mesp.data.synthetic import generate

    header = "HashOwner,HashApp,HashFunction,Trigger," + ",".join(str(m) for m in range(1, 1441))
    rng = np.random.default_rng(seed)
    with open(path, "w") as fh:
        fh.write(header + "\n")
        done = 0
        while done < rows:
            n = min(2000, rows - done)
            chunk = generate(n_functions=n, days=1, seed=seed + done)
            for i, s in enumerate(chunk):
                h = rng.integers(0, 2**63, size=3)
                key = ",".join(f"{x:064x}"[:64] for x in h)
                fh.write(f"{key},{s.meta['trigger']}," + ",".join(map(str, s.values.astype(np.int64).tolist())) + "\n")
            done += n


def run_child(code: str, path: Path, rows: int) -> dict:
    program = (
        "import resource, time\n"
        f"PATH, ROWS = {str(path)!r}, {rows}\n"
        "t = time.perf_counter()\n"
        f"{code}\n"
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    seconds, maxrss_kb = out.stdout.split()
    return {"seconds": float(seconds), "peak_rss_mb": int(maxrss_kb) / 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=46_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mesp-bench-") as tmp:
        path = Path(tmp) / "invocations_per_function_md.anon.d01.csv"
        t = time.perf_counter()
        write_day_file(path, args.rows)
        size_mb = path.stat().st_size / 2**20
        print(f"wrote {args.rows} rows, {size_mb:.0f} MB in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        results = {}
        for name, code in CONTENDERS.items():
            runs = [run_child(code, path, args.rows) for _ in range(args.repeat)]
            results[name] = {"seconds": min(r["seconds"] for r in runs),
                             "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}
            print(f"{name}: {results[name]}", file=sys.stderr)

    base = results["mesp.data.load"]
    record = {
        "benchmark": "load one Azure 2019 day file",
        "rows": args.rows, "columns": 1444, "file_mb": round(size_mb, 1), "repeat": args.repeat,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "results": results,
        "limits": {"seconds": 60, "peak_rss_mb": 2048},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_load.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [f"# Loading one Azure 2019 day file ({args.rows:,} rows x 1,444 columns, {size_mb:.0f} MB)", "",
             f"Python {platform.python_version()}, {os.cpu_count()} CPUs; best of {args.repeat}; "
             "peak RSS of a fresh interpreter (includes imports). Limits: 60 s, 2048 MB.", "",
             "| loader | seconds | peak RSS (MB) | time vs mesp | memory vs mesp |", "|---|---:|---:|---:|---:|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} | {r['seconds'] / base['seconds']:.2f} | "
                     f"{r['peak_rss_mb'] / base['peak_rss_mb']:.2f} |")
    (RESULTS / "bench_load.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    ok = base["seconds"] <= 60 and base["peak_rss_mb"] <= 2048
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
