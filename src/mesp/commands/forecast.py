"""``mesp forecast``: answer one request file with a model store, exactly as the API would."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("forecast", help="forecast from a request file (the API's JSON body)",
                              description="Run one POST /forecast body (single or batch) through the API handler "
                                          "and print the JSON answer.")
    p.add_argument("--model", required=True, metavar="STORE", help="model store: a directory or s3://bucket/prefix")
    p.add_argument("--input", required=True, metavar="REQUEST.json", help="request body file ('-' for stdin)")
    p.add_argument("--output", metavar="FILE", help="write the answer here instead of stdout")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json
    import os
    from pathlib import Path

    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "mesp-forecast")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MESP")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    import contextlib
    import io
    from mesp.errors import MespError
    from mesp.runtime import Predictor
    from mesp.serve import LocalContext, to_event

    try:
        body = sys.stdin.buffer.read() if args.input == "-" else Path(args.input).read_bytes()
    except OSError as err:
        raise MespError(f"cannot read {args.input}: {err.strerror or err}") from None

    import mesp.api

    predictor = Predictor(args.model, ttl_seconds=float("inf"))
    predictor.model()  # a store problem is a one-line error here, not a 503 body
    mesp.api.set_predictor(predictor)
    event = to_event("POST", "/forecast", {"content-type": "application/json"}, body, "127.0.0.1")
    with contextlib.redirect_stdout(io.StringIO()):  # EMF metric lines: stdout carries only the answer
        result = mesp.api.lambda_handler(event, LocalContext(aws_request_id=event["requestContext"]["requestId"]))
    answer = json.loads(result["body"])
    if result["statusCode"] >= 400:
        raise MespError(f"{args.input}: {answer.get('message', result['statusCode'])}")
    text = json.dumps(answer, indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0
