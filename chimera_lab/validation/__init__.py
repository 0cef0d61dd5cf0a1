"""validation: see its issue; filled in by that work."""

from __future__ import annotations

__all__: list[str] = []
