"""Shared low-level reading: transparent gzip, and strict parsing of a row of counts."""

from __future__ import annotations

import gzip
import io

import numpy as np

from mesp.errors import DataError


def open_text(path: str) -> io.TextIOBase:
    """Open a text file, gunzipping when it starts with the gzip magic bytes."""
    try:
        with open(path, "rb") as probe:
            magic = probe.read(2)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a file") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def parse_counts(fields: list[str], first: int, n_cols: int, path: str, lineno: int) -> np.ndarray:
    """Columns ``first:`` of a row as float32 counts; a bad row is a one-line DataError."""
    if len(fields) != n_cols:
        raise DataError(f"{path}:{lineno}: expected {n_cols} columns, found {len(fields)}")
    try:
        counts = np.array(fields[first:], dtype=np.float64)
    except ValueError:
        bad = next(i for i, f in enumerate(fields[first:], start=first) if not _is_number(f))
        raise DataError(f"{path}:{lineno}: column {bad + 1}: non-numeric count {fields[bad]!r}") from None
    if not np.isfinite(counts).all():
        bad = first + int(np.flatnonzero(~np.isfinite(counts))[0])
        raise DataError(f"{path}:{lineno}: column {bad + 1}: count {fields[bad]!r} is not finite")
    if (counts < 0).any():
        bad = first + int(np.flatnonzero(counts < 0)[0])
        raise DataError(f"{path}:{lineno}: column {bad + 1}: negative count {fields[bad]}")
    return counts.astype(np.float32)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
