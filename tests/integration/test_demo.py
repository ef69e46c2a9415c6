"""``mesp demo --quick`` end to end into a temporary folder: data, training, store, API answers, report."""

from __future__ import annotations

import re

import numpy as np
import pytest

from mesp.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from mesp.demo import DemoOptions, quick, run_demo

    out = tmp_path_factory.mktemp("demo") / "run"
    return run_demo(quick(DemoOptions(out=str(out), progress=False))), out


@pytest.mark.slow
def test_demo_publishes_a_verified_version(demo):
    from mesp.runtime import Predictor
    from mesp.store import open_store

    result, out = demo
    store = open_store(str(out / "store"))
    assert store.latest_version() == result.version
    loaded = Predictor(str(out / "store"), ttl_seconds=0).model()
    assert loaded.version == result.version and not loaded.problems  # every file verified by sha256
    m = loaded.manifest
    # --quick: 10-minute steps, one-day context, one-hour horizon, two shape clusters + the idle group
    assert (m.step_seconds, m.context, m.horizon) == (600, 144, 6)
    assert sorted(c.id for c in m.clusters) == [-1, 0, 1]
    # training saw only the training functions; the held-out ones were scored
    split = result.evaluation["config"]["split"]
    assert m.training["data"]["n_series"] == split["n_train_series"] == 24
    assert split["n_test_series"] == 6 and split["in_sample"] is False
    assert m.training["demo"]["held_out_functions"] == 6
    assert {"mesp", "dense", "naive", "ridge"} <= set(result.evaluation["models"])


@pytest.mark.slow
def test_demo_training_data_excludes_the_held_out_functions(demo):
    from mesp.data import load
    from mesp.evaluation import split_by_series

    result, out = demo
    full = load(str(out / "data" / "synthetic.csv.gz"))
    train = load(str(out / "data" / "train.csv.gz"))
    train_idx, test_idx = split_by_series(len(full), 0.2, 0)
    assert [s.id for s in train] == [full.series[i].id for i in train_idx]
    for got, i in zip(train, train_idx):
        np.testing.assert_array_equal(got.values, full.series[i].values)
    assert not {full.series[i].id for i in test_idx} & {s.id for s in train}


@pytest.mark.slow
def test_demo_http_answers(demo):
    result, _ = demo
    calls = {(c["method"], c["path"], i): c for i, c in enumerate(result.http)}
    assert [(c["method"], c["path"]) for c in result.http] == [
        ("GET", "/health"), ("GET", "/model"), ("POST", "/forecast"), ("POST", "/forecast"), ("POST", "/forecast")]
    assert [c["status"] for c in result.http[:4]] == [200, 200, 200, 200]
    assert 400 <= result.http[4]["status"] < 500
    assert result.http[4]["answer"]["message"].startswith("series[")
    health, model, single, batch, _ = result.http
    assert health["answer"]["status"] == "ok" and health["answer"]["model_version"] == result.version
    assert model["answer"]["version"] == result.version
    assert len(single["answer"]["forecast"]) == 6 and single["answer"]["model_version"] == result.version
    assert set(single["answer"]["quantiles"]) == {"0.5", "0.9"}
    items = batch["answer"]["items"]
    assert 1 <= len(items) <= 4 and batch["answer"]["count"] == len(items)
    assert all(len(it["forecast"]) == 6 and min(it["forecast"]) >= 0 for it in items)
    assert len(calls) == 5


@pytest.mark.slow
def test_demo_report_opens_with_valid_pictures(demo):
    import matplotlib.image as mpimg

    result, out = demo
    report = out / "report" / "report.md"
    assert result.report == report
    text = report.read_text()
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(pictures) == 6
    assert text.index("![") < text.index("\n## ")  # the report opens with its pictures
    for name in pictures:
        path = report.parent / name
        assert path.read_bytes()[:8] == PNG_MAGIC, name
        assert mpimg.imread(path).shape[0] > 200
    assert "## The local API" in text and "POST /forecast 422" in text
    assert "SYNTHETIC" not in text and "synthetic fleet" in text
    assert {p.name for p in result.report_files} >= {"report.md", "README.md", "evaluation.json", "simulation.json",
                                                      *pictures}


def test_bad_demo_arguments_are_one_line_errors(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--functions", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mesp demo: error:") and "--functions 1" in err and "\n" not in err
    (tmp_path / "file").write_text("x")
    assert main(["demo", "--quick", "--out", str(tmp_path / "file")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["demo", "--quick", "--out", str(tmp_path / "d"), "--data", str(tmp_path / "missing.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mesp demo: error:") and "\n" not in err


def test_write_series_round_trips_wide_and_long(tmp_path):
    from mesp.data import Dataset, Series, load
    from mesp.demo import write_series

    rng = np.random.default_rng(1)
    same = [Series(id=f"f{i}", values=rng.poisson(3, 50).astype(np.float32), step_seconds=300, start=600)
            for i in range(3)]
    wide = write_series(Dataset(series=same, step_seconds=300, format="test"), [2, 0], tmp_path / "w")
    assert wide.name == "w.csv.gz"
    back = load(str(wide))
    assert [s.id for s in back] == ["f2", "f0"] and back.step_seconds == 300 and back.format == "wide"
    np.testing.assert_array_equal(back.series[0].values, same[2].values)
    assert back.series[0].start == 600

    ragged = same[:2] + [Series(id="short", values=np.array([1.5, 0, 2], np.float32), step_seconds=300, start=0)]
    long = write_series(Dataset(series=ragged, step_seconds=300, format="test"), [0, 2], tmp_path / "l")
    assert long.name == "l.parquet"
    back = {s.id: s for s in load(str(long))}
    np.testing.assert_array_equal(back["short"].values, [1.5, 0, 2])
    np.testing.assert_array_equal(back["f0"].values, same[0].values)


def test_write_series_keeps_daily_patterns_as_patterns(tmp_path):
    from mesp.data import Dataset, Series, load
    from mesp.demo import write_series

    rows = [Series(id=f"{i:016x}", values=np.arange(1440, dtype=np.float32) % (i + 2), step_seconds=60,
                   start=None, meta={"weight": i + 1}) for i in range(3)]
    path = write_series(Dataset(series=rows, step_seconds=60, format="patterns"), [1, 2], tmp_path / "p")
    back = load(str(path))
    assert back.format == "patterns" and [s.id for s in back] == [rows[1].id, rows[2].id]
    assert back.series[0].start is None and back.series[1].meta["weight"] == 3
    np.testing.assert_array_equal(back.series[1].values, rows[2].values)
