"""Tiny strategies for the look-ahead tests: leaky ones (the project history's bugs) and causal
references. Each is ``f(data, **params) -> Series`` of target exposure indexed like ``data``."""

from __future__ import annotations

import numpy as np
import pandas as pd


def future_peek(data: pd.DataFrame, threshold: float = 0.01, horizon: int = 60) -> pd.Series:
    """The history's bug: ``target = 1 if future_return > 0.01``."""
    future_return = data["close"].shift(-horizon) / data["close"] - 1.0
    return pd.Series(np.where(future_return > threshold, 1.0, 0.0), index=data.index)


def next_bar_sign(data: pd.DataFrame) -> pd.Series:
    """Long/short on the sign of the next bar's move (a one-bar leak)."""
    move = data["close"].shift(-1) - data["close"]
    return np.sign(move).fillna(0.0)


def global_zscore(data: pd.DataFrame) -> pd.Series:
    """Mean reversion on a z-score normalised with full-sample statistics (a subtle leak)."""
    close = data["close"]
    return (-(close - close.mean()) / close.std()).clip(-1.0, 1.0)


def centered_ma(data: pd.DataFrame, window: int = 21) -> pd.Series:
    """Trend on a centred moving average (uses window // 2 future bars)."""
    close = data["close"]
    ma = close.rolling(window, center=True).mean()
    return (close > ma).astype(float)


def sma_cross(data: pd.DataFrame, fast: int = 10, slow: int = 50) -> pd.Series:
    """Causal: long when the fast SMA is above the slow SMA."""
    close = data["close"]
    return (close.rolling(fast).mean() > close.rolling(slow).mean()).astype(float)


def sma_distance(data: pd.DataFrame, window: int = 30) -> pd.Series:
    """Causal, continuous: distance of close from its SMA, clipped to [-1, 1]."""
    close = data["close"]
    return ((close / close.rolling(window).mean() - 1.0) * 100.0).clip(-1.0, 1.0)


def momentum(data: pd.DataFrame, lookback: int = 30) -> pd.Series:
    """Causal: sign of the return over ``lookback`` bars."""
    return np.sign(data["close"].pct_change(lookback)).fillna(0.0)


def anchored_to_first_bar(data: pd.DataFrame) -> pd.Series:
    """Causal but recursive: exposure from the return since the first bar it was given."""
    close = data["close"]
    return (close / close.iloc[0] - 1.0).clip(-1.0, 1.0) * 10.0


def sign_cross(data: pd.DataFrame, fast: int = 5, slow: int = 200) -> pd.Series:
    """Causal: sign of fast minus slow rolling mean (0 where they are equal).

    Over a flat stretch of prices the two means tie; pandas' running sums make their computed
    difference rounding noise whose sign depends on where the history started.
    """
    close = data["close"]
    diff = close.rolling(fast).mean() - close.rolling(slow).mean()
    return np.sign(diff).fillna(0.0)
