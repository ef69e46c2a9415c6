"""Every family honours the expert contract: (B, L) counts -> (B, Q, H) non-negative monotone quantiles."""

import numpy as np
import pytest
import torch

from mesp.experts import TrainConfig, build, loss_on, n_params, predict, train
from mesp.experts.registry import FAMILIES
from mesp.windows import make_windows

CONTEXT, HORIZON, Q = 48, 12, (0.5, 0.9)
CASES = [(name, {}) for name in FAMILIES if name != "nbeats"] + [
    ("nbeats", {"stack": "generic", "width": 64, "blocks": 2}),
    ("nbeats", {"stack": "interpretable", "width": 64, "blocks": 1}),
]
IDS = [f"{n}-{p.get('stack', '')}".rstrip("-") for n, p in CASES]


@pytest.fixture(autouse=True)
def one_thread():
    # Two torch threads on a loaded 2-core machine spin against each other; tiny models need one.
    from mesp.experts.training import torch_threads
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def windows():
    rng = np.random.default_rng(0)
    t = np.arange(400)
    series = [rng.poisson(np.exp(1.5 + rng.normal()) * (1.2 + np.sin(2 * np.pi * (t + rng.integers(48)) / 48)))
              for _ in range(6)]
    return make_windows([s.astype(np.float32) for s in series], CONTEXT, HORIZON, stride=6)


@pytest.mark.parametrize("family,params", CASES, ids=IDS)
def test_contract_shape_nonnegative_monotone(family, params, windows):
    torch.manual_seed(0)
    model = build(family, CONTEXT, HORIZON, Q, params).eval()
    x = torch.from_numpy(windows.X[:5])
    with torch.no_grad():
        out = model(x)
        one = model(x[:1])
    assert out.shape == (5, 2, HORIZON) and out.dtype == torch.float32
    assert (out >= 0).all()
    assert (out[:, 1] >= out[:, 0]).all(), "q0.9 must not cross below the median"
    torch.testing.assert_close(one, out[:1], rtol=1e-5, atol=1e-5)  # no batch coupling
    assert n_params(model) > 0


@pytest.mark.parametrize("family,params", CASES, ids=IDS)
def test_two_epochs_reduce_validation_loss(family, params, windows):
    tr, va = slice(0, 300), slice(300, None)
    torch.manual_seed(0)
    model = build(family, CONTEXT, HORIZON, Q, params)
    before = loss_on(model, windows.X[va], windows.Y[va])
    result = train(model, windows.X[tr], windows.Y[tr], TrainConfig(epochs=2, batch_size=64, lr=3e-3, seed=1),
                   windows.X[va], windows.Y[va])
    assert result.epochs_run == 2 and result.best_val == pytest.approx(loss_on(model, windows.X[va], windows.Y[va]))
    assert result.best_val < before
    pred = predict(model, windows.X[va])
    assert pred.shape == (len(windows.X[va]), 2, HORIZON) and np.isfinite(pred).all()


def test_patched_models_drop_only_the_oldest_steps():
    model = build("lstm", 50, 4, (0.5,), {"patch": 12}).eval()
    x = torch.rand(3, 50) * 5
    y = x.clone()
    y[:, :2] = 1000.0  # the 2 oldest steps do not fit a whole patch...
    core_in = torch.log(x + 1)
    # ...so they can only act through the scaling level, which the core sees shifted away
    with torch.no_grad():
        a = model.core(core_in - core_in.mean(1, keepdim=True))
        b = model.core(torch.cat([torch.full((3, 2), 99.0), core_in[:, 2:]], 1) - core_in.mean(1, keepdim=True))
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("family,params,match", [
    ("transformer", {}, "unknown expert family 'transformer'"),
    ("mlp", {"heads": 2}, r"mlp: unknown parameters \['heads'\]"),
    ("nbeats", {"stack": "both"}, "stack='both'"),
    ("patchtst", {"d_model": 30, "n_heads": 4}, "divisible"),
    ("lstm", {"patch": 100}, "patch=100"),
    ("dlinear", {"kernel": 4}, "odd"),
])
def test_bad_configs_are_clear_errors(family, params, match):
    with pytest.raises(ValueError, match=match):
        build(family, CONTEXT, HORIZON, Q, params)
