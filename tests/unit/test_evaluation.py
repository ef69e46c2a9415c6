import json

import numpy as np
import pytest

from mesp.baselines import MeanLastHour, Naive
from mesp.errors import MespError
from mesp.evaluation import (evaluate, format_table, load_store_models, split_by_series, windows_of,
                             write_json)
from mesp.metrics import METRIC_NAMES, forecast_metrics
from mesp.windows import make_windows


def _windows(n_series=12, seed=0):
    rng = np.random.default_rng(seed)
    series = [rng.poisson(rng.gamma(2, 10) * (1.2 + np.sin(np.arange(120) / 6))).astype(np.float32)
              for _ in range(n_series)]
    series[0][:] = 4.0  # constant: every window has zero scale, so this series is unscored
    return make_windows(series, context=24, horizon=6)


def test_split_is_deterministic_disjoint_and_complete():
    train, test = split_by_series(100, 0.2, seed=7)
    again = split_by_series(100, 0.2, seed=7)
    assert test.size == 20 and train.size == 80
    np.testing.assert_array_equal(test, again[1])
    assert set(train) | set(test) == set(range(100)) and not set(train) & set(test)
    assert not np.array_equal(test, split_by_series(100, 0.2, seed=8)[1])


def test_split_edge_cases():
    assert split_by_series(10, 0.0)[1].size == 0
    assert split_by_series(3, 0.01)[1].size == 1   # a positive fraction always holds out one series
    assert split_by_series(3, 0.99)[0].size == 1   # ... and always leaves one to train on
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(MespError, match="test fraction"):
            split_by_series(10, bad)
    with pytest.raises(MespError, match="cannot hold out"):
        split_by_series(1, 0.5)


def test_document_has_the_issue_shape_and_matches_the_metrics():
    w = _windows()
    train, test = split_by_series(12, 0.25, seed=0)
    fitted = {"naive": Naive().fit(windows_of(w, train)),
              "mean_last_hour": MeanLastHour(6).fit(windows_of(w, train))}
    scored = windows_of(w, np.arange(12))
    doc = evaluate(fitted, scored, config={"data": ["x.csv"]})
    assert set(doc) == {"config", "models", "per_cluster"}
    assert list(doc["models"]) == ["naive", "mean_last_hour"]
    for metrics in doc["models"].values():
        assert set(METRIC_NAMES) <= set(metrics)
    assert doc["models"]["naive"]["n_series_unscored"] == 1
    naive = np.repeat(scored.X[:, -1:], 6, axis=1)
    expected = forecast_metrics(scored.Y, naive, scored.scale, scored.series_index)
    assert doc["models"]["naive"] == expected
    cfg = doc["config"]
    assert cfg["data"] == ["x.csv"] and cfg["context"] == 24 and cfg["horizon"] == 6
    assert cfg["models"]["mean_last_hour"]["window"] == 6 and "predict_seconds" in cfg["models"]["naive"]
    assert doc["per_cluster"] == {}


def test_per_cluster_sections():
    w = _windows()
    clusters = np.where(w.series_index % 2 == 0, "3", "idle")
    doc = evaluate({"naive": Naive().fit(w)}, w, clusters)
    assert set(doc["per_cluster"]) == {"3", "idle"}
    assert doc["per_cluster"]["idle"]["naive"]["n_windows"] == int((clusters == "idle").sum())
    with pytest.raises(MespError, match="one label per window"):
        evaluate({"naive": Naive().fit(w)}, w, clusters[:-1])


class _Bad:
    name = "bad"

    def __init__(self, output):
        self.output = output

    def fit(self, windows):
        return self

    def predict(self, X):
        return self.output(X)


@pytest.mark.parametrize("output, match", [
    (lambda X: -np.ones((X.shape[0], 6)), "negative or non-finite"),
    (lambda X: np.full((X.shape[0], 6), np.nan), "negative or non-finite"),
    (lambda X: np.ones((X.shape[0], 5)), r"shape \(\d+, 5\), expected"),
])
def test_a_model_breaking_the_contract_is_named(output, match):
    with pytest.raises(MespError, match=f"model 'bad' returned {match}"):
        evaluate({"bad": _Bad(output)}, _windows())


def test_json_is_strict_and_table_lists_every_model(tmp_path):
    w = _windows()
    doc = evaluate({"naive": Naive().fit(w)}, w)
    doc["models"]["naive"]["extra"] = float("nan")
    path = tmp_path / "out.json"
    write_json(doc, path)
    loaded = json.loads(path.read_text())
    assert loaded["models"]["naive"]["extra"] is None
    assert loaded["models"]["naive"]["wape"] == pytest.approx(doc["models"]["naive"]["wape"])
    table = format_table(doc).splitlines()
    assert table[0].split()[:3] == ["model", "wape", "mase_gmean"] and table[1].startswith("naive")
    with pytest.raises(MespError, match="does not exist"):
        write_json(doc, tmp_path / "missing" / "out.json")


def test_missing_model_store_is_a_one_line_error(tmp_path):
    with pytest.raises(MespError):
        load_store_models(str(tmp_path / "nowhere"))
