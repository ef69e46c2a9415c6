"""Azure 2019 day files: real files checked against a plain csv-module reading, joins, and bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from mesp.data import load
from mesp.data.azure2019 import aux_paths, day_from_name
from mesp.errors import DataError

HEAD = "HashOwner,HashApp,HashFunction,Trigger"


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))[1:]


def write_day(folder: Path, name: str, rows: list[tuple], minutes: range = range(1, 1441)) -> Path:
    path = folder / name
    lines = [HEAD + "," + ",".join(map(str, minutes))]
    for owner, app, func, trig, counts in rows:
        lines.append(",".join([owner, app, func, trig] + [str(c) for c in counts]))
    path.write_text("\n".join(lines) + "\n")
    return path


def day(value: int = 0, n: int = 1440, at: dict | None = None) -> list[int]:
    counts = [value] * n
    for i, c in (at or {}).items():
        counts[i] = c
    return counts


@pytest.mark.realdata
@pytest.mark.parametrize("stem", ["orighash_10fn_fullday", "orighash_5fn_fullday", "orighash_500fn_min480-959"])
def test_real_file_matches_plain_csv(original_format: Path, stem: str) -> None:
    path = original_format / f"{stem}_invocations.csv"
    rows = _rows(path)
    header = next(csv.reader(open(path)))
    first_minute = int(header[4])
    ds = load(str(path))
    assert ds.format == "azure2019" and ds.step_seconds == 60
    assert len(ds) == len(rows) == ds.report.rows
    by_id = {s.id: s for s in ds}
    for row in rows:
        s = by_id["/".join(row[:3])]
        assert s.meta["trigger"] == row[3]
        assert s.values.tolist() == [float(x) for x in row[4:]]
        assert s.start == (first_minute - 1) * 60
    durations = {tuple(r[:3]): r for r in _rows(original_format / f"{stem}_durations.csv")}
    dur_head = next(csv.reader(open(original_format / f"{stem}_durations.csv")))
    mem_head = next(csv.reader(open(original_format / f"{stem}_memory.csv")))
    memory = {}
    for r in _rows(original_format / f"{stem}_memory.csv"):
        rec = dict(zip(mem_head, r))
        memory[(rec["HashOwner"], rec["HashApp"], rec["HashFunction"])] = rec
    for s in ds:
        key = (s.meta["owner"], s.meta["app"], s.meta["function"])
        if key in durations:
            rec = dict(zip(dur_head, durations[key]))
            assert s.meta["duration_ms"] == float(rec["Average"])
            assert s.meta["duration_count"] == int(float(rec["Count"]))
            assert s.meta["duration_percentiles_ms"]["99"] == float(rec["percentile_Average_99"])
        if key in memory:
            assert s.meta["memory_mb"] == float(memory[key]["AverageAllocatedMb"])


@pytest.mark.realdata
def test_real_500fn_trigger_mix_matches_readme(original_format: Path) -> None:
    ds = load(str(original_format / "orighash_500fn_min480-959_invocations.csv"))
    mix: dict[str, int] = {}
    for s in ds:
        mix[s.meta["trigger"]] = mix.get(s.meta["trigger"], 0) + 1
    assert mix == {"timer": 247, "http": 139, "queue": 69, "orchestration": 25, "event": 14, "storage": 5,
                   "others": 1}
    assert all(len(s) == 480 for s in ds) and ds.series[0].start == 479 * 60


@pytest.mark.realdata
def test_real_files_of_different_minute_ranges_refuse_to_join(original_format: Path) -> None:
    paths = sorted(str(p) for p in original_format.glob("*invocations.csv"))
    with pytest.raises(DataError, match="must share one minute range"):
        load(paths)


def test_day_number_from_name() -> None:
    assert day_from_name("x/invocations_per_function_md.anon.d05.csv") == 5
    assert day_from_name("invocations_per_function_md.anon.d14.csv.gz") == 14
    assert day_from_name("orighash_500fn_min480-959_invocations.csv") is None


def test_multi_day_join_fills_absent_days_with_zeros(tmp_path: Path) -> None:
    write_day(tmp_path, "invocations_per_function_md.anon.d02.csv",
              [("o", "a", "f1", "http", day(1)), ("o", "a", "f2", "timer", day(0, at={0: 7}))])
    write_day(tmp_path, "invocations_per_function_md.anon.d03.csv", [("o", "a", "f1", "http", day(2))])
    paths = [str(tmp_path / "invocations_per_function_md.anon.d03.csv"),
             str(tmp_path / "invocations_per_function_md.anon.d02.csv")]  # order must not matter: names carry days
    ds = load(paths)
    f1, f2 = ds.series
    assert f1.id == "o/a/f1" and len(f1) == 2880 and f1.start == 86400
    assert f1.values[:1440].sum() == 1440 and f1.values[1440:].sum() == 2880
    assert f2.values[0] == 7 and f2.values[1440:].sum() == 0
    assert f2.meta["days_present"] == 1
    assert sum(ds.report.filled.values()) == 1440  # f2 absent on day 3
    assert ds.report.rows == 3


def test_files_without_day_numbers_are_days_in_order_given(tmp_path: Path) -> None:
    a = write_day(tmp_path, "a.csv", [("o", "a", "f", "http", day(1))])
    b = write_day(tmp_path, "b.csv", [("o", "a", "f", "http", day(3))])
    ds = load([str(b), str(a)])
    assert ds.series[0].values[0] == 3 and ds.series[0].values[1440] == 1


def test_samples_of_one_day_are_read_as_one_day(tmp_path: Path) -> None:
    a = write_day(tmp_path, "a.csv", [("o", "a", "f", "http", day(1)), ("o", "a", "g", "http", day(2))])
    b = write_day(tmp_path, "b.csv", [("o", "a", "f", "http", day(1)), ("o", "a", "h", "queue", day(4))])
    ds = load([str(a), str(b)])
    assert [s.id for s in ds] == ["o/a/f", "o/a/g", "o/a/h"]
    assert all(len(s) == 1440 for s in ds)
    assert sum(ds.report.skipped.values()) == 1  # f read once, and the repeat is counted


def test_partial_minute_range_sets_start(tmp_path: Path) -> None:
    p = write_day(tmp_path, "invocations_per_function_md.anon.d03.csv",
                  [("o", "a", "f", "http", [1, 2, 3])], minutes=range(600, 603))
    s = load(str(p)).series[0]
    assert s.start == 2 * 86400 + 599 * 60 and s.values.tolist() == [1, 2, 3]


def test_azure_memory_file_is_per_app(tmp_path: Path) -> None:
    write_day(tmp_path, "invocations_per_function_md.anon.d01.csv",
              [("o", "a", "f", "http", day(1)), ("o", "a", "g", "http", day(1))])
    (tmp_path / "app_memory_percentiles.anon.d01.csv").write_text(
        "HashOwner,HashApp,SampleCount,AverageAllocatedMb,AverageAllocatedMb_pct1\no,a,10,128.5,100\n"
        "o,other,5,64,60\n")
    (tmp_path / "function_durations_percentiles.anon.d01.csv").write_text(
        "HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum,percentile_Average_50\no,a,f,12.5,1440,1,90,11\n")
    ds = load(str(tmp_path / "invocations_per_function_md.anon.d01.csv"))
    f, g = ds.series
    assert f.meta["memory_mb"] == g.meta["memory_mb"] == 128.5 and f.meta["memory_scope"] == "app"
    assert f.meta["duration_ms"] == 12.5 and "duration_ms" not in g.meta
    assert ds.report.skipped["memory rows without an invocations row (app_memory_percentiles.anon.d01.csv)"] == 1
    assert aux_paths(str(tmp_path / "invocations_per_function_md.anon.d01.csv"))[0].endswith(
        "function_durations_percentiles.anon.d01.csv")


# --- malformed inputs: one test per failure mode ------------------------------------------------------

def _bad(tmp_path: Path, text: str, name: str = "bad.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_wrong_column_count(tmp_path: Path) -> None:
    p = _bad(tmp_path, f"{HEAD},1,2,3\no,a,f,http,1,2\n")
    with pytest.raises(DataError, match=r"bad\.csv:2: expected 7 columns, found 6"):
        load(str(p))


def test_negative_count(tmp_path: Path) -> None:
    p = _bad(tmp_path, f"{HEAD},1,2,3\no,a,f,http,1,2,3\no,a,g,http,1,-2,3\n")
    with pytest.raises(DataError, match=r"bad\.csv:3: column 6: negative count -2"):
        load(str(p))


def test_non_numeric_count(tmp_path: Path) -> None:
    p = _bad(tmp_path, f"{HEAD},1,2,3\no,a,f,http,1,x,3\n")
    with pytest.raises(DataError, match=r"bad\.csv:2: column 6: non-numeric count 'x'"):
        load(str(p))


def test_duplicated_function_row(tmp_path: Path) -> None:
    p = _bad(tmp_path, f"{HEAD},1,2\no,a,f,http,1,2\no,a,g,http,1,2\no,a,f,http,3,4\n")
    with pytest.raises(DataError, match=r"bad\.csv:4: duplicated function row .* line 2"):
        load(str(p))


def test_empty_file(tmp_path: Path) -> None:
    p = _bad(tmp_path, "")
    with pytest.raises(DataError, match=r"bad\.csv:1: empty file"):
        load(str(p), fmt="azure2019")


def test_header_only(tmp_path: Path) -> None:
    p = _bad(tmp_path, f"{HEAD},1,2\n")
    with pytest.raises(DataError, match=r"bad\.csv:2: no data rows"):
        load(str(p))


def test_non_consecutive_minute_columns(tmp_path: Path) -> None:
    p = _bad(tmp_path, f"{HEAD},1,2,4\no,a,f,http,1,2,3\n")
    with pytest.raises(DataError, match=r"bad\.csv:1: column 7: expected minute 3"):
        load(str(p))


def test_missing_day_between_days(tmp_path: Path) -> None:
    a = write_day(tmp_path, "invocations_per_function_md.anon.d01.csv", [("o", "a", "f", "http", day(1))])
    b = write_day(tmp_path, "invocations_per_function_md.anon.d03.csv", [("o", "a", "f", "http", day(1))])
    with pytest.raises(DataError, match=r"day\(s\) 2 missing"):
        load([str(a), str(b)])


def test_same_day_function_with_different_counts(tmp_path: Path) -> None:
    a = write_day(tmp_path, "x.d01.csv", [("o", "a", "f", "http", day(1))])
    b = write_day(tmp_path, "y.d01.csv", [("o", "a", "f", "http", day(2))])
    with pytest.raises(DataError, match=r"y\.d01\.csv:2: function o/a/f is also in .*x\.d01\.csv for day 1"):
        load([str(a), str(b)])


def test_partial_days_cannot_be_joined(tmp_path: Path) -> None:
    a = write_day(tmp_path, "x.d01.csv", [("o", "a", "f", "http", [1])], minutes=range(5, 6))
    b = write_day(tmp_path, "x.d02.csv", [("o", "a", "f", "http", [1])], minutes=range(5, 6))
    with pytest.raises(DataError, match="needs full-day files"):
        load([str(a), str(b)])


def test_bad_row_in_durations_file(tmp_path: Path) -> None:
    write_day(tmp_path, "s_invocations.csv", [("o", "a", "f", "http", day(1))])
    _bad(tmp_path, "HashOwner,HashApp,HashFunction,Average,Count\no,a,f,abc,3\n", "s_durations.csv")
    with pytest.raises(DataError, match=r"s_durations\.csv:2: Average: non-numeric value 'abc'"):
        load(str(tmp_path / "s_invocations.csv"))


def test_matrix_stays_float32(tmp_path: Path) -> None:
    p = write_day(tmp_path, "x.csv", [("o", "a", "f", "http", day(5))])
    assert load(str(p)).series[0].values.dtype == np.float32
