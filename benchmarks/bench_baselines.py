"""Baselines on the real Azure 2019 daily patterns, 12 h context -> 1 h horizon (issue 2's measurement).

For each seed, runs exactly ``mesp evaluate --data PATTERNS --context 12h --horizon 1h --test-fraction F
--seed S --baselines <all six> --json ...`` (the held-out functions differ per seed; WAPE in particular
moves with which busy functions land in the test part) and writes ``benchmarks/results/baselines.json``
(one document per seed) and ``baselines.md``: every baseline's metrics, its WAPE and geometric-mean MASE
as ratios to naive (< 1 beats naive), and fit / predict seconds.

    .venv/bin/python benchmarks/bench_baselines.py [--data PATH] [--test-fraction 0.2] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "azure2019" / "daily_patterns_train.csv.gz"
RESULTS = ROOT / "benchmarks" / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--test-fraction", default="0.2")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()

    from mesp.cli import main as mesp

    RESULTS.mkdir(parents=True, exist_ok=True)
    machine = {"python": platform.python_version(), "processor": platform.processor(),
               "system": platform.platform()}
    docs = {}
    lines = ["# Baselines: Azure 2019 daily patterns, 12 h context -> 1 h horizon", ""]
    ratios: dict[str, list[tuple[float, float]]] = {}
    for seed in args.seeds.split(","):
        out = RESULTS / f".baselines_seed{seed}.json"
        argv = ["evaluate", "--data", args.data, "--context", "12h", "--horizon", "1h",
                "--test-fraction", args.test_fraction, "--seed", seed,
                "--baselines", "naive,seasonal_naive,mean_last_hour,ridge,ridge_local,ridge_global",
                "--json", str(out)]
        rc = mesp(argv)
        if rc:
            return rc
        doc = json.loads(out.read_text())
        out.unlink()
        doc["config"]["command"] = "mesp " + " ".join(argv)
        doc["config"]["machine"] = machine
        docs[f"seed{seed}"] = doc
        naive = doc["models"]["naive"]
        split = doc["config"]["split"]
        lines += [
            f"## seed {seed}", "",
            f"`{doc['config']['command']}`", "",
            f"{split['n_test_windows']} windows of {split['n_test_series']} held-out functions "
            f"(trainable baselines fit on {split['n_train_windows']} windows of the other "
            f"{split['n_train_series']}). Ratios are to naive (< 1 is better).", "",
            "| model | wape | wape / naive | mase_gmean | gmean / naive | mase_median | mase_mean | mae "
            "| rmse "
            "| fit s | predict s |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, m in doc["models"].items():
            cfg = doc["config"]["models"][name]
            r = (m["wape"] / naive["wape"], m["mase_gmean"] / naive["mase_gmean"])
            ratios.setdefault(name, []).append(r)
            lines.append(
                f"| {name} | {m['wape']:.4f} | {r[0]:.3f} | {m['mase_gmean']:.4f} | {r[1]:.3f} | "
                f"{m['mase_median']:.4f} | {m['mase_mean']:.3f} | {m['mae']:.3f} | {m['rmse']:.2f} | "
                f"{cfg.get('fit_seconds', 0):.1f} | {cfg['predict_seconds']:.1f} |")
        ridge = doc["config"]["models"]["ridge"]
        lines += ["", f"ridge: local weight {ridge['weight']}, local alpha {ridge['local']['alpha']}, "
                      f"global alpha {ridge['global_model']['alpha']}.", ""]
    lines += ["## mean ratio to naive over seeds", "", "| model | wape / naive | mase_gmean / naive |",
              "|---|---|---|"]
    for name, rs in ratios.items():
        mean_wape, mean_gmean = (sum(r[i] for r in rs) / len(rs) for i in (0, 1))
        lines.append(f"| {name} | {mean_wape:.3f} | {mean_gmean:.3f} |")
    first = next(iter(docs.values()))
    effective = first["config"]["models"]["seasonal_naive"].get("effective", "seasonal")
    lines += ["", f"Seasonal naive: {effective} (each pattern is a single day, so a 12 h context never "
                  "reaches the day-ago lag).", ""]
    (RESULTS / "baselines.json").write_text(json.dumps(docs, indent=2) + "\n")
    (RESULTS / "baselines.md").write_text("\n".join(lines))
    print("\n".join(lines), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
