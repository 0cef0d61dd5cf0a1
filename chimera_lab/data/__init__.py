"""Data at the edge: file loaders, validation, quality reports and the bar store."""

from __future__ import annotations

from chimera_lab.data.duckdb_store import DuckDBStore
from chimera_lab.data.store import Store, find_gaps, parse_store_url

__all__: list[str] = ["DuckDBStore", "Store", "find_gaps", "parse_store_url"]
