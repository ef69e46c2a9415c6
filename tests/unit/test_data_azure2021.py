"""Azure 2021 invocation trace -> per-minute counts by start minute."""

from __future__ import annotations

import csv
import math
from collections import Counter
from pathlib import Path

import pytest

from mesp.data import load
from mesp.errors import DataError

HEAD = "app,func,end_timestamp,duration"


@pytest.mark.realdata
def test_real_excerpt_matches_plain_count(shared_data: Path) -> None:
    path = shared_data / "azure2021" / "AzureFunctionsInvocationTrace2021_excerpt_998rows.csv"
    expected: Counter = Counter()
    durations: dict[str, list[float]] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            key = f"{row['app']}/{row['func']}"
            start = max(float(row["end_timestamp"]) - float(row["duration"]), 0.0)
            expected[(key, math.floor(start / 60))] += 1
            durations.setdefault(key, []).append(float(row["duration"]) * 1000)
    ds = load(str(path))
    assert ds.format == "azure2021" and ds.step_seconds == 60
    assert len(ds) == len(durations) == 49 and ds.report.rows == 998
    got = Counter()
    for s in ds:
        assert s.start == 0
        for minute, count in enumerate(s.values.tolist()):
            if count:
                got[(s.id, minute)] = int(count)
        assert s.meta["invocations"] == len(durations[s.id])
        assert s.meta["duration_ms"] == pytest.approx(sum(durations[s.id]) / len(durations[s.id]))
    assert got == expected
    assert len({len(s) for s in ds}) == 1  # one common grid


def test_binned_by_start_minute(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    # ends in minute 2, but started in minute 0; the second ends and starts in minute 1
    p.write_text(f"{HEAD}\na,f,150.0,100.0\na,f,70.0,1.0\nb,g,10.0,0.5\n")
    ds = load(str(p))
    f = next(s for s in ds if s.id == "a/f")
    assert f.values.tolist() == [1.0, 1.0]  # the grid ends at the last start minute
    assert f.meta["duration_max_ms"] == 100000.0


def test_start_before_trace_start_is_counted_in_minute_zero(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text(f"{HEAD}\na,f,1.0,3.0\na,f,61.0,0.5\n")
    ds = load(str(p))
    assert ds.series[0].values.tolist() == [1.0, 1.0]
    assert any("before the trace start" in n for n in ds.report.notes)


@pytest.mark.parametrize("body, message", [
    ("a,f,1.0\n", r"t\.csv:2: expected 4 columns, found 3"),
    ("a,f,1.0,-2\n", r"t\.csv:2: duration: negative value -2"),
    ("a,f,soon,1\n", r"t\.csv:2: end_timestamp: non-numeric value 'soon'"),
    (",f,1.0,1\n", r"t\.csv:2: empty app"),
    ("", r"t\.csv:2: no data rows"),
], ids=["column-count", "negative", "non-numeric", "empty-key", "header-only"])
def test_malformed(tmp_path: Path, body: str, message: str) -> None:
    p = tmp_path / "t.csv"
    p.write_text(f"{HEAD}\n{body}")
    with pytest.raises(DataError, match=message):
        load(str(p))


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("")
    with pytest.raises(DataError, match=r"t\.csv:1: empty file"):
        load(str(p), fmt="azure2021")


def test_wrong_header(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("app,func,end,duration\na,f,1,1\n")
    with pytest.raises(DataError, match=r"t\.csv:1: expected header"):
        load(str(p), fmt="azure2021")
