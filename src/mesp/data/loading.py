"""Format detection and the one ``load`` entry point."""

from __future__ import annotations

from collections.abc import Sequence

from mesp.data.model import Dataset
from mesp.data.reader import open_text
from mesp.errors import DataError


def detect_format(path: str) -> str:
    if str(path).endswith(".parquet"):
        return "long"
    with open_text(path) as fh:
        header = fh.readline().strip().split(",")
    if not header or header == [""]:
        raise DataError(f"{path}:1: empty file")
    head = [h.strip().strip('"') for h in header]
    if head[:2] == ["vec_id", "n_source_files"]:
        return "patterns"
    if head[:4] == ["HashOwner", "HashApp", "HashFunction", "Trigger"]:
        return "azure2019"
    if head[:3] == ["HashOwner", "HashApp", "HashFunction"]:
        raise DataError(f"{path}:1: an Azure 2019 durations/memory file; pass the invocations file "
                        "(its durations and memory files beside it are picked up automatically)")
    if head[:4] == ["app", "func", "end_timestamp", "duration"]:
        return "azure2021"
    if set(head) >= {"unique_id", "ds", "y"} and len(head) == 3:
        return "long"
    if len(head) >= 2:
        return "wide"
    raise DataError(f"{path}:1: unrecognised header {','.join(head[:5])!r}")


def load(paths: str | Sequence[str], fmt: str = "auto") -> Dataset:
    """Load one or more trace files of one format into a Dataset."""
    paths = [str(paths)] if isinstance(paths, str) else [str(p) for p in paths]
    if not paths:
        raise DataError("no data files given")
    formats = {p: (detect_format(p) if fmt == "auto" else fmt) for p in paths}
    kinds = set(formats.values())
    if len(kinds) > 1:
        raise DataError("files of different formats given together: "
                        + ", ".join(f"{p} ({k})" for p, k in formats.items()))
    kind = kinds.pop()
    if kind == "patterns":
        from mesp.data.patterns import load_patterns

        datasets = [load_patterns(p) for p in paths]
        merged = datasets[0]
        for d in datasets[1:]:
            merged.series += d.series
            merged.report.merge(d.report)
        return merged
    raise DataError(f"format {kind!r} is not supported yet")
