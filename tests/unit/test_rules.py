import subprocess
import sys

import numpy as np
import pytest

from mesp.rules import RULES, predict_rule


def test_naive_median_is_last_value_and_spread_grows_with_lead():
    X = np.array([[1, 3, 2, 4, 3, 5, 4, 6, 5, 7.0]])  # changes: +2,-1,... alternate
    out = predict_rule("rule:naive", X, 3, (0.5, 0.9))
    assert out.shape == (1, 2, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0, 0], [7, 7, 7])
    # lag-1 changes are {+2 x5, -1 x4}: q0.9 = +2; lag-2 changes all +1; lag-3 {+3 x4, 0 x3}: q0.9 = +3
    np.testing.assert_allclose(out[0, 1], [9, 8, 10])


def test_seasonal_naive_reads_one_day_back():
    step = 3600  # hourly data: a season is 24 steps
    X = np.tile(np.arange(24.0), 2)[None, :30]  # context 30 >= 24
    out = predict_rule("rule:seasonal_naive", X, 4, (0.5, 0.9), step_seconds=step)
    np.testing.assert_array_equal(out[0, 0], [6, 7, 8, 9])  # the values 24 steps before steps 30..33
    np.testing.assert_array_equal(out[0, 1], out[0, 0])  # a perfect season: no spread


def test_seasonal_naive_with_short_context_is_naive():
    X = np.random.default_rng(0).poisson(5, size=(3, 720)).astype(float)
    np.testing.assert_array_equal(predict_rule("rule:seasonal_naive", X, 60, (0.5, 0.9), 60),
                                  predict_rule("rule:naive", X, 60, (0.5, 0.9), 60))


def test_idle_rule_uses_context_quantiles_flat():
    X = np.zeros((2, 100))
    X[1, [10, 50]] = 3.0
    out = predict_rule("rule:idle", X, 5, (0.5, 0.99))
    assert (out[0] == 0).all()
    np.testing.assert_array_equal(out[1, 0], 0)
    assert (out[1, 1] > 0).all() and np.ptp(out[1, 1]) == 0


@pytest.mark.parametrize("family", RULES)
def test_contract_nonnegative_monotone(family):
    X = np.random.default_rng(1).poisson(2, size=(16, 1500)).astype(float)
    out = predict_rule(family, X, 60, (0.1, 0.5, 0.9), 60)
    assert out.shape == (16, 3, 60) and (out >= 0).all() and (np.diff(out, axis=1) >= 0).all()


@pytest.mark.parametrize("args,match", [
    (("rule:mean", np.zeros((1, 5)), 2), "unknown rule expert 'rule:mean'"),
    (("rule:naive", np.zeros(5), 2), r"shape \(batch, context"),
    (("rule:naive", np.full((1, 5), np.nan), 2), "NaN"),
    (("rule:naive", np.zeros((1, 5)), 0), "horizon=0"),
    (("rule:naive", np.zeros((1, 5)), 2, (0.9, 0.5)), "strictly increasing"),
])
def test_bad_input_is_a_clear_error(args, match):
    with pytest.raises(ValueError, match=match):
        predict_rule(*args)


def test_rules_import_no_heavy_modules():
    code = ("import sys, mesp.rules; heavy = {'torch', 'optuna', 'pandas', 'scipy', 'tslearn', 'matplotlib'};"
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
