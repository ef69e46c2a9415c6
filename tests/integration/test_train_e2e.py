"""``mesp train`` on a small real sample into a temporary store, then forecasts through the serving code."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from mesp.cli import main
from mesp.data import load
from mesp.runtime import Predictor
from mesp.store import open_store

TINY = ["--budget-minutes", "0.3", "--trials", "1", "--max-epochs", "2", "--families", "linear,dlinear",
        "--no-progress", "--seed", "0"]


@pytest.fixture(scope="module")
def sample(patterns_path, tmp_path_factory):
    """The first 200 real daily patterns (a temporary copy, never inside the repository)."""
    path = tmp_path_factory.mktemp("data") / "patterns200.csv.gz"
    with gzip.open(patterns_path, "rt") as src, gzip.open(path, "wt") as dst:
        for i, line in enumerate(src):
            if i > 200:
                break
            dst.write(line)
    return path


@pytest.mark.realdata
@pytest.mark.slow
def test_train_then_serve(sample, tmp_path, capsys):
    store_uri = str(tmp_path / "store")
    # patterns hold single days: --context auto trains them with 12h (720 one-minute steps)
    assert main(["train", "--data", str(sample), "--model", store_uri, "--clusters", "2", "--workers", "2",
                 *TINY]) == 0
    out = capsys.readouterr().out
    store = open_store(store_uri)
    version = store.latest_version()
    assert version in out
    m = store.read_manifest(version)
    assert (m.context, m.horizon, m.step_seconds, m.quantiles) == (720, 60, 60, [0.5, 0.9])
    assert sorted(c.id for c in m.clusters if c.id >= 0) == [0, 1]
    assert all(c.expert.family in {"linear", "dlinear"} or c.expert.params.get("deferred")
               for c in m.clusters if c.id >= 0)
    t = m.training
    assert t["data"]["n_series"] == 200 and t["data"]["format"] == "patterns"
    assert t["data"]["n_windows"] == 200 * 12  # origins 720, 780, ..., 1380
    assert t["seed"] == 0 and t["code_version"] and t["budget"]["minutes"] == 0.3
    assert {"cluster_seconds", "experts_seconds", "dense_seconds"} <= set(t["timings"])
    assert set(t["experts"]) == {"0", "1", "dense"}

    predictor = Predictor(store_uri, ttl_seconds=0)
    X = np.stack([s.values[600:1320] for s in load(str(sample)).series[:16]])
    pred = predictor.predict(X)
    assert pred.version == version
    assert pred.values.shape == (16, 2, 60)
    assert np.isfinite(pred.values).all() and (pred.values >= 0).all()
    assert not pred.degraded.any()
    assert {f for f in pred.families} <= {"linear", "dlinear", "rule:idle"}

    assert main(["models", "list", "--model", store_uri]) == 0
    assert f"* {version}" in capsys.readouterr().out


@pytest.mark.realdata
def test_one_day_context_on_patterns_is_a_clear_error(sample, tmp_path, capsys):
    assert main(["train", "--data", str(sample), "--model", str(tmp_path / "s"), "--context", "1d", *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("mesp train: error: cluster job failed: no window fits")
    assert "1440 steps" in err and not (tmp_path / "s" / "LATEST").exists()


def test_bad_flags_are_one_line_errors(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "missing.csv"), "--model", str(tmp_path / "s")]) == 2
    assert "not found" in capsys.readouterr().err
    data = tmp_path / "x.csv"
    data.write_text("unique_id,ds,y\n")
    assert main(["train", "--data", str(data), "--model", str(tmp_path / "s"), "--sagemaker",
                 "--sm-image", "img"], ) == 2
    err = capsys.readouterr().err
    assert "--sm-role" in err and "--sm-work-uri" in err and "Traceback" not in err
