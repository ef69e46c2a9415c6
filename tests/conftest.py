"""Shared fixtures.

Real data lives beside the project in ``../shared/data`` (override with ``MESP_SHARED_DATA``). Tests that
need it use the ``shared_data`` fixture: they skip when it is missing, except under ``CI=true``, where a
missing folder is a failure (CI must never pass by skipping the tests that matter).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Powertools reads these at import time, so they must be set before any handler module is imported.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "mesp-test")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MESPTest")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_SECURITY_TOKEN", "testing")
os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
os.environ.setdefault("MPLBACKEND", "Agg")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MESP_SHARED_DATA", ROOT.parent / "shared" / "data"))
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        if IN_CI:
            pytest.fail(f"real data folder {SHARED_DATA} is missing under CI=true")
        pytest.skip(f"real data folder {SHARED_DATA} is missing")
    return SHARED_DATA


@pytest.fixture(scope="session")
def patterns_path(shared_data: Path) -> Path:
    return shared_data / "azure2019" / "daily_patterns_train.csv.gz"


@pytest.fixture(scope="session")
def original_format(shared_data: Path) -> Path:
    return shared_data / "azure2019" / "original_format"


@pytest.fixture
def lambda_context():
    from mesp.serve import LocalContext  # the same stand-in `mesp serve` hands the handler

    return LocalContext(function_name="mesp-forecast",
                        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:mesp-forecast",
                        aws_request_id="52fdfc07-2182-154f-163f-5f0f9a621d72")
