"""``mesp report``: a markdown report with pictures for a published model on a set of traces."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="markdown report with PNGs: catalogue, forecasts, errors, cold starts, routing, budget",
        description="Load the newest verified version of a model store and the traces, hold out whole functions "
                    "(the same split as mesp evaluate), then write report.md (also as README.md) with PNGs: the "
                    "cluster catalogue, forecast vs actual per cluster with the quantile band, error by cluster "
                    "for mixture/dense/baselines, cold starts vs wasted memory of the provisioning policies, the "
                    "routing confusion and the training budget and timing. The evaluation and simulation "
                    "documents are saved beside it; pass --evaluation/--simulation to reuse existing ones.")
    p.add_argument("--model", required=True, metavar="STORE", help="model store (directory or s3://bucket/prefix)")
    p.add_argument("--data", nargs="+", required=True, metavar="PATH", help="trace files (one format)")
    p.add_argument("--out", default=None, metavar="DIR", help="report folder (default: mesp-report-<version>)")
    p.add_argument("--format", dest="fmt", default="auto",
                   choices=["auto", "patterns", "azure2019", "azure2021", "wide", "long"],
                   help="file format (default: detected from the header)")
    p.add_argument("--test-fraction", type=float, default=0.2, metavar="F",
                   help="share of functions held out for the figures, in [0, 1) (default 0.2; 0 = all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/test split (default 0)")
    p.add_argument("--evaluation", metavar="FILE", help="reuse this mesp evaluate --json document")
    p.add_argument("--simulation", metavar="FILE", help="reuse this mesp simulate --json document")
    p.add_argument("--max-functions", type=int, default=500, metavar="N",
                   help="simulate at most N held-out functions (default 500)")
    p.add_argument("--no-progress", action="store_true", help="no progress messages")
    p.set_defaults(run=run)


def _read_json(path: str, what: str) -> dict:
    import json

    from mesp.errors import MespError

    try:
        with open(path) as fh:
            doc = json.load(fh)
    except OSError as err:
        raise MespError(f"--{what} {path}: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise MespError(f"--{what} {path}: not JSON ({err.msg} at line {err.lineno})") from None
    key = "per_cluster" if what == "evaluation" else "curves"
    if not isinstance(doc, dict) or key not in doc:
        raise MespError(f"--{what} {path}: not a mesp {'evaluate' if what == 'evaluation' else 'simulate'} "
                        f"--json document (no {key!r})")
    return doc


def run(args: argparse.Namespace) -> int:
    import time

    from mesp.errors import MespError
    from mesp.report import prepare, run_evaluation, run_simulation, write_report

    if args.max_functions < 1:
        raise MespError(f"--max-functions {args.max_functions} must be >= 1")
    evaluation = _read_json(args.evaluation, "evaluation") if args.evaluation else None
    simulation = _read_json(args.simulation, "simulation") if args.simulation else None
    progress = not args.no_progress
    started = time.perf_counter()
    rd = prepare(args.model, args.data, fmt=args.fmt, test_fraction=args.test_fraction, seed=args.seed)
    if evaluation is None:
        if progress:
            print("evaluating mesp, dense and the baselines", file=sys.stderr)
        evaluation = run_evaluation(rd, progress=progress)
    if simulation is None:
        if progress:
            print("simulating the provisioning policies", file=sys.stderr)
        simulation = run_simulation(rd, max_units=args.max_functions, progress=progress)
    out = args.out or f"mesp-report-{rd.manifest.version}"
    command = " ".join(["mesp report", "--model", args.model, "--data", *args.data, "--test-fraction",
                        str(args.test_fraction), "--seed", str(args.seed), "--out", out])
    report = write_report(rd, out, evaluation, simulation, commands=[command])
    print(f"report: {report.path} ({len(report.files)} files, {time.perf_counter() - started:.1f} s)")
    for f in report.files:
        print(f"  {f}")
    return 0
