"""``mesp serve``: the forecast API on a local port, through the same handler as the Lambda."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("serve", help="serve the forecast API locally (no Docker)",
                              description="Serve POST /forecast, GET /model and GET /health on a local port, "
                                          "through the same handler that runs on AWS Lambda.")
    p.add_argument("--model", required=True, metavar="STORE", help="model store: a directory or s3://bucket/prefix")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: %(default)s)")
    p.add_argument("--port", type=int, default=3000, help="port (default: %(default)s; 0 picks a free one)")
    p.add_argument("--ttl", type=float, default=60.0, metavar="SECONDS",
                   help="how often to check the store for a new LATEST (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no access log")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import os

    # Powertools reads these when mesp.api is first imported. Logs and EMF metrics go to stdout, as on Lambda.
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "mesp-forecast")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MESP")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
    from mesp.errors import MespError
    from mesp.serve import make_server

    try:
        server = make_server(args.model, args.host, args.port, ttl_seconds=args.ttl, quiet=args.quiet)
    except OSError as err:
        raise MespError(f"cannot listen on {args.host}:{args.port}: {err.strerror or err}") from None
    host, port = server.server_address[:2]
    model = __import__("mesp.api", fromlist=["get_predictor"]).get_predictor().loaded
    print(f"mesp serve: model {model.version} from {args.model} on http://{host}:{port} "
          f"(POST /forecast, GET /model, GET /health; Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
