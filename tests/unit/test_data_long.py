"""Long CSV / Parquet (unique_id, ds, y)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mesp.data import load
from mesp.errors import DataError


def _write(tmp_path: Path, text: str, name: str = "l.csv") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_groups_sorts_and_fills_gaps(tmp_path: Path) -> None:
    p = _write(tmp_path, "unique_id,ds,y\nb,2024-01-01 00:02:00,5\na,2024-01-01 00:00:00,1\n"
                         "a,2024-01-01 00:01:00,2\na,2024-01-01 00:04:00,4\nb,2024-01-01 00:03:00,\n")
    ds = load(p)
    assert ds.format == "long" and ds.step_seconds == 60
    a, b = ds.series
    assert a.id == "a" and a.values.tolist() == [1, 2, 0, 0, 4] and a.start == 1704067200
    assert b.values.tolist() == [5, 0] and b.start == 1704067200 + 120
    assert ds.report.filled["missing rows inside a series (gaps), read as zero invocations"] == 2
    assert ds.report.filled["empty or NaN y, read as zero invocations"] == 1


def test_columns_in_any_order_epoch_ds(tmp_path: Path) -> None:
    p = _write(tmp_path, "y,unique_id,ds\n3,f,3600\n4,f,7200\n")
    ds = load(p)
    assert ds.step_seconds == 3600 and ds.series[0].values.tolist() == [3, 4]


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    stamps = np.array(["2024-01-01T00:00", "2024-01-01T00:05", "2024-01-01T00:15"], dtype="datetime64[s]")
    table = pa.table({"unique_id": ["f", "f", "f"], "ds": pa.array(stamps), "y": [1.0, 2.0, 3.0]})
    path = tmp_path / "l.parquet"
    pq.write_table(table, path)
    ds = load(str(path))
    assert ds.step_seconds == 300 and ds.series[0].values.tolist() == [1, 2, 0, 3]
    assert ds.series[0].start == 1704067200


def test_parquet_negative_names_row(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "l.parquet"
    pq.write_table(pa.table({"unique_id": ["f", "f"], "ds": [0, 60], "y": [1.0, -1.0]}), path)
    with pytest.raises(DataError, match=r"l\.parquet:row 2: y: negative count -1"):
        load(str(path))


def test_duplicated_id_and_ds(tmp_path: Path) -> None:
    p = _write(tmp_path, "unique_id,ds,y\nf,0,1\nf,60,1\ng,60,1\nf,60,2\n")
    with pytest.raises(DataError, match=r"l\.csv:5: duplicated \(unique_id, ds\) = \(f, 60\); also at .*l\.csv:3"):
        load(p)


def test_irregular_step(tmp_path: Path) -> None:
    p = _write(tmp_path, "unique_id,ds,y\nf,0,1\nf,60,1\nf,120,1\nf,150,1\n")
    with pytest.raises(DataError, match=r"l\.csv:5: irregular timestamps: 30 s after the previous one"):
        load(p)


def test_wrong_column_count(tmp_path: Path) -> None:
    p = _write(tmp_path, "unique_id,ds,y\nf,0,1\nf,60\n")
    with pytest.raises(DataError, match=r"l\.csv:3: expected 3 columns, found 2"):
        load(p)


def test_negative_count(tmp_path: Path) -> None:
    p = _write(tmp_path, "unique_id,ds,y\nf,0,1\nf,60,-3\n")
    with pytest.raises(DataError, match=r"l\.csv:3: y: negative count -3"):
        load(p)


def test_non_numeric_count(tmp_path: Path) -> None:
    p = _write(tmp_path, "unique_id,ds,y\nf,0,1\nf,60,many\n")
    with pytest.raises(DataError, match=r"l\.csv:3: y: non-numeric count 'many'"):
        load(p)


def test_header_only(tmp_path: Path) -> None:
    p = _write(tmp_path, "unique_id,ds,y\n")
    with pytest.raises(DataError, match=r"l\.csv:2: no data rows"):
        load(p)


def test_empty_file(tmp_path: Path) -> None:
    p = _write(tmp_path, "")
    with pytest.raises(DataError, match=r"l\.csv:1: empty file"):
        load(p, fmt="long")


def test_single_rows_cannot_give_a_step(tmp_path: Path) -> None:
    p = _write(tmp_path, "unique_id,ds,y\nf,0,1\ng,60,1\n")
    with pytest.raises(DataError, match="cannot infer the step"):
        load(p)
