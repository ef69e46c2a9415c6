"""Trace ingestion: every supported format becomes a :class:`Dataset` of regular :class:`Series`.

Formats (DESIGN.md §3), detected from the header:
``patterns`` (``vec_id,n_source_files,1..1440``), ``azure2019`` (``HashOwner,HashApp,HashFunction,Trigger,1..1440``,
one or many day files joined on owner+app+function), ``azure2021`` (``app,func,end_timestamp,duration``),
``wide`` (timestamp column + one column per series), ``long`` (``unique_id,ds,y`` CSV or Parquet).
"""

from mesp.data.model import Dataset, LoadReport, Series, parse_duration
from mesp.data.loading import detect_format, load

__all__ = ["Dataset", "LoadReport", "Series", "detect_format", "load", "parse_duration"]
