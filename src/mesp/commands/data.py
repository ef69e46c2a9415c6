"""``mesp data``: look at trace files before using them (``mesp data inspect PATH...``)."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("data", help="inspect trace files", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    inspect = sub.add_parser(
        "inspect", help="functions, days, step, volume, sparsity and trigger mix of trace files",
        description="Load each file and report series, days, step, total invocations, sparsity (share of "
                    "zero steps; share of series active in under 4%% of steps), the trigger mix and what "
                    "was read, skipped or filled. Several files are reported one by one unless --join.")
    inspect.add_argument("paths", nargs="+", metavar="PATH", help="trace files (any supported format)")
    inspect.add_argument("--format", dest="fmt", default="auto",
                         choices=["auto", "patterns", "azure2019", "azure2021", "wide", "long"],
                         help="file format (default: detected from the header)")
    inspect.add_argument("--join", action="store_true",
                         help="load all files together as one data set (e.g. Azure 2019 day files d01..d14)")
    inspect.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    inspect.set_defaults(run=run_inspect)


def run_inspect(args: argparse.Namespace) -> int:
    import json
    import os
    import tempfile

    from mesp.data.inspect import inspect_paths, render
    from mesp.errors import MespError

    folder = os.path.dirname(os.path.abspath(args.json)) if args.json else None
    if folder is not None and not os.path.isdir(folder):
        raise MespError(f"{args.json}: folder {folder} does not exist")
    result = inspect_paths(args.paths, fmt=args.fmt, join=args.join)
    print(render(result))
    if args.json:
        # write then rename, so a failure never leaves a half-written file
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".inspect-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(result, fh, indent=2)
        os.replace(tmp, args.json)
    return 0
