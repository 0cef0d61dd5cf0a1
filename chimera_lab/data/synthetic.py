"""Seeded synthetic OHLCV bars for tests, benchmarks and examples.

Prices follow a geometric random walk; each bar's open is the previous close, and high/low
extend beyond the body by a random fraction, so every bar satisfies the OHLCV convention.

Examples
--------
>>> df = make_ohlcv(3, seed=0)
>>> list(df.columns)
['open', 'high', 'low', 'close', 'volume']
>>> bool((df["high"] >= df[["open", "close"]].max(axis=1)).all())
True
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from chimera_lab.timeframes import timeframe_to_timedelta

__all__ = ["make_ohlcv"]


def make_ohlcv(
    n_bars: int,
    *,
    seed: int = 0,
    timeframe: str = "1m",
    start: str | pd.Timestamp = "2024-01-01",
    price: float = 30_000.0,
    volatility: float = 0.001,
    drift: float = 0.0,
) -> pd.DataFrame:
    """Return ``n_bars`` synthetic bars in the OHLCV frame convention.

    Parameters
    ----------
    n_bars : int
        Number of bars (>= 1).
    seed : int
        Seed of the random generator; the same seed gives the same bars.
    timeframe : str
        Bar spacing, e.g. ``"1m"`` or ``"1h"``.
    start : str or Timestamp
        Open time of the first bar (UTC).
    price : float
        First open price.
    volatility : float
        Standard deviation of the per-bar log return.
    drift : float
        Mean of the per-bar log return.
    """
    if n_bars < 1:
        raise ValueError(f"n_bars must be >= 1, got {n_bars}")
    rng = np.random.default_rng(seed)
    log_ret = rng.normal(drift, volatility, n_bars)
    close = price * np.exp(np.cumsum(log_ret))
    open_ = np.empty(n_bars)
    open_[0] = price
    open_[1:] = close[:-1]
    body_hi = np.maximum(open_, close)
    body_lo = np.minimum(open_, close)
    wick = np.abs(rng.normal(0.0, volatility / 2, (2, n_bars)))
    high = body_hi * (1.0 + wick[0])
    low = body_lo * (1.0 - wick[1])
    volume = rng.gamma(2.0, 5.0, n_bars)
    ts0 = pd.Timestamp(start)
    ts0 = ts0.tz_localize("UTC") if ts0.tzinfo is None else ts0.tz_convert("UTC")
    index = pd.date_range(
        ts0, periods=n_bars, freq=timeframe_to_timedelta(timeframe), name="timestamp", unit="ns"
    )
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )
