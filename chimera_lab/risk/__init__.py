"""risk (filled by its issue)."""
