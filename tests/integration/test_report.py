"""``mesp report`` on a tiny hand-made store (tests/support/stores.py) and a small wide CSV it can route."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from mesp.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _wide_csv(path, days=4):
    """Daily-periodic series at 30-minute steps shaped like the test store's centroids, and an idle one."""
    from support.stores import CONTEXT, STEP_SECONDS

    n = days * CONTEXT
    t = (np.arange(n) % CONTEXT) / CONTEXT
    bump = np.exp(-0.5 * ((t - 0.3) / 0.06) ** 2)
    timer = (np.arange(n) % 8 == 0).astype(float)
    cols = {f"bump{j}": np.round(5 + level * bump) for j, level in enumerate((40, 120, 900))}
    cols.update({f"timer{j}": level * timer for j, level in enumerate((3, 30, 300))})
    cols["idle"] = np.zeros(n)
    lines = ["timestamp," + ",".join(cols)]
    lines += [f"{i * STEP_SECONDS}," + ",".join(str(int(c[i])) for c in cols.values()) for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _check_pngs(folder, text):
    import matplotlib.image as mpimg

    names = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(names) == 6 and len(set(names)) == 6
    for name in names:
        path = folder / name
        assert path.read_bytes()[:8] == PNG_MAGIC, name
        h, w = mpimg.imread(path).shape[:2]
        assert h > 200 and w > 300, (name, h, w)
    return names


@pytest.fixture
def built(tmp_path):
    from support.stores import build_store

    build_store(str(tmp_path / "store"))
    return tmp_path / "store", _wide_csv(tmp_path / "wide.csv")


def test_report_writes_markdown_pngs_and_documents(built, tmp_path, capsys):
    store, data = built
    out = tmp_path / "rep"
    assert main(["report", "--model", str(store), "--data", str(data), "--out", str(out), "--test-fraction", "0",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"report: {out / 'report.md'}" in printed
    text = (out / "report.md").read_text()
    assert text.startswith("# MESP report: model v1\n")
    # the pictures come first: the first section heading follows the six figures
    assert text.index("![") < text.index("## Model")
    names = _check_pngs(out, text)
    assert names[0] == "catalogue.png" and "routing.png" in names
    assert (out / "README.md").read_text() == text

    evaluation = json.loads((out / "evaluation.json").read_text())
    assert list(evaluation["models"])[-2:] == ["mesp", "dense"]
    assert {"naive", "ridge"} <= set(evaluation["models"])
    assert evaluation["config"]["split"]["in_sample"] is True
    # bumps route to cluster 0, timers to cluster 1, the idle function to -1
    assert {"0", "1", "-1"} <= set(evaluation["per_cluster"])
    for cell in evaluation["per_cluster"].values():
        assert set(cell) == set(evaluation["models"])
    simulation = json.loads((out / "simulation.json").read_text())
    families = {r["family"] for r in simulation["results"]}
    assert {"fixed", "hybrid", "mesp", "dense", "oracle"} <= families
    assert simulation["n_units"] == 7

    # Every series repeats daily with its one bump or spike train away from the window's edges, and the context
    # is one day: the true window is the context shifted by the horizon, which SBD aligns, so routing agrees.
    m = re.search(r"true window ([0-9.]+)% of the time", text)
    assert m and float(m.group(1)) == 100.0
    for row in ("| 0 | shape 0 |", "| 1 | shape 1 |", "| -1 | idle |", "| dense | every window |"):
        assert row in text


def test_routing_confusion_sees_a_pattern_change(tmp_path):
    """A function whose next hour breaks its daily pattern is off the diagonal; a steady one is on it."""
    from support.stores import CONTEXT, build_store

    from mesp.data import Dataset, Series
    from mesp.report import prepare, routing_confusion

    build_store(str(tmp_path / "store"))
    t = (np.arange(2 * CONTEXT) % CONTEXT) / CONTEXT
    bump = np.round(5 + 200 * np.exp(-0.5 * ((t - 0.3) / 0.06) ** 2)).astype(np.float32)
    # a function that stops calling after one day: windows whose context still holds its daily bump but whose
    # true window (shifted by the horizon) is idle land off the diagonal
    series = [Series(id="steady", values=bump, step_seconds=1800, start=0),
              Series(id="stops", values=np.r_[bump[:CONTEXT], np.zeros(CONTEXT, np.float32)], step_seconds=1800,
                     start=0)]
    rd = prepare(str(tmp_path / "store"), Dataset(series=series, step_seconds=1800, format="test"), test_fraction=0)
    conf = routing_confusion(rd)
    M = np.asarray(conf["matrix"])
    assert conf["n"] == M.sum() == len(rd.windows)
    assert conf["ids"][-1] == -1
    assert M.trace() < M.sum()  # the function that stops calling changes cluster once its true window goes idle
    assert conf["agreement"] == pytest.approx(M.trace() / M.sum())


def test_report_reuses_given_documents_and_rejects_bad_ones(built, tmp_path, capsys):
    store, data = built
    first = tmp_path / "first"
    assert main(["report", "--model", str(store), "--data", str(data), "--out", str(first), "--test-fraction", "0",
                 "--no-progress"]) == 0
    capsys.readouterr()
    again = tmp_path / "again"
    assert main(["report", "--model", str(store), "--data", str(data), "--out", str(again), "--test-fraction", "0",
                 "--evaluation", str(first / "evaluation.json"), "--simulation", str(first / "simulation.json"),
                 "--no-progress"]) == 0
    assert json.loads((again / "evaluation.json").read_text()) == json.loads((first / "evaluation.json").read_text())
    capsys.readouterr()

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["report", "--model", str(store), "--data", str(data), "--evaluation", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mesp report: error: --evaluation") and "not JSON" in err and "\n" not in err
    bad.write_text(json.dumps({"models": {}}))
    assert main(["report", "--model", str(store), "--data", str(data), "--evaluation", str(bad)]) == 2
    assert "not a mesp evaluate --json document" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--test-fraction", "1"], "test fraction 1.0 must be in [0, 1)"),
    (["--max-functions", "0"], "--max-functions 0 must be >= 1"),
])
def test_bad_arguments_are_one_line_errors(built, capsys, argv, message):
    store, data = built
    assert main(["report", "--model", str(store), "--data", str(data), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mesp report: error:") and message in err and "\n" not in err


def test_missing_store_is_a_one_line_error(tmp_path, capsys):
    data = _wide_csv(tmp_path / "wide.csv", days=2)
    assert main(["report", "--model", str(tmp_path / "nothing"), "--data", str(data)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mesp report: error:") and "\n" not in err
