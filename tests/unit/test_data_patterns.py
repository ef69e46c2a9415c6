"""The shared daily-pattern file, checked against gzip + csv, and its malformed variants."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pytest

from mesp.data import load
from mesp.errors import DataError


@pytest.mark.realdata
def test_real_patterns_match_plain_csv(patterns_path: Path) -> None:
    with gzip.open(patterns_path, "rt", newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    ds = load(str(patterns_path))
    assert ds.format == "patterns" and len(ds) == len(rows) == 6442
    assert ds.report.rows == 6442 and not ds.report.skipped
    total = sum(sum(int(x) for x in r[2:]) for r in rows)
    assert float(sum(s.values.sum(dtype=np.float64) for s in ds)) == total
    for s, r in zip(ds.series[::500], rows[::500]):
        assert s.id == r[0] and s.meta["weight"] == int(r[1]) and s.values.tolist() == [float(x) for x in r[2:]]


HEAD = "vec_id,n_source_files," + ",".join(str(i) for i in range(1, 4))


@pytest.mark.parametrize("body, message", [
    ("v1,1,1,2\n", r"p\.csv:2: expected 5 columns, found 4"),
    ("v1,1,1,-2,3\n", r"p\.csv:2: column 4: negative count -2"),
    ("v1,1,1,two,3\n", r"p\.csv:2: column 4: non-numeric count 'two'"),
    ("", r"p\.csv:2: no data rows"),
], ids=["column-count", "negative", "non-numeric", "header-only"])
def test_malformed(tmp_path: Path, body: str, message: str) -> None:
    p = tmp_path / "p.csv"
    p.write_text(f"{HEAD}\n{body}")
    with pytest.raises(DataError, match=message):
        load(str(p))


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "p.csv"
    p.write_text("")
    with pytest.raises(DataError, match=r"p\.csv:1: empty file"):
        load(str(p))
