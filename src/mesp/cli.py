"""The ``mesp`` command line.

Each verb lives in ``mesp.commands.<verb>`` and exposes ``add_parser(subparsers)`` and
``run(args) -> int``. Command modules must be cheap to import (heavy imports go inside ``run``),
because building the parser imports all of them.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mesp import __version__
from mesp.errors import MespError

VERBS = ["demo", "data", "train", "evaluate", "simulate", "serve", "forecast", "models", "clusters", "report"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mesp", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"mesp {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb in VERBS:
        try:
            module = importlib.import_module(f"mesp.commands.{verb}")
        except ModuleNotFoundError as err:
            if err.name != f"mesp.commands.{verb}":
                raise
            continue  # verb not built yet
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except MespError as err:
        print(f"mesp {args.verb}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mesp {args.verb}: interrupted", file=sys.stderr)
        return 130
