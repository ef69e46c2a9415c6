"""``mesp simulate``: replay traces under provisioning policies; cold starts vs wasted memory."""

from __future__ import annotations

import argparse
import sys

HEADLINE = ("fixed-10", "fixed-20", "hybrid-p5-p99", "oracle")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate", help="cold starts vs wasted memory of keep-alive, hybrid histogram, MESP and an oracle",
        description="Replay per-step invocation counts under provisioning policies. The first part of each "
                    "trace (--history, default: its first half) is history every policy may learn from; "
                    "the rest is scored. Without --model: fixed keep-alive, the hybrid histogram and the "
                    "oracle; with --model also MESP's and the dense model's forecast-driven policies.")
    p.add_argument("--data", nargs="+", required=True, metavar="PATH", help="trace files (one format)")
    p.add_argument("--model", metavar="STORE", help="model store (directory or s3://bucket/prefix)")
    p.add_argument("--json", metavar="FILE", help="write every policy's results and the curves here")
    p.add_argument("--plot", metavar="FILE", help="write the trade-off curves as a PNG here")
    p.add_argument("--history", default=None,
                   help="steps before scoring starts, e.g. 12h (default: half of the trace)")
    p.add_argument("--replan", default="1h", help="forecast policies re-plan this often (default 1h)")
    p.add_argument("--group", choices=["function", "app"], default="function",
                   help="provision per function, or per Azure app as Shahrad et al. (default function)")
    p.add_argument("--keep-alive", type=float, default=None, metavar="MIN",
                   help="fix the forecast policies' keep-alive after a use to this many minutes "
                        "(default: swept over 0, 2, 5, 10; 2 with --no-sweep)")
    p.add_argument("--recent-forecast", action="store_true",
                   help="add a model-free forecast policy (quantiles of the last hour) as a reference")
    p.add_argument("--metric", default="cold_rate_p75",
                   choices=["cold_rate_p75", "cold_rate_p90", "cold_rate_mean", "cold_rate_overall"],
                   help="cold-start rate on the plot's y axis and in the printed comparison (default p75)")
    p.add_argument("--no-sweep", action="store_true", help="only the headline settings, no curves' sweeps")
    p.add_argument("--test-fraction", type=float, default=0.0, metavar="F",
                   help="simulate only the held-out share of the series: the functions 'mesp train/evaluate "
                        "--test-fraction F --seed S' hold out (default 0: every series)")
    p.add_argument("--seed", type=int, default=0, help="seed of the --test-fraction split (default 0)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="first N series only")
    p.add_argument("--units", action="store_true", help="include per-unit results in the JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mesp.data import load, parse_duration
    from mesp.errors import MespError
    from mesp.simulate import simulate, units_from_dataset
    from mesp.simulate.curves import StoreForecaster, compare, curves, default_policies, plot, write_json
    from mesp.simulate.policies import RecentQuantileForecaster

    from mesp.evaluation import holdout, split_by_series

    split_by_series(2, args.test_fraction, args.seed)  # validates the fraction before any slow work
    dataset = load(args.data)
    n_series = len(dataset)
    if args.test_fraction:
        dataset = holdout(dataset, args.test_fraction, args.seed, "test")
    if args.limit is not None:
        if args.limit < 1:
            raise MespError(f"--limit {args.limit} must be >= 1")
        dataset.series = dataset.series[: args.limit]
    step = dataset.step_seconds
    units = units_from_dataset(dataset, args.group)
    if not units:
        raise MespError("no series to simulate in " + ", ".join(args.data))
    n = len(units[0].counts)
    eval_start = parse_duration(args.history, step) if args.history else n // 2
    replan = parse_duration(args.replan, step)
    forecasters: dict = {}
    if args.recent_forecast:
        forecasters["recent"] = RecentQuantileForecaster(context=parse_duration("1h", step), horizon=replan)
    model_info = {}
    if args.model:
        for which in ("mesp", "dense"):
            forecasters[which] = StoreForecaster(args.model, which)
        model_info = {"model": args.model, "version": forecasters["mesp"].version}
    policies = default_policies(forecasters, replan=replan, sweep=not args.no_sweep, keep_alive=args.keep_alive)
    print(f"simulating {len(units)} {args.group} unit(s) x {len(policies)} policies; scoring steps "
          f"{eval_start}..{n - 1} of {n}", file=sys.stderr)
    report = simulate(units, policies, eval_start, step, progress=True)
    if args.model:
        for which in ("mesp", "dense"):
            f = forecasters[which]
            report.notes.append(f"{which}: {f.rows} forecasts, {f.degraded_rows} degraded")
    extra = {"data": [str(p) for p in args.data], "load_report": dataset.report.summary(), "group": args.group,
             "split": {"by": "series", "test_fraction": args.test_fraction, "seed": args.seed, "n_series": n_series,
                       "n_simulated_series": len(dataset), "held_out": bool(args.test_fraction)},
             **model_info}
    curve = curves(report, args.metric)
    if args.json:
        write_json(report, args.json, extra=extra, with_units=args.units)
    if args.plot:
        plot(curve, args.plot, title=f"{len(units)} {args.group}s, steps {eval_start}..{n - 1}",
             y_label=args.metric)
    by_name = report.by_name()
    print(f"{'policy':<28} {'p75 cold %':>10} {'overall cold %':>14} {'waste / fixed-10':>16}")

    def row(name: str) -> None:
        o = by_name[name].overall
        fmt = (lambda v, k=100: "n/a" if v is None else f"{k * v:.4g}")
        print(f"{name:<28} {fmt(o['cold_rate_p75']):>10} {fmt(o['cold_rate_overall']):>14} "
              f"{fmt(o['wasted_memory_normalised'], 1):>16}")

    for name in HEADLINE:
        if name in by_name:
            row(name)
    comparison = compare(curve)
    for family, c in comparison.get("families", {}).items():
        if family in ("hybrid", "oracle"):
            continue
        y, x = c["rate_change_at_ref_waste"], c["waste_change_at_ref_rate"]
        print(f"{family}: at the hybrid histogram's waste, {args.metric} "
              f"{'n/a (outside the curve)' if y is None else f'{100 * y:+.1f}%'}; at its {args.metric}, "
              f"waste {'n/a (never reached)' if x is None else f'{100 * x:+.1f}%'}")
    return 0
