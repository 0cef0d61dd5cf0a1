"""Strategies loaded by file path (``strategies_for_tests.py:name``) in pipeline tests."""

from __future__ import annotations

import pandas as pd


def ma_trend(data: pd.DataFrame, window: int = 20, mode: str = "trailing") -> pd.Series:
    """A grid hiding the history's bug behind one value of ``mode`` (``confirm``)."""
    close = data["close"]
    if mode == "trailing":
        return (close > close.rolling(window).mean()).astype(float)
    if mode == "ewm":
        return (close > close.ewm(span=window, adjust=False).mean()).astype(float)
    return (close.shift(-5) > close * 1.001).astype(float)  # the next 5 bars: look-ahead


def needs_3000_bars(data: pd.DataFrame, window: int = 10) -> pd.Series:
    """Runs on 3000 bars, raises on fewer (a live strategy sees every prefix)."""
    if len(data) < 3000:
        raise IndexError("not enough history")
    close = data["close"]
    return (close > close.rolling(window).mean()).astype(float)


def trend(data: pd.DataFrame, fast: int = 10, slow: int = 60) -> pd.Series:
    """Long while the fast mean of closes is above the slow one (sma_cross, as a file)."""
    close = data["close"]
    return (close.rolling(fast).mean() > close.rolling(slow).mean()).astype(float)
