"""ForecastFunction entry point (``Handler: app.lambda_handler``).

The handler, its routes and models live in :mod:`mesp.api` (shipped in the core layer), so the local server
(``mesp serve``) and the Lambda run identical code. Module scope stays cheap: importing creates the Powertools
resolver; the model is loaded on the first request and kept for the container's life.
"""

from mesp.api import app, lambda_handler, logger, metrics, tracer  # noqa: F401

__all__ = ["app", "lambda_handler"]
