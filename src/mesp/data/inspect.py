"""Facts about a loaded Dataset: what ``mesp data inspect`` prints and writes as JSON."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from mesp.data.loading import load
from mesp.data.model import Dataset

#: A series active (non-zero) in fewer than this share of its steps counts as sparse.
SPARSE_ACTIVE_SHARE = 0.04


def describe(dataset: Dataset) -> dict:
    """Counts, span, volume and sparsity of a Dataset, plus its load report; JSON-ready."""
    step = dataset.step_seconds
    lengths = dataset.lengths()
    n_values = int(lengths.sum())
    total = 0.0
    zeros = 0
    sparse = 0
    idle = 0
    daily = []
    for s in dataset.series:
        v = s.values
        active = int(np.count_nonzero(v))
        total += float(v.sum(dtype=np.float64))
        zeros += v.size - active
        sparse += active < SPARSE_ACTIVE_SHARE * v.size
        idle += active == 0
        if v.size:
            daily.append(float(v.sum(dtype=np.float64)) * 86400.0 / (v.size * step))
    starts = [s.start for s in dataset.series if s.start is not None]
    if len(starts) == len(dataset.series) and starts:
        first = min(starts)
        last = max(s.start + len(s) * step for s in dataset.series)  # type: ignore[operator]
        span_s = last - first
    else:
        first = None
        span_s = int(lengths.max()) * step if lengths.size else 0
    triggers = Counter(s.meta["trigger"] for s in dataset.series if "trigger" in s.meta)
    kinds = Counter(s.meta["kind"] for s in dataset.series if "kind" in s.meta)
    out = {
        "format": dataset.format,
        "series": len(dataset.series),
        "step_seconds": step,
        "steps_min": int(lengths.min()) if lengths.size else 0,
        "steps_max": int(lengths.max()) if lengths.size else 0,
        "days": round(span_s / 86400.0, 4),
        "start_seconds": first,
        "total_invocations": total,
        "zero_step_share": zeros / n_values if n_values else 0.0,
        "sparse_series_share": sparse / len(dataset.series) if dataset.series else 0.0,
        "sparse_series": int(sparse),
        "idle_series": int(idle),
        "median_daily_invocations": float(np.median(daily)) if daily else 0.0,
        "report": dataset.report.to_dict(),
    }
    if triggers:
        out["triggers"] = dict(triggers.most_common())
    if kinds:
        out["kinds"] = dict(kinds.most_common())
    return out


def inspect_paths(paths: Sequence[str], fmt: str = "auto", join: bool = False) -> dict:
    """Describe each file on its own (the default) or all of them loaded together (``join``).

    Several files are described one by one by default because files handed over together are not
    always one data set (e.g. samples of different minute ranges); ``join`` reads them as ``load`` does
    (Azure 2019 day files joined into multi-day series) and fails the way ``load`` fails.
    """
    if join:
        return {"joined": describe(load(list(paths), fmt))}
    files = []
    for path in paths:
        info = describe(load([path], fmt))
        info["path"] = str(path)
        files.append(info)
    total = {
        "files": len(files),
        "series": sum(f["series"] for f in files),
        "rows": sum(f["report"]["rows"] for f in files),
        "total_invocations": sum(f["total_invocations"] for f in files),
        "skipped": sum(sum(f["report"]["skipped"].values()) for f in files),
        "filled": sum(sum(f["report"]["filled"].values()) for f in files),
    }
    return {"files": files, "total": total}


def _fmt_count(x: float) -> str:
    return f"{x:,.0f}" if abs(x - round(x)) < 1e-6 else f"{x:,.2f}"


def render(result: dict) -> str:
    """A readable table of :func:`inspect_paths`' result."""
    entries = [("(joined)", result["joined"])] if "joined" in result else [(f["path"], f) for f in result["files"]]
    head = ["file", "format", "series", "step", "steps", "days", "invocations", "zero steps", "active<4%",
            "idle", "rows", "skipped", "filled"]
    rows = []
    for name, f in entries:
        steps = str(f["steps_max"]) if f["steps_min"] == f["steps_max"] else f"{f['steps_min']}..{f['steps_max']}"
        rows.append([name.rsplit("/", 1)[-1], f["format"], f"{f['series']:,}", f"{f['step_seconds']}s", steps,
                     f"{f['days']:g}", _fmt_count(f["total_invocations"]), f"{f['zero_step_share']:.1%}",
                     f"{f['sparse_series_share']:.1%}", str(f["idle_series"]), f"{f['report']['rows']:,}",
                     str(sum(f["report"]["skipped"].values())), str(sum(f["report"]["filled"].values()))])
    if "total" in result and len(entries) > 1:
        t = result["total"]
        rows.append(["total", "", f"{t['series']:,}", "", "", "", _fmt_count(t["total_invocations"]), "", "", "",
                     f"{t['rows']:,}", str(t["skipped"]), str(t["filled"])])
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [head] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for name, f in entries:
        label = name.rsplit("/", 1)[-1]
        if f.get("triggers"):
            lines.append(f"{label}: triggers " + ", ".join(f"{k} {v}" for k, v in f["triggers"].items()))
        if f.get("kinds"):
            lines.append(f"{label}: kinds " + ", ".join(f"{k} {v}" for k, v in f["kinds"].items()))
        rep = f["report"]
        for why, n in sorted(rep["skipped"].items()):
            lines.append(f"{label}: skipped {n} {why}")
        for why, n in sorted(rep["filled"].items()):
            lines.append(f"{label}: filled {n} {why}")
        for note in rep["notes"]:
            if not note.startswith(("durations:", "memory:")):
                lines.append(f"{label}: {note}")
    return "\n".join(lines)
