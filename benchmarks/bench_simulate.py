"""Cold starts vs wasted memory on the real Azure 2019 data: keep-alive, hybrid histogram, oracle (+ MESP).

Data sets (../shared/data, never copied into the repo):

* ``patterns``: the 6,442 daily patterns. Rows are single days with no function identity and no durations,
  so every policy learns from the first 12 hours and is scored on the second 12 (a forecast policy re-plans
  hourly from a 720-minute context); one instance per invoked minute (no durations).
* ``fullday10`` / ``fullday5``: the 10 + 5 busy original-format functions, one full day each, with their
  durations and memory: concurrency from Little's law, wasted memory in MB x minutes. Same 12 h / 12 h split.
* ``window500``: 500 original-format functions, minutes 480-959 only; history 240 minutes, scored 240,
  per function and per app (Shahrad et al.'s unit).

Usage::

    .venv/bin/python benchmarks/bench_simulate.py [--model STORE] [--only patterns] [--limit N]

Writes ``benchmarks/results/simulate.json``, ``simulate.md`` and one PNG per data set. With ``--model``
MESP's and the dense model's forecast policies are added (the model's context must fit the history).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MESP_SHARED_DATA", ROOT.parent / "shared" / "data")) / "azure2019"
OUT = ROOT / "benchmarks" / "results"
ORIG = DATA / "original_format"

SETS = {
    "patterns": ([DATA / "daily_patterns_train.csv.gz"], "function", 720),
    # the 10fn and 5fn files are separate full days: loaded together they would be joined as two days
    "fullday10": ([ORIG / "orighash_10fn_fullday_invocations.csv"], "function", 720),
    "fullday5": ([ORIG / "orighash_5fn_fullday_invocations.csv"], "function", 720),
    "window500": ([ORIG / "orighash_500fn_min480-959_invocations.csv"], "function", 240),
    "window500-app": ([ORIG / "orighash_500fn_min480-959_invocations.csv"], "app", 240),
}
SPES = {"p75_cold_rate_change": -0.4977, "wasted_memory_change": -0.5643,
        "source": "SPES (arXiv 2403.17574, 2024) vs the state of the art on the Azure 2019 trace"}


def run_set(name: str, paths, group: str, history: int, model: str | None, limit: int | None) -> dict:
    from mesp.data import load
    from mesp.simulate import simulate, units_from_dataset
    from mesp.simulate.curves import METRICS, StoreForecaster, compare, curves, default_policies, plot
    from mesp.simulate.policies import RecentQuantileForecaster

    ds = load([str(p) for p in paths])
    if limit:
        ds.series = ds.series[:limit]
    units = units_from_dataset(ds, group)
    forecasters = {"recent": RecentQuantileForecaster(context=60, horizon=60)}
    if model:
        forecasters.update({w: StoreForecaster(model, w) for w in ("mesp", "dense")})
        if forecasters["mesp"].context > history:
            print(f"{name}: model context {forecasters['mesp'].context} > history {history}; "
                  "forecast policies skipped", file=sys.stderr)
            forecasters = {"recent": forecasters["recent"]}
    policies = default_policies(forecasters, replan=60)
    t0 = time.perf_counter()
    report = simulate(units, policies, history, ds.step_seconds, progress=True)
    seconds = time.perf_counter() - t0
    by_metric = {m: curves(report, m) for m in METRICS}
    plot(by_metric["cold_rate_p75"], OUT / f"simulate_{name}.png",
         title=f"{name}: {len(units)} {group}s, scored minutes {history}..{len(units[0].counts) - 1}")
    plot(by_metric["cold_rate_mean"], OUT / f"simulate_{name}_mean.png", y_label="cold_rate_mean",
         title=f"{name}: {len(units)} {group}s (mean cold-start rate)")
    by_name = report.by_name()
    headline = {k: by_name[k].overall for k in ("fixed-10", "fixed-20", "hybrid-p5-p99", "oracle")}
    return {"data": [str(p.relative_to(DATA.parent)) for p in paths], "group": group, "units": len(units),
            "history": history, "n_steps": report.n_steps, "seconds": round(seconds, 1),
            "memory_known": report.memory_known, "policies": len(policies), "headline": headline,
            "comparison": {m: compare(c) for m, c in by_metric.items()}, "curves": by_metric,
            "notes": report.notes}


def pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.3g}%"


def markdown(results: dict) -> str:
    lines = ["# Cold starts vs wasted memory (Azure 2019, real data)", "",
             "Waste is normalised to the 10-minute fixed keep-alive of the same data set. Cold-start rates are "
             "per unit (cold starts / invocations in the scored window), then the p75 / mean across units.", ""]
    for name, r in results.items():
        lines += [f"## {name}: {r['units']} {r['group']}s, history {r['history']} min, "
                  f"scored {r['n_steps'] - r['history']} min ({r['seconds']} s)", "",
                  "| policy | p75 cold | mean cold | overall cold | waste / fixed-10 |", "|---|---|---|---|---|"]
        for k, o in r["headline"].items():
            lines.append(f"| {k} | {pct(o['cold_rate_p75'])} | {pct(o['cold_rate_mean'])} | "
                         f"{pct(o['cold_rate_overall'])} | {o['wasted_memory_normalised']:.3f} |")
        lines += ["", "Against the hybrid histogram (p5/p99) on each family's Pareto front "
                  "(at its waste: cold-start change; at its cold-start rate: waste change):", "",
                  "| family | metric | cold change at hybrid's waste | waste change at hybrid's cold rate |",
                  "|---|---|---|---|"]
        for metric in ("cold_rate_p75", "cold_rate_mean"):
            for fam, c in r["comparison"][metric].get("families", {}).items():
                if fam == "hybrid":
                    continue
                lines.append(f"| {fam} | {metric} | {pct(c['rate_change_at_ref_waste'])} | "
                             f"{pct(c['waste_change_at_ref_rate'])} |")
        lines.append("")
    lines += [f"Literature: {SPES['source']}: p75 cold-start rate {pct(SPES['p75_cold_rate_change'])}, "
              f"wasted memory time {pct(SPES['wasted_memory_change'])}.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="model store: adds MESP and dense forecast policies")
    ap.add_argument("--only", nargs="+", choices=list(SETS), help="data sets to run (default all)")
    ap.add_argument("--limit", type=int, help="first N series of each data set (quick runs)")
    args = ap.parse_args(argv)
    if not DATA.is_dir():
        print(f"real data not found at {DATA}", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    results = {}
    previous = OUT / "simulate.json"
    if args.only and previous.exists():  # a partial run updates its data sets and keeps the others
        results = {k: v for k, v in json.loads(previous.read_text())["results"].items() if k in SETS}
    for name in args.only or SETS:
        paths, group, history = SETS[name]
        print(f"== {name}", file=sys.stderr)
        results[name] = run_set(name, paths, group, history, args.model, args.limit)
    doc = {"literature": SPES, "model": args.model, "results": results}
    (OUT / "simulate.json").write_text(json.dumps(doc, indent=1, default=float))
    (OUT / "simulate.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
