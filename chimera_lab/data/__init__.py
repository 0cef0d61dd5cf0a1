"""Data at the edge: file loaders, validation, quality reports and the bar store."""

from __future__ import annotations

from chimera_lab.data.duckdb_store import DuckDBStore
from chimera_lab.data.funding import load_funding
from chimera_lab.data.loaders import load_ohlcv, read_table
from chimera_lab.data.quality import Gap, QualityReport, quality_report
from chimera_lab.data.resample import resample_ohlcv
from chimera_lab.data.store import Store, find_gaps, parse_store_url
from chimera_lab.data.synthetic import make_ohlcv

__all__ = [
    "DuckDBStore",
    "Gap",
    "QualityReport",
    "Store",
    "find_gaps",
    "load_funding",
    "load_ohlcv",
    "make_ohlcv",
    "parse_store_url",
    "quality_report",
    "read_table",
    "resample_ohlcv",
]
