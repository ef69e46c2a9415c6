"""Helpers of the reliability suite: the handler, a tiny verified model store, log and EMF capture.

The handler is driven in-process exactly as Lambda would (``functions/forecast/app.py`` re-exports
:func:`mesp.api.lambda_handler`); stores come from ``tests/support/stores.py`` (48-step context, 4-step
horizon, ONNX graphs of a few nodes), so thousands of requests cost seconds.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

from mesp.serve import LocalContext
from support.events import load_forecast_app

ROOT = Path(__file__).resolve().parents[2]
api = load_forecast_app()


def Ctx() -> LocalContext:  # noqa: N802 (used like the class it stands for)
    return LocalContext(function_name="mesp-forecast",
                        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:mesp-forecast",
                        aws_request_id="req-reliability")


def invoke(event: dict) -> tuple[int, dict, dict]:
    """(status, parsed JSON body, raw response) for one event through the real Lambda handler."""
    response = api.lambda_handler(event, Ctx())
    return response["statusCode"], json.loads(response["body"]), response


class LogCapture:
    """Every record the handler logs (Powertools logger + ``mesp.*`` std loggers), JSON-formatted."""

    def __init__(self) -> None:
        self.buf = io.StringIO()
        self.handler = logging.StreamHandler(self.buf)
        self.handler.setFormatter(api.logger.registered_formatter)
        self.loggers = [logging.getLogger(api.logger.name), logging.getLogger("mesp")]

    def __enter__(self) -> LogCapture:
        for lg in self.loggers:
            lg.addHandler(self.handler)
        return self

    def __exit__(self, *exc) -> None:
        for lg in self.loggers:
            lg.removeHandler(self.handler)

    @property
    def text(self) -> str:
        return self.buf.getvalue()

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.text.splitlines() if line.startswith("{")]

    def problems(self) -> list[dict]:
        return [line for line in self.lines() if line.get("level") in {"WARNING", "ERROR", "CRITICAL"}]


def emf_metrics(stdout: str) -> dict[str, float]:
    """Sum of every EMF metric value printed to stdout (Powertools flushes one blob per invocation)."""
    totals: dict[str, float] = {}
    for line in stdout.splitlines():
        if not (line.startswith("{") and '"_aws"' in line):
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = blob[metric["Name"]]
                values = value if isinstance(value, list) else [value]
                totals[metric["Name"]] = totals.get(metric["Name"], 0.0) + float(sum(values))
    return totals
