"""MESP: Mixture-of-Experts forecasting of serverless invocations.

The core package is imported by both training and serving. Modules that need torch, tslearn,
optuna, scipy or matplotlib (``mesp.clustering``, ``mesp.experts``, ``mesp.search``, ``mesp.jobs``,
``mesp.report``) are training-side only; the serving path (``mesp.runtime``, ``mesp.router``,
``mesp.store``, ``mesp.schemas``) imports numpy, onnxruntime and pydantic only.
"""

__version__ = "0.1.0"
