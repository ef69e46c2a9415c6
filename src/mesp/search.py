"""Per-cluster expert search: an Optuna study over families and hyperparameters, then a refit.

``search_expert(windows, ...)`` runs one study on one cluster's windows:

* **Validation** is rolling-origin on the cluster's own windows: the distinct origins are sorted and the
  last ``2 * n_folds`` blocks' worth are cut into ``n_folds`` validation blocks; fold ``k`` trains on every
  window whose *target* ends at or before its block starts and validates on the block. The objective is
  the mean best validation pinball loss (scaled space, see :mod:`mesp.experts.scaling`) over the folds.
  When all windows share one origin (nothing to roll), a seeded 80/20 split by series is used instead.
* **Pruning**: every epoch reports its validation loss (step ``fold * max_epochs + epoch``) to a
  ``MedianPruner``; hopeless trials stop early.
* **Budget**: ``budget_seconds`` of wall clock for the whole call. The study gets ``1 - refit_share`` of it
  (Optuna ``timeout``), the refit the rest. One trial may use at most ``trial_share`` of the study's time,
  split evenly over its folds (the trainer checks the clock every batch), so even a heavy family cannot
  eat the whole study; a trial cut short is scored on the folds it finished. Trials train on at most
  ``max_search_windows`` windows per fold (a seeded subset; validation blocks are kept whole); the refit
  uses all of them.
* **Seed**: a seeded TPE sampler and seeded training make the sequence of trials reproducible; with a
  binding wall-clock budget the *number* of trials depends on machine speed.
* **Refit**: the best trial's family and hyperparameters are trained on all the cluster's windows for as
  many samples as its folds needed to reach their best validation loss (mean over folds, rounded up to
  whole epochs), and the fitted model is returned.

Small-cluster rule (``n`` = the cluster's windows):

1. ``n < min_windows`` (default 32): no search. The result has ``deferred=True`` and no model; the
   caller uses the dense model for this cluster (a model fitted to a handful of windows is noise).
2. ``n < small_windows`` (default 512): only the simple families (linear, dlinear, mlp) that were asked
   for (all three when none of them was), half the trials (at least 2) and a single fold, because a
   transformer cannot be told apart from noise on a few hundred windows.
3. Otherwise the full search over ``families``.

The dense baseline (:func:`search_dense`) is the same search on all windows together with the summed
budget of all experts, and without the small-cluster rule.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mesp.experts import registry
from mesp.experts.scaling import Forecaster
from mesp.experts.training import TrainConfig, torch_threads, train
from mesp.windows import Windows


@dataclass
class SearchResult:
    family: str  # chosen family, or "dense" when deferred
    params: dict  # architecture hyperparameters (registry.build)
    train_config: TrainConfig | None
    model: Forecaster | None  # refit on all windows; None when deferred
    val_loss: float  # best trial's mean rolling-origin validation loss
    rule: str  # "full", "small" or "defer" (see the module docstring)
    n_windows: int
    n_trials: int  # trials that completed
    n_pruned: int
    seconds: float
    deferred: bool = False
    trials: list[dict] = field(default_factory=list)  # number, state, family, value, seconds


def rolling_origin_folds(windows: Windows, n_folds: int, horizon: int, seed: int = 0
                         ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train_idx, val_idx) pairs; training targets end at or before the validation block starts."""
    origins = np.unique(windows.origin)
    if origins.size >= 2:
        block = max(1, origins.size // (2 * n_folds))
        first = max(1, origins.size - n_folds * block)
        folds = []
        for k in range(n_folds):
            lo = first + k * block
            if lo >= origins.size:
                break
            hi = origins[lo + block] if lo + block < origins.size else np.inf
            val = np.flatnonzero((windows.origin >= origins[lo]) & (windows.origin < hi))
            tr = np.flatnonzero(windows.origin + horizon <= origins[lo])
            if tr.size and val.size:
                folds.append((tr, val))
        if folds:
            return folds
    rng = np.random.default_rng(seed)
    series = np.unique(windows.series_index)
    held = rng.permutation(series)[: max(1, series.size // 5)]
    mask = np.isin(windows.series_index, held)
    if mask.all() or not mask.any():  # a single series: split its windows instead
        mask = rng.random(len(windows)) < 0.2
        mask[0], mask[-1] = False, True
    return [(np.flatnonzero(~mask), np.flatnonzero(mask))]


def split_budget(sizes: Sequence[int], total_seconds: float, floor_share: float = 0.25) -> list[float]:
    """Split a total budget over clusters in proportion to their windows, with a floor of ``floor_share``
    of an equal split so a small cluster still gets a few trials; the parts sum to ``total_seconds``."""
    sizes = np.asarray(sizes, dtype=np.float64)
    if sizes.size == 0:
        return []
    equal = np.full(sizes.size, 1.0 / sizes.size)
    prop = sizes / sizes.sum() if sizes.sum() > 0 else equal
    share = np.maximum(prop, floor_share * equal)
    return list(total_seconds * share / share.sum())


def _train_config(trial, max_epochs: int, seed: int, threads: int | None, max_seconds: float) -> TrainConfig:
    return TrainConfig(epochs=max_epochs, batch_size=trial.suggest_categorical("batch_size", [64, 128, 256]),
                       lr=trial.suggest_float("lr", 3e-4, 3e-3, log=True),
                       weight_decay=trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
                       patience=4, max_seconds=max_seconds, seed=seed, threads=threads)


def search_expert(windows: Windows, *, quantiles: Sequence[float] = (0.5, 0.9), budget_seconds: float = 60.0,
                  n_trials: int = 20, seed: int = 0, families: Sequence[str] | None = None, n_folds: int = 2,
                  max_epochs: int = 30, threads: int | None = None, min_windows: int = 32,
                  small_windows: int = 512, refit_share: float = 0.2, trial_share: float = 0.25,
                  max_search_windows: int = 8000) -> SearchResult:
    """Search the best expert for one cluster's ``windows`` and refit it (rules: module docstring)."""
    import optuna

    start = time.perf_counter()
    n = len(windows)
    families = list(families or registry.FAMILIES)
    for name in families:
        registry.family(name)  # unknown names fail here, with the list of known ones
    if n < min_windows:
        return SearchResult("dense", {}, None, None, math.nan, "defer", n, 0, 0, time.perf_counter() - start,
                            deferred=True)
    rule = "full"
    if n < small_windows:
        rule = "small"
        families = [f for f in families if f in registry.SIMPLE_FAMILIES] or list(registry.SIMPLE_FAMILIES)
        n_trials, n_folds = max(2, n_trials // 2), 1
    context, horizon = windows.X.shape[1], windows.Y.shape[1]
    folds = rolling_origin_folds(windows, n_folds, horizon, seed)
    search_deadline = start + budget_seconds * (1.0 - refit_share)
    trial_cap = budget_seconds * (1.0 - refit_share) * trial_share
    rng = np.random.default_rng(seed)
    folds = [(np.sort(rng.choice(tr, max_search_windows, replace=False)) if tr.size > max_search_windows else tr, va)
             for tr, va in folds]
    log = []

    def objective(trial: optuna.Trial) -> float:
        t0 = time.perf_counter()
        name = trial.suggest_categorical("family", families)
        params = registry.suggest(name, trial, context)
        best_samples, losses = [], []
        for k, (tr, va) in enumerate(folds):
            left = min(search_deadline - time.perf_counter(), (t0 + trial_cap - time.perf_counter()))
            if left <= 0:
                if losses:  # out of time after some folds: score the trial on those
                    break
                raise optuna.TrialPruned("budget spent")
            cfg = _train_config(trial, max_epochs, seed + trial.number, threads, left / (len(folds) - k))
            model = registry.build(name, context, horizon, quantiles, params)

            def report(epoch: int, val: float, k: int = k) -> None:
                trial.report(val, k * max_epochs + epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned()

            res = train(model, windows.X[tr], windows.Y[tr], cfg, windows.X[va], windows.Y[va], on_epoch=report)
            losses.append(res.best_val)
            best_samples.append(res.best_epoch * len(tr))  # samples seen up to the best epoch
        trial.set_user_attr("best_samples", best_samples)
        trial.set_user_attr("seconds", time.perf_counter() - t0)
        value = float(np.mean(losses))
        return value if math.isfinite(value) else float("inf")

    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, n_trials // 3)))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.WARNING)
    try:
        study = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner)
        with torch_threads(threads):
            study.optimize(objective, n_trials=n_trials, timeout=max(search_deadline - time.perf_counter(), 1e-3),
                           catch=(RuntimeError,))
    finally:
        optuna.logging.set_verbosity(verbosity)
    states = optuna.trial.TrialState
    complete = [t for t in study.trials if t.state == states.COMPLETE and math.isfinite(t.value)]
    for t in study.trials:
        log.append({"number": t.number, "state": t.state.name, "family": t.params.get("family"),
                    "value": t.value, "seconds": t.user_attrs.get("seconds")})
    n_pruned = sum(t.state == states.PRUNED for t in study.trials)
    if not complete:
        # The budget ran out before one trial finished: refit the simplest family asked for with defaults,
        # rather than return nothing.
        name = next((f for f in families if f in registry.SIMPLE_FAMILIES), families[0])
        params, lr, wd, bs, epochs, val = {}, 1e-3, 1e-4, 128, max(1, max_epochs // 3), math.nan
    else:
        best = min(complete, key=lambda t: t.value)
        name = best.params["family"]
        prefix = name + "."
        params = {k[len(prefix):]: v for k, v in best.params.items() if k.startswith(prefix)}
        lr, wd, bs = best.params["lr"], best.params["weight_decay"], best.params["batch_size"]
        # As many optimiser samples as the best trial needed to reach its best validation loss.
        epochs = max(1, math.ceil(float(np.mean(best.user_attrs["best_samples"])) / n))
        val = float(best.value)
    left = max(start + budget_seconds - time.perf_counter(), 0.05 * budget_seconds)
    cfg = TrainConfig(epochs=epochs, batch_size=bs, lr=lr, weight_decay=wd, patience=epochs, max_seconds=left,
                      seed=seed, threads=threads)
    model = registry.build(name, context, horizon, quantiles, params)
    train(model, windows.X, windows.Y, cfg)
    return SearchResult(name, params, cfg, model, val, rule, n, len(complete), n_pruned,
                        time.perf_counter() - start, trials=log)


def search_dense(windows: Windows, *, budget_seconds: float, **kwargs) -> SearchResult:
    """The dense rival: :func:`search_expert` on all windows with the experts' summed budget, no small rule."""
    kwargs.setdefault("min_windows", 1)
    kwargs.setdefault("small_windows", 0)
    return search_expert(windows, budget_seconds=budget_seconds, **kwargs)
