"""Wide CSV: timestamp column + one column per series, any regular step."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesp.data import load, parse_duration
from mesp.errors import DataError


def _write(tmp_path: Path, text: str, name: str = "w.csv") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_iso_timestamps_five_minute_step(tmp_path: Path) -> None:
    p = _write(tmp_path, "timestamp,fa,fb\n2024-01-01T00:00:00Z,1,0\n2024-01-01T00:05:00Z,2,3\n"
                         "2024-01-01T00:10:00Z,0,4\n")
    ds = load(p)
    assert ds.format == "wide" and ds.step_seconds == 300
    fa, fb = ds.series
    assert fa.id == "fa" and fa.values.tolist() == [1, 2, 0] and fb.values.tolist() == [0, 3, 4]
    assert fa.start == 1704067200
    assert parse_duration("1h", ds.step_seconds) == 12 and parse_duration("1d", ds.step_seconds) == 288


def test_epoch_seconds_rows_in_any_order(tmp_path: Path) -> None:
    p = _write(tmp_path, "t,f\n120,3\n0,1\n60,2\n")
    assert load(p).series[0].values.tolist() == [1, 2, 3]


def test_huawei_day_time_layout_and_empty_cells(tmp_path: Path) -> None:
    a = _write(tmp_path, "day,time,0,1\n0,0,,5\n0,60,2,NaN\n", "day_00.csv")
    b = _write(tmp_path, "day,time,1,0\n1,120,7,1\n", "day_01.csv")  # columns reordered in the next day
    ds = load([a, b])
    assert [s.id for s in ds] == ["0", "1"]
    assert ds.series[0].values.tolist() == [0, 2, 1] and ds.series[1].values.tolist() == [5, 0, 7]
    assert sum(ds.report.filled.values()) == 2
    assert ds.report.rows_by_file == {a: 2, b: 1}


def test_duplicated_timestamp(tmp_path: Path) -> None:
    p = _write(tmp_path, "t,f\n0,1\n60,2\n60,3\n")
    with pytest.raises(DataError, match=r"w\.csv:4: duplicated timestamp \(same as line 3\)"):
        load(p)


def test_irregular_timestamps(tmp_path: Path) -> None:
    p = _write(tmp_path, "t,f\n0,1\n60,2\n120,3\n200,4\n")
    with pytest.raises(DataError, match=r"w\.csv:5: irregular timestamps: 80 s after the previous one, the step is 60 s"):
        load(p)


def test_gap_is_irregular(tmp_path: Path) -> None:
    p = _write(tmp_path, "t,f\n0,1\n60,2\n120,3\n240,4\n")
    with pytest.raises(DataError, match=r"w\.csv:5: irregular"):
        load(p)


def test_wrong_column_count(tmp_path: Path) -> None:
    p = _write(tmp_path, "t,f,g\n0,1,2\n60,2\n")
    with pytest.raises(DataError, match=r"w\.csv:3: expected 3 columns, found 2"):
        load(p)


def test_negative_count(tmp_path: Path) -> None:
    p = _write(tmp_path, "t,f,g\n0,1,2\n60,2,-1\n")
    with pytest.raises(DataError, match=r"w\.csv:3: column 3 \(g\): negative count -1"):
        load(p)


def test_non_numeric_count(tmp_path: Path) -> None:
    p = _write(tmp_path, "t,f,g\n0,1,2\n60,lots,1\n")
    with pytest.raises(DataError, match=r"w\.csv:3: column 2 \(f\): non-numeric count 'lots'"):
        load(p)


def test_bad_timestamp(tmp_path: Path) -> None:
    p = _write(tmp_path, "t,f\nyesterday,1\n60,2\n")
    with pytest.raises(DataError, match=r"w\.csv:2: cannot read timestamp 'yesterday'"):
        load(p)


def test_header_only(tmp_path: Path) -> None:
    p = _write(tmp_path, "t,f\n")
    with pytest.raises(DataError, match=r"w\.csv:2: no data rows"):
        load(p)


def test_empty_file(tmp_path: Path) -> None:
    p = _write(tmp_path, "")
    with pytest.raises(DataError, match=r"w\.csv:1: empty file"):
        load(p)


def test_single_row_has_no_step(tmp_path: Path) -> None:
    p = _write(tmp_path, "t,f\n0,1\n")
    with pytest.raises(DataError, match="cannot infer the step"):
        load(p)


def test_duplicated_column(tmp_path: Path) -> None:
    p = _write(tmp_path, "t,f,f\n0,1,1\n60,1,1\n")
    with pytest.raises(DataError, match=r"w\.csv:1: duplicated column name 'f'"):
        load(p)
