import numpy as np
import pytest
import torch

from mesp.experts import TrainConfig, build, loss_on, train
from mesp.experts.training import torch_threads


@pytest.fixture(autouse=True)
def one_thread():
    # Two torch threads on a loaded 2-core machine spin against each other; tiny models need one.
    from mesp.experts.training import torch_threads
    with torch_threads(1):
        yield


def _data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    level = rng.lognormal(2, 1, size=(n, 1))
    X = rng.poisson(level * np.ones((n, 24))).astype(np.float32)
    Y = rng.poisson(level * np.ones((n, 6))).astype(np.float32)
    return X, Y


def test_training_is_reproducible_with_a_seed():
    X, Y = _data()
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        m = build("mlp", 24, 6, (0.5, 0.9), {"width": 32})
        train(m, X, Y, TrainConfig(epochs=2, batch_size=32, seed=7))
        outs.append(m(torch.from_numpy(X[:4])).detach())
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


def test_early_stopping_restores_the_best_epoch():
    X, Y = _data()
    Xv, Yv = _data(64, seed=1)
    torch.manual_seed(0)
    m = build("linear", 24, 6, (0.5,))
    # A huge learning rate makes validation bounce; patience 2 must stop and keep the best weights.
    res = train(m, X, Y, TrainConfig(epochs=40, batch_size=16, lr=1.0, patience=2, clip=0), Xv, Yv)
    vals = [v for _, v in res.history]
    assert res.best_val == pytest.approx(min(vals))
    assert res.best_epoch == int(np.argmin(vals)) + 1
    assert loss_on(m, Xv, Yv) == pytest.approx(res.best_val, rel=1e-6)
    assert res.stopped == "patience" and res.epochs_run == res.best_epoch + 2


def test_on_epoch_can_abort_training():
    X, Y = _data(64)

    class Stop(Exception):
        pass

    def hook(epoch, val):
        if epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        train(build("linear", 24, 6, (0.5,)), X, Y, TrainConfig(epochs=5), on_epoch=hook)


def test_threads_are_restored():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_no_windows_is_an_error():
    with pytest.raises(ValueError, match="no training windows"):
        train(build("linear", 24, 6, (0.5,)), np.zeros((0, 24), np.float32), np.zeros((0, 6), np.float32))


def test_time_cap_is_checked_within_an_epoch():
    X, Y = _data(2048)
    res = train(build("mlp", 24, 6, (0.5,), {"width": 32}), X, Y,
                TrainConfig(epochs=50, batch_size=8, max_seconds=0.05))
    assert res.stopped == "time" and res.epochs_run == 1 and res.seconds < 5
