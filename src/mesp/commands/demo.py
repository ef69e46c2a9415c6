"""``mesp demo``: the whole loop in one command (data, train, evaluate, simulate, serve, report)."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="the whole MESP loop in one command, on a synthetic fleet (default) or on real traces",
        description="Generate a synthetic multi-day fleet (or load --data), hold out some functions, cluster and "
                    "train the experts and the dense model within a small budget, publish a version into a local "
                    "store, evaluate mesp vs dense vs baselines and simulate provisioning policies on the held-out "
                    "functions, serve the API on a local port and call it over HTTP, and write a report with "
                    "pictures. Everything lands in --out (default ./mesp-demo).")
    p.add_argument("--data", nargs="+", default=[], metavar="PATH",
                   help="real traces (any supported format) instead of the synthetic fleet")
    p.add_argument("--format", dest="fmt", default="auto",
                   choices=["auto", "patterns", "azure2019", "azure2021", "wide", "long"],
                   help="format of --data (default: detected from the header)")
    p.add_argument("--out", default="mesp-demo", metavar="DIR",
                   help="folder for the data, the model store and the report (default: %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help="a tiny run for smoke tests: 30 functions x 3 days at 10-minute steps, 2 clusters, "
                        "one trial of linear/dlinear, 15 s budget")
    p.add_argument("--functions", type=int, default=160, metavar="N", help="synthetic functions (default: 160)")
    p.add_argument("--days", type=int, default=7, metavar="D", help="synthetic days (default: 7)")
    p.add_argument("--budget-minutes", type=float, default=2.5, metavar="M",
                   help="training budget, wall clock (default: 2.5)")
    p.add_argument("--clusters", default="auto", metavar="K|auto", help="K-Shape clusters (default: auto)")
    p.add_argument("--context", default="auto", help="context length (default: 1d, or 12h for daily patterns)")
    p.add_argument("--workers", type=int, default=2, help="expert jobs at once (default: 2)")
    p.add_argument("--test-fraction", type=float, default=0.2, metavar="F",
                   help="share of functions held out from training (default: 0.2)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the data, split and training")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mesp.demo import DemoOptions, quick, run_demo
    from mesp.errors import MespError

    if args.functions < 2 or args.days < 2:
        raise MespError(f"--functions {args.functions} and --days {args.days} must be at least 2")
    if args.workers < 1 or args.budget_minutes <= 0:
        raise MespError("--workers must be at least 1 and --budget-minutes positive")
    opts = DemoOptions(out=args.out, data=list(args.data), fmt=args.fmt, functions=args.functions, days=args.days,
                       seed=args.seed, test_fraction=args.test_fraction, context=args.context,
                       clusters=args.clusters, budget_minutes=args.budget_minutes, workers=args.workers,
                       progress=not args.no_progress)
    if args.quick:
        opts = quick(opts)
    run_demo(opts)
    return 0
