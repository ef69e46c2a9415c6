"""The project's claims on real data, measured through the product's own commands.

Runs ``mesp train`` -> ``mesp evaluate`` -> ``mesp simulate`` as subprocesses with ONE function holdout
(``--test-fraction F --seed S``, :func:`mesp.evaluation.split_by_series` in all three), then writes
``benchmarks/results/claims.{json,md}`` and the trade-off curve PNG:

* (A) issue 4: the mixture (``mesp``) vs the ``dense`` model trained on the same windows with the same
  compute, and the baselines: WAPE, MASE (gmean / median / mean), MAE, RMSE overall and per cluster,
  on the held-out functions only.
* (B) issue 7: cold starts vs wasted memory on the held-out functions (first ``--history`` steps are
  history, the rest is scored): MESP's and dense's forecast policy, the model-free ``recent`` reference,
  fixed keep-alive, the hybrid histogram (each with its sweep) and the oracle.

Stages can run separately (``--stages train`` now, ``--stages evaluate,simulate,render`` later); each stage
leaves its record (command, wall time, load average, exit status) in ``--work`` and ``render`` gathers them.
The model store is written to ``--store`` (default ``/tmp/claims-store``; never committed)::

    .venv/bin/python benchmarks/claims.py --budget-minutes 12
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "azure2019" / "daily_patterns_train.csv.gz"
RESULTS = ROOT / "benchmarks" / "results"
MESP = str(Path(sys.executable).with_name("mesp"))
STAGES = ("train", "evaluate", "simulate", "render")


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _run_stage(name: str, cmd: list[str], work: Path) -> dict:
    """Run one CLI command, stream its output to our stderr, record it in ``work/stage-<name>.json``."""
    print(f"[claims] {name}: {shlex.join(cmd)}", file=sys.stderr, flush=True)
    started = dt.datetime.now(dt.timezone.utc)
    load_before = _loadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    sys.stderr.write(proc.stdout)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    record = {"stage": name, "command": shlex.join(cmd), "returncode": proc.returncode, "git_commit": commit,
              "wall_seconds": round(wall, 1), "started_utc": started.isoformat(timespec="seconds"),
              "loadavg_before": load_before, "loadavg_after": _loadavg(), "stdout": proc.stdout}
    (work / f"stage-{name}.json").write_text(json.dumps(record, indent=1))
    if proc.returncode != 0:
        raise SystemExit(f"[claims] {name} failed with exit status {proc.returncode}")
    return record


def commands(a: argparse.Namespace) -> dict[str, list[str]]:
    split = ["--test-fraction", str(a.test_fraction), "--seed", str(a.seed)]
    data = ["--data", str(a.data)]
    return {
        "train": [MESP, "train", *data, "--model", a.store, *split, "--budget-minutes", str(a.budget_minutes),
                  "--clusters", a.clusters, "--workers", str(a.workers), "--no-progress"],
        "evaluate": [MESP, "evaluate", *data, "--model", a.store, *split,
                     "--baselines", "naive,seasonal_naive,mean_last_hour,ridge",
                     "--json", str(a.work / "evaluate.json")],
        "simulate": [MESP, "simulate", *data, "--model", a.store, *split, "--history", a.history,
                     "--recent-forecast", "--json", str(a.work / "simulate.json"),
                     "--plot", str(a.out / "claims_curve.png")],
    }


# ------------------------------------------------------------------------------------------- render


def _pct(v: float | None, digits: int = 3) -> str:
    return "n/a" if v is None else f"{100 * v:.{digits}g}%"


def _num(v: float | None, digits: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{digits}g}"


def _accuracy_rows(models: dict, order: list[str]) -> list[str]:
    rows = ["| model | WAPE | MASE gmean | MASE median | MASE mean | MAE | RMSE | windows | series |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name in order:
        if name in models:
            m = models[name]
            rows.append(f"| {name} | {_num(m['wape'])} | {_num(m['mase_gmean'])} | {_num(m['mase_median'])} | "
                        f"{_num(m['mase_mean'])} | {_num(m['mae'])} | {_num(m['rmse'])} | {m['n_windows']} | "
                        f"{m['n_series']} |")
    return rows


def render(a: argparse.Namespace) -> dict:
    from mesp.store import open_store

    stages = {s: json.loads((a.work / f"stage-{s}.json").read_text()) for s in ("train", "evaluate", "simulate")
              if (a.work / f"stage-{s}.json").exists()}
    ev = json.loads((a.work / "evaluate.json").read_text()) if (a.work / "evaluate.json").exists() else None
    sim = json.loads((a.work / "simulate.json").read_text()) if (a.work / "simulate.json").exists() else None
    store = open_store(a.store)
    manifest = store.read_manifest(store.latest_version())
    training = manifest.training
    clusters = [{"id": c.id, "label": c.label, "size": c.size, "family": c.expert.family} for c in manifest.clusters]
    experts = {k: {"family": None, "search_seed": v.get("search_seed"), "n_trials": v.get("n_trials"),
                   "n_pruned": v.get("n_pruned"), "search_seconds": v.get("search_seconds"),
                   "budget_minutes": v.get("budget_minutes")} for k, v in training.get("experts", {}).items()}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                capture_output=True, text=True).stdout.strip())
    doc = {
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": commit, "git_worktree_dirty": dirty,
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "loadavg_at_render": _loadavg(),
                    "note": "shared 2-core machine; the training budget is wall clock, so load shrinks compute"},
        "data": str(a.data), "split": {"test_fraction": a.test_fraction, "seed": a.seed, "by": "series"},
        "budget_minutes": a.budget_minutes, "clusters_flag": a.clusters,
        "stages": {k: {x: v[x] for x in v if x != "stdout"} for k, v in stages.items()},
        "model": {"version": manifest.version, "context": manifest.context, "horizon": manifest.horizon,
                  "quantiles": list(manifest.quantiles), "clusters": clusters,
                  "dense_family": manifest.dense.family if manifest.dense else None,
                  "split": training.get("split"), "budget": training.get("budget"),
                  "timings": training.get("timings"), "experts": experts},
        "accuracy": ev, "simulation": None, "note": a.note,
    }
    if sim is not None and a.diagnostics:
        doc["diagnostics"] = diagnostics(a, sim)
    if sim is not None:
        doc["simulation"] = {k: sim[k] for k in ("instance_model", "eval_start", "n_steps", "notes", "results",
                                                 "comparison", "split") if k in sim}
        # every policy's point is in results; the fronts of the two headline metrics are enough here
        doc["simulation"]["curves"] = {m: sim["curves"][m] for m in ("cold_rate_p75", "cold_rate_mean")}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "claims.json").write_text(json.dumps(doc, indent=1, default=float))
    (a.out / "claims.md").write_text("\n".join(_markdown(doc, stages)) + "\n")
    return doc


def _markdown(doc: dict, stages: dict) -> list[str]:
    lines = ["# MESP claims on real data (Azure 2019 daily patterns)", "",
             f"Date {doc['date_utc']}, commit `{doc['git_commit']}`"
             f"{' (work tree had uncommitted changes)' if doc['git_worktree_dirty'] else ''}, "
             f"{doc['machine']['platform']}, {doc['machine']['cpus']} cores (shared; load average per stage below). "
             f"Data `{Path(doc['data']).name}`: single days of 1,440 minutes; 12 h context -> 1 h horizon, stride 1 h. "
             f"Held-out functions: `--test-fraction {doc['split']['test_fraction']} --seed {doc['split']['seed']}` "
             "(`mesp.evaluation.split_by_series`, the same in train, evaluate and simulate).", "",
             "## Commands", "", "| stage | wall time | load avg before -> after | command |", "|---|---|---|---|"]
    for name, st in doc["stages"].items():
        lines.append(f"| {name} | {st['wall_seconds']} s | {st['loadavg_before'][0]} -> {st['loadavg_after'][0]} | "
                     f"`{st['command'].replace(str(ROOT) + '/', '')}` |")
    if doc.get("note"):
        lines += ["", f"Provenance: {doc['note']}"]
    m = doc["model"]
    lines += ["", f"Model {m['version']}: context {m['context']}, horizon {m['horizon']}, quantiles {m['quantiles']}, "
              f"dense family `{m['dense_family']}`; budget {json.dumps(m['budget'])}; timings "
              f"{json.dumps(m['timings'])}; split {json.dumps(m['split'])}.", "",
              "| cluster | label | train windows | expert | search seed | trials (pruned) | search s |",
              "|---|---|---|---|---|---|---|"]
    for c in m["clusters"]:
        e = m["experts"].get(str(c["id"]), {})
        lines.append(f"| {c['id']} | {c['label']} | {c['size']} | {c['family']} | {e.get('search_seed', '')} | "
                     f"{e.get('n_trials', '')} ({e.get('n_pruned', '')}) | {e.get('search_seconds', '')} |")
    d = m["experts"].get("dense", {})
    lines.append(f"| dense | all windows | | {m['dense_family']} | {d.get('search_seed', '')} | "
                 f"{d.get('n_trials', '')} ({d.get('n_pruned', '')}) | {d.get('search_seconds', '')} |")
    lines += _headline(doc)
    ev = doc["accuracy"]
    if ev:
        order = ["mesp", "dense", "ridge", "naive", "seasonal_naive", "mean_last_hour"]
        sp = ev["config"]["split"]
        lines += ["", "## (A) Forecast accuracy on held-out functions (issue 4)", "",
                  f"{sp['n_test_windows']} windows of {sp['n_test_series']} held-out functions "
                  f"(trained on {sp['n_train_series']}).", ""]
        lines += _accuracy_rows(ev["models"], order)
        for cid, models in sorted(ev.get("per_cluster", {}).items(), key=lambda kv: kv[0]):
            lines += ["", f"### cluster {cid} (router's choice on the held-out windows)", ""]
            lines += _accuracy_rows(models, order)
    sim = doc["simulation"]
    if sim:
        lines += ["", "## (B) Cold starts vs wasted memory on held-out functions (issue 7)", "",
                  f"Scored steps {sim['eval_start']}..{sim['n_steps'] - 1}; the first {sim['eval_start']} minutes "
                  "are history. Waste is normalised to fixed-10.", "",
                  "Per family, the two Pareto-front points (p75 metric) on either side of the hybrid's waste; "
                  "every point is in claims.json.", "",
                  "| policy | p75 cold | mean cold | overall cold | waste / fixed-10 |", "|---|---|---|---|---|"]
        by = {r["policy"]: r for r in sim["results"]}
        shown = ["fixed-10", "fixed-20", "hybrid-p5-p99", "oracle"]
        ref = by["hybrid-p5-p99"]["overall"]["wasted_memory_normalised"]
        for fam in ("fixed", "mesp", "dense", "recent", "mesp+hybrid", "dense+hybrid"):  # front points nearest the hybrid's waste
            front = [p for p in sim["curves"]["cold_rate_p75"].get(fam, []) if p.get("pareto")]
            below = [p for p in front if p["x"] <= ref][-2:]
            above = [p for p in front if p["x"] > ref][:2]
            shown += [p["policy"] for p in below + above if p["policy"] not in shown]
        for name in shown:
            if name in by:
                o = by[name]["overall"]
                lines.append(f"| {name} | {_pct(o['cold_rate_p75'])} | {_pct(o['cold_rate_mean'])} | "
                             f"{_pct(o['cold_rate_overall'])} | {_num(o['wasted_memory_normalised'])} |")
        lines += ["", "Each family against the hybrid histogram (p5/p99), on its Pareto front:", "",
                  "| family | metric | rate at hybrid's waste | change | waste at hybrid's rate | change |",
                  "|---|---|---|---|---|---|"]
        for metric in ("cold_rate_p75", "cold_rate_mean"):
            comp = sim["comparison"].get(metric, {})
            for fam, c in comp.get("families", {}).items():
                if fam in ("hybrid", "oracle"):
                    continue
                lines.append(f"| {fam} | {metric} | {_pct(c['rate_at_ref_waste'])} | "
                             f"{_pct(c['rate_change_at_ref_waste'])} | {_num(c['waste_at_ref_rate'])} | "
                             f"{_pct(c['waste_change_at_ref_rate'])} |")
        lines += ["", "![curve](claims_curve.png)"]
    diag = doc.get("diagnostics")
    if diag:
        lines += ["", "### Where the cold starts are: held-out functions by active minutes in the scored 720", "",
                  "Policies at about the hybrid's waste (each forecast family's front point nearest to it). "
                  "Cells: mean cold-start rate / cold starts / idle instance-minutes.", ""]
        names = list(diag["policies"])
        lines += ["| active minutes | functions | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
        for g in diag["groups"]:
            cells = [f"{_pct(g[n]['mean_cold'])} / {g[n]['cold']} / {g[n]['idle']:.0f}" for n in names]
            lines.append(f"| {g['group']} | {g['n']} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("Waste / fixed-10 of these points: " + ", ".join(f"{n} {_num(x)}" for n, x in
                                                                      diag["policies"].items()) + ".")
    return lines


def _headline(doc: dict) -> list[str]:
    """The claims in numbers, computed from the tables below (no hand-typed figures)."""
    out = ["", "## Headline", ""]
    ev, sim = doc["accuracy"], doc["simulation"]
    if ev:
        m = ev["models"]
        mesp, dense, ridge = m["mesp"], m["dense"], m.get("ridge")

        def ratio(a: dict, b: dict, key: str) -> str:
            return f"{a[key] / b[key]:.3f}"

        out.append(f"* (A) mixture vs dense (same data, same wall-clock budget): WAPE ratio "
                   f"{ratio(mesp, dense, 'wape')}, MASE gmean ratio {ratio(mesp, dense, 'mase_gmean')}, "
                   f"MASE median ratio {ratio(mesp, dense, 'mase_median')}, RMSE ratio {ratio(mesp, dense, 'rmse')}"
                   " (below 1: the mixture is better).")
        if ridge:
            out.append(f"* (A) mixture vs ridge: WAPE ratio {ratio(mesp, ridge, 'wape')}, MASE gmean ratio "
                       f"{ratio(mesp, ridge, 'mase_gmean')}, RMSE ratio {ratio(mesp, ridge, 'rmse')}.")
    if sim:
        by = {r["policy"]: r["overall"] for r in sim["results"]}
        h = by["hybrid-p5-p99"]
        for metric, label in (("cold_rate_p75", "p75"), ("cold_rate_mean", "mean")):
            fams = sim["comparison"].get(metric, {}).get("families", {})
            for fam in ("mesp", "dense", "fixed"):
                c = fams.get(fam)
                if c:
                    out.append(f"* (B) {fam} at the hybrid histogram's waste ({h['wasted_memory_normalised']:.3f} x "
                               f"fixed-10): {label} cold-start rate {_pct(c['rate_at_ref_waste'])} vs "
                               f"{_pct(h[metric])} ({_pct(c['rate_change_at_ref_waste'])}).")
        for fam in ("mesp+hybrid", "dense+hybrid"):
            front = [p for p in sim["curves"]["cold_rate_p75"].get(fam, []) if p.get("pareto")]
            if front:
                first = by[front[0]["policy"]]
                out.append(f"* (B) {fam}, its least-waste point `{front[0]['policy']}`: waste "
                           f"{first['wasted_memory_normalised'] / h['wasted_memory_normalised'] - 1:+.1%} vs the "
                           f"hybrid; p75 {first['cold_rate_p75'] / h['cold_rate_p75'] - 1:+.1%}, mean "
                           f"{first['cold_rate_mean'] / h['cold_rate_mean'] - 1:+.1%}, overall "
                           f"{first['cold_rate_overall'] / h['cold_rate_overall'] - 1:+.1%} cold-start rate.")
        out.append("* SPES (2024) reports -49.8 % p75 cold-start rate and -56.4 % wasted memory against the "
                   "hybrid histogram on the full Azure 2019 trace (14 days, per app); this is one day, per "
                   "function, 1,288 held-out functions of a sample biased to active functions.")
    return out


GROUPS = ((1, 12, "1-12 (<= 1/h)"), (13, 72, "13-72"), (73, 360, "73-360"), (361, 720, "361-720"))


def diagnostics(a: argparse.Namespace, sim: dict) -> dict:
    """Re-run a few policies in process (the same code ``mesp simulate`` runs) and split their cold starts
    and idle time by how busy each held-out function is: which functions each policy loses on."""
    import numpy as np

    from mesp.data import load, parse_duration
    from mesp.evaluation import holdout
    from mesp.simulate import simulate, units_from_dataset
    from mesp.simulate.curves import StoreForecaster
    from mesp.simulate.policies import FixedKeepAlive, ForecastCache, ForecastPolicy, HybridHistogram

    ds = holdout(load([str(a.data)]), a.test_fraction, a.seed, "test")
    units = units_from_dataset(ds)
    start = parse_duration(a.history, ds.step_seconds)
    by = {r["policy"]: r for r in sim["results"]}
    ref = by["hybrid-p5-p99"]["overall"]["wasted_memory_normalised"]
    policies = [HybridHistogram(), FixedKeepAlive(20)]
    caches = {}
    for fam in ("mesp", "dense", "mesp+hybrid"):
        if fam not in curves_from(sim):
            continue
        front = [p for p in curves_from(sim)[fam] if p.get("pareto")]
        best = min(front, key=lambda p: abs(p["x"] - ref))["params"]
        model = fam.split("+")[0]
        cache = caches.setdefault(model, ForecastCache(StoreForecaster(a.store, model), replan=60))
        policies.append(ForecastPolicy(cache, fam, best["probability"], best["window_minutes"],
                                       best["keep_alive_minutes"]))
    report = simulate(units, policies + [FixedKeepAlive(10)], start, ds.step_seconds)
    res = report.by_name()
    active = np.array([int((u.counts[start:] > 0).sum()) for u in units])
    groups = []
    for lo, hi, label in GROUPS:
        idx = np.flatnonzero((active >= lo) & (active <= hi))
        row = {"group": label, "n": int(idx.size)}
        for p in policies:
            us = [res[p.name].units[i] for i in idx]
            rates = [u.cold_rate for u in us if u.cold_rate is not None]
            row[p.name] = {"mean_cold": float(np.mean(rates)) if rates else None,
                           "cold": int(sum(u.cold_starts for u in us)),
                           "idle": float(sum(u.idle_instance_minutes for u in us))}
        groups.append(row)
    return {"policies": {p.name: res[p.name].overall["wasted_memory_normalised"] for p in policies},
            "groups": groups, "never_active_in_scored_window": int((active == 0).sum())}


def curves_from(sim: dict) -> dict:
    return sim["curves"]["cold_rate_p75"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--store", default="/tmp/claims-store")
    p.add_argument("--work", type=Path, default=Path("/tmp/claims-work"))
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--budget-minutes", type=float, default=12.0)
    p.add_argument("--clusters", default="auto")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--history", default="12h")
    p.add_argument("--stages", default=",".join(STAGES))
    p.add_argument("--note", default="", help="provenance note written into claims.{json,md}")
    p.add_argument("--no-diagnostics", dest="diagnostics", action="store_false",
                   help="skip the per-activity breakdown of cold starts in render")
    a = p.parse_args(argv)
    stages = [s.strip() for s in a.stages.split(",") if s.strip()]
    if unknown := set(stages) - set(STAGES):
        p.error(f"unknown stage(s) {sorted(unknown)}")
    if not a.data.is_file():
        p.error(f"{a.data} not found (see ../shared/data/README.md)")
    a.work.mkdir(parents=True, exist_ok=True)
    cmds = commands(a)
    for stage in stages:
        if stage == "train":
            shutil.rmtree(a.store, ignore_errors=True)  # a fresh store: the claims are about this run only
        if stage == "render":
            render(a)
            print(f"[claims] wrote {a.out / 'claims.md'}", file=sys.stderr)
        else:
            _run_stage(stage, cmds[stage], a.work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
