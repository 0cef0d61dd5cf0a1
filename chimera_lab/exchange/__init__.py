"""exchange (filled by its issue)."""
