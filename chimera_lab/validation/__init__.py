"""validation (filled by its issue)."""
