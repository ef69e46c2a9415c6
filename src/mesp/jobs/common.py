"""What the cluster and expert jobs share: reading the data channel the same way, and fingerprints."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from mesp.data import Dataset, load, parse_duration
from mesp.jobs.contract import JobError
from mesp.windows import Windows, make_windows

# Daily-pattern files hold single days of 1,440 minutes: a one-day context leaves no room for a horizon,
# so jobs on them default to half a day (the shared data README's reference setting).
PATTERNS_CONTEXT = "12h"


def data_files(folder: Path) -> list[Path]:
    """Every trace file in a channel folder (recursively, sorted; hidden files and markers skipped)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".")
                                                                            for part in p.relative_to(folder).parts))
    if not files:
        raise JobError(f"no data files in {folder}")
    return files


def fingerprint(files: list[Path]) -> str:
    """sha256 over the files' names and bytes: the expert jobs check they read what the cluster job read."""
    h = hashlib.sha256()
    for path in files:
        h.update(path.name.encode() + b"\0")
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def load_data(folder: Path, fmt: str = "auto", test_fraction: float = 0.0,
              split_seed: int = 0) -> tuple[Dataset, list[Path]]:
    """The channel's dataset; with ``test_fraction > 0`` only the training part of
    :func:`mesp.evaluation.holdout` (whole functions held out, the split ``mesp evaluate`` scores on)."""
    files = data_files(folder)
    dataset = load([str(p) for p in files], fmt)
    if test_fraction:
        from mesp.errors import MespError
        from mesp.evaluation import holdout

        try:
            dataset = holdout(dataset, test_fraction, split_seed, "train")
        except MespError as err:
            raise JobError(str(err)) from None
    return dataset, files


def split_info(test_fraction: float, split_seed: int, n_train_series: int) -> dict[str, Any]:
    """What the manifest records about the function holdout (``training.split``)."""
    return {"by": "series", "function": "mesp.evaluation.split_by_series", "test_fraction": test_fraction,
            "seed": split_seed, "n_train_series": n_train_series}


def resolve_context(context: str, dataset: Dataset) -> str:
    """``auto`` -> one day, or 12 hours for daily-pattern files (which hold single days)."""
    if context != "auto":
        return context
    return PATTERNS_CONTEXT if dataset.format == "patterns" else "1d"


def windows_for(dataset: Dataset, context: str, horizon: str, stride: str) -> tuple[Windows, dict[str, int]]:
    """The job's windows and their sizes in steps; the same call in every job, so indices line up."""
    step = dataset.step_seconds
    sizes = {"context": parse_duration(resolve_context(context, dataset), step),
             "horizon": parse_duration(horizon, step)}
    sizes["stride"] = parse_duration(stride, step) if stride else sizes["horizon"]
    return make_windows(dataset, sizes["context"], sizes["horizon"], sizes["stride"]), sizes


def data_summary(dataset: Dataset, files: list[Path], windows: Windows) -> dict[str, Any]:
    lengths = dataset.lengths()
    return {"files": [p.name for p in files], "format": dataset.format, "step_seconds": dataset.step_seconds,
            "n_series": len(dataset), "rows": dataset.report.rows,
            "skipped": dict(dataset.report.skipped), "steps_min": int(lengths.min()) if len(lengths) else 0,
            "steps_max": int(lengths.max()) if len(lengths) else 0, "n_windows": len(windows),
            "fingerprint": fingerprint(files)}


def code_version() -> str:
    from mesp import __version__

    return __version__
