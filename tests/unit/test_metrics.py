import math

import numpy as np
import pytest

from mesp.metrics import MASE_FLOOR, METRIC_NAMES, forecast_metrics, per_cluster_metrics, pinball_loss


def test_hand_computed_two_series():
    # series 0: two windows; series 1: one window. horizon 2.
    y = np.array([[1.0, 3.0], [2.0, 2.0], [10.0, 0.0]])
    p = np.array([[2.0, 3.0], [2.0, 0.0], [4.0, 4.0]])
    scale = np.array([0.5, 2.0, 5.0])
    m = forecast_metrics(y, p, scale, np.array([0, 0, 1]))
    # |err| = [1,0], [0,2], [6,4] -> sum 13, volume 18
    assert m["wape"] == pytest.approx(13 / 18)
    assert m["mae"] == pytest.approx(13 / 6)
    assert m["rmse"] == pytest.approx(math.sqrt((1 + 0 + 0 + 4 + 36 + 16) / 6))
    # window MAE/scale: 0.5/0.5 = 1, 1/2 = 0.5 -> series 0 MASE 0.75; series 1: 5/5 = 1
    assert m["mase_mean"] == pytest.approx(0.875)
    assert m["mase_median"] == pytest.approx(0.875)
    assert m["mase_gmean"] == pytest.approx(math.sqrt(0.75))
    assert (m["n_windows"], m["n_series"], m["n_series_unscored"], m["n_windows_unscored"]) == (3, 2, 0, 0)
    assert set(METRIC_NAMES) <= set(m)


def test_zero_scale_windows_and_series_are_left_out_and_counted():
    y = np.array([[1.0], [1.0], [5.0]])
    p = np.array([[2.0], [3.0], [5.0]])
    scale = np.array([1.0, 0.0, 0.0])  # series 0 has one scored window, series 1 none
    m = forecast_metrics(y, p, scale, np.array([0, 0, 1]))
    assert m["mase_mean"] == pytest.approx(1.0)  # only window 0 counts: |2-1|/1
    assert m["n_series"] == 2 and m["n_series_unscored"] == 1 and m["n_windows_unscored"] == 2
    assert m["wape"] == pytest.approx(3 / 7)  # every window counts in the volume-weighted figures


def test_gmean_floors_each_series():
    y = np.array([[1.0], [1.0]])
    p = np.array([[1.0], [5.0]])  # series 0 perfect (MASE 0), series 1 MASE 4
    m = forecast_metrics(y, p, np.array([1.0, 1.0]), np.array([7, 9]))
    assert m["mase_gmean"] == pytest.approx(math.sqrt(MASE_FLOOR * 4))


def test_undefined_figures_are_none():
    m = forecast_metrics(np.zeros((2, 3)), np.ones((2, 3)), np.zeros(2), np.array([0, 1]))
    assert m["wape"] is None and m["mase_gmean"] is None and m["mae"] == 1.0
    empty = forecast_metrics(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(0, int))
    assert empty["n_windows"] == 0 and empty["wape"] is None


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same"):
        forecast_metrics(np.zeros((2, 3)), np.zeros((2, 2)), np.ones(2), np.zeros(2))


def test_per_cluster_equals_metrics_of_each_subset():
    rng = np.random.default_rng(0)
    y, p = rng.poisson(5, (40, 4)).astype(float), rng.poisson(5, (40, 4)).astype(float)
    scale, series = rng.uniform(0.5, 2, 40), np.repeat(np.arange(10), 4)
    clusters = np.where(series < 4, 3, -1)
    out = per_cluster_metrics(y, p, scale, series, clusters)
    assert set(out) == {"3", "-1"}
    mask = clusters == -1
    assert out["-1"] == forecast_metrics(y[mask], p[mask], scale[mask], series[mask])


def test_pinball_loss_of_the_median_is_half_the_wape():
    y = np.array([[1.0, 3.0], [2.0, 6.0]])
    q = np.array([[[0.0, 3.0]], [[4.0, 6.0]]])  # (n, Q=1, horizon)
    assert pinball_loss(y, q, [0.5])[0] == pytest.approx(0.5 * 3 / 12)


@pytest.mark.realdata
def test_naive_reproduces_the_data_readme_reference(patterns_path):
    """shared/data/README.md: naive, 720 -> 60, stride 60, computed independently."""
    from mesp.data import load
    from mesp.windows import make_windows

    w = make_windows(load(str(patterns_path)), context=720, horizon=60, stride=60)
    pred = np.repeat(w.X[:, -1:], 60, axis=1)
    m = forecast_metrics(w.Y, pred, w.scale, w.series_index)
    assert round(m["wape"], 6) == 0.369056
    assert round(m["mase_gmean"], 5) == 0.87195
    assert round(m["mase_median"], 5) == 0.95673
    assert round(m["mase_mean"], 4) == 7.9356
    assert m["n_series"] - m["n_series_unscored"] == 6433
