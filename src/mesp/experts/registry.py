"""Family name -> (config class, module class, Optuna search space).

``build(family, context, horizon, quantiles, params)`` returns the exported unit, a
:class:`~mesp.experts.scaling.Forecaster`. ``suggest(family, trial, context)`` draws architecture
hyperparameters only; optimiser settings belong to :mod:`mesp.experts.training`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from torch import nn

from mesp.experts.autoformer import Autoformer, AutoformerConfig
from mesp.experts.dlinear import DLinear, DLinearConfig, Linear, LinearConfig
from mesp.experts.lstm import LSTMConfig, PatchedLSTM
from mesp.experts.mlp import MLP, MLPConfig
from mesp.experts.nbeats import NBEATS, NBEATSConfig
from mesp.experts.patchtst import PatchTST, PatchTSTConfig
from mesp.experts.scaling import Forecaster


def _patches(context: int, candidates: Sequence[int]) -> list[int]:
    """Patch lengths that leave between 4 and 128 tokens (falls back to the closest one)."""
    ok = [p for p in candidates if 4 <= context // p <= 128]
    return ok or [min(candidates, key=lambda p: abs(context // p - 16))]


def _space_linear(trial: Any, context: int) -> dict:
    return {}


def _space_dlinear(trial: Any, context: int) -> dict:
    return {"kernel": trial.suggest_categorical("kernel", [5, 13, 25, 61])}


def _space_mlp(trial: Any, context: int) -> dict:
    return {"width": trial.suggest_categorical("width", [64, 128, 256, 512]),
            "depth": trial.suggest_int("depth", 1, 3),
            "dropout": trial.suggest_float("dropout", 0.0, 0.3)}


def _space_lstm(trial: Any, context: int) -> dict:
    return {"patch": trial.suggest_categorical("patch", _patches(context, [6, 12, 24, 30, 60])),
            "hidden": trial.suggest_categorical("hidden", [32, 64, 128]),
            "layers": trial.suggest_int("layers", 1, 2)}


def _space_patchtst(trial: Any, context: int) -> dict:
    return {"patch": trial.suggest_categorical("patch", _patches(context, [8, 12, 16, 24, 30])),
            "d_model": trial.suggest_categorical("d_model", [32, 64, 128]),
            "n_heads": trial.suggest_categorical("n_heads", [2, 4]),
            "layers": trial.suggest_int("layers", 1, 3),
            "ff": trial.suggest_categorical("ff", [64, 128, 256]),
            "dropout": trial.suggest_float("dropout", 0.0, 0.2)}


def _space_autoformer(trial: Any, context: int) -> dict:
    return {"patch": trial.suggest_categorical("patch", _patches(context, [4, 8, 12, 24])),
            "d_model": trial.suggest_categorical("d_model", [16, 32, 64]),
            "layers": trial.suggest_int("layers", 1, 2),
            "ff": trial.suggest_categorical("ff", [32, 64, 128]),
            "kernel": trial.suggest_categorical("kernel", [13, 25, 61])}


def _space_nbeats(trial: Any, context: int) -> dict:
    stack = trial.suggest_categorical("stack", ["generic", "interpretable"])
    return {"stack": stack,
            "blocks": trial.suggest_int("blocks", 1, 3),
            "width": trial.suggest_categorical("width", [64, 128, 256]),  # <= 256: file size
            "layers": trial.suggest_int("layers", 2, 4)}


@dataclass(frozen=True)
class Family:
    name: str
    config: type
    module: Callable[[Any], nn.Module]
    space: Callable[[Any, int], dict]
    simple: bool  # eligible for small clusters (few windows, few parameters)


FAMILIES: dict[str, Family] = {f.name: f for f in [
    Family("linear", LinearConfig, Linear, _space_linear, True),
    Family("dlinear", DLinearConfig, DLinear, _space_dlinear, True),
    Family("mlp", MLPConfig, MLP, _space_mlp, True),
    Family("lstm", LSTMConfig, PatchedLSTM, _space_lstm, False),
    Family("patchtst", PatchTSTConfig, PatchTST, _space_patchtst, False),
    Family("autoformer", AutoformerConfig, Autoformer, _space_autoformer, False),
    Family("nbeats", NBEATSConfig, NBEATS, _space_nbeats, False),
]}
SIMPLE_FAMILIES = tuple(name for name, f in FAMILIES.items() if f.simple)


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise ValueError(f"unknown expert family {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name]


class _Prefixed:
    """Optuna trial view that stores parameters as ``<family>.<name>``: Optuna refuses one name with two
    different categorical choice sets, and each family's branch of the space has its own."""

    def __init__(self, trial: Any, prefix: str):
        self.trial, self.prefix = trial, prefix

    def suggest_int(self, name: str, *args: Any, **kw: Any) -> int:
        return self.trial.suggest_int(self.prefix + name, *args, **kw)

    def suggest_float(self, name: str, *args: Any, **kw: Any) -> float:
        return self.trial.suggest_float(self.prefix + name, *args, **kw)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self.trial.suggest_categorical(self.prefix + name, list(choices))


def suggest(name: str, trial: Any, context: int) -> dict:
    """Architecture hyperparameters for ``name`` drawn from an Optuna trial (unprefixed keys)."""
    return family(name).space(_Prefixed(trial, name + "."), context)


def build(name: str, context: int, horizon: int, quantiles: Sequence[float], params: dict | None = None
          ) -> Forecaster:
    """A fresh, untrained Forecaster: x (B, context) counts -> (B, len(quantiles), horizon) counts."""
    fam = family(name)
    params = dict(params or {})
    allowed = {f.name for f in fields(fam.config)} - {"context", "horizon", "n_quantiles"}
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(f"{name}: unknown parameters {sorted(unknown)}; allowed: {sorted(allowed)}")
    config = fam.config(context=context, horizon=horizon, n_quantiles=len(quantiles), **params)
    return Forecaster(fam.module(config), quantiles)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
