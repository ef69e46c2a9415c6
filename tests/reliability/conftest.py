"""Fixtures of the reliability suite (helpers live in ``harness.py``)."""

from __future__ import annotations

import pytest
from aws_lambda_powertools.metrics.provider import cold_start

from harness import LogCapture, api


@pytest.fixture
def clean_api():
    """Fresh metrics/cold-start state around a test; the predictor is reset afterwards."""
    api.metrics.clear_metrics()
    api.metrics.clear_default_dimensions()
    cold_start.is_cold_start = True
    yield api
    api.set_predictor(None)
    api.metrics.clear_metrics()


@pytest.fixture
def logs():
    with LogCapture() as cap:
        yield cap
