"""``mesp demo``: the whole MESP loop in one command, on a synthetic fleet or on real traces.

Steps (each prints a one-line header and its wall time):

1. **data** -- a synthetic multi-day fleet from :mod:`mesp.data.synthetic` (written as a wide CSV so every
   later command can read it again), or the given traces;
2. **split** -- whole functions are held out (:func:`mesp.evaluation.split_by_series`, the same split as
   ``mesp evaluate`` and ``mesp report`` with the same seed); training only sees the rest, written to a file;
3. **train** -- :func:`mesp.train.train`: K-Shape clusters, one expert search per cluster, the dense rival with
   the same compute, publish a verified version into a local directory store;
4. **evaluate** -- the mixture (``mesp``), ``dense`` and the baselines on the held-out functions
   (:func:`mesp.report.run_evaluation`);
5. **simulate** -- keep-alive, hybrid histogram, MESP- and dense-forecast provisioning and the oracle on the
   held-out functions (:func:`mesp.report.run_simulation`);
6. **serve** -- :mod:`mesp.serve` on 127.0.0.1 (a free port, in a thread), then real HTTP requests:
   ``GET /health``, ``GET /model``, ``POST /forecast`` single and batch, and an invalid one for the 4xx;
7. **report** -- :func:`mesp.report.write_report`: ``report.md`` with its PNGs.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mesp.errors import MespError

N_STEPS = 7


@dataclass
class DemoOptions:
    """Scale and budget of a demo run. The defaults finish in a few minutes on 2 cores."""

    out: str = "mesp-demo"
    data: list[str] = field(default_factory=list)   # empty: the synthetic fleet
    fmt: str = "auto"
    functions: int = 160
    days: int = 7
    step_seconds: int = 60
    seed: int = 0
    test_fraction: float = 0.2
    context: str = "auto"
    horizon: str = "1h"
    clusters: str = "auto"
    budget_minutes: float = 2.5
    workers: int = 2
    trials: int = 20
    max_epochs: int = 30
    families: str = ""
    max_fit: int = 1500
    max_functions: int = 300   # simulated held-out functions at most
    progress: bool = True


def quick(opts: DemoOptions) -> DemoOptions:
    """The ``--quick`` scale: a small fleet at 10-minute steps, one trial of the cheap families, two clusters."""
    return replace(opts, functions=min(opts.functions, 30), days=min(opts.days, 3), step_seconds=600,
                   clusters="2" if opts.clusters == "auto" else opts.clusters,
                   budget_minutes=min(opts.budget_minutes, 0.25), workers=1, trials=1, max_epochs=2,
                   families=opts.families or "linear,dlinear", max_fit=min(opts.max_fit, 500),
                   max_functions=min(opts.max_functions, 30))


@dataclass
class DemoResult:
    store: str
    version: str
    report: Path
    report_files: list[Path]
    http: list[dict]
    evaluation: dict
    seconds: float
    steps: dict[str, float] = field(default_factory=dict)


class _Steps:
    """Numbered one-line step headers with wall times."""

    def __init__(self, total: int):
        self.total, self.n, self.times = total, 0, {}
        self._name, self._t0 = None, 0.0
        self.started = time.perf_counter()

    def start(self, name: str, what: str) -> None:
        self.end()
        self.n += 1
        self._name, self._t0 = name, time.perf_counter()
        print(f"[{self.n}/{self.total}] {name}: {what}", flush=True)

    def end(self) -> None:
        if self._name is not None:
            seconds = time.perf_counter() - self._t0
            self.times[self._name] = round(seconds, 2)
            print(f"      {self._name} done in {seconds:.1f} s", flush=True)
            self._name = None


# ------------------------------------------------------------------------------------------------- data
def write_series(dataset: Any, indices: Sequence[int] | np.ndarray, stem: Path) -> Path:
    """Write the series ``indices`` of ``dataset`` so :func:`mesp.data.load` reads them back unchanged.

    Daily patterns stay daily patterns (``<stem>.csv.gz``; they have no calendar, and their format sets the
    12 h default context). Other series of one length and start become a gzipped wide CSV (``<stem>.csv.gz``:
    an ISO timestamp column and one column per function); the rest a long Parquet file (``<stem>.parquet``:
    ``unique_id, ds, y``).
    """
    chosen = [dataset.series[int(i)] for i in indices]
    if not chosen:
        raise MespError("no series to write")
    step = dataset.step_seconds
    lengths = {len(s.values) for s in chosen}
    starts = {s.start or 0 for s in chosen}
    stem.parent.mkdir(parents=True, exist_ok=True)
    ids = [s.id for s in chosen]
    if len(set(ids)) != len(ids):
        raise MespError("series ids repeat; cannot write them as columns")
    if dataset.format == "patterns" and len(lengths) == 1:
        path = stem.with_name(stem.name + ".csv.gz")
        tmp = path.with_name(f".{path.name}.tmp")
        with gzip.open(tmp, "wt", compresslevel=3, newline="") as fh:
            fh.write("vec_id,n_source_files," + ",".join(str(j + 1) for j in range(lengths.pop())) + "\n")
            for s in chosen:
                counts = np.asarray(s.values, dtype=np.float64)
                fh.write(f"{_csv_name(s.id)},{int(s.meta.get('weight', 1))},"
                         + ",".join(map(str, _cells(counts).tolist())) + "\n")
        os.replace(tmp, path)
        return path
    if len(lengths) == 1 and len(starts) == 1:
        path = stem.with_name(stem.name + ".csv.gz")
        start = np.datetime64(int(starts.pop()), "s")
        matrix = np.stack([np.asarray(s.values) for s in chosen], axis=1)
        cells = _cells(matrix)
        tmp = path.with_name(f".{path.name}.tmp")
        with gzip.open(tmp, "wt", compresslevel=3, newline="") as fh:
            fh.write("timestamp," + ",".join(_csv_name(i) for i in ids) + "\n")
            for r in range(cells.shape[0]):
                fh.write(f"{start + np.timedelta64(r * step, 's')}," + ",".join(map(str, cells[r].tolist())) + "\n")
        os.replace(tmp, path)
        return path
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = stem.with_name(stem.name + ".parquet")
    uid = np.concatenate([np.full(len(s.values), s.id, dtype=object) for s in chosen])
    ds = np.concatenate([(s.start or 0) + np.arange(len(s.values), dtype=np.int64) * step for s in chosen])
    y = np.concatenate([np.asarray(s.values, dtype=np.float64) for s in chosen])
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.table({"unique_id": pa.array(uid, pa.string()), "ds": ds, "y": y}), tmp)
    os.replace(tmp, path)
    return path


def _cells(values: np.ndarray) -> np.ndarray:
    """Counts as integers when they are whole (shorter files), else as floats (written exactly by repr)."""
    values = np.asarray(values, dtype=np.float64)
    return values.astype(np.int64) if np.all(values == np.round(values)) else values


def _csv_name(name: str) -> str:
    if any(c in name for c in ',"\n\r'):
        raise MespError(f"series id {name!r} cannot be a CSV column name")
    return name


def _describe_synthetic(dataset: Any) -> str:
    kinds = Counter(s.meta.get("kind", "?") for s in dataset.series)
    return ", ".join(f"{k} {n}" for k, n in kinds.most_common())


# ------------------------------------------------------------------------------------------------- HTTP
def _request(base: str, method: str, path: str, body: Any = None, timeout: float = 30.0) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:  # 4xx/5xx still carry the API's JSON answer
        status, raw = err.code, err.read()
    except (urllib.error.URLError, OSError) as err:
        raise MespError(f"the local API did not answer {method} {path}: {getattr(err, 'reason', err)}") from None
    ms = (time.perf_counter() - started) * 1000
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = raw.decode(errors="replace")[:200]
    return {"method": method, "path": path, "status": status, "ms": round(ms, 1), "request": body, "answer": answer}


def _cluster_text(item: dict) -> str:
    c = item.get("cluster") or {}
    where = "novel -> dense" if item.get("novel") else f"cluster {c.get('id')} \"{c.get('label')}\""
    return f"{where} [{(item.get('expert') or {}).get('family')}]"


def _forecast_text(item: dict, actual: float | None) -> str:
    total = sum(item.get("forecast") or [])
    quantiles = item.get("quantiles") or {}
    top = max(quantiles, key=float) if quantiles else None
    text = f"next hour {total:,.0f} calls"
    if top is not None and top != "0.5":
        text += f" (q{top} {sum(quantiles[top]):,.0f})"
    if actual is not None:
        text += f", actual {actual:,.0f}"
    return text


def summarise_call(call: dict, actual: dict[str, float] | None = None) -> str:
    """One line per HTTP exchange, e.g. ``POST /forecast  200   8.1 ms  syn00012: cluster 1 ...``."""
    actual = actual or {}
    a = call["answer"]
    head = f"{call['method']:<4} {call['path']:<9} {call['status']}  {call['ms']:6.1f} ms  "
    if not isinstance(a, dict):
        return head + str(a)
    if call["status"] >= 400:
        return head + f"{a.get('message')}"
    if call["path"] == "/health":
        return head + f"status {a.get('status')}, model {a.get('model_version')}"
    if call["path"] == "/model":
        shapes = [c for c in a.get("clusters", []) if c.get("id", -1) >= 0]
        return head + (f"version {a.get('version')}: {len(shapes)} clusters + idle, context {a.get('context')}"
                       f" -> horizon {a.get('horizon')} steps, quantiles {a.get('quantiles')}, dense {a.get('dense')}")
    if "items" in a:
        lines = [f"batch of {a.get('count')}, version {a.get('model_version')}"]
        lines += [f"{'':<31}{it.get('id')}: {_cluster_text(it)}, {_forecast_text(it, actual.get(it.get('id')))}"
                  for it in a["items"]]
        return head + "\n".join(lines)
    sid = call.get("label") or "series"
    return head + f"{sid}: {_cluster_text(a)}, {_forecast_text(a, actual.get(sid))}"


def exercise_api(store: str, dataset: Any, held_out: np.ndarray, context: int, horizon: int,
                 router: Any) -> list[dict]:
    """Serve ``store`` on a free local port and send the demo's requests; returns the exchanges."""
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "mesp-forecast")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MESP")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
    import mesp.api
    from mesp.serve import make_server

    # The handler logs JSON lines and prints EMF metrics to stdout, as on Lambda; the demo shows its own
    # summary instead (warnings still get through).
    saved_level = mesp.api.logger.log_level
    mesp.api.logger.setLevel(logging.WARNING)
    try:
        try:
            server = make_server(store, "127.0.0.1", 0, quiet=True)
        except OSError as err:
            raise MespError(f"cannot listen on 127.0.0.1: {err.strerror or err}") from None
        host, port = server.server_address[:2]
        thread = threading.Thread(target=server.serve_forever, name="mesp-demo-api", daemon=True)
        thread.start()
        base = f"http://{host}:{port}"
        print(f"      local API on {base} (mesp.serve, the Lambda handler)", flush=True)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                calls = _send_requests(base, dataset, held_out, context, horizon, router)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)
    finally:
        mesp.api.logger.setLevel(saved_level)
        mesp.api.set_predictor(None)
    for c in calls:
        print("      " + summarise_call(c, c["actual"]).replace("\n", "\n      "), flush=True)
    return calls


def _send_requests(base: str, dataset: Any, held_out: np.ndarray, context: int, horizon: int,
                   router: Any) -> list[dict]:
    # The last whole (context -> horizon) of each held-out function: we send the context and know the actual.
    candidates = []
    for i in held_out.tolist():
        v = np.asarray(dataset.series[i].values, dtype=np.float64)
        if v.size >= context + horizon:
            candidates.append((dataset.series[i].id, v[-(context + horizon):-horizon], float(v[-horizon:].sum())))
    if not candidates:
        raise MespError(f"no held-out function has {context}+{horizon} steps to send to the API")
    X = np.stack([c[1] for c in candidates]).astype(np.float32)
    routed = np.asarray(router.route(X)[0]) if router is not None else np.zeros(len(candidates), dtype=np.int64)
    volume = np.array([c[1].sum() + c[2] for c in candidates])
    by_cluster: dict[int, int] = {}
    for j in np.argsort(-volume, kind="stable").tolist():  # the busiest function of each routed cluster
        by_cluster.setdefault(int(routed[j]), j)
    shaped = [j for c, j in sorted(by_cluster.items()) if c >= 0] or list(by_cluster.values())
    single = shaped[0]
    # one function per other cluster, the idle group's, then the single one again; ids must be unique
    batch = list(dict.fromkeys(shaped[1:] + [j for c, j in by_cluster.items() if c < 0] + shaped[:1]))[:4]

    def series(j: int) -> list[float]:
        return [float(x) for x in candidates[j][1]]

    actual = {candidates[j][0]: candidates[j][2] for j in {single, *batch}}
    calls = [_request(base, "GET", "/health"), _request(base, "GET", "/model")]
    call = _request(base, "POST", "/forecast", {"series": series(single)})
    call["label"] = candidates[single][0]
    calls.append(call)
    calls.append(_request(base, "POST", "/forecast",
                          {"items": [{"id": candidates[j][0], "series": series(j)} for j in batch],
                           "quantiles": [0.5]}))
    bad = series(single)
    bad[-1] = -1.0  # a negative count: refused with 422 and the field's name
    calls.append(_request(base, "POST", "/forecast", {"series": bad}))
    for c in calls:
        c["actual"] = actual
    return calls


def _api_markdown(calls: list[dict]) -> str:
    lines = ["Real HTTP requests to `mesp serve` (the same handler as the Lambda function) during the demo:", "",
             "```"]
    for c in calls:
        lines.append(summarise_call(c, c.get("actual")))
    lines += ["```", "", "Each request body holds one context window of a held-out function (counts per step, "
              "ending one horizon before its trace ends); `actual` is what the function really did next."]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- the demo
def run_demo(opts: DemoOptions) -> DemoResult:
    """Run every step (see the module docstring); raises :class:`MespError` with a one-line reason."""
    from mesp.data import load
    from mesp.evaluation import format_table, split_by_series
    from mesp.jobs.common import resolve_context
    from mesp.report import prepare, run_evaluation, run_simulation, write_report
    from mesp.train import TrainOptions, train

    out = Path(opts.out)
    if out.exists() and not out.is_dir():
        raise MespError(f"--out {out} exists and is not a folder")
    split_by_series(2, opts.test_fraction, opts.seed)  # validates before any slow work
    steps = _Steps(N_STEPS)
    data_dir, store, report_dir = out / "data", str(out / "store"), out / "report"

    if opts.data:
        steps.start("data", f"loading {', '.join(opts.data)}")
        dataset = load(opts.data, fmt=opts.fmt)
        data_paths = [str(p) for p in opts.data]
        print(f"      {len(dataset):,} functions, format {dataset.format}, {dataset.step_seconds}-second steps, "
              f"{int(dataset.lengths().min()):,}..{int(dataset.lengths().max()):,} steps each", flush=True)
    else:
        from mesp.data.synthetic import generate

        steps.start("data", f"generating a SYNTHETIC fleet ({opts.functions} functions x {opts.days} days at "
                            f"{opts.step_seconds}-second steps; mesp.data.synthetic, for the demo, never for claims)")
        synthetic = generate(n_functions=opts.functions, days=opts.days, seed=opts.seed, step_seconds=opts.step_seconds)
        print(f"      archetypes: {_describe_synthetic(synthetic)}", flush=True)
        path = write_series(synthetic, range(len(synthetic)), data_dir / "synthetic")
        dataset = load([str(path)])  # read back, so every step sees exactly what `mesp report --data` would
        data_paths = [str(path)]
        print(f"      wrote {path} ({path.stat().st_size / 1e6:.1f} MB)", flush=True)
    if len(dataset) < 2:
        raise MespError(f"the demo needs at least 2 functions to hold some out; {', '.join(data_paths)} has "
                        f"{len(dataset)}")

    steps.start("split", f"holding out {opts.test_fraction:.0%} of the functions (seed {opts.seed}) for evaluation")
    train_idx, test_idx = split_by_series(len(dataset), opts.test_fraction, opts.seed)
    train_file = write_series(dataset, train_idx, data_dir / "train")
    print(f"      training sees {train_idx.size:,} functions ({train_file}); {test_idx.size:,} are held out",
          flush=True)

    context = resolve_context(opts.context, dataset)
    steps.start("train", f"K-Shape clusters, one expert search per cluster, the dense rival; budget "
                         f"{opts.budget_minutes:g} min on {opts.workers} worker(s); publish into {store}")
    topts = TrainOptions(context=context, horizon=opts.horizon, clusters=opts.clusters,
                         budget_minutes=opts.budget_minutes, seed=opts.seed, workers=opts.workers, trials=opts.trials,
                         max_epochs=opts.max_epochs, families=opts.families, max_fit=opts.max_fit,
                         data_format="auto", progress=opts.progress,
                         extra={"demo": {"data": data_paths, "held_out_functions": int(test_idx.size),
                                         "test_fraction": opts.test_fraction, "seed": opts.seed}})
    published = train([str(train_file)], store, topts)
    rd = prepare(store, dataset, test_fraction=opts.test_fraction, seed=opts.seed, data_paths=data_paths)
    m = rd.manifest
    print(f"      version {published.version} published, LATEST ({'reused' if published.reused else 'new'})",
          flush=True)
    for c in sorted(m.clusters, key=lambda c: (c.id < 0, c.id)):
        print(f"      cluster {c.id:>3}  {c.size:>7,} windows  {c.expert.family:<18} {c.label}", flush=True)
    print(f"      dense               {m.dense.family}", flush=True)

    steps.start("evaluate", f"mesp vs dense vs baselines on the {test_idx.size:,} held-out functions")
    evaluation = run_evaluation(rd, progress=opts.progress)
    print("      " + format_table(evaluation).replace("\n", "\n      "), flush=True)
    print("      " + _headline(evaluation), flush=True)

    steps.start("simulate", "cold starts vs wasted memory: keep-alive, hybrid histogram, mesp/dense forecasts, oracle")
    simulation = run_simulation(rd, max_units=opts.max_functions, progress=opts.progress)
    for line in _simulation_lines(simulation, max(m.quantiles)):
        print("      " + line, flush=True)

    steps.start("serve", "the forecast API on a local port, and real HTTP requests to it")
    calls = exercise_api(store, dataset, test_idx, m.context, m.horizon, rd.loaded.router)
    codes = [c["status"] for c in calls]
    if any(s != 200 for s in codes[:-1]) or not 400 <= codes[-1] < 500:
        raise MespError(f"the local API answered {codes}; expected 200 for the valid requests and a 4xx last")

    steps.start("report", f"report.md with its pictures in {report_dir}")
    demo_cmd = "mesp demo" + (f" --data {' '.join(data_paths)}" if opts.data else "") + f" --out {opts.out}"
    commands = [f"{demo_cmd}   # this run",
                f"mesp report --model {store} --data {' '.join(data_paths)} --test-fraction {opts.test_fraction} "
                f"--seed {opts.seed} --out {report_dir}",
                f"mesp evaluate --data {' '.join(data_paths)} --model {store} --test-fraction {opts.test_fraction} "
                f"--seed {opts.seed}",
                f"mesp serve --model {store}"]
    title = f"MESP demo: model {m.version} on {'real traces' if opts.data else 'a synthetic fleet'}"
    report = write_report(rd, report_dir, evaluation, simulation, title=title,
                          sections=[("The local API", _api_markdown(calls))], commands=commands)
    for f in report.files:
        print(f"      {f}", flush=True)
    steps.end()
    total = time.perf_counter() - steps.started
    print(f"demo finished in {total / 60:.1f} min ({', '.join(f'{k} {v:.0f} s' for k, v in steps.times.items())})")
    print(f"open {report.path}; serve the model with: mesp serve --model {store}")
    return DemoResult(store=store, version=m.version, report=report.path, report_files=report.files, http=calls,
                      evaluation=evaluation, seconds=total, steps=steps.times)


def _headline(evaluation: dict) -> str:
    models = evaluation["models"]
    base = {k: v for k, v in models.items() if k not in ("mesp", "dense") and v.get("wape") is not None}
    parts = []
    for name in ("mesp", "dense"):
        if name in models:
            parts.append(f"{name} WAPE {_num(models[name].get('wape'))} / MASE gmean "
                         f"{_num(models[name].get('mase_gmean'))}")
    if base:
        best = min(base, key=lambda k: base[k]["wape"])
        parts.append(f"best baseline {best} WAPE {_num(base[best]['wape'])} / MASE gmean "
                     f"{_num(base[best].get('mase_gmean'))}")
    return "; ".join(parts)


def _num(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _simulation_lines(simulation: dict, top_quantile: float) -> list[str]:
    by_name = {r["policy"]: r for r in simulation.get("results", [])}
    lines = [f"{'policy':<28} {'p75 cold %':>10} {'overall cold %':>14} {'waste / fixed-10':>16}"]
    names = ["fixed-10", "fixed-20", "hybrid-p5-p99"]
    names += [p for p, r in by_name.items() if r["family"] in ("mesp", "dense")
              and r["params"].get("threshold") == 0.5 and r["params"].get("quantile") == top_quantile]
    names.append("oracle")
    for name in names:
        if name not in by_name:
            continue
        o = by_name[name]["overall"]
        pct = (lambda v: "n/a" if v is None else f"{100 * v:.3g}")
        waste = o.get("wasted_memory_normalised")
        lines.append(f"{name:<28} {pct(o.get('cold_rate_p75')):>10} {pct(o.get('cold_rate_overall')):>14} "
                     f"{'n/a' if waste is None else f'{waste:.3g}':>16}")
    from mesp.report import comparison_sentences

    lines += [sentence.replace("`", "") for sentence in comparison_sentences(simulation)]
    return lines
