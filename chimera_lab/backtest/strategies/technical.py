"""Built-in technical strategies: SMA crossover, RSI and Bollinger reversion, Donchian breakout.

Each returns a target exposure per bar in {-1, 0, +1} computed from bars up to and
including that bar's close; the engine trades it at the next bar's open. Short targets
(-1) become flat in a long-only backtest (``allow_short=False``, the default). Bars before
an indicator is defined are flat (0).

Examples
--------
>>> from chimera_lab.data.synthetic import make_ohlcv
>>> data = make_ohlcv(300, seed=1)
>>> sorted(sma_cross(data, fast=10, slow=50).unique().tolist())
[-1.0, 0.0, 1.0]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from chimera_lab.backtest._kernels import hold_until_exit
from chimera_lab.backtest.indicators import bollinger_bands, donchian_channel, rsi, sma
from chimera_lab.backtest.strategies._registry import strategy
from chimera_lab.errors import ConfigError

__all__ = ["bollinger_reversion", "breakout", "rsi_reversion", "sma_cross"]


def _exposure(values: np.ndarray, index: pd.Index) -> pd.Series:
    return pd.Series(values, index=index, name="exposure", dtype=np.float64)


@strategy(grid={"fast": [5, 10, 20, 50], "slow": [50, 100, 200]})
def sma_cross(data: pd.DataFrame, fast: int = 20, slow: int = 100) -> pd.Series:
    """Long when the fast SMA of closes is above the slow one, short when below.

    Parameters
    ----------
    data : DataFrame
        OHLCV bars.
    fast, slow : int
        Window lengths in bars; ``1 <= fast < slow``.

    Returns
    -------
    Series
        +1 / -1 / 0 (equal averages, or before ``slow`` bars exist).
    """
    if isinstance(fast, bool) or isinstance(slow, bool) or not 1 <= fast < slow:
        raise ConfigError(f"sma_cross needs 1 <= fast < slow, got fast={fast}, slow={slow}")
    close = data["close"]
    diff = (sma(close, fast) - sma(close, slow)).to_numpy()
    return _exposure(np.nan_to_num(np.sign(diff), nan=0.0), data.index)


@strategy(grid={"period": [7, 14, 21], "lower": [20.0, 25.0, 30.0], "upper": [70.0, 75.0, 80.0]})
def rsi_reversion(
    data: pd.DataFrame, period: int = 14, lower: float = 30.0, upper: float = 70.0
) -> pd.Series:
    """Buy oversold, sell overbought: long from RSI < lower until RSI > upper, then short.

    Wilder's RSI (:func:`chimera_lab.backtest.indicators.rsi`). The position is held between
    the extremes (a stop-and-reverse rule); long-only backtests are flat while "short".

    Parameters
    ----------
    data : DataFrame
        OHLCV bars.
    period : int
        RSI period in bars (>= 2).
    lower, upper : float
        Oversold and overbought levels, ``0 < lower < upper < 100``.
    """
    if not 0.0 < lower < upper < 100.0:
        raise ConfigError(
            f"rsi_reversion needs 0 < lower < upper < 100, got lower={lower}, upper={upper}"
        )
    if isinstance(period, bool) or period < 2:
        raise ConfigError(f"rsi_reversion needs period >= 2, got {period}")
    r = rsi(data["close"], period).to_numpy()
    with np.errstate(invalid="ignore"):
        event = np.where(r < lower, 1.0, np.where(r > upper, -1.0, np.nan))
    state = pd.Series(event, index=data.index).ffill().fillna(0.0)
    return _exposure(state.to_numpy(), data.index)


@strategy(grid={"lookback": [10, 20, 55, 100]})
def breakout(data: pd.DataFrame, lookback: int = 20, exit_lookback: int | None = None) -> pd.Series:
    """Donchian breakout: long above the prior ``lookback``-bar high, short below its low.

    Without ``exit_lookback`` the position is held until the opposite breakout (stop and
    reverse). With it, a long also exits when the close falls below the lowest low of the
    prior ``exit_lookback`` bars (a short when it rises above their highest high), as in the
    Turtle rules.

    Parameters
    ----------
    data : DataFrame
        OHLCV bars.
    lookback : int
        Entry channel length in bars (>= 1).
    exit_lookback : int, optional
        Exit channel length in bars (>= 1).
    """
    if isinstance(lookback, bool) or lookback < 1:
        raise ConfigError(f"breakout needs lookback >= 1, got {lookback}")
    close = data["close"]
    upper, lower = donchian_channel(data["high"], data["low"], lookback)
    with np.errstate(invalid="ignore"):
        enter_long = (close > upper).to_numpy()
        enter_short = (close < lower).to_numpy()
    if exit_lookback is None:
        exit_long, exit_short = enter_short, enter_long
    else:
        if isinstance(exit_lookback, bool) or exit_lookback < 1:
            raise ConfigError(f"breakout needs exit_lookback >= 1, got {exit_lookback}")
        x_up, x_lo = donchian_channel(data["high"], data["low"], exit_lookback)
        exit_long = (close < x_lo).to_numpy()
        exit_short = (close > x_up).to_numpy()
    state = hold_until_exit(enter_long, exit_long, enter_short, exit_short)
    return _exposure(state, data.index)


@strategy(grid={"period": [10, 20, 50], "k": [1.5, 2.0, 2.5]})
def bollinger_reversion(data: pd.DataFrame, period: int = 20, k: float = 2.0) -> pd.Series:
    """Fade the bands: long below the lower band, short above the upper, exit at the middle.

    A long opened on a close below the lower band is closed on the first close at or above
    the middle band (the SMA); symmetrically for shorts. Bands use the population standard
    deviation (:func:`chimera_lab.backtest.indicators.bollinger_bands`).

    Parameters
    ----------
    data : DataFrame
        OHLCV bars.
    period : int
        SMA / standard-deviation window in bars (>= 2).
    k : float
        Band width in standard deviations (> 0).
    """
    if isinstance(period, bool) or period < 2:
        raise ConfigError(f"bollinger_reversion needs period >= 2, got {period}")
    if not k > 0:
        raise ConfigError(f"bollinger_reversion needs k > 0, got {k}")
    close = data["close"]
    lo, mid, up = bollinger_bands(close, period, k)
    with np.errstate(invalid="ignore"):
        enter_long = (close < lo).to_numpy()
        enter_short = (close > up).to_numpy()
        exit_long = (close >= mid).to_numpy()
        exit_short = (close <= mid).to_numpy()
    state = hold_until_exit(enter_long, exit_long, enter_short, exit_short)
    return _exposure(state, data.index)
