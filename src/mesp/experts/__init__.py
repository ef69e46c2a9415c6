"""The expert model zoo (training side): torch modules, scaling, quantile head, trainer, ONNX export.

Serving never imports this package; it runs the exported ONNX files (and :mod:`mesp.rules`).
"""

from mesp.experts.registry import FAMILIES, SIMPLE_FAMILIES, build, n_params
from mesp.experts.scaling import SCALING, Forecaster
from mesp.experts.training import TrainConfig, TrainResult, loss_on, predict, train

__all__ = ["FAMILIES", "SIMPLE_FAMILIES", "SCALING", "Forecaster", "TrainConfig", "TrainResult", "build",
           "loss_on", "n_params", "predict", "train"]
