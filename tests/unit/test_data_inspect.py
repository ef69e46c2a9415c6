"""``mesp data inspect`` on the real files, checked against figures computed here with csv + plain Python."""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from mesp.cli import main


def _plain_figures(path: Path, first_count_column: int) -> dict:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        rows = list(reader)
    counts = [[int(x) for x in r[first_count_column:]] for r in rows]
    n_values = sum(len(c) for c in counts)
    return {
        "rows": len(rows),
        "total": sum(sum(c) for c in counts),
        "zero_share": sum(x == 0 for c in counts for x in c) / n_values,
        "sparse": sum(sum(x > 0 for x in c) < 0.04 * len(c) for c in counts),
        "triggers": Counter(r[3] for r in rows) if first_count_column == 4 else None,
        "steps": len(counts[0]),
    }


@pytest.mark.realdata
def test_inspect_real_files(shared_data: Path, tmp_path: Path, capsys) -> None:
    azure = sorted((shared_data / "azure2019" / "original_format").glob("*invocations.csv"))
    patterns = shared_data / "azure2019" / "daily_patterns_train.csv.gz"
    out = tmp_path / "inspect.json"
    assert main(["data", "inspect", *map(str, azure), str(patterns), "--json", str(out)]) == 0
    table = capsys.readouterr().out
    result = json.loads(out.read_text())
    by_path = {Path(f["path"]).name: f for f in result["files"]}
    expected_rows = 0
    for path, first in [(p, 4) for p in azure] + [(patterns, 2)]:
        plain = _plain_figures(path, first)
        got = by_path[path.name]
        expected_rows += plain["rows"]
        assert got["series"] == got["report"]["rows"] == plain["rows"]
        assert got["total_invocations"] == plain["total"]
        assert got["zero_step_share"] == pytest.approx(plain["zero_share"], abs=1e-12)
        assert got["sparse_series"] == plain["sparse"]
        assert got["steps_min"] == got["steps_max"] == plain["steps"]
        assert got["step_seconds"] == 60
        assert got["report"]["skipped"] == {} and got["report"]["filled"] == {}
        if plain["triggers"] is not None:
            assert got["triggers"] == dict(plain["triggers"])
        assert path.name in table and f"{plain['total']:,}" in table
    assert result["total"]["rows"] == expected_rows == 10 + 5 + 500 + 6442
    assert by_path["orighash_500fn_min480-959_invocations.csv"]["days"] == pytest.approx(480 / 1440, abs=1e-4)
    assert "timer 247" in table


@pytest.mark.realdata
def test_inspect_join_explains_why_files_do_not_join(original_format: Path, capsys) -> None:
    azure = sorted(str(p) for p in original_format.glob("*invocations.csv"))
    assert main(["data", "inspect", "--join", *azure]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "must share one minute range" in err


def test_inspect_synthetic_wide_file_reports_filled_cells(tmp_path: Path, capsys) -> None:
    p = tmp_path / "w.csv"
    p.write_text("t,f,g\n0,1,\n60,0,0\n120,3,0\n")
    assert main(["data", "inspect", str(p), "--json", str(tmp_path / "o.json")]) == 0
    out = capsys.readouterr().out
    assert "filled 1 empty or NaN cells" in out
    info = json.loads((tmp_path / "o.json").read_text())["files"][0]
    assert info["total_invocations"] == 4 and info["zero_step_share"] == pytest.approx(4 / 6)
    assert info["sparse_series"] == 1 and info["idle_series"] == 1


def test_inspect_bad_file_is_one_line_error(tmp_path: Path, capsys) -> None:
    p = tmp_path / "w.csv"
    p.write_text("t,f\n0,1\n0,2\n")
    assert main(["data", "inspect", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "w.csv:3: duplicated timestamp" in err and "Traceback" not in err


def test_inspect_missing_file(tmp_path: Path, capsys) -> None:
    assert main(["data", "inspect", str(tmp_path / "nope.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
