"""Every family exports to ONNX (opset 17, IR 8) with a dynamic batch and torch parity under 1e-4."""

import numpy as np
import onnx
import pytest
import torch

from mesp.experts import build
from mesp.experts.export import IR_VERSION, OPSET, ExportError, export, relative_error, run_onnx
from mesp.experts.registry import FAMILIES
from mesp.manifest import ONNX_INPUT, ONNX_OUTPUT

CONTEXT, HORIZON = 48, 12
CASES = [(name, {}) for name in FAMILIES if name != "nbeats"] + [
    ("nbeats", {"stack": "generic", "width": 32, "blocks": 1}),
    ("nbeats", {"stack": "interpretable", "width": 32, "blocks": 1}),
]


@pytest.fixture(autouse=True)
def one_thread():
    from mesp.experts.training import torch_threads
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def held_out():
    rng = np.random.default_rng(1)
    scale = rng.lognormal(1.5, 2.0, size=(40, 1))  # from near-idle to thousands per step
    X = rng.poisson(scale * np.ones((40, CONTEXT))).astype(np.float32)
    X[:3] = 0.0  # all-zero windows must survive the log/exp round trip too
    return X


@pytest.mark.parametrize("family,params", CASES, ids=[f"{n}-{p.get('stack', '')}".rstrip("-") for n, p in CASES])
def test_export_parity_and_contract(family, params, held_out, tmp_path):
    torch.manual_seed(0)
    model = build(family, CONTEXT, HORIZON, (0.5, 0.9), params)
    # Perturb weights away from their init so the check is not on a near-constant network.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    report = export(model, tmp_path / "m.onnx", held_out)
    assert report.max_rel_error <= 1e-4
    proto = onnx.load(report.path)
    assert proto.ir_version == IR_VERSION == 8
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", OPSET)]
    assert [i.name for i in proto.graph.input] == [ONNX_INPUT]
    assert [o.name for o in proto.graph.output] == [ONNX_OUTPUT]
    for batch in (1, 7):  # the batch axis is dynamic
        got = run_onnx(report.path, held_out[:batch])
        assert got.shape == (batch, 2, HORIZON) and (got >= 0).all()
    assert report.size_bytes == len(open(report.path, "rb").read())


class ShapeDependent(torch.nn.Module):
    """Traces one branch for the example batch of 2 and takes another in torch for other batches."""

    def forward(self, x):
        out = x[:, None, -3:]
        return out * 2 if x.shape[0] == 2 else out


def test_parity_failure_raises_and_writes_nothing(held_out, tmp_path):
    path = tmp_path / "bad.onnx"
    with pytest.raises(ExportError, match="parity failed.*max relative error"):
        export(ShapeDependent(), path, held_out[3:8])
    assert not path.exists() and not list(tmp_path.iterdir())


def test_export_needs_held_out_windows(tmp_path):
    with pytest.raises(ExportError, match="held-out windows"):
        export(build("linear", CONTEXT, HORIZON, (0.5,)), tmp_path / "m.onnx", np.zeros((0, CONTEXT)))


def test_relative_error_floors_small_counts():
    ref = np.array([0.0, 0.5, 100.0])
    assert relative_error(np.array([1e-5, 0.5, 100.0]), ref) == pytest.approx(1e-5)
    assert relative_error(np.array([0.0, 0.5, 100.1]), ref) == pytest.approx(1e-3)

