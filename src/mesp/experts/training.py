"""The train loop: pinball loss in the scaled space, AdamW, early stopping on validation, seeded.

The model is a :class:`~mesp.experts.scaling.Forecaster`; the trainer knows nothing about families.
Architecture hyperparameters live in the model config, optimisation ones in :class:`TrainConfig`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from mesp.experts.heads import pinball_loss
from mesp.experts.scaling import Forecaster, scale_target


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 50
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 5  # epochs without validation improvement before stopping
    max_seconds: float | None = None  # wall-clock cap; the best state so far is kept
    seed: int = 0
    threads: int | None = None  # torch intra-op threads during training; None leaves torch's setting
    clip: float = 1.0  # gradient-norm clip: log-count targets with rare spikes give occasional huge grads


@dataclass
class TrainResult:
    best_epoch: int  # 1-based epoch whose weights were kept
    best_val: float  # validation loss there (training loss when no validation set)
    epochs_run: int
    seconds: float
    stopped: str  # "epochs", "patience", "time"
    history: list[tuple[float, float]] = field(default_factory=list)  # (train, val) per epoch


@contextmanager
def torch_threads(n: int | None):
    """Set torch's intra-op threads for a block and restore them after."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _tensors(X: np.ndarray, Y: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    x = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32))
    y = None if Y is None else torch.as_tensor(np.ascontiguousarray(Y, dtype=np.float32))
    return x, y


@torch.no_grad()
def loss_on(model: Forecaster, X: np.ndarray, Y: np.ndarray, batch_size: int = 1024) -> float:
    """Mean scaled-space pinball loss of ``model`` on windows X (n, L) -> Y (n, H)."""
    model.eval()
    x, y = _tensors(X, Y)
    total = 0.0
    for i in range(0, x.shape[0], batch_size):
        s, level = model.scaled(x[i:i + batch_size])
        total += float(pinball_loss(s, scale_target(y[i:i + batch_size], level), model.quantiles)) * s.shape[0]
    return total / max(x.shape[0], 1)


@torch.no_grad()
def predict(model: Forecaster, X: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """X (n, L) counts -> (n, Q, H) float32 count quantiles."""
    model.eval()
    x, _ = _tensors(X)
    out = [model(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, len(model.quantiles), 0), np.float32)


def train(model: Forecaster, X: np.ndarray, Y: np.ndarray, config: TrainConfig = TrainConfig(),
          X_val: np.ndarray | None = None, Y_val: np.ndarray | None = None,
          on_epoch: Callable[[int, float], None] | None = None) -> TrainResult:
    """Fit ``model`` in place on windows X (n, L) -> Y (n, H); returns what happened.

    With a validation set the weights of the best validation epoch are restored at the end and
    training stops after ``patience`` epochs without improvement. ``on_epoch(epoch, val_loss)`` is
    called after each epoch; it may raise (an Optuna pruner does) to abandon training.
    """
    if X.shape[0] == 0:
        raise ValueError("no training windows")
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    x, y = _tensors(X, Y)
    has_val = X_val is not None and Y_val is not None and len(X_val) > 0
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    best, best_epoch, best_state, waited = math.inf, 0, None, 0
    history: list[tuple[float, float]] = []
    stopped = "epochs"

    def out_of_time() -> bool:
        return config.max_seconds is not None and time.perf_counter() - start >= config.max_seconds

    with torch_threads(config.threads):
        for epoch in range(1, config.epochs + 1):
            model.train()
            order = torch.randperm(x.shape[0], generator=gen)
            running, seen = 0.0, 0
            for i in range(0, x.shape[0], config.batch_size):
                if out_of_time():  # checked per batch: one epoch on a big cluster can outlast a budget
                    break
                idx = order[i:i + config.batch_size]
                s, level = model.scaled(x[idx])
                loss = pinball_loss(s, scale_target(y[idx], level), model.quantiles)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if config.clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
                opt.step()
                running += loss.item() * idx.numel()
                seen += idx.numel()
            if seen == 0:
                stopped = "time"
                break
            train_loss = running / seen
            val = loss_on(model, X_val, Y_val) if has_val else train_loss
            history.append((train_loss, val))
            if not math.isfinite(val):
                stopped = "diverged"
                break
            if val < best - 1e-7:
                best, best_epoch, waited = val, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                waited += 1
            if on_epoch is not None:
                on_epoch(epoch, val)
            if has_val and waited >= config.patience:
                stopped = "patience"
                break
            if out_of_time():
                stopped = "time"
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(best_epoch=best_epoch, best_val=best, epochs_run=len(history),
                       seconds=time.perf_counter() - start, stopped=stopped, history=history)
