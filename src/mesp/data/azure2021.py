"""Azure Functions 2021 invocation trace: ``app,func,end_timestamp,duration`` -> per-minute counts.

One row is one invocation; ``end_timestamp`` and ``duration`` are seconds (since the trace start, and of
execution). An invocation is counted in the minute it *started* (``end_timestamp - duration``): the
forecast is of arrivals, which is what the 2019 per-minute counts are and what capacity has to meet;
binning by end time would move every long invocation (some run for minutes) into later minutes.
Invocations that start a hair before the trace start (float rounding of ``end - duration``, or a run
already going at time 0) are counted in minute 0 and reported.

Every function gets a series on one common grid, minute 0 to the last minute with a start, so
``Series.start`` is 0 for all. Durations go into ``meta`` (milliseconds, like the 2019 files).
"""

from __future__ import annotations

import math

import numpy as np

from mesp.data.model import Dataset, LoadReport, Series
from mesp.data.reader import header_only, open_text, read_header
from mesp.errors import DataError

COLUMNS = ["app", "func", "end_timestamp", "duration"]
STEP = 60


def _float(text: str, path: str, lineno: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{path}:{lineno}: {column}: non-numeric value {text!r}") from None
    if not math.isfinite(value):
        raise DataError(f"{path}:{lineno}: {column}: value {text!r} is not finite")
    if value < 0:
        raise DataError(f"{path}:{lineno}: {column}: negative value {text}")
    return value


def load_azure2021(paths: list[str]) -> Dataset:
    """Read one or more invocation files (e.g. consecutive parts of the trace) into per-minute series."""
    report = LoadReport(files=[str(p) for p in paths])
    keys: dict[tuple[str, str], int] = {}
    key_idx: list[int] = []
    starts: list[float] = []
    durations: list[float] = []
    for path in paths:
        n_rows = 0
        with open_text(path) as fh:
            header = read_header(fh, path)
            if header != COLUMNS:
                raise DataError(f"{path}:1: expected header {','.join(COLUMNS)}, found {','.join(header[:6])}")
            for lineno, line in enumerate(fh, start=2):
                if not line.strip():
                    report.skip("blank lines")
                    continue
                fields = line.rstrip("\r\n").split(",")
                if len(fields) != 4:
                    raise DataError(f"{path}:{lineno}: expected 4 columns, found {len(fields)}")
                app, func = fields[0].strip(), fields[1].strip()
                if not app or not func:
                    raise DataError(f"{path}:{lineno}: empty {'app' if not app else 'func'}")
                end = _float(fields[2], path, lineno, "end_timestamp")
                duration = _float(fields[3], path, lineno, "duration")
                key_idx.append(keys.setdefault((app, func), len(keys)))
                starts.append(end - duration)
                durations.append(duration)
                n_rows += 1
        if not n_rows:
            raise header_only(path)
        report.rows += n_rows
        report.rows_by_file[str(path)] = n_rows

    start = np.asarray(starts, dtype=np.float64)
    early = int((start < 0).sum())
    if early:
        report.notes.append(f"{early} invocation(s) started before the trace start: counted in minute 0")
    minute = np.floor(np.maximum(start, 0.0) / STEP).astype(np.int64)
    n_steps = int(minute.max()) + 1
    idx = np.asarray(key_idx, dtype=np.int64)
    dur_ms = np.asarray(durations, dtype=np.float64) * 1000.0
    counts = np.zeros((len(keys), n_steps), dtype=np.float32)
    np.add.at(counts, (idx, minute), 1.0)

    order = np.argsort(idx, kind="stable")
    bounds = np.searchsorted(idx[order], np.arange(len(keys) + 1))
    series = []
    for (app, func), k in keys.items():
        d = dur_ms[order[bounds[k]:bounds[k + 1]]]
        meta = {"app": app, "function": func, "invocations": int(d.size),
                "duration_ms": float(d.mean()), "duration_min_ms": float(d.min()), "duration_max_ms": float(d.max()),
                "duration_percentiles_ms": {str(q): float(np.percentile(d, q)) for q in (1, 25, 50, 75, 99)}}
        series.append(Series(id=f"{app}/{func}", values=counts[k], step_seconds=STEP, start=0, meta=meta))
    report.notes.append("invocations binned by start minute (end_timestamp - duration)")
    return Dataset(series=series, step_seconds=STEP, format="azure2021", report=report)
