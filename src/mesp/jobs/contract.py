"""The SageMaker training-container contract, with a root that tests and ``mesp train`` can move.

SageMaker runs a bring-your-own-container image as ``<image> train`` with this tree (the
"your-algorithms-training-algo" pages of the SageMaker developer guide)::

    /opt/ml/input/config/hyperparameters.json   {"name": "value", ...}   every value is a string
    /opt/ml/input/data/<channel>/               one folder per input channel (S3 objects copied in)
    /opt/ml/model/                              tarred to <S3OutputPath>/<job>/output/model.tar.gz
    /opt/ml/output/data/                        tarred to .../output/output.tar.gz
    /opt/ml/output/failure                      its text becomes the job's FailureReason (exit non-zero)

``/opt/ml`` is the default root; ``SM_ROOT`` (environment) or ``--sm-root`` (command line) move it, so
the same entry points run in a temporary folder on a laptop. Metric lines are printed to stdout in one
stable shape, ``metric <label>=<value> ... <name>=<float>``, which :func:`metric_definitions` matches.

This module is light on purpose (stdlib only): the Lambda retrain function imports the launcher, which
imports the metric definitions from here.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tarfile
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mesp.errors import MespError

DEFAULT_ROOT = "/opt/ml"
ROOT_ENV = "SM_ROOT"
FAILURE_LIMIT = 1024  # SageMaker keeps the first 1,024 characters of FailureReason

# Metric names each job prints; the launcher passes these as MetricDefinitions.
CLUSTER_METRICS = ("n_clusters", "n_idle_windows", "n_windows", "inertia", "novelty_threshold", "silhouette")
EXPERT_METRICS = ("val_loss", "fit_wape", "fit_mae", "n_trials", "parity_max_rel_err", "train_seconds")
_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


class JobError(MespError):
    """A training job cannot run as configured (bad hyperparameter, missing channel ...)."""


@dataclass(frozen=True)
class JobPaths:
    """Where one job reads and writes, under ``root`` (``/opt/ml`` in SageMaker)."""

    root: Path

    @property
    def hyperparameters(self) -> Path:
        return self.root / "input" / "config" / "hyperparameters.json"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def output_data(self) -> Path:
        return self.root / "output" / "data"

    @property
    def failure(self) -> Path:
        return self.root / "output" / "failure"

    @property
    def checkpoints(self) -> Path:
        # SageMaker's default local checkpoint path (synced to CheckpointConfig.S3Uri when set).
        return self.root / "checkpoints"

    def channel(self, name: str) -> Path:
        return self.root / "input" / "data" / name

    def require_channel(self, name: str) -> Path:
        path = self.channel(name)
        if not path.is_dir() or not any(path.iterdir()):
            raise JobError(f"input channel {name!r} is missing or empty at {path}")
        return path

    def prepare(self) -> None:
        """Create the output folders (SageMaker does this; a local run must do it itself)."""
        for folder in (self.model, self.output_data):
            folder.mkdir(parents=True, exist_ok=True)


def resolve_root(cli_root: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> Path:
    """``--sm-root`` beats ``SM_ROOT`` beats ``/opt/ml``."""
    env = os.environ if env is None else env
    return Path(cli_root or env.get(ROOT_ENV) or DEFAULT_ROOT)


# ---------------------------------------------------------------------------------------------- hyperparameters


@dataclass(frozen=True)
class Param:
    """One hyperparameter: SageMaker hands it over as a string, :meth:`parse` gives it its type."""

    kind: type | str  # int, float, str, bool, or "int|auto" for K
    default: Any
    help: str = ""

    def parse(self, name: str, raw: Any) -> Any:
        text = str(raw).strip()
        try:
            if self.kind == "int|auto":
                return "auto" if text.lower() == "auto" else _positive_int(text)
            if self.kind is bool:
                lowered = text.lower()
                if lowered in {"1", "true", "yes", "on"}:
                    return True
                if lowered in {"0", "false", "no", "off"}:
                    return False
                raise ValueError(text)
            if self.kind is int:
                return int(text)
            if self.kind is float:
                value = float(text)
                if not math.isfinite(value):
                    raise ValueError(text)
                return value
            return text
        except ValueError:
            kind = self.kind if isinstance(self.kind, str) else self.kind.__name__
            raise JobError(f"hyperparameter {name}={text!r} is not a valid {kind}") from None


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(text)
    return value


def parse_hyperparameters(raw: Mapping[str, Any], spec: Mapping[str, Param]) -> dict[str, Any]:
    """Typed values for every name in ``spec``; unknown names are an error, not a silent typo."""
    # SageMaker adds its own keys for some features (e.g. "sagemaker_*" for script mode); they are not ours.
    unknown = sorted(k for k in raw if k not in spec and not k.startswith("sagemaker_"))
    if unknown:
        raise JobError(f"unknown hyperparameter(s) {', '.join(unknown)}; known: {', '.join(sorted(spec))}")
    return {name: (p.parse(name, raw[name]) if name in raw else p.default) for name, p in spec.items()}


def read_hyperparameters(paths: JobPaths, spec: Mapping[str, Param]) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    if paths.hyperparameters.exists():
        try:
            raw = json.loads(paths.hyperparameters.read_text())
        except json.JSONDecodeError as err:
            raise JobError(f"{paths.hyperparameters}: not JSON ({err.msg} at line {err.lineno})") from None
        if not isinstance(raw, dict):
            raise JobError(f"{paths.hyperparameters}: expected a JSON object of strings")
    return parse_hyperparameters(raw, spec)


def to_strings(values: Mapping[str, Any]) -> dict[str, str]:
    """The CreateTrainingJob API wants string hyperparameters; None means "leave it out"."""
    out = {}
    for key, value in values.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def write_hyperparameters(paths: JobPaths, values: Mapping[str, Any]) -> None:
    paths.hyperparameters.parent.mkdir(parents=True, exist_ok=True)
    paths.hyperparameters.write_text(json.dumps(to_strings(values), indent=1, sort_keys=True))


# -------------------------------------------------------------------------------------------------- metrics


def format_metric(labels: Mapping[str, Any] | None = None, **metrics: float) -> str:
    """``metric cluster=3 val_wape=0.123400``: labels first, then one or more named numbers."""
    parts = ["metric"] + [f"{k}={v}" for k, v in (labels or {}).items()]
    parts += [f"{k}={float(v):.6g}" for k, v in metrics.items()]
    return " ".join(parts)


def emit_metric(labels: Mapping[str, Any] | None = None, **metrics: float) -> None:
    print(format_metric(labels, **metrics), flush=True)


def metric_definitions(names: tuple[str, ...] | list[str]) -> list[dict[str, str]]:
    """SageMaker ``MetricDefinitions`` matching :func:`format_metric` lines, named ``<name>``.

    SageMaker's regex has to capture a plain number; NaN/inf lines are simply not recorded.
    """
    return [{"Name": name, "Regex": rf"^metric .*\b{name}={_NUMBER}"} for name in names]


# ------------------------------------------------------------------------------------------------- running


def unpack_channel(path: Path) -> Path:
    """A channel fed from a job's ``model.tar.gz`` holds that archive: unpack it once, return the folder."""
    archives = sorted(path.glob("*.tar.gz"))
    if not archives:
        return path
    target = path.parent / f"{path.name}.unpacked"
    if not (target / ".complete").exists():
        target.mkdir(parents=True, exist_ok=True)
        for archive in archives:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(target, filter="data")
        (target / ".complete").write_text("")
    return target


def run_job(name: str, body: Callable[[JobPaths], None], argv: list[str] | None = None) -> int:
    """Run ``body`` under the container contract: exit 0, or the reason in ``output/failure`` and exit 1."""
    import argparse

    parser = argparse.ArgumentParser(prog=f"mesp-{name}-job", description=f"MESP {name} training job")
    parser.add_argument("--sm-root", help=f"container root (default ${ROOT_ENV} or {DEFAULT_ROOT})")
    parser.add_argument("mode", nargs="?", default="train", help="SageMaker passes 'train'")
    args = parser.parse_args(argv)
    paths = JobPaths(resolve_root(args.sm_root))
    try:
        if args.mode != "train":
            raise JobError(f"unsupported mode {args.mode!r}: training containers are started with 'train'")
        paths.prepare()
        if paths.failure.exists():
            paths.failure.unlink()
        body(paths)
        return 0
    except Exception as err:  # noqa: BLE001 - the contract is: every failure ends up in output/failure
        reason = str(err) if isinstance(err, MespError) else f"{type(err).__name__}: {err}"
        if not isinstance(err, MespError):
            traceback.print_exc(file=sys.stderr)  # CloudWatch keeps the trace; the reason stays one line
        print(f"mesp {name} job failed: {reason}", file=sys.stderr, flush=True)
        paths.failure.parent.mkdir(parents=True, exist_ok=True)
        paths.failure.write_text(reason[:FAILURE_LIMIT])
        return 1
