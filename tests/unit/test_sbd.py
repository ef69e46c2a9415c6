"""mesp.sbd: z-normalisation, the idle rule and SBD against a brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest

from mesp.sbd import (DEFAULT_IDLE_RULE, CentroidSpectra, apply_shift, fft_len, is_idle, sbd,
                      sbd_to_centroids, znorm)


def brute_sbd(x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """1 - max NCC over all lags with np.correlate, and the shift aligning x to y."""
    zx, zy = znorm(x[None])[0].astype(np.float64), znorm(y[None])[0].astype(np.float64)
    cc = np.correlate(zx, zy, mode="full") / (np.linalg.norm(zx) * np.linalg.norm(zy))
    lag = int(np.argmax(cc)) - (len(x) - 1)  # cc[L] = sum_t zx[t + L] zy[t]
    return 1.0 - float(cc.max()), -lag


def test_znorm_mean_zero_std_one_and_constant_rows_are_zero():
    X = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0]])
    Z = znorm(X)
    assert Z.dtype == np.float32
    np.testing.assert_allclose(Z[0].mean(), 0, atol=1e-6)
    np.testing.assert_allclose(Z[0].std(), 1, atol=1e-6)
    assert np.all(Z[1] == 0)


@pytest.mark.parametrize("row, idle", [
    (np.zeros(60), True),  # all zero
    (np.full(60, 7.0), True),  # constant
    (np.eye(1, 60, 30)[0] * 500, True),  # a single spike
    (np.eye(1, 60, 30)[0] + np.eye(1, 60, 40)[0], True),  # two spikes < min_active=3
    (np.r_[np.ones(3), np.zeros(57)], False),  # three active steps: has a shape
    (np.full(60, 1e6) + np.eye(1, 60, 3)[0], True),  # numerically constant at a high rate
    (np.arange(60.0), False),
])
def test_is_idle_rule(row, idle):
    assert bool(is_idle(row, **DEFAULT_IDLE_RULE)) is idle


def test_is_idle_vectorised_matches_rows():
    rng = np.random.default_rng(0)
    X = rng.poisson(0.05, size=(200, 48)).astype(float)
    got = is_idle(X)
    assert got.shape == (200,) and got.any() and not got.all()
    assert all(bool(is_idle(r)) == g for r, g in zip(X, got))


@pytest.mark.parametrize("m", [1, 2, 5, 720, 1440, 1441])
def test_fft_len_is_5_smooth_and_long_enough(m):
    n = fft_len(m)
    assert n >= 2 * m - 1
    r = n
    for p in (2, 3, 5):
        while r % p == 0:
            r //= p
    assert r == 1


def test_sbd_matches_brute_force_distance_and_shift():
    rng = np.random.default_rng(1)
    X = rng.gamma(2.0, size=(12, 37))
    C = rng.gamma(2.0, size=(4, 37))
    D, S = sbd_to_centroids(znorm(X), CentroidSpectra(znorm(C)), return_shift="all", chunk_size=5)
    for i in range(12):
        for j in range(4):
            d, s = brute_sbd(X[i], C[j])
            assert D[i, j] == pytest.approx(d, abs=2e-6)
            assert S[i, j] == s
    best, shift = sbd_to_centroids(znorm(X), CentroidSpectra(znorm(C)), return_shift="best")
    np.testing.assert_array_equal(best, D)
    np.testing.assert_array_equal(shift, S[np.arange(12), D.argmin(1)])


def test_sbd_properties():
    rng = np.random.default_rng(2)
    x, y = rng.random(50), rng.random(50)
    assert sbd(x, y) == pytest.approx(sbd(y, x), abs=1e-6)  # symmetric
    assert sbd(x, x) == pytest.approx(0.0, abs=1e-6)
    assert sbd(x, 3 * x + 10) == pytest.approx(0.0, abs=1e-6)  # scale and offset invariant
    assert 0.0 <= sbd(x, y) <= 2.0


def test_shift_aligns_a_shifted_pulse():
    base = np.zeros(64)
    base[20:26] = [1, 3, 6, 6, 3, 1]
    moved = np.roll(base, 9)
    d, s = sbd_to_centroids(znorm(moved[None]), CentroidSpectra(znorm(base[None])), return_shift="best")
    assert s[0] == -9 and d[0, 0] < 0.05  # the z-normalised background is cut, not the pulse
    aligned = apply_shift(moved[None], s)[0]
    np.testing.assert_array_equal(aligned, base)


def test_serving_modules_import_numpy_only():
    import subprocess
    import sys

    code = ("import sys, mesp.sbd, mesp.router; bad = {'scipy', 'torch', 'tslearn', 'pandas', 'matplotlib', "
            "'optuna', 'sklearn'} & {m.split('.')[0] for m in sys.modules}; print(sorted(bad)); "
            "sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
