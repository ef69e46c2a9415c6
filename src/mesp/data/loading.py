"""Format detection and the one ``load`` entry point."""

from __future__ import annotations

from collections.abc import Sequence

from mesp.data.model import Dataset
from mesp.data.reader import open_text, read_header
from mesp.errors import DataError


FORMATS = ("auto", "patterns", "azure2019", "azure2021", "wide", "long")


def detect_format(path: str) -> str:
    """The format of one file, from its extension (Parquet) or its header line."""
    if str(path).endswith(".parquet"):
        return "long"
    with open_text(path) as fh:
        head = read_header(fh, path)
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
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
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
    if kind == "azure2019":
        from mesp.data.azure2019 import load_azure2019

        return load_azure2019(paths)
    if kind == "azure2021":
        from mesp.data.azure2021 import load_azure2021

        return load_azure2021(paths)
    if kind == "wide":
        from mesp.data.wide import load_wide

        return load_wide(paths)
    if kind == "long":
        from mesp.data.long import load_long

        return load_long(paths)
    raise DataError(f"unknown format {kind!r}: use one of {', '.join(FORMATS)}")
