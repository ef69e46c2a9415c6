"""Azure Functions 2019: ``HashOwner,HashApp,HashFunction,Trigger,<minute columns>`` per-day files.

One file holds one day; each row is one function invoked that day, with its per-minute counts.
Several files are joined on owner+app+function into one multi-day series per function:

* The day comes from the file name (``invocations_per_function_md.anon.d05.csv`` is day 5). Files without
  a day number are read as consecutive days in the order given, unless no function occurs in more than
  one of them: then they are parts of one day (e.g. several samples of functions from the same day).
* The Azure README says a day file lists the functions invoked that day, so a function absent from one
  day had zero invocations that day: those zeros are filled in and counted in the LoadReport.
* The minute columns may be a sub-range (``480..959``): column ``m`` is minute ``m - 1`` of the day and
  ``Series.start`` is ``(day - 1) * 86400 + (first_minute - 1) * 60``. Files read together must share
  one minute range, and a multi-day join needs full days (otherwise the series would have holes).

Durations and memory files beside an invocations file are picked up (Azure naming
``function_durations_percentiles.anon.dNN.csv`` / ``app_memory_percentiles.anon.dNN.csv``, or the shared
naming ``<prefix>_durations.csv`` / ``<prefix>_memory.csv`` for ``<prefix>_invocations.csv``).

Files are read twice, line by line: a cheap pass over the keys sizes one float32 matrix, the second
parses counts straight into it, so memory stays about the size of the result (46k x 1440 x 4 B = 265 MB
for a full day).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import numpy as np

from mesp.data.model import Dataset, LoadReport, Series
from mesp.data.reader import header_only, open_text, parse_counts, read_header
from mesp.errors import DataError

KEY_COLUMNS = ["HashOwner", "HashApp", "HashFunction", "Trigger"]
MINUTES_PER_DAY = 1440
_DAY = re.compile(r"(?:^|[._-])d(\d{1,3})$")
_GZ = re.compile(r"\.gz$")


@dataclass
class _DayFile:
    """What the key pass learned about one invocations file."""

    path: str
    day: int | None
    first_minute: int
    n_minutes: int
    n_cols: int
    keys: list[tuple[str, str, str]] = field(default_factory=list)
    triggers: list[str] = field(default_factory=list)
    #: hash of each row's count text: tells an identical repeat of a function from a different day
    digests: list[int] = field(default_factory=list)
    linenos: list[int] = field(default_factory=list)
    blank_lines: int = 0


def day_from_name(path: str) -> int | None:
    """``...anon.d05.csv`` -> 5; None when the name carries no day number."""
    name = _GZ.sub("", os.path.basename(str(path)))
    stem = name[:-4] if name.lower().endswith(".csv") else name
    match = _DAY.search(stem)
    return int(match.group(1)) if match else None


def _minute_columns(header: list[str], path: str) -> tuple[int, int]:
    """Validate the minute columns (consecutive integers within 1..1440); return (first, count)."""
    minutes = header[4:]
    if not minutes:
        raise DataError(f"{path}:1: no minute columns after {','.join(KEY_COLUMNS)}")
    try:
        first = int(minutes[0])
    except ValueError:
        raise DataError(f"{path}:1: column 5: expected a minute number, found {minutes[0]!r}") from None
    for offset, name in enumerate(minutes):
        if name != str(first + offset):
            raise DataError(f"{path}:1: column {offset + 5}: expected minute {first + offset}, found {name!r} "
                            "(minute columns must be consecutive)")
    last = first + len(minutes) - 1
    if first < 1 or last > MINUTES_PER_DAY:
        raise DataError(f"{path}:1: minute columns {first}..{last} fall outside a day (1..{MINUTES_PER_DAY})")
    return first, len(minutes)


def _scan(path: str) -> _DayFile:
    """Key pass: header, row keys, triggers; duplicated function rows are an error."""
    with open_text(path) as fh:
        header = read_header(fh, path)
        if header[:4] != KEY_COLUMNS:
            raise DataError(f"{path}:1: not an Azure 2019 invocations file (expected {','.join(KEY_COLUMNS)},1..1440)")
        first, n_minutes = _minute_columns(header, path)
        info = _DayFile(path=str(path), day=day_from_name(path), first_minute=first, n_minutes=n_minutes,
                        n_cols=len(header))
        seen: dict[tuple[str, str, str], int] = {}
        for lineno, line in enumerate(fh, start=2):
            if not line.strip():
                info.blank_lines += 1
                continue
            parts = line.split(",", 4)
            if len(parts) < 5:
                raise DataError(f"{path}:{lineno}: expected {info.n_cols} columns, found {len(parts)}")
            key = (parts[0], parts[1], parts[2])
            if not all(key):
                missing = KEY_COLUMNS[[bool(k) for k in key].index(False)]
                raise DataError(f"{path}:{lineno}: empty {missing}")
            if key in seen:
                raise DataError(f"{path}:{lineno}: duplicated function row (same HashOwner, HashApp, HashFunction "
                                f"as line {seen[key]})")
            seen[key] = lineno
            info.keys.append(key)
            info.triggers.append(parts[3])
            info.digests.append(hash(parts[4].rstrip()))
            info.linenos.append(lineno)
    if not info.keys:
        raise header_only(path)
    return info


def _assign_days(files: list[_DayFile], report: LoadReport) -> list[int]:
    named = [f.day is not None for f in files]
    if all(named):
        return [f.day for f in files]  # type: ignore[misc]
    if any(named):
        bad = next(f.path for f in files if f.day is None)
        raise DataError(f"{bad}: no day number (dNN) in the file name while other files have one; "
                        "name every day file ...dNN.csv")
    if len(files) == 1:
        return [1]
    # Several files without day numbers: the same function with different counts in two files means
    # different days (read in the order given); functions shared only with identical counts (or none
    # shared) mean samples of one day, which is what the shared original_format files are.
    digest_of: dict[tuple[str, str, str], int] = {}
    same_day = True
    for f in files:
        for key, digest in zip(f.keys, f.digests):
            if digest_of.setdefault(key, digest) != digest:
                same_day = False
                break
        if not same_day:
            break
    if same_day:
        report.notes.append(f"{len(files)} files without day numbers share no function with different counts: "
                            "read as parts of one day")
        return [1] * len(files)
    report.notes.append(f"{len(files)} files without day numbers: read as days 1..{len(files)} in the order given")
    return list(range(1, len(files) + 1))


def load_azure2019(paths: list[str]) -> Dataset:
    report = LoadReport(files=[str(p) for p in paths])
    files = [_scan(p) for p in paths]

    ranges = {(f.first_minute, f.n_minutes) for f in files}
    if len(ranges) > 1:
        a, b = files[0], next(f for f in files if (f.first_minute, f.n_minutes) != (files[0].first_minute,
                                                                                     files[0].n_minutes))
        raise DataError(f"{b.path}: covers minutes {b.first_minute}..{b.first_minute + b.n_minutes - 1} but "
                        f"{a.path} covers {a.first_minute}..{a.first_minute + a.n_minutes - 1}; files read together "
                        "must share one minute range (load or inspect them separately)")
    first_minute, n_minutes = ranges.pop()
    days = _assign_days(files, report)
    day_list = sorted(set(days))
    if len(day_list) > 1:
        if n_minutes != MINUTES_PER_DAY:
            raise DataError(f"{files[0].path}: covers minutes {first_minute}..{first_minute + n_minutes - 1} only; "
                            "joining several days needs full-day files (1..1440)")
        missing = sorted(set(range(day_list[0], day_list[-1] + 1)) - set(day_list))
        if missing:
            raise DataError(f"day(s) {', '.join(map(str, missing))} missing between day {day_list[0]} and "
                            f"day {day_list[-1]}: the series would have holes")

    # Function rows in order of first appearance. A function listed again for the same day (e.g. two
    # samples of one day that overlap) is read once when its counts are identical, else it is an error.
    row_of: dict[tuple[str, str, str], int] = {}
    trigger_of: list[str] = []
    seen_day: dict[tuple[tuple[str, str, str], int], tuple[str, int]] = {}
    targets: list[np.ndarray] = []
    repeated = 0
    for f, day in zip(files, days):
        target = np.empty(len(f.keys), dtype=np.int64)
        for i, (key, trig, digest) in enumerate(zip(f.keys, f.triggers, f.digests)):
            if (key, day) in seen_day:
                other, other_digest = seen_day[(key, day)]
                if digest != other_digest:
                    raise DataError(f"{f.path}:{f.linenos[i]}: function {'/'.join(key)} is also in {other} for day "
                                    f"{day} with different counts")
                target[i] = -1
                repeated += 1
                continue
            seen_day[(key, day)] = (f.path, digest)
            if key not in row_of:
                row_of[key] = len(row_of)
                trigger_of.append(trig)
            target[i] = row_of[key]
        targets.append(target)
    del seen_day
    if repeated:
        report.skip("function rows repeated identically in another file of the same day (read once)", repeated)

    n_days, d0 = len(day_list), day_list[0]
    matrix = np.zeros((len(row_of), n_days * n_minutes), dtype=np.float32)
    present = np.zeros((len(row_of), n_days), dtype=bool)
    trigger_changes = 0
    progress = _progress(files)
    for f, day, rows in zip(files, days, targets):
        col = (day - d0) * n_minutes
        kept = rows >= 0
        present[rows[kept], day - d0] = True
        trigger_changes += sum(trigger_of[r] != t for r, t in zip(rows.tolist(), f.triggers) if r >= 0)
        with open_text(f.path) as fh:
            fh.readline()
            i = 0
            for lineno, line in enumerate(fh, start=2):
                if not line.strip():
                    continue
                if rows[i] >= 0:
                    matrix[rows[i], col:col + n_minutes] = parse_counts(line.rstrip("\r\n").split(","), 4, f.n_cols,
                                                                        f.path, lineno)
                i += 1
                if progress is not None and not i % 1000:
                    progress.update(1000)
        if progress is not None:
            progress.update(i % 1000)
        report.rows += len(f.keys)
        report.rows_by_file[f.path] = len(f.keys)
        if f.blank_lines:
            report.skip("blank lines", f.blank_lines)
    if progress is not None:
        progress.close()
    absent = int(n_days * len(row_of) - present.sum())
    report.fill("function-days absent from a day file, read as zero invocations", absent * n_minutes)
    if absent:
        report.notes.append(f"{absent} function-day(s) absent from their day file: filled with zeros "
                            "(a day file lists the functions invoked that day)")
    if absent > 0.5 * n_days * len(row_of) and n_days > 1:
        report.notes.append(f"most function-days ({absent} of {n_days * len(row_of)}) are absent: check that these "
                            "files are consecutive days of one trace")
    if trigger_changes:
        report.notes.append(f"{trigger_changes} function-day(s) list a different trigger than the function's first "
                            "day; the first day's trigger is kept")

    durations, memory = _aux_tables(files, days, set(row_of), report)
    start = (d0 - 1) * 86400 + (first_minute - 1) * 60
    series = []
    for key, r in row_of.items():
        owner, app, func = key
        meta = {"owner": owner, "app": app, "function": func, "trigger": trigger_of[r], "first_day": d0,
                "days_present": int(present[r].sum())}
        meta.update(durations.get(key, {}))
        meta.update(memory.get(key) or memory.get((owner, app), {}))
        series.append(Series(id=f"{owner}/{app}/{func}", values=matrix[r], step_seconds=60, start=start, meta=meta))
    return Dataset(series=series, step_seconds=60, format="azure2019", report=report)


def _progress(files: list[_DayFile]):
    """A tqdm bar on stderr for big loads (tqdm is optional; it stays quiet when not on a terminal)."""
    total = sum(len(f.keys) for f in files)
    if total < 20_000:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="fn", desc="reading Azure 2019", disable=None, leave=False)


# --- durations and memory files ---------------------------------------------------------------------------

def aux_paths(path: str) -> tuple[str | None, str | None]:
    """The durations and memory files matching an invocations file, when they exist beside it."""
    folder, name = os.path.split(str(path))
    gz = ".gz" if name.endswith(".gz") else ""
    base = name[: -len(gz)] if gz else name
    candidates: list[tuple[str, str]] = []
    match = re.match(r"^invocations_per_function_md\.anon\.(d\d+)\.csv$", base)
    if match:
        day = match.group(1)
        candidates.append((f"function_durations_percentiles.anon.{day}.csv", f"app_memory_percentiles.anon.{day}.csv"))
    if base.endswith("_invocations.csv"):
        prefix = base[: -len("_invocations.csv")]
        candidates.append((f"{prefix}_durations.csv", f"{prefix}_memory.csv"))
    found: list[str | None] = [None, None]
    for pair in candidates:
        for i, cand in enumerate(pair):
            for suffix in ("", ".gz") if not gz else (".gz", ""):
                full = os.path.join(folder, cand + suffix)
                if found[i] is None and os.path.isfile(full):
                    found[i] = full
    return found[0], found[1]


def _read_table(path: str, required: list[str]) -> tuple[list[str], list[tuple[int, list[str]]]]:
    rows = []
    with open_text(path) as fh:
        header = read_header(fh, path)
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(f"{path}:1: missing column(s) {', '.join(missing)}")
        for lineno, line in enumerate(fh, start=2):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split(",")
            if len(fields) != len(header):
                raise DataError(f"{path}:{lineno}: expected {len(header)} columns, found {len(fields)}")
            rows.append((lineno, fields))
    return header, rows


def _number(text: str, path: str, lineno: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{path}:{lineno}: {column}: non-numeric value {text!r}") from None
    if not np.isfinite(value) or value < 0:
        raise DataError(f"{path}:{lineno}: {column}: expected a non-negative number, found {text!r}")
    return value


def _read_durations(path: str) -> tuple[dict[tuple, dict], int]:
    """Per-function duration facts and the number of duplicated rows (the first is kept)."""
    header, rows = _read_table(path, ["HashOwner", "HashApp", "HashFunction", "Average", "Count"])
    idx = {c: i for i, c in enumerate(header)}
    pct = [c for c in header if c.startswith("percentile_Average_")]
    out: dict[tuple, dict] = {}
    dups = 0
    for lineno, f in rows:
        key = (f[idx["HashOwner"]], f[idx["HashApp"]], f[idx["HashFunction"]])
        rec = {"duration_ms": _number(f[idx["Average"]], path, lineno, "Average"),
               "duration_count": int(_number(f[idx["Count"]], path, lineno, "Count"))}
        for col, name in (("Minimum", "duration_min_ms"), ("Maximum", "duration_max_ms")):
            if col in idx:
                rec[name] = _number(f[idx[col]], path, lineno, col)
        rec["duration_percentiles_ms"] = {c[len("percentile_Average_"):]: _number(f[idx[c]], path, lineno, c)
                                          for c in pct}
        if key in out:
            dups += 1
            continue
        out[key] = rec
    return out, dups


def _read_memory(path: str) -> tuple[dict[tuple, dict], int]:
    """Memory facts keyed per function (shared files) or per app (Azure files), and the duplicate count."""
    header, rows = _read_table(path, ["HashOwner", "HashApp", "AverageAllocatedMb"])
    idx = {c: i for i, c in enumerate(header)}
    per_function = "HashFunction" in idx
    pct = [c for c in header if c.startswith("AverageAllocatedMb_pct")]
    out: dict[tuple, dict] = {}
    dups = 0
    for lineno, f in rows:
        key = ((f[idx["HashOwner"]], f[idx["HashApp"]], f[idx["HashFunction"]]) if per_function
               else (f[idx["HashOwner"]], f[idx["HashApp"]]))
        rec = {"memory_mb": _number(f[idx["AverageAllocatedMb"]], path, lineno, "AverageAllocatedMb"),
               "memory_scope": "function" if per_function else "app",
               "memory_percentiles_mb": {c[len("AverageAllocatedMb_pct"):]: _number(f[idx[c]], path, lineno, c)
                                         for c in pct}}
        if "SampleCount" in idx:
            rec["memory_samples"] = int(_number(f[idx["SampleCount"]], path, lineno, "SampleCount"))
        if key in out:
            dups += 1
            continue
        out[key] = rec
    return out, dups


def _weighted(records: list[dict], value: str, weight: str, pct: str) -> dict:
    """Combine one function's per-day records: weighted mean of the average and of each percentile."""
    if len(records) == 1:
        return dict(records[0])
    w = np.array([max(r.get(weight, 0), 0) for r in records], dtype=float)
    w = w if w.sum() > 0 else np.ones_like(w)
    merged = dict(records[-1])
    merged[value] = float(np.average([r[value] for r in records], weights=w))
    if weight in records[0]:
        merged[weight] = int(sum(r.get(weight, 0) for r in records))
    keys = set.intersection(*(set(r.get(pct, {})) for r in records))
    merged[pct] = {k: float(np.average([r[pct][k] for r in records], weights=w)) for k in sorted(keys)}
    for k, fn in (("duration_min_ms", min), ("duration_max_ms", max)):
        if all(k in r for r in records):
            merged[k] = fn(r[k] for r in records)
    merged["aux_days"] = len(records)
    return merged


def _aux_tables(files: list[_DayFile], days: list[int], functions: set, report: LoadReport):
    """Per-function duration and memory meta, combined over days (weighted by Count / SampleCount)."""
    dur_days: dict[tuple, list[dict]] = {}
    mem_days: dict[tuple, list[dict]] = {}
    for f in files:
        dpath, mpath = aux_paths(f.path)
        if dpath:
            table, dups = _read_durations(dpath)
            if dups:
                report.skip(f"duplicated rows in durations file {os.path.basename(dpath)} (first kept)", dups)
            unmatched = sum(1 for k in table if k not in functions)
            if unmatched:
                report.skip(f"durations rows without an invocations row ({os.path.basename(dpath)})", unmatched)
            for k, rec in table.items():
                if k in functions:
                    dur_days.setdefault(k, []).append(rec)
            report.notes.append(f"durations: {dpath}")
        if mpath:
            table, dups = _read_memory(mpath)
            if dups:
                report.skip(f"duplicated rows in memory file {os.path.basename(mpath)} (first kept)", dups)
            apps = {(o, a) for o, a, _ in functions}
            unmatched = sum(1 for k in table if k not in (functions if len(k) == 3 else apps))
            if unmatched:
                report.skip(f"memory rows without an invocations row ({os.path.basename(mpath)})", unmatched)
            for k, rec in table.items():
                mem_days.setdefault(k, []).append(rec)
            report.notes.append(f"memory: {mpath}")
    durations = {k: _weighted(v, "duration_ms", "duration_count", "duration_percentiles_ms")
                 for k, v in dur_days.items()}
    memory = {k: _weighted(v, "memory_mb", "memory_samples", "memory_percentiles_mb") for k, v in mem_days.items()}
    return durations, memory
