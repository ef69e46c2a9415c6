"""Expert zoo and mixture-vs-dense benchmark (issue 4).

Part ``zoo``: for each family at the production shape (12 h context, 1 h horizon, per-minute), the
parameter count, ONNX size, parity error and onnxruntime batch-1 / batch-256 latency (1 intra-op thread).

Part ``compare``: on ``../shared/data/azure2019/daily_patterns_train.csv.gz``, functions (rows) are
split into train and test parts (seeded, by function, never by time); windows are 12 h -> 1 h with a
1 h stride. Training contexts are clustered with ``mesp.clustering.KShape`` (idle contexts, by
``mesp.sbd.is_idle``, form the idle group, served by ``rule:idle``); test contexts are routed with
``KShape.predict`` as serving would. Each cluster gets ``search_expert`` with a share of the total
budget proportional to its windows (``split_budget``); the dense rival gets ``search_dense`` on all
training windows with the *sum* of the experts' budgets. Same families, same trainer, same threads.
Reported overall and per routed cluster for mixture, dense, dense+idle-rule (isolates the idle rule),
and the baselines of ``mesp.baselines``: WAPE, MASE (geometric mean / median / mean), MAE, RMSE, and
the q0.9 pinball loss.

    .venv/bin/python benchmarks/bench_experts.py --part all --budget-seconds 600 --clusters 4

Writes ``benchmarks/results/experts.json`` and ``experts.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MESP_SHARED_DATA", ROOT.parent / "shared" / "data")) / "azure2019" / \
    "daily_patterns_train.csv.gz"
QUANTILES = (0.5, 0.9)
ZOO = [("linear", {}), ("dlinear", {}), ("mlp", {}), ("lstm", {"patch": 24}), ("patchtst", {"patch": 24}),
       ("autoformer", {"patch": 12}), ("nbeats", {"stack": "generic", "width": 256}),
       ("nbeats", {"stack": "interpretable", "width": 256})]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def zoo(context: int, horizon: int, repeats: int = 200) -> list[dict]:
    import onnxruntime as ort
    import torch

    from mesp.experts import build, n_params
    from mesp.experts.export import export

    rng = np.random.default_rng(0)
    X = rng.poisson(rng.lognormal(2, 2, size=(256, 1)) * np.ones((256, context))).astype(np.float32)
    rows = []
    for family, params in ZOO:
        torch.manual_seed(0)
        model = build(family, context, horizon, QUANTILES, params)
        with tempfile.TemporaryDirectory() as tmp:
            rep = export(model, Path(tmp) / "m.onnx", X[:64])
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            t0 = time.perf_counter()
            sess = ort.InferenceSession(rep.path, opts, providers=["CPUExecutionProvider"])
            load_ms = (time.perf_counter() - t0) * 1e3
        lat = {}
        for b in (1, 256):
            x = X[:b]
            sess.run(None, {"context": x})
            ts = []
            for _ in range(repeats if b == 1 else max(5, repeats // 20)):
                t0 = time.perf_counter()
                sess.run(None, {"context": x})
                ts.append(time.perf_counter() - t0)
            lat[b] = float(np.median(ts) * 1e3)
        name = family + (f"-{params['stack']}" if "stack" in params else "")
        rows.append({"family": name, "params": n_params(model), "onnx_bytes": rep.size_bytes,
                     "max_rel_error": rep.max_rel_error, "session_load_ms": load_ms,
                     "batch1_ms": lat[1], "batch256_ms_per_series": lat[256] / 256, "config": params})
        log(f"zoo {name}: {rows[-1]['params']} params, {rep.size_bytes / 1e6:.2f} MB, {lat[1]:.3f} ms")
    return rows


def compare(args) -> dict:
    import torch

    from mesp.baselines import default_baselines
    from mesp.clustering import KShape  # main() checks it is importable
    from mesp.data import load
    from mesp.experts import predict
    from mesp.manifest import IDLE_CLUSTER_ID
    from mesp.metrics import forecast_metrics, per_cluster_metrics, pinball_loss
    from mesp.rules import predict_rule
    from mesp.search import search_dense, search_expert, split_budget
    from mesp.windows import make_windows

    t_start = time.perf_counter()
    ds = load([str(DATA)])
    step = ds.step_seconds
    hour, context = 3600 // step, 12 * 3600 // step
    arrays = [s.values for s in ds.series]
    rng = np.random.default_rng(args.seed)
    test_ids = set(rng.permutation(len(arrays))[: int(round(args.test_frac * len(arrays)))].tolist())
    train_ids = [i for i in range(len(arrays)) if i not in test_ids]
    test_ids = sorted(test_ids)
    wtr = make_windows([arrays[i] for i in train_ids], context, hour, stride=hour)
    wte = make_windows([arrays[i] for i in test_ids], context, hour, stride=hour)
    log(f"{len(arrays)} functions -> train {len(train_ids)} ({len(wtr)} windows), "
        f"test {len(test_ids)} ({len(wte)} windows)")

    t0 = time.perf_counter()
    fit_rows = rng.choice(len(wtr), size=min(args.kshape_sample, len(wtr)), replace=False)
    km = KShape(args.clusters, random_state=args.seed, max_iter=args.kshape_iter).fit(wtr.X[np.sort(fit_rows)])
    lab_tr, lab_te = km.predict(wtr.X), km.predict(wte.X)
    kshape_s = time.perf_counter() - t0
    sizes = {int(c): int((lab_tr == c).sum()) for c in np.unique(lab_tr)}
    log(f"K-Shape k={args.clusters} in {kshape_s:.0f} s: train windows per cluster {sizes}")

    shape_ids = [c for c in sorted(sizes) if c != IDLE_CLUSTER_ID]
    budgets = dict(zip(shape_ids, split_budget([sizes[c] for c in shape_ids], args.budget_seconds)))
    families = args.families.split(",") if args.families else None
    common = dict(quantiles=QUANTILES, n_trials=args.n_trials, seed=args.seed, families=families,
                  max_epochs=args.max_epochs, threads=args.threads)
    experts, expert_info = {}, {}
    for c in shape_ids:
        log(f"cluster {c}: {sizes[c]} windows, budget {budgets[c]:.0f} s")
        res = search_expert(wtr.subset(lab_tr == c), budget_seconds=budgets[c], **common)
        experts[c] = res
        expert_info[str(c)] = {"family": res.family, "params": res.params, "rule": res.rule,
                               "val_loss": res.val_loss, "n_trials": res.n_trials, "n_pruned": res.n_pruned,
                               "seconds": res.seconds, "budget_seconds": budgets[c], "train_windows": sizes[c]}
        log(f"cluster {c}: {res.family} {res.params} val {res.val_loss:.4f} "
            f"({res.n_trials} trials, {res.n_pruned} pruned, {res.seconds:.0f} s)")
    log(f"dense: {len(wtr)} windows, budget {args.budget_seconds:.0f} s")
    dense = search_dense(wtr, budget_seconds=args.budget_seconds, **common)
    log(f"dense: {dense.family} {dense.params} val {dense.val_loss:.4f} ({dense.n_trials} trials, "
        f"{dense.n_pruned} pruned, {dense.seconds:.0f} s)")

    with torch.no_grad():
        q_dense = predict(dense.model, wte.X)
    q_mix = q_dense.copy()
    idle = lab_te == IDLE_CLUSTER_ID
    q_idle_rule = predict_rule("rule:idle", wte.X[idle], hour, QUANTILES, step) if idle.any() else None
    for c, res in experts.items():
        m = lab_te == c
        if m.any() and res.model is not None:
            q_mix[m] = predict(res.model, wte.X[m])
    q_dense_idle = q_dense.copy()
    if idle.any():
        q_mix[idle] = q_idle_rule
        q_dense_idle[idle] = q_idle_rule
    preds = {"mixture": q_mix, "dense": q_dense, "dense+idle_rule": q_dense_idle}
    baseline_info = {}
    for name, model in default_baselines(step, context).items():
        t0 = time.perf_counter()
        model.fit(wtr)
        preds[name] = model.predict_quantiles(wte.X, list(QUANTILES))
        baseline_info[name] = {"fit_predict_seconds": time.perf_counter() - t0}
        log(f"baseline {name} in {baseline_info[name]['fit_predict_seconds']:.0f} s")

    results = {}
    for name, q in preds.items():
        point = q[:, QUANTILES.index(0.5)]
        results[name] = {
            "overall": {**forecast_metrics(wte.Y, point, wte.scale, wte.series_index),
                        "pinball_q0.9": float(pinball_loss(wte.Y, q, np.array(QUANTILES))[1])},
            "per_cluster": per_cluster_metrics(wte.Y, point, wte.scale, wte.series_index, lab_te),
        }
    test_sizes = {int(c): int((lab_te == c).sum()) for c in np.unique(lab_te)}
    return {"config": {**vars(args), "context": context, "horizon": hour, "stride": hour, "step_seconds": step,
                       "quantiles": QUANTILES, "torch_threads": args.threads},
            "split": {"train_functions": len(train_ids), "test_functions": len(test_ids),
                      "train_windows": len(wtr), "test_windows": len(wte)},
            "clusters": {"train_windows": sizes, "test_windows": test_sizes, "kshape_seconds": kshape_s,
                         "inertia": float(km.inertia_)},
            "experts": expert_info,
            "dense": {"family": dense.family, "params": dense.params, "val_loss": dense.val_loss,
                      "n_trials": dense.n_trials, "n_pruned": dense.n_pruned, "seconds": dense.seconds,
                      "budget_seconds": args.budget_seconds},
            "baselines": baseline_info, "results": results, "seconds": time.perf_counter() - t_start}


def _fmt(v) -> str:
    return "-" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))


def markdown(out: dict) -> str:
    lines = ["# Experts benchmark (issue 4)", ""]
    if "zoo" in out:
        lines += ["## Model zoo at 720 -> 60 (per-minute), onnxruntime CPU, 1 intra-op thread", "",
                  "| family | params | ONNX MB | parity rel. err | load ms | batch-1 ms | batch-256 ms/series |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for r in out["zoo"]:
            lines.append(f"| {r['family']} | {r['params']:,} | {r['onnx_bytes'] / 1e6:.2f} | {r['max_rel_error']:.1e} "
                         f"| {r['session_load_ms']:.0f} | {r['batch1_ms']:.3f} | {r['batch256_ms_per_series']:.4f} |")
        lines.append("")
    cmp_ = out.get("compare")
    if cmp_:
        cfg = cmp_["config"]
        res = cmp_["results"]
        lines += [f"## Mixture vs dense on daily_patterns_train (12 h -> 1 h, stride 1 h)", "",
                  f"Split by function: {cmp_['split']['train_functions']} train / {cmp_['split']['test_functions']} "
                  f"test functions ({cmp_['split']['train_windows']} / {cmp_['split']['test_windows']} windows). "
                  f"K-Shape k={cfg['clusters']} on {cfg['kshape_sample']} training contexts; test routed by "
                  f"`KShape.predict`. Budget: {cfg['budget_seconds']:.0f} s for all experts together and "
                  f"{cfg['budget_seconds']:.0f} s for the dense model, {cfg['threads']} torch threads, "
                  f"seed {cfg['seed']}, at most {cfg['n_trials']} trials per study.", "",
                  "| model | WAPE | MASE gmean | MASE median | MASE mean | MAE | RMSE | pinball q0.9 | WAPE / dense |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        dense_wape = res["dense"]["overall"]["wape"]
        for name, r in res.items():
            o = r["overall"]
            lines.append(f"| {name} | {_fmt(o['wape'])} | {_fmt(o['mase_gmean'])} | {_fmt(o['mase_median'])} | "
                         f"{_fmt(o['mase_mean'])} | {_fmt(o['mae'])} | {_fmt(o['rmse'])} | {_fmt(o['pinball_q0.9'])} | "
                         f"{o['wape'] / dense_wape:.3f} |")
        lines += ["", "Per routed cluster (WAPE / MASE gmean):", "",
                  "| cluster | train win. | test win. | expert | " + " | ".join(res) + " |",
                  "|---|---:|---:|---|" + "---:|" * len(res)]
        for c in sorted(cmp_["clusters"]["test_windows"], key=int):
            e = cmp_["experts"].get(str(c), {"family": "rule:idle"})
            cells = []
            for name in res:
                pc = res[name]["per_cluster"].get(str(c), {})
                cells.append(f"{_fmt(pc.get('wape'))} / {_fmt(pc.get('mase_gmean'))}")
            lines.append(f"| {c} | {cmp_['clusters']['train_windows'].get(c, cmp_['clusters']['train_windows'].get(str(c), 0))} "
                         f"| {cmp_['clusters']['test_windows'][c]} | {e['family']} | " + " | ".join(cells) + " |")
        d = cmp_["dense"]
        lines += ["", f"Dense: {d['family']} {d['params']} ({d['n_trials']} trials, {d['n_pruned']} pruned, "
                      f"{d['seconds']:.0f} s). Experts: " + "; ".join(
                          f"{c}: {e['family']} ({e['rule']}, {e['n_trials']} trials, {e['seconds']:.0f} s)"
                          for c, e in cmp_["experts"].items()), ""]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=["zoo", "compare", "all"], default="all")
    p.add_argument("--budget-seconds", type=float, default=600.0, help="all experts together; dense gets the same")
    p.add_argument("--clusters", type=int, default=4)
    p.add_argument("--n-trials", type=int, default=40)
    p.add_argument("--max-epochs", type=int, default=20)
    p.add_argument("--families", default="", help="comma list; default: every family")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-frac", type=float, default=0.2)
    p.add_argument("--kshape-sample", type=int, default=8000)
    p.add_argument("--kshape-iter", type=int, default=30)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "experts"))
    args = p.parse_args()
    out: dict = {"created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if args.part in ("zoo", "all"):
        out["zoo"] = zoo(720, 60)
    if args.part in ("compare", "all"):
        if not DATA.exists():
            print(f"data file {DATA} is missing", file=sys.stderr)
            return 2
        try:
            import mesp.baselines  # noqa: F401
            import mesp.clustering  # noqa: F401
        except ImportError as exc:
            print(f"the comparison needs mesp.clustering.KShape and mesp.baselines: {exc}", file=sys.stderr)
            return 2
        out["compare"] = compare(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    prev = Path(args.out + ".json")
    if prev.exists():  # keep the other part's last result when only one part is re-run
        old = json.loads(prev.read_text())
        out = {**{k: v for k, v in old.items() if k in ("zoo", "compare")}, **out}
    prev.write_text(json.dumps(out, indent=2, default=float))
    Path(args.out + ".md").write_text(markdown(out))
    print(markdown(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
