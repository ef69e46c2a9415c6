"""``mesp models``: list the versions of a model store, promote one (rollback), garbage-collect old ones."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("models", help="list, promote (rollback) and gc model versions",
                              description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="models_command", metavar="COMMAND", required=True)
    ls = sub.add_parser("list", help="versions, oldest first; * marks LATEST")
    ls.add_argument("--model", required=True, metavar="STORE", help="a folder or s3://bucket/prefix")
    ls.set_defaults(run=run_list)
    pr = sub.add_parser("promote", help="point LATEST at VERSION after verifying every file")
    pr.add_argument("version", metavar="VERSION")
    pr.add_argument("--model", required=True, metavar="STORE")
    pr.set_defaults(run=run_promote)
    gc = sub.add_parser("gc", help="delete all but the N newest versions (never LATEST's)")
    gc.add_argument("--keep", type=int, required=True, metavar="N")
    gc.add_argument("--model", required=True, metavar="STORE")
    gc.set_defaults(run=run_gc)


def run_list(args: argparse.Namespace) -> int:
    from mesp.publish import list_versions

    rows = list_versions(args.model)
    if not rows:
        print(f"no versions in {args.model}")
        return 0
    for r in rows:
        mark = "*" if r.latest else " "
        detail = f"{r.clusters:>3} clusters  dense {r.dense_family}" if r.valid else f"INVALID: {r.note}"
        print(f"{mark} {r.version}  {r.created:<25} {detail}")
    return 0


def run_promote(args: argparse.Namespace) -> int:
    from mesp.publish import promote

    result = promote(args.model, args.version)
    print(f"LATEST -> {result.version} (was {result.previous or 'none'})")
    return 0


def run_gc(args: argparse.Namespace) -> int:
    from mesp.publish import gc

    removed = gc(args.model, args.keep)
    print(f"removed {len(removed)} version(s)" + (": " + ", ".join(removed) if removed else ""))
    return 0
