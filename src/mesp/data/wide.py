"""Wide CSV: a timestamp column, then one column per series (the Huawei public trace layout).

* The timestamp is the first column, as ISO 8601 (naive = UTC) or epoch seconds. A header starting
  ``day,time`` (Huawei's ``requests_minute/day_NN.csv``) uses ``time`` (seconds since the trace start)
  and ignores the derived ``day``.
* Any regular step is accepted (inferred: the most common difference). Duplicated or irregular
  timestamps are errors naming the file and line; rows may come in any order and files may be split
  (e.g. one per day) as long as they share the series columns.
* An empty or ``NaN`` cell is read as 0 invocations and counted in the LoadReport: in per-function request
  exports such as Huawei's, a function has no entry for a minute in which nothing called it. Anything else
  that is not a non-negative number is an error.
"""

from __future__ import annotations

import numpy as np

from mesp.data.model import Dataset, LoadReport, Series
from mesp.data.reader import header_only, infer_step, open_text, parse_timestamp, read_header
from mesp.errors import DataError

_EMPTY = {"", "nan", "NaN", "NAN", "null", "NULL", "NA"}


def _cells(fields: list[str], first: int, path: str, lineno: int, names: list[str]) -> tuple[np.ndarray, int]:
    """Counts of one row as float64 with empty cells as NaN, and how many were empty."""
    cells = fields[first:]
    try:
        values = np.array(cells, dtype=np.float64)
    except ValueError:
        cleaned = ["nan" if c.strip() in _EMPTY else c for c in cells]
        try:
            values = np.array(cleaned, dtype=np.float64)
        except ValueError:
            j = next(j for j, c in enumerate(cleaned) if not _is_number(c))
            raise DataError(f"{path}:{lineno}: column {first + j + 1} ({names[j]}): non-numeric count "
                            f"{cells[j]!r}") from None
    nan = np.isnan(values)
    if np.isinf(values).any():
        j = int(np.flatnonzero(np.isinf(values))[0])
        raise DataError(f"{path}:{lineno}: column {first + j + 1} ({names[j]}): count {cells[j]!r} is not finite")
    if (values < 0).any():
        j = int(np.flatnonzero(values < 0)[0])
        raise DataError(f"{path}:{lineno}: column {first + j + 1} ({names[j]}): negative count {cells[j]}")
    n_empty = int(nan.sum())
    if n_empty:
        values[nan] = 0.0
    return values, n_empty


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_wide(paths: list[str]) -> Dataset:
    report = LoadReport(files=[str(p) for p in paths])
    names: list[str] | None = None
    stamps: list[float] = []
    rows: list[np.ndarray] = []
    origin: list[tuple[str, int]] = []
    empty = 0
    for path in paths:
        with open_text(path) as fh:
            header = read_header(fh, path)
            first = 2 if [h.lower() for h in header[:2]] == ["day", "time"] else 1
            ts_col = first - 1
            cols = header[first:]
            if not cols:
                raise DataError(f"{path}:1: no series columns after the timestamp column {header[ts_col]!r}")
            if "" in cols:
                raise DataError(f"{path}:1: column {first + cols.index('') + 1} has no name")
            if len(set(cols)) != len(cols):
                dup = next(c for c in cols if cols.count(c) > 1)
                raise DataError(f"{path}:1: duplicated column name {dup!r}")
            if names is None:
                names = cols
                perm = None
            elif cols != names:
                if set(cols) != set(names):
                    extra = sorted(set(cols) ^ set(names))[:3]
                    raise DataError(f"{path}:1: series columns differ from {paths[0]} (e.g. {', '.join(extra)})")
                position = {c: i for i, c in enumerate(cols)}
                perm = np.array([position[c] for c in names])
            n_cols = len(header)
            n_rows = 0
            for lineno, line in enumerate(fh, start=2):
                if not line.strip():
                    report.skip("blank lines")
                    continue
                fields = line.rstrip("\r\n").split(",")
                if len(fields) != n_cols:
                    raise DataError(f"{path}:{lineno}: expected {n_cols} columns, found {len(fields)}")
                stamps.append(parse_timestamp(fields[ts_col], path, str(lineno)))
                values, n_empty = _cells(fields, first, path, lineno, cols)
                empty += n_empty
                rows.append((values if perm is None else values[perm]).astype(np.float32))
                origin.append((str(path), lineno))
                n_rows += 1
        if not n_rows:
            raise header_only(path)
        report.rows += n_rows
        report.rows_by_file[str(path)] = n_rows
    assert names is not None

    t = np.asarray(stamps, dtype=np.float64)
    order = np.argsort(t, kind="stable")
    t = t[order]
    same = np.flatnonzero(np.diff(t) == 0)
    if same.size:
        a, b = sorted([origin[order[same[0]]], origin[order[same[0] + 1]]], key=lambda o: (paths.index(o[0]), o[1]))
        where = f"line {a[1]}" if a[0] == b[0] else f"{a[0]}:{a[1]}"
        raise DataError(f"{b[0]}:{b[1]}: duplicated timestamp (same as {where})")
    step, _ = infer_step(np.diff(t), lambda k: "{}:{}".format(*origin[order[0 if k is None else k + 1]]),
                         allow_gaps=False)
    matrix = np.stack([rows[i] for i in order], axis=1) if len(rows) > 1 else np.stack(rows, axis=1)
    del rows
    report.fill("empty or NaN cells, read as zero invocations", empty)
    if empty:
        report.notes.append(f"{empty} empty/NaN cell(s) read as 0 invocations")
    start = int(round(t[0]))
    series = [Series(id=name, values=np.ascontiguousarray(matrix[j]), step_seconds=step, start=start,
                     meta={"column": name}) for j, name in enumerate(names)]
    return Dataset(series=series, step_seconds=step, format="wide", report=report)
