"""Data at the edge: file loaders, validation, quality reports and the bar store."""

from __future__ import annotations

__all__: list[str] = []
