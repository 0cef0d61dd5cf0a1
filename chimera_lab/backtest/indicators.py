"""Causal technical indicators used by the built-in strategies.

Every value at bar t uses bars up to and including t only (no centred windows, no
backfilling); values before a window is full are NaN.

Examples
--------
>>> import pandas as pd
>>> sma(pd.Series([1.0, 2.0, 3.0, 4.0]), 2).tolist()
[nan, 1.5, 2.5, 3.5]
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numba import njit

from chimera_lab.errors import ConfigError

__all__ = ["bollinger_bands", "donchian_channel", "rsi", "sma"]


def _check_window(name: str, value: int, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def sma(x: pd.Series, window: int) -> pd.Series:
    """Return the simple moving average over the last ``window`` bars (NaN until full).

    Examples
    --------
    >>> sma(pd.Series([2.0, 4.0, 6.0]), 3).iloc[-1]
    np.float64(4.0)
    """
    _check_window("window", window)
    return x.rolling(window, min_periods=window).mean()


@njit(cache=True)
def _wilder_rsi(close, period):  # type: ignore[no-untyped-def]  # numba kernel
    n = close.shape[0]
    out = np.full(n, np.nan)
    if n <= period:
        return out
    gain = 0.0
    loss = 0.0
    for i in range(1, period + 1):
        d = close[i] - close[i - 1]
        if d > 0.0:
            gain += d
        else:
            loss -= d
    gain /= period
    loss /= period
    for i in range(period, n):
        if i > period:
            d = close[i] - close[i - 1]
            up = d if d > 0.0 else 0.0
            down = -d if d < 0.0 else 0.0
            gain = (gain * (period - 1) + up) / period
            loss = (loss * (period - 1) + down) / period
        if loss == 0.0:
            out[i] = 100.0 if gain > 0.0 else 50.0
        else:
            out[i] = 100.0 - 100.0 / (1.0 + gain / loss)
    return out


def rsi(close: pd.Series, period: int = 14) -> pd.Series:
    r"""Return Wilder's Relative Strength Index (0..100).

    Average gain and loss start as the simple means of the first ``period`` price changes,
    then follow Wilder's smoothing :math:`a_t = (a_{t-1}(n-1) + x_t)/n`;
    :math:`RSI = 100 - 100/(1 + \bar{g}/\bar{l})` (100 with no losses, 50 with no moves).
    The first value is at position ``period``.

    Examples
    --------
    >>> s = pd.Series([1.0, 2.0, 3.0, 2.0, 3.0])
    >>> rsi(s, 2).round(2).tolist()
    [nan, nan, 100.0, 50.0, 75.0]
    """
    _check_window("period", period, 1)
    values = close.to_numpy(dtype=np.float64)
    return pd.Series(_wilder_rsi(values, int(period)), index=close.index, name="rsi")


def donchian_channel(high: pd.Series, low: pd.Series, lookback: int) -> tuple[pd.Series, pd.Series]:
    """Return the highest high and lowest low of the ``lookback`` bars *before* each bar.

    The current bar is excluded, so ``close > upper`` is a breakout above the prior range.

    Examples
    --------
    >>> hi = pd.Series([3.0, 5.0, 4.0, 6.0])
    >>> up, lo = donchian_channel(hi, hi - 1, 2)
    >>> up.tolist(), lo.tolist()
    ([nan, nan, 5.0, 5.0], [nan, nan, 2.0, 3.0])
    """
    _check_window("lookback", lookback)
    upper = high.rolling(lookback, min_periods=lookback).max().shift(1)
    lower = low.rolling(lookback, min_periods=lookback).min().shift(1)
    return upper, lower


def bollinger_bands(
    close: pd.Series, period: int = 20, k: float = 2.0
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Return ``(lower, middle, upper)``: SMA ± ``k`` population standard deviations.

    Examples
    --------
    >>> lo, mid, up = bollinger_bands(pd.Series([1.0, 3.0]), 2, 1.0)
    >>> lo.iloc[-1], mid.iloc[-1], up.iloc[-1]
    (np.float64(1.0), np.float64(2.0), np.float64(3.0))
    """
    _check_window("period", period, 2)
    if not k > 0:
        raise ConfigError(f"k must be > 0, got {k!r}")
    mid = close.rolling(period, min_periods=period).mean()
    sd = close.rolling(period, min_periods=period).std(ddof=0)
    return mid - k * sd, mid, mid + k * sd
