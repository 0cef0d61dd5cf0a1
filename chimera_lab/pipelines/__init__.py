"""pipelines (filled by its issue)."""
