import numpy as np
import pytest

from mesp.experts import SIMPLE_FAMILIES, predict
from mesp.search import rolling_origin_folds, search_dense, search_expert, split_budget
from mesp.windows import make_windows


@pytest.fixture(autouse=True)
def one_thread():
    from mesp.experts.training import torch_threads
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def windows():
    rng = np.random.default_rng(0)
    t = np.arange(288)
    series = [rng.poisson(3 * (1.3 + np.sin(2 * np.pi * (t + rng.integers(48)) / 48))).astype(np.float32)
              for _ in range(8)]
    return make_windows(series, 48, 12, stride=12)  # 8 series x 20 origins = 160 windows


def test_rolling_origin_folds_never_leak(windows):
    folds = rolling_origin_folds(windows, 2, horizon=12)
    assert len(folds) == 2
    for tr, va in folds:
        assert (windows.origin[tr] + 12 <= windows.origin[va].min()).all()
    assert folds[0][1].max() < len(windows) and windows.origin[folds[1][1]].max() == windows.origin.max()
    assert len(folds[1][0]) > len(folds[0][0])  # the origin rolls forward


def test_single_origin_falls_back_to_a_series_split(windows):
    one = windows.subset(windows.origin == windows.origin[0])
    [(tr, va)] = rolling_origin_folds(one, 2, horizon=12)
    assert not set(one.series_index[tr]) & set(one.series_index[va])


def test_two_trial_search_refits_the_best(windows):
    res = search_expert(windows, budget_seconds=600, n_trials=2, seed=0, families=["dlinear", "lstm"],
                        max_epochs=2, small_windows=0, min_windows=10)
    assert res.rule == "full" and res.family in {"dlinear", "lstm"}
    assert res.n_trials + res.n_pruned == 2 and len(res.trials) == 2
    assert res.val_loss == min(t["value"] for t in res.trials if t["state"] == "COMPLETE")
    pred = predict(res.model, windows.X[:3])
    assert pred.shape == (3, 2, 12) and (pred >= 0).all()


def test_small_cluster_uses_simple_families_and_tiny_one_defers(windows):
    res = search_expert(windows, budget_seconds=600, n_trials=2, seed=1, families=["patchtst", "mlp"],
                        max_epochs=1, small_windows=1000, min_windows=10)
    assert res.rule == "small" and res.family == "mlp" and res.model is not None
    tiny = search_expert(windows.subset(np.arange(len(windows)) < 5), budget_seconds=5, min_windows=10)
    assert tiny.deferred and tiny.model is None and tiny.family == "dense"
    assert set(SIMPLE_FAMILIES) == {"linear", "dlinear", "mlp"}


def test_dense_search_ignores_the_small_rule(windows):
    res = search_dense(windows, budget_seconds=600, n_trials=1, seed=0, families=["linear"], max_epochs=1)
    assert res.rule == "full" and res.family == "linear"


def test_unknown_family_is_rejected_before_searching(windows):
    with pytest.raises(ValueError, match="unknown expert family 'gpt'"):
        search_expert(windows, families=["gpt"])


def test_split_budget_is_proportional_with_a_floor():
    parts = split_budget([900, 90, 10], 100.0)
    assert sum(parts) == pytest.approx(100.0)
    assert parts[0] > parts[1] >= parts[2] > 0
    assert parts[2] / parts[0] > 0.05  # the floor keeps the tiny cluster alive


@pytest.mark.parametrize("context", [48, 720])
def test_every_point_of_the_search_space_builds(context):
    import optuna
    import torch

    from mesp.experts import build
    from mesp.experts.registry import FAMILIES, suggest

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(2):
        for name in FAMILIES:
            trial = study.ask()
            params = suggest(name, trial, context)
            assert all(k.startswith(name + ".") for k in trial.params)
            model = build(name, context, 12, (0.5, 0.9), params).eval()
            with torch.no_grad():
                assert model(torch.rand(2, context)).shape == (2, 2, 12)
