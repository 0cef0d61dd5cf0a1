"""Helpers for backtest tests: hand-made bars and exposure series."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def bars(
    opens: Sequence[float],
    closes: Sequence[float],
    highs: Sequence[float] | None = None,
    lows: Sequence[float] | None = None,
    *,
    freq: str = "1min",
    start: str = "2024-01-01",
) -> pd.DataFrame:
    """Hand-written bars; high/low default to the body's extremes."""
    o = np.asarray(opens, float)
    c = np.asarray(closes, float)
    h = np.maximum(o, c) if highs is None else np.asarray(highs, float)
    lo = np.minimum(o, c) if lows is None else np.asarray(lows, float)
    idx = pd.date_range(start, periods=len(o), freq=freq, tz="UTC", name="timestamp")
    return pd.DataFrame(
        {"open": o, "high": h, "low": lo, "close": c, "volume": np.ones(len(o))}, index=idx
    )


def signal(data: pd.DataFrame, values: Sequence[float]) -> pd.Series:
    return pd.Series(np.asarray(values, float), index=data.index, name="target")
