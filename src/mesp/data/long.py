"""Long CSV or Parquet, the Nixtla convention: one row per (``unique_id``, ``ds``, ``y``).

* ``ds`` is ISO 8601 (naive = UTC) or epoch seconds (numeric); Parquet timestamp columns are read as
  such. Rows may come in any order; each series is sorted by ``ds``.
* One step for the whole file: the most common difference between consecutive timestamps of a series.
* A missing row inside a series (a whole multiple of the step) is filled with 0 invocations and
  counted: event exports commonly omit the periods with no invocations, which is what such a gap means
  for invocation counts. A difference that is not a whole multiple of the step, or a duplicated
  (``unique_id``, ``ds``), is an error naming the file and line (Parquet: row).
* An empty or ``NaN`` ``y`` is read as 0 and counted, as in the wide format.
* Each series spans its own first to last ``ds``; ``Series.start`` is its first ``ds`` in seconds.
"""

from __future__ import annotations

import math

import numpy as np

from mesp.data.model import Dataset, LoadReport, Series
from mesp.data.reader import header_only, infer_step, open_text, parse_timestamp, read_header
from mesp.errors import DataError

COLUMNS = ("unique_id", "ds", "y")
_EMPTY = {"", "nan", "NaN", "NAN", "null", "NULL", "NA"}


def _y(text: str, where: str) -> tuple[float, bool]:
    if text.strip() in _EMPTY:
        return 0.0, True
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{where}: y: non-numeric count {text!r}") from None
    if math.isnan(value):
        return 0.0, True
    if not math.isfinite(value):
        raise DataError(f"{where}: y: count {text!r} is not finite")
    if value < 0:
        raise DataError(f"{where}: y: negative count {text}")
    return value, False


def _read_csv(path: str, ids: list, ds: list, ys: list, where: list) -> tuple[int, int, int]:
    """Append one CSV's rows; return (rows, empty y, blank lines)."""
    n = empty = blank = 0
    with open_text(path) as fh:
        header = read_header(fh, path)
        if sorted(header) != sorted(COLUMNS):
            raise DataError(f"{path}:1: expected columns unique_id,ds,y, found {','.join(header[:6])}")
        col = [header.index(c) for c in COLUMNS]
        for lineno, line in enumerate(fh, start=2):
            if not line.strip():
                blank += 1
                continue
            fields = line.rstrip("\r\n").split(",")
            if len(fields) != 3:
                raise DataError(f"{path}:{lineno}: expected 3 columns, found {len(fields)}")
            uid = fields[col[0]].strip().strip('"')
            if not uid:
                raise DataError(f"{path}:{lineno}: empty unique_id")
            ids.append(uid)
            ds.append(parse_timestamp(fields[col[1]], path, str(lineno)))
            value, was_empty = _y(fields[col[2]], f"{path}:{lineno}")
            ys.append(value)
            empty += was_empty
            where.append(lineno)
            n += 1
    return n, empty, blank


def _read_parquet(path: str, ids: list, ds: list, ys: list, where: list) -> tuple[int, int, int]:
    try:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
        import pyarrow as pa
    except ImportError:
        raise DataError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as err:
        raise DataError(f"{path}: not a readable Parquet file ({str(err).splitlines()[0]})") from None
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} (expected unique_id, ds, y)")
    n = table.num_rows
    uid = table.column("unique_id").cast(pa.string()).to_pylist()
    for i, u in enumerate(uid):
        if not u:
            raise DataError(f"{path}:row {i + 1}: empty unique_id")
    dcol = table.column("ds")
    if pa.types.is_timestamp(dcol.type) or pa.types.is_date(dcol.type):
        if dcol.null_count:
            i = int(np.flatnonzero(pc.is_null(dcol).to_numpy(zero_copy_only=False))[0])
            raise DataError(f"{path}:row {i + 1}: missing ds")
        unit_ns = pc.cast(pc.cast(dcol, pa.timestamp("ns", tz="UTC") if pa.types.is_timestamp(dcol.type)
                                  else pa.timestamp("ns")), pa.int64())
        stamps = unit_ns.to_numpy().astype(np.float64) / 1e9
    elif pa.types.is_integer(dcol.type) or pa.types.is_floating(dcol.type):
        stamps = dcol.to_numpy(zero_copy_only=False).astype(np.float64)
        if np.isnan(stamps).any():
            raise DataError(f"{path}:row {int(np.flatnonzero(np.isnan(stamps))[0]) + 1}: missing ds")
    else:
        stamps = np.array([parse_timestamp(str(v), path, f"row {i + 1}") for i, v in enumerate(dcol.to_pylist())])
    ycol = table.column("y")
    if not (pa.types.is_integer(ycol.type) or pa.types.is_floating(ycol.type)):
        raise DataError(f"{path}: column y has type {ycol.type}, expected numbers")
    y = ycol.to_numpy(zero_copy_only=False).astype(np.float64)
    nan = np.isnan(y)
    if np.isinf(y).any():
        raise DataError(f"{path}:row {int(np.flatnonzero(np.isinf(y))[0]) + 1}: y: count is not finite")
    if (y < 0).any():
        i = int(np.flatnonzero(y < 0)[0])
        raise DataError(f"{path}:row {i + 1}: y: negative count {y[i]:g}")
    y[nan] = 0.0
    ids.extend(uid)
    ds.extend(stamps.tolist())
    ys.extend(y.tolist())
    where.extend(f"row {i + 1}" for i in range(n))
    return n, int(nan.sum()), 0


def load_long(paths: list[str]) -> Dataset:
    report = LoadReport(files=[str(p) for p in paths])
    ids: list[str] = []
    ds: list[float] = []
    ys: list[float] = []
    where: list = []
    files: list[str] = []
    empty = 0
    for path in paths:
        reader = _read_parquet if str(path).endswith(".parquet") else _read_csv
        n, n_empty, blank = reader(path, ids, ds, ys, where)
        if not n:
            raise header_only(path)
        files += [str(path)] * n
        empty += n_empty
        report.rows += n
        report.rows_by_file[str(path)] = n
        if blank:
            report.skip("blank lines", blank)

    def loc(i: int) -> str:
        w = where[i]
        return f"{files[i]}:{w}"

    uniq, codes = np.unique(np.asarray(ids, dtype=object), return_inverse=True)
    t = np.asarray(ds, dtype=np.float64)
    order = np.lexsort((t, codes))
    c, ts = codes[order], t[order]
    same = np.flatnonzero((np.diff(c) == 0) & (np.diff(ts) == 0))
    if same.size:
        a, b = sorted([int(order[same[0]]), int(order[same[0] + 1])])
        raise DataError(f"{loc(b)}: duplicated (unique_id, ds) = ({ids[b]}, {ds[b]:g}); also at {loc(a)}")
    within = np.flatnonzero(np.diff(c) == 0)  # consecutive pairs inside one series
    if within.size == 0:
        raise DataError(f"{paths[0]}: every series has a single row: cannot infer the step")
    diffs = ts[within + 1] - ts[within]
    step, gaps = infer_step(diffs, lambda k: loc(int(order[within[k] + 1])), allow_gaps=True)
    gap_steps = np.zeros(ts.size, dtype=np.int64)  # steps from the series' previous row (0 for the first row)
    gap_steps[within + 1] = gaps
    y = np.asarray(ys, dtype=np.float32)[order]
    bounds = np.flatnonzero(np.diff(c)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [c.size]])
    series = []
    filled = 0
    for s, e in zip(starts, ends):
        pos = np.concatenate([[0], np.cumsum(gap_steps[s + 1:e])])
        values = np.zeros(int(pos[-1]) + 1, dtype=np.float32)
        values[pos] = y[s:e]
        filled += values.size - (e - s)
        series.append(Series(id=str(uniq[c[s]]), values=values, step_seconds=step, start=int(round(ts[s])),
                             meta={"unique_id": str(uniq[c[s]])}))
    report.fill("missing rows inside a series (gaps), read as zero invocations", filled)
    report.fill("empty or NaN y, read as zero invocations", empty)
    if filled:
        report.notes.append(f"{filled} missing step(s) inside series filled with 0")
    return Dataset(series=series, step_seconds=step, format="long", report=report)
