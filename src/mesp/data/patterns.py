"""The shared daily-pattern file: ``vec_id,n_source_files,1..1440`` (one function-day per row)."""

from __future__ import annotations


from mesp.data.model import Dataset, LoadReport, Series
from mesp.data.reader import header_only, open_text, parse_counts, read_header
from mesp.errors import DataError

N_MINUTES = 1440


def load_patterns(path: str) -> Dataset:
    report = LoadReport(files=[str(path)])
    series: list[Series] = []
    with open_text(path) as fh:
        header = read_header(fh, path)
        n_cols = len(header)
        if header[:2] != ["vec_id", "n_source_files"] or n_cols < 3:
            raise DataError(f"{path}:1: not a daily-pattern file (expected vec_id,n_source_files,1..N)")
        for lineno, line in enumerate(fh, start=2):
            if not line.strip():
                report.skip("blank lines")
                continue
            fields = line.rstrip("\r\n").split(",")
            counts = parse_counts(fields, 2, n_cols, path, lineno)
            report.rows += 1
            series.append(Series(id=fields[0], values=counts, step_seconds=60, start=None,
                                 meta={"weight": int(float(fields[1]))}))
    if not series:
        raise header_only(path)
    report.rows_by_file[str(path)] = report.rows
    return Dataset(series=series, step_seconds=60, format="patterns", report=report)
