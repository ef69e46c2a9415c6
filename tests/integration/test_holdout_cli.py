"""``--test-fraction F --seed S`` holds out the same functions in ``mesp train``, ``evaluate`` and ``simulate``."""

from __future__ import annotations

import gzip
import json

import pytest

from mesp.cli import main
from mesp.data import load
from mesp.evaluation import split_by_series
from mesp.store import open_store

SPLIT = ["--test-fraction", "0.25", "--seed", "3"]


@pytest.fixture(scope="module")
def sample(patterns_path, tmp_path_factory):
    """The first 40 real daily patterns (a temporary copy, never inside the repository)."""
    path = tmp_path_factory.mktemp("data") / "patterns40.csv.gz"
    with gzip.open(patterns_path, "rt") as src, gzip.open(path, "wt") as dst:
        for i, line in enumerate(src):
            if i > 40:
                break
            dst.write(line)
    return path


@pytest.mark.realdata
@pytest.mark.slow
def test_train_evaluate_simulate_share_one_holdout(sample, tmp_path, capsys):
    store_uri = str(tmp_path / "store")
    assert main(["train", "--data", str(sample), "--model", store_uri, "--clusters", "2", "--workers", "1",
                 "--budget-minutes", "0.2", "--trials", "1", "--max-epochs", "1", "--families", "linear",
                 "--no-progress", *SPLIT]) == 0
    ids = [s.id for s in load(str(sample)).series]
    train_idx, test_idx = split_by_series(len(ids), 0.25, 3)
    m = open_store(store_uri).read_manifest(open_store(store_uri).latest_version())
    assert m.training["split"] == {"by": "series", "function": "mesp.evaluation.split_by_series",
                                   "test_fraction": 0.25, "seed": 3, "n_train_series": 30}
    assert m.training["data"]["n_series"] == 30 and m.training["data"]["n_windows"] == 30 * 12
    assert sum(c.size for c in m.clusters) == 30 * 12  # only the training functions were clustered

    ev = tmp_path / "ev.json"
    assert main(["evaluate", "--data", str(sample), "--model", store_uri, "--baselines", "naive",
                 "--json", str(ev), *SPLIT]) == 0
    split = json.loads(ev.read_text())["config"]["split"]
    assert (split["n_train_series"], split["n_test_series"]) == (30, 10)

    sim = tmp_path / "sim.json"
    assert main(["simulate", "--data", str(sample), "--model", store_uri, "--no-sweep", "--units",
                 "--json", str(sim), *SPLIT]) == 0
    doc = json.loads(sim.read_text())
    assert doc["split"]["n_simulated_series"] == 10 and doc["split"]["held_out"]
    assert [u["id"] for u in doc["results"][0]["units"]] == [ids[i] for i in test_idx]
    assert not {u["id"] for u in doc["results"][0]["units"]} & {ids[i] for i in train_idx}
    capsys.readouterr()


def test_train_rejects_a_bad_test_fraction(tmp_path, capsys):
    data = tmp_path / "p.csv"
    data.write_text("vec_id,n_source_files,1,2\n0000000000000001,1,0,1\n")
    assert main(["train", "--data", str(data), "--model", str(tmp_path / "s"), "--test-fraction", "1.0"]) == 2
    err = capsys.readouterr().err
    assert "--test-fraction 1.0 must be in [0, 1)" in err and "Traceback" not in err
