"""torch -> ONNX with pinned versions, then a parity check against torch in onnxruntime.

Contract (:mod:`mesp.manifest`): input ``context`` float32 (batch, context) raw counts, output
``quantiles`` float32 (batch, Q, horizon) non-negative counts; the batch axis is dynamic.

Versions: opset 17 and IR version 8 (the pair onnx defines for opset 17), which onnxruntime 1.31 loads.
onnx 1.23's ``make_model`` would stamp IR 14 / opset 28, which it rejects, so both are written
explicitly. The TorchScript exporter (``dynamo=False``) is used: it exports every family here (the
LSTM as one ONNX ``LSTM`` op) at opset 17 with a dynamic batch in ~0.3 s. The dynamo exporter (torch's
default since 2.9) takes 5-40 s per model and emits opset 18 (``ReduceMean`` with an axes input) that
its own down-conversion to 17 fails on, so it is not used.

Parity: on held-out windows the ONNX output must match torch within ``tol`` (default 1e-4) in
relative error ``|onnx - torch| / max(|torch|, 1)`` (counts under one are compared absolutely, since
a relative error of a near-zero count says nothing). Above it the file is removed and
:class:`ExportError` is raised, so nothing half-checked is left behind.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mesp.errors import MespError
from mesp.manifest import ONNX_INPUT, ONNX_OUTPUT

OPSET = 17
IR_VERSION = 8


class ExportError(MespError):
    """An expert cannot be exported, or its ONNX output does not match torch."""


@dataclass(frozen=True)
class ExportReport:
    path: str
    sha256: str
    size_bytes: int
    opset: int
    ir_version: int
    max_rel_error: float
    n_checked: int


def relative_error(onnx_out: np.ndarray, torch_out: np.ndarray) -> float:
    """max |a - b| / max(|b|, 1) over all elements (0.0 for empty arrays)."""
    if onnx_out.size == 0:
        return 0.0
    return float(np.max(np.abs(onnx_out.astype(np.float64) - torch_out) / np.maximum(np.abs(torch_out), 1.0)))


def to_onnx_bytes(model: torch.nn.Module, context: int) -> bytes:
    """Serialise ``model`` (x (B, context) -> (B, Q, H)) to ONNX with a dynamic batch axis."""
    import onnx

    model.eval()
    example = torch.rand(2, context) * 10.0
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation and "LSTM batch size" notes: the batch axis is checked
        torch.onnx.export(model, (example,), buf, input_names=[ONNX_INPUT], output_names=[ONNX_OUTPUT],
                          opset_version=OPSET, dynamo=False,
                          dynamic_axes={ONNX_INPUT: {0: "batch"}, ONNX_OUTPUT: {0: "batch"}})
    proto = onnx.load_from_string(buf.getvalue())
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def run_onnx(data: bytes | str, X: np.ndarray, threads: int = 1) -> np.ndarray:
    """Run an ONNX expert in onnxruntime: X (B, context) -> (B, Q, H)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    return sess.run([ONNX_OUTPUT], {ONNX_INPUT: np.ascontiguousarray(X, dtype=np.float32)})[0]


def export(model: torch.nn.Module, path: str | Path, X_check: np.ndarray, tol: float = 1e-4) -> ExportReport:
    """Export ``model`` to ``path`` and check it against torch on ``X_check`` (n, context) held-out windows.

    Writes atomically (temp file + rename) only after the parity check passes.
    """
    X_check = np.ascontiguousarray(X_check, dtype=np.float32)
    if X_check.ndim != 2 or X_check.shape[0] == 0:
        raise ExportError(f"parity check needs held-out windows (n, context); got shape {X_check.shape}")
    try:
        data = to_onnx_bytes(model, X_check.shape[1])
    except Exception as exc:  # exporter failures are many and varied; name the model, keep one line
        raise ExportError(f"ONNX export of {type(getattr(model, 'core', model)).__name__} failed: "
                          f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(X_check)).numpy().astype(np.float64)
    got = run_onnx(data, X_check)
    if got.shape != expected.shape:
        raise ExportError(f"ONNX output shape {got.shape} != torch {expected.shape}")
    err = relative_error(got, expected)
    if not err <= tol:
        raise ExportError(f"ONNX parity failed for {type(getattr(model, 'core', model)).__name__}: "
                          f"max relative error {err:.3g} > {tol:g} on {len(X_check)} windows")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return ExportReport(path=str(path), sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data),
                        opset=OPSET, ir_version=IR_VERSION, max_rel_error=err, n_checked=len(X_check))
