"""backtest (filled by its issue)."""
