"""Shared low-level reading: transparent gzip, and strict parsing of a row of counts."""

from __future__ import annotations

import gzip
import io
import zlib

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
    raw = gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")  # noqa: SIM115 - returned
    return _Text(raw, path)


class _Text(io.TextIOWrapper):
    """UTF-8 text whose decoding and gunzip failures become one-line DataErrors naming the file."""

    def __init__(self, raw, path: str):
        super().__init__(raw, encoding="utf-8", newline="")
        self.path = path

    def _fail(self, err: Exception) -> DataError:
        if isinstance(err, UnicodeDecodeError):
            return DataError(f"{self.path}: not UTF-8 text (byte 0x{err.object[err.start]:02x}); is it a trace file?")
        return DataError(f"{self.path}: truncated or corrupt gzip ({err})")

    def readline(self, *args) -> str:
        try:
            return super().readline(*args)
        except (UnicodeDecodeError, EOFError, gzip.BadGzipFile, zlib.error) as err:
            raise self._fail(err) from None

    def read(self, *args) -> str:
        try:
            return super().read(*args)
        except (UnicodeDecodeError, EOFError, gzip.BadGzipFile, zlib.error) as err:
            raise self._fail(err) from None

    def __next__(self) -> str:
        try:
            return super().__next__()
        except (UnicodeDecodeError, EOFError, gzip.BadGzipFile, zlib.error) as err:
            raise self._fail(err) from None


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


def read_header(fh: io.TextIOBase, path: str) -> list[str]:
    """The first line split on commas (quotes and spaces stripped); an empty file is a DataError."""
    line = fh.readline()
    if not line.strip():
        raise DataError(f"{path}:1: empty file" if not line else f"{path}:1: empty header line")
    return [h.strip().strip('"') for h in line.rstrip("\r\n").split(",")]


def header_only(path: str) -> DataError:
    return DataError(f"{path}:2: no data rows (the file has a header only)")


def parse_timestamp(text: str, path: str, where: str) -> float:
    """Seconds from an epoch-seconds number or an ISO 8601 date/time (naive means UTC).

    ``where`` names the place for the error message, e.g. ``"12"`` (a line) or ``"row 12"``.
    """
    text = text.strip().strip('"')
    try:
        return float(text)
    except ValueError:
        pass
    from datetime import datetime, timezone

    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise DataError(f"{path}:{where}: cannot read timestamp {text!r} (use ISO 8601 or epoch seconds)") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.timestamp()


def infer_step(diffs: np.ndarray, where, allow_gaps: bool) -> tuple[int, np.ndarray]:
    """The step (s) from positive differences of consecutive timestamps, and each one in steps.

    The step is the most common difference. Without ``allow_gaps`` every difference must equal it;
    with it, differences may be whole multiples (the caller fills the gaps). ``where(k)`` names the
    file and line of the later timestamp of difference ``k`` for the error message.
    """
    if diffs.size == 0:
        raise DataError(f"{where(None)}: a single timestamp: cannot infer the step")
    values, counts = np.unique(diffs, return_counts=True)
    step = float(values[np.argmax(counts)])
    if step < 1 or abs(step - round(step)) > 1e-6:
        k = int(np.flatnonzero(diffs == step)[0])
        raise DataError(f"{where(k)}: the step {step:g} s is not a whole number of seconds")
    step = float(round(step))
    ratio = diffs / step
    whole = np.abs(ratio - np.round(ratio)) <= 1e-6
    bad = np.flatnonzero(~whole | (ratio < 1) | ((np.round(ratio) != 1) & (not allow_gaps)))
    if bad.size:
        k = int(bad[0])
        raise DataError(f"{where(k)}: irregular timestamps: {diffs[k]:g} s after the previous one, "
                        f"the step is {step:g} s")
    return int(step), np.round(ratio).astype(np.int64)
