"""Data at the edge: file loaders, validation, quality reports and the bar store."""

from __future__ import annotations

from chimera_lab.data.loaders import load_ohlcv, read_table
from chimera_lab.data.quality import Gap, QualityReport, quality_report
from chimera_lab.data.synthetic import make_ohlcv

__all__ = ["Gap", "QualityReport", "load_ohlcv", "make_ohlcv", "quality_report", "read_table"]
