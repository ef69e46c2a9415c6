import numpy as np
import pytest

from mesp.errors import WindowError
from mesp.windows import make_windows


def test_origins_cover_only_complete_windows():
    series = np.arange(10, dtype=np.float32)
    w = make_windows([series], context=4, horizon=2, stride=2)
    assert w.origin.tolist() == [4, 6, 8]
    np.testing.assert_array_equal(w.X[0], [0, 1, 2, 3])
    np.testing.assert_array_equal(w.Y[-1], [8, 9])


def test_stride_defaults_to_horizon():
    w = make_windows([np.zeros(12, np.float32)], context=4, horizon=3)
    assert w.origin.tolist() == [4, 7]


def test_scale_is_naive_mae_over_all_history_before_origin():
    series = np.array([0, 2, 2, 5, 1, 1, 1, 1], dtype=np.float32)
    w = make_windows([series], context=2, horizon=2, stride=2)
    # origin 4: diffs of [0,2,2,5] -> 2,0,3 -> mean 5/3; origin 6: diffs of [0,2,2,5,1,1] -> 2,0,3,4,0 -> 9/5
    assert w.origin.tolist() == [2, 4, 6]
    np.testing.assert_allclose(w.scale[1:], [5 / 3, 9 / 5])


def test_no_window_fits_is_a_clear_error():
    with pytest.raises(WindowError, match="longest series has 1440 steps.*1440 \\+ 60"):
        make_windows([np.zeros(1440, np.float32)], context=1440, horizon=60)


@pytest.mark.realdata
def test_naive_reproduces_the_independent_reference(patterns_path):
    """The shared data README's reference figures for naive, 720 -> 60, stride 60."""
    from mesp.data import load

    w = make_windows(load(str(patterns_path)), context=720, horizon=60, stride=60)
    pred = np.repeat(w.X[:, -1:], 60, axis=1)
    err = np.abs(pred - w.Y)
    assert round(float(err.sum() / w.Y.sum()), 6) == 0.369056
