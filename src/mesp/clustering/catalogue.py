"""A readable catalogue of the shape clusters: a label per cluster and a PNG of centroids with member bands.

Labels come from the centroid (z-normalised, so only its shape counts) and the members (raw counts):

* ``timer every <P>`` -- the centroid's autocorrelation has a clear repeating peak at lag ``P``
  (the first peak reaching 80% of the highest one, height >= 0.4, after a dip of at least 0.2); a sub-hour
  timer whose hourly-smoothed centroid still varies by >= 1 z also gets ``, peak <HH:MM>``;
* ``midnight spike`` / ``spike <HH:MM> (<part of day>)`` -- a narrow excursion: centroid max >= 6 z with at
  most 2% of steps above 3 z (midnight = within 30 minutes of 00:00);
* ``flat (steady load)`` -- the members' median coefficient of variation (std/mean of raw counts) < 0.15;
* ``peak <HH:MM> (<part of day>)`` otherwise -- the maximum of the centroid smoothed over one hour.

Clock times need to know when step 0 is: ``start`` (a datetime, or one per row of ``X``); without it a window
of exactly one day is taken to start at 00:00 (the daily-pattern files do), and any other window gets times
relative to its first step (``+5h``). When ``start`` gives one date per row, a cluster whose members fall on
weekends at least twice as often as the calendar (2/7) gets ``, weekend``; at most half as often, ``, weekday``.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from mesp.manifest import IDLE_CLUSTER_ID
from mesp.sbd import CentroidSpectra, apply_shift, sbd_to_centroids, znorm

IDLE_LABEL = "idle/sparse (rule)"
_MAX_MEMBERS = 2_000


def _fmt_duration(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds % 60 == 0:
        return f"{int(seconds // 60)}min"
    return f"{int(seconds)}s"


def _part_of_day(hour: float) -> str:
    return ("night", "morning", "afternoon", "evening")[int(hour // 6) % 4]


def autocorrelation(c: np.ndarray) -> np.ndarray:
    """Linear autocorrelation of a series at lags 0..m-1, normalised so that lag 0 is 1."""
    c = np.asarray(c, dtype=np.float64) - np.mean(c)
    m = c.size
    n = 1 << int(np.ceil(np.log2(2 * m)))
    f = np.fft.rfft(c, n)
    r = np.fft.irfft(f * np.conj(f), n)[:m]
    return r / r[0] if r[0] > 0 else np.zeros(m)


def dominant_period(c: np.ndarray, *, min_height: float = 0.4, min_dip: float = 0.2) -> int | None:
    """Lag (in steps) of the fundamental repeating peak of ``c``'s autocorrelation, or None."""
    r = autocorrelation(c)
    m = r.size
    hi = max(3, m // 3)
    peaks = [L for L in range(2, hi) if r[L] >= r[L - 1] and r[L] >= r[L + 1] and r[L] >= min_height
             and r[1:L].min() <= r[L] - min_dip]
    if not peaks:
        return None
    top = max(r[L] for L in peaks)
    return next(L for L in peaks if r[L] >= 0.8 * top)


def _clock(step: float, step_seconds: int, m: int, origin: dt.datetime | None) -> str:
    seconds = step * step_seconds
    if origin is None and m * step_seconds != 86_400:
        return f"+{_fmt_duration(round(seconds / 60) * 60)}"
    base = origin or dt.datetime(2000, 1, 1)
    t = base + dt.timedelta(seconds=float(seconds))
    return f"{t.hour:02d}:{t.minute:02d}"


def _hour_of(step: float, step_seconds: int, origin: dt.datetime | None) -> float:
    base = origin.hour * 3600 + origin.minute * 60 if origin else 0
    return ((base + step * step_seconds) / 3600) % 24


def describe_clusters(centers: np.ndarray, X: np.ndarray | None, labels: np.ndarray | None, step_seconds: int,
                      start: dt.datetime | Sequence[dt.datetime] | None = None) -> list[str]:
    """One human-readable label per centroid (see the module docstring for the rules).

    Parameters
    ----------
    centers : (k, m) z-normalised centroids
    X : (n, m) raw counts of the training patterns, or None (labels then use the centroid only)
    labels : (n,) cluster of each row of ``X`` (``IDLE_CLUSTER_ID`` rows are ignored)
    step_seconds : seconds per step
    start : when step 0 is: one datetime for all rows, one per row, or None
    """
    centers = np.atleast_2d(np.asarray(centers, dtype=np.float64))
    k, m = centers.shape
    origin: dt.datetime | None = None
    per_row: Sequence[dt.datetime] | None = None
    if isinstance(start, dt.datetime):
        origin = start
    elif start is not None:
        per_row = list(start)
        origin = per_row[0] if per_row else None
    smooth_w = max(1, int(round(3600 / step_seconds)))
    out: list[str] = []
    for j in range(k):
        c = centers[j]
        members = None
        if X is not None and labels is not None:
            idx = np.flatnonzero(np.asarray(labels) == j)
            members = np.asarray(X)[idx[:_MAX_MEMBERS]].astype(np.float64)
        period = dominant_period(c)
        spike = c.max() >= 6 and np.mean(c > 3) <= 0.02
        cv = None
        if members is not None and members.size:
            means = members.mean(axis=1)
            ok = means > 0
            if ok.any():
                cv = float(np.median(members[ok].std(axis=1) / means[ok]))
        kernel = np.ones(smooth_w) / smooth_w
        sm = np.convolve(np.r_[c, c[: smooth_w - 1]], kernel, mode="valid")[:m]
        if period is not None:
            label = f"timer every {_fmt_duration(period * step_seconds)}"
            if period < smooth_w and sm.max() - sm.min() >= 1.0:  # the timer's rate follows the clock
                at = int(np.argmax(sm)) + smooth_w // 2
                label += f", peak {_clock(at, step_seconds, m, origin)}"
        elif spike:
            at = int(np.argmax(c))
            hour = _hour_of(at, step_seconds, origin)
            clock = _clock(at, step_seconds, m, origin)
            near_midnight = (origin is not None or m * step_seconds == 86_400) and min(hour, 24 - hour) <= 0.5
            label = "midnight spike" if near_midnight else (
                f"spike {clock}" + (f" ({_part_of_day(hour)})" if not clock.startswith("+") else ""))
        elif cv is not None and cv < 0.15:
            label = "flat (steady load)"
        else:
            at = int(np.argmax(sm)) + smooth_w // 2
            hour = _hour_of(at, step_seconds, origin)
            clock = _clock(at, step_seconds, m, origin)
            label = f"peak {clock}" + (f" ({_part_of_day(hour)})" if not clock.startswith("+") else "")
        if per_row is not None and labels is not None:
            days = [per_row[i] for i in np.flatnonzero(np.asarray(labels) == j)]
            if len(days) >= 7:
                weekend = np.mean([d.weekday() >= 5 for d in days])
                if weekend >= 4 / 7:
                    label += ", weekend"
                elif weekend <= 1 / 7:
                    label += ", weekday"
        out.append(label)
    counts = Counter(out)
    seen: Counter = Counter()
    for j, label in enumerate(out):
        if counts[label] > 1:
            seen[label] += 1
            out[j] = f"{label} #{seen[label]}"
    return out


def member_bands(center: np.ndarray, members: np.ndarray, q=(10, 90)) -> np.ndarray:
    """Percentile band (2, m) of the z-normalised members aligned (SBD shift) to ``center``."""
    Z = znorm(members)
    _, shift = sbd_to_centroids(Z, CentroidSpectra(np.asarray(center)[None, :]), return_shift="best")
    return np.percentile(apply_shift(Z, shift), q, axis=0)


def plot_catalogue(centers: np.ndarray, X: np.ndarray | None, labels: np.ndarray | None, path: str | Path, *,
                   titles: Sequence[str] | None = None, step_seconds: int = 60, max_members: int = 500,
                   n_idle: int | None = None, seed: int = 0) -> Path:
    """Write a PNG grid: each centroid with the 10-90% band of its aligned members; returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    centers = np.atleast_2d(np.asarray(centers, dtype=np.float32))
    k, m = centers.shape
    labels_arr = None if labels is None else np.asarray(labels)
    ncols = min(4, k)
    nrows = int(np.ceil(k / ncols))
    fig = Figure(figsize=(4.2 * ncols, 2.8 * nrows), dpi=100)
    FigureCanvasAgg(fig)
    hours = np.arange(m) * step_seconds / 3600
    rng = np.random.default_rng(seed)
    for j in range(k):
        ax = fig.add_subplot(nrows, ncols, j + 1)
        size = None
        if X is not None and labels_arr is not None:
            idx = np.flatnonzero(labels_arr == j)
            size = idx.size
            if idx.size > max_members:
                idx = np.sort(rng.choice(idx, size=max_members, replace=False))
            if idx.size >= 2:
                lo, hi = member_bands(centers[j], np.asarray(X)[idx])
                ax.fill_between(hours, lo, hi, color="tab:blue", alpha=0.25, linewidth=0, label="members 10-90%")
        ax.plot(hours, centers[j], color="tab:blue", linewidth=1.0, label="centroid")
        title = f"{j}: {titles[j]}" if titles is not None else f"cluster {j}"
        if size is not None:
            title += f" (n={size:,})"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("hours", fontsize=8)
        ax.tick_params(labelsize=7)
    note = f"  |  {IDLE_LABEL}: {n_idle:,} patterns (id {IDLE_CLUSTER_ID})" if n_idle is not None else ""
    fig.suptitle(f"K-Shape catalogue: {k} clusters, z-normalised{note}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png")
    tmp.replace(path)
    return path
