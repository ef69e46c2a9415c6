"""``mesp evaluate``: score the baselines (and, with ``--model``, MESP and its dense model) on held-out
functions."""

from __future__ import annotations

import argparse
import sys

BASELINE_NAMES = ("naive", "seasonal_naive", "mean_last_hour", "ridge", "ridge_local", "ridge_global")
DEFAULT_BASELINES = ("naive", "seasonal_naive", "mean_last_hour", "ridge")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="WAPE / MASE / MAE / RMSE of the baselines (and a model store) on held-out functions",
        description="Cut every series into (context -> horizon) windows, hold out a fraction of the "
                    "series (whole functions, seeded), fit the trainable baselines on the rest and score "
                    "every model on the held-out part. Prints a models x metrics table; --json writes the "
                    "full document. "
                    "--test-fraction 0 scores every series, with the trainable baselines fit on the same "
                    "windows (in-sample; the JSON config says so). With --model, MESP ('mesp') and its dense "
                    "model ('dense') are added, context and horizon come from the model's manifest, and "
                    "per_cluster reports the metrics per cluster the router picks.")
    p.add_argument("--data", nargs="+", required=True, metavar="PATH", help="trace files (one format)")
    p.add_argument("--model", metavar="STORE", help="model store (directory or s3://bucket/prefix)")
    p.add_argument("--format", dest="fmt", default="auto",
                   choices=["auto", "patterns", "azure2019", "azure2021", "wide", "long"],
                   help="file format (default: detected from the header)")
    p.add_argument("--context", default=None,
                   help="context length, e.g. 12h, 1d or 720steps "
                        "(default 12h; with --model: the manifest's)")
    p.add_argument("--horizon", default=None, help="horizon (default 1h; with --model: the manifest's)")
    p.add_argument("--stride", default=None, help="step between origins (default: the horizon)")
    p.add_argument("--test-fraction", type=float, default=0.2, metavar="F",
                   help="share of series held out for scoring, in [0, 1) "
                        "(default 0.2; 0 = score all, in-sample)")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/test split (default 0)")
    p.add_argument("--baselines", default=",".join(DEFAULT_BASELINES), metavar="LIST",
                   help=f"comma-separated baselines from {', '.join(BASELINE_NAMES)}, or 'none' "
                        f"(default: {','.join(DEFAULT_BASELINES)}; "
                        "ridge averages ridge_local and ridge_global)")
    p.add_argument("--json", metavar="FILE", help="write the full result document here")
    p.set_defaults(run=run)


def _parse_baselines(text: str) -> list[str]:
    from mesp.errors import MespError

    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["none"]:
        return []
    unknown = [n for n in names if n not in BASELINE_NAMES]
    if unknown:
        raise MespError(f"unknown baseline(s) {', '.join(unknown)}; choose from {', '.join(BASELINE_NAMES)}")
    return list(dict.fromkeys(names))


def run(args: argparse.Namespace) -> int:
    import os
    import time

    from mesp import __version__
    from mesp.baselines import default_baselines
    from mesp.data import load, parse_duration
    from mesp.errors import MespError
    from mesp.evaluation import (evaluate, format_table, load_store_models, split_by_series, windows_of,
                                 write_json)
    from mesp.windows import make_windows

    names = _parse_baselines(args.baselines)
    if not names and not args.model:
        raise MespError("nothing to evaluate: --baselines none needs --model")
    if args.json:
        folder = os.path.dirname(os.path.abspath(args.json))
        if not os.path.isdir(folder):
            raise MespError(f"{args.json}: folder {folder} does not exist")
    split_by_series(2, args.test_fraction, args.seed)  # validates the fraction before any slow work

    store_models, store_info, router = {}, {}, None
    if args.model:
        store_models, store_info, router = load_store_models(args.model)

    dataset = load(args.data, fmt=args.fmt)
    step = dataset.step_seconds
    if args.model:
        if store_info["step_seconds"] != step:
            raise MespError(f"model {args.model} was trained on {store_info['step_seconds']}-second "
                            f"steps but the data has {step}-second steps")
        context, horizon = store_info["context"], store_info["horizon"]
        flags = (("--context", args.context, context), ("--horizon", args.horizon, horizon))
        for flag, given, expected in flags:
            if given is not None and parse_duration(given, step) != expected:
                raise MespError(f"{flag} {given} = {parse_duration(given, step)} steps, but the model "
                                f"{args.model} uses {expected} steps; leave {flag} out to use the model's")
    else:
        context = parse_duration(args.context or "12h", step)
        horizon = parse_duration(args.horizon or "1h", step)
    stride = parse_duration(args.stride, step) if args.stride else horizon

    windows = make_windows(dataset, context, horizon, stride)
    train_series, test_series = split_by_series(len(dataset), args.test_fraction, args.seed)
    in_sample = test_series.size == 0
    train = windows_of(windows, train_series)
    test = windows if in_sample else windows_of(windows, test_series)
    if len(test) == 0:
        raise MespError(f"none of the {test_series.size} held-out series has a whole window; "
                        "raise --test-fraction or use --test-fraction 0")
    if names and len(train) == 0:
        raise MespError("no training windows for the baselines; lower --test-fraction")

    baselines = default_baselines(step, context)
    models: dict = {}
    fit_seconds: dict[str, dict] = {}
    for name in names:
        started = time.perf_counter()
        print(f"fitting {name} on {len(train)} windows", file=sys.stderr)
        models[name] = baselines[name].fit(train)
        fit_seconds[name] = {"fit_seconds": round(time.perf_counter() - started, 3)}
    models.update(store_models)

    clusters = router(test.X) if router is not None else None
    config = {
        "mesp_version": __version__,
        "data": [str(p) for p in args.data],
        "format": dataset.format,
        "load_report": dataset.report.summary(),
        "step_seconds": step,
        "context": context, "horizon": horizon, "stride": stride,
        "split": {"by": "series", "test_fraction": args.test_fraction, "seed": args.seed,
                  "n_series": len(dataset), "n_train_series": int(train_series.size),
                  "n_test_series": int(test_series.size), "n_train_windows": len(train),
                  "n_test_windows": len(test), "in_sample": in_sample},
        "models": fit_seconds,
    }
    if store_info:
        config["model_store"] = store_info
    result = evaluate(models, test, clusters, config=config, progress=sys.stderr.isatty())
    scope = "all series (in-sample)" if in_sample else f"{test_series.size} held-out series"
    print(f"{len(test)} windows of {scope}; context {context}, horizon {horizon}, stride {stride} steps "
          f"({step} s each)")
    print(format_table(result))
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
