"""The data model every loader produces: regular per-step series that know their step."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from mesp.errors import DataError


@dataclass(frozen=True)
class Series:
    """One function's invocation counts at a regular step.

    Attributes
    ----------
    id : str
        Stable identifier (e.g. ``owner/app/function`` for Azure 2019, ``vec_id`` for patterns).
    values : ndarray of shape (n_steps,), float32
        Non-negative counts per step.
    step_seconds : int
        The step, in seconds (60 for the Azure traces).
    start : int or None
        Offset of ``values[0]`` in seconds from the trace's start (day 1, 00:00), when known.
        ``start // 86400`` is the day index and ``(start % 86400) // step_seconds`` the step of day.
    meta : dict
        Loader-specific facts: ``trigger``, ``owner``, ``app``, ``function``, ``duration_ms``,
        ``memory_mb``, ``weight`` ... Keys absent when unknown.
    """

    id: str
    values: np.ndarray
    step_seconds: int = 60
    start: int | None = None
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.values.shape[0])


@dataclass
class LoadReport:
    """What a load read and what it skipped, and why. Nothing is dropped without a count here."""

    files: list[str] = field(default_factory=list)
    rows: int = 0
    skipped: Counter = field(default_factory=Counter)
    #: Values the loader supplied itself (e.g. zeros for a function absent from one Azure day, an empty
    #: wide-CSV cell, a gap in a long series), by reason. Like skips, never silent.
    filled: Counter = field(default_factory=Counter)
    #: Rows read per file, in the order read.
    rows_by_file: dict[str, int] = field(default_factory=dict)
    #: Other facts a user should see (e.g. which auxiliary files were picked up).
    notes: list[str] = field(default_factory=list)

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] += n

    def fill(self, reason: str, n: int = 1) -> None:
        if n:
            self.filled[reason] += n

    def merge(self, other: "LoadReport") -> None:
        self.files += other.files
        self.rows += other.rows
        self.skipped.update(other.skipped)
        self.filled.update(other.filled)
        self.rows_by_file.update(other.rows_by_file)
        self.notes += other.notes

    def summary(self) -> str:
        parts = [f"{len(self.files)} file(s), {self.rows} row(s) read"]
        if self.skipped:
            parts.append("skipped: " + ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items())))
        if self.filled:
            parts.append("filled: " + ", ".join(f"{n} {why}" for why, n in sorted(self.filled.items())))
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return {"files": list(self.files), "rows": self.rows, "rows_by_file": dict(self.rows_by_file),
                "skipped": dict(self.skipped), "filled": dict(self.filled), "notes": list(self.notes)}


@dataclass
class Dataset:
    """Series that share one step, plus the load report."""

    series: list[Series]
    step_seconds: int
    format: str
    report: LoadReport = field(default_factory=LoadReport)

    def __len__(self) -> int:
        return len(self.series)

    def __iter__(self):
        return iter(self.series)

    def lengths(self) -> np.ndarray:
        return np.fromiter((len(s) for s in self.series), dtype=np.int64, count=len(self.series))

    def matrix(self) -> np.ndarray:
        """All series stacked as (n_series, n_steps) float32; they must have equal length."""
        lengths = set(self.lengths().tolist())
        if len(lengths) > 1:
            raise DataError(f"series have different lengths {sorted(lengths)[:5]}...; cannot stack them")
        if not self.series:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([s.values for s in self.series]).astype(np.float32, copy=False)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|m|min|mins|h|hr|hrs|d|day|days|w|wk|steps?)?\s*$", re.I)
_UNIT_SECONDS = {"s": 1, "sec": 1, "secs": 1, "m": 60, "min": 60, "mins": 60, "h": 3600, "hr": 3600,
                 "hrs": 3600, "d": 86400, "day": 86400, "days": 86400, "w": 604800, "wk": 604800}


def parse_duration(text: str | int, step_seconds: int) -> int:
    """Convert ``"1d"``, ``"12h"``, ``"90min"``, ``"300s"`` or a bare step count to steps.

    >>> parse_duration("1d", 60), parse_duration("1h", 300), parse_duration("90min", 60), parse_duration(24, 60)
    (1440, 12, 90, 24)
    """
    if isinstance(text, int):
        steps = text
    else:
        match = _DURATION.match(str(text))
        if not match:
            raise DataError(f"cannot read duration {text!r}: use e.g. 1d, 12h, 90min, 300s or a step count")
        number, unit = float(match.group(1)), (match.group(2) or "steps").lower()
        if unit.startswith("step"):
            if number != int(number):
                raise DataError(f"duration {text!r}: a step count must be a whole number")
            steps = int(number)
        else:
            seconds = number * _UNIT_SECONDS[unit]
            if seconds % step_seconds:
                raise DataError(f"duration {text!r} is not a whole number of {step_seconds}-second steps")
            steps = int(seconds // step_seconds)
    if steps <= 0:
        raise DataError(f"duration {text!r} must be positive")
    return steps
