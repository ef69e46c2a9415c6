"""``mesp evaluate`` end to end: real patterns (baselines); a small wide CSV with a model store."""

import gzip
import json

import numpy as np
import pytest

from mesp.cli import main
from mesp.metrics import METRIC_NAMES

BASELINES = ["naive", "seasonal_naive", "mean_last_hour", "ridge"]


def _patterns_subset(patterns_path, out, every):
    """Every ``every``-th row of the real patterns file, unchanged (a temporary file, never in the repo).

    Rows are spread over the whole file because it is ordered by volume: its first rows are the busiest
    functions (median ~640k calls/day against ~5k overall), not a sample of them.
    """
    with gzip.open(patterns_path, "rt") as src, open(out, "w") as dst:
        for i, line in enumerate(src):
            if i == 0 or (i - 1) % every == 0:
                dst.write(line)
    return out


@pytest.mark.realdata
def test_baselines_on_real_patterns(patterns_path, tmp_path, capsys):
    data = _patterns_subset(patterns_path, tmp_path / "patterns.csv", every=25)  # 258 functions
    out = tmp_path / "eval.json"
    rc = main(["evaluate", "--data", str(data), "--context", "12h", "--horizon", "1h",
               "--test-fraction", "0.25", "--seed", "3", "--json", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert list(doc["models"]) == BASELINES
    for name in BASELINES:
        assert set(METRIC_NAMES) <= set(doc["models"][name])
        assert name in printed
    cfg = doc["config"]
    assert (cfg["context"], cfg["horizon"], cfg["stride"], cfg["step_seconds"]) == (720, 60, 60, 60)
    assert cfg["split"]["n_test_series"] == 64 and cfg["split"]["in_sample"] is False
    assert cfg["models"]["seasonal_naive"]["effective"].startswith("naive (context 720 < season 1440")
    assert doc["models"]["naive"]["n_windows"] == 64 * 12
    # With a 12 h context the day-ago lag is out of reach, so seasonal naive is naive, exactly.
    assert doc["models"]["seasonal_naive"] == doc["models"]["naive"]
    # The honest rival must beat the last value on volume-weighted and typical-series error.
    assert doc["models"]["ridge"]["wape"] < doc["models"]["naive"]["wape"]
    assert doc["models"]["ridge"]["mase_gmean"] < doc["models"]["naive"]["mase_gmean"]


@pytest.mark.realdata
@pytest.mark.slow
def test_naive_in_sample_reproduces_the_data_readme_reference(patterns_path, tmp_path):
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--data", str(patterns_path), "--context", "720steps", "--horizon", "60steps",
                 "--stride", "60steps", "--test-fraction", "0", "--baselines", "naive",
                 "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    naive = doc["models"]["naive"]
    assert round(naive["wape"], 6) == 0.369056
    assert round(naive["mase_gmean"], 5) == 0.87195
    assert round(naive["mase_median"], 5) == 0.95673
    assert round(naive["mase_mean"], 4) == 7.9356
    assert naive["n_series"] - naive["n_series_unscored"] == 6433
    assert doc["config"]["split"]["in_sample"] is True


def _wide_csv(path, n_series=8, days=3, step=1800, seed=0):
    rng = np.random.default_rng(seed)
    n = days * 86400 // step
    t = np.arange(n)
    cols = [rng.poisson(rng.gamma(2, 20) * (1.2 + np.sin(2 * np.pi * (t + 5 * j) / 48)))
            for j in range(n_series)]
    cols.append(np.zeros(n, dtype=int))  # an idle function
    lines = ["timestamp," + ",".join(f"f{j}" for j in range(len(cols)))]
    lines += [f"{i * step}," + ",".join(str(int(c[i])) for c in cols) for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_model_store_adds_mesp_and_dense(tmp_path):
    from support.stores import DENSE_OFFSET, build_store, expected_forecast

    built = build_store(str(tmp_path / "store"))
    data = _wide_csv(tmp_path / "wide.csv")
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--data", str(data), "--model", str(tmp_path / "store"), "--test-fraction", "0",
                 "--baselines", "naive", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert list(doc["models"]) == ["naive", "mesp", "dense"]
    cfg = doc["config"]
    m = built.manifest
    assert (cfg["context"], cfg["horizon"]) == (m.context, m.horizon)
    assert cfg["model_store"]["version"] == "v1" and cfg["models"]["dense"]["family"] == "dense-mlp"
    # dense answers relu(mean of the last `horizon` inputs + DENSE_OFFSET): its MAE from first principles
    from mesp.data import load
    from mesp.windows import make_windows

    w = make_windows(load(str(data)), m.context, m.horizon)
    point = expected_forecast(w.X, DENSE_OFFSET)[:, list(m.quantiles).index(0.5), :]
    assert doc["models"]["dense"]["mae"] == pytest.approx(np.abs(point - w.Y).mean(), rel=1e-5)
    # per_cluster: the idle function's windows land in the idle group (-1)
    assert "-1" in doc["per_cluster"] and set(doc["per_cluster"]["-1"]) == {"naive", "mesp", "dense"}
    assert sum(c["naive"]["n_windows"] for c in doc["per_cluster"].values()) == len(w)


@pytest.mark.parametrize("argv, message", [
    (["--test-fraction", "1.5"], "test fraction 1.5 must be in [0, 1)"),
    (["--baselines", "prophet"], "unknown baseline(s) prophet"),
    (["--baselines", "none"], "nothing to evaluate"),
    (["--context", "3d"], "no window fits"),
    (["--json", "/nonexistent-dir/x.json"], "does not exist"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, capsys, argv, message):
    data = _wide_csv(tmp_path / "wide.csv", n_series=2, days=2)
    assert main(["evaluate", "--data", str(data), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mesp evaluate: error:") and message in err and "\n" not in err


def test_context_that_contradicts_the_model_is_refused(tmp_path, capsys):
    from support.stores import build_store

    build_store(str(tmp_path / "store"))
    data = _wide_csv(tmp_path / "wide.csv", n_series=2)
    store = str(tmp_path / "store")
    assert main(["evaluate", "--data", str(data), "--model", store, "--context", "12h"]) == 2
    assert "the model" in capsys.readouterr().err
