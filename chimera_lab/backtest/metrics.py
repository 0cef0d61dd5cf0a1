r"""Performance metrics: pure functions over returns, equity, positions and trade P&L.

Conventions (the one place they are written down)
-------------------------------------------------
- **Returns** are simple per-bar returns :math:`r_t = E_t / E_{t-1} - 1`. The first return of a
  backtest is measured from the initial capital (:func:`to_returns` with ``initial=``).
- **Periods per year** :math:`P` come from the bar spacing of the index, with 365-day years
  for 24/7 crypto (:func:`chimera_lab.timeframes.periods_per_year`): 525,600 for 1-minute
  bars, 8,760 for hourly, 365 for daily. Pass ``periods_per_year=`` to override (e.g. 252 for
  an exchange-hours equity series).
- **Calendar time** for CAGR is the span the returns cover: last bar time - first bar time +
  one bar spacing, in 365-day years.
- **Volatility** is the sample standard deviation (``ddof=1``) of per-bar returns times
  :math:`\sqrt{P}`. Sharpe and Sortino are annualised the same way (the square-root-of-time
  rule; no autocorrelation adjustment).
- The **risk-free rate** is an annual rate, converted per bar by compounding:
  :math:`r_f^{bar} = (1 + r_f)^{1/P} - 1`. It is 0 by default.
- **Drawdowns** are fractions at or below zero (``-0.128`` is a 12.8% fall from the peak);
  the running peak starts at ``initial`` when given, so a loss on the first bar counts.
- A ratio whose denominator is zero is ``nan`` when the numerator is zero too, otherwise
  ``inf`` with the numerator's sign (e.g. a profit factor with no losing trade).

Examples
--------
>>> import pandas as pd
>>> idx = pd.date_range("2024-01-01", periods=4, freq="1D", tz="UTC")
>>> r = pd.Series([0.01, -0.02, 0.03, 0.0], index=idx)
>>> round(total_return(r), 6)
0.019494
>>> max_drawdown(pd.Series([100.0, 120.0, 90.0, 130.0]))
-0.25
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from chimera_lab.errors import DataError
from chimera_lab.timeframes import DAYS_PER_YEAR, infer_bar_spacing
from chimera_lab.timeframes import periods_per_year as _periods_per_year

__all__ = [
    "annual_volatility",
    "average_loss",
    "average_win",
    "cagr",
    "calmar_ratio",
    "drawdown",
    "exposure_time",
    "max_drawdown",
    "max_drawdown_duration",
    "n_trades",
    "profit_factor",
    "sharpe_ratio",
    "sortino_ratio",
    "to_returns",
    "total_fees",
    "total_return",
    "turnover",
    "win_rate",
]

ArrayLike = pd.Series | npt.NDArray[np.float64] | Sequence[float]


def _values(x: ArrayLike, name: str) -> npt.NDArray[np.float64]:
    arr = x.to_numpy(dtype=np.float64) if isinstance(x, pd.Series) else np.asarray(x, np.float64)
    if arr.ndim != 1:
        raise DataError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if np.isnan(arr).any():
        pos = int(np.flatnonzero(np.isnan(arr))[0])
        raise DataError(f"{name} has a NaN at position {pos}; drop or fill it first")
    return arr


def _ratio(num: float, den: float) -> float:
    if den > 0.0:
        return num / den
    if num == 0.0:
        return math.nan
    return math.copysign(math.inf, num)


def _ppy(x: ArrayLike, periods_per_year: float | None) -> float:
    if periods_per_year is not None:
        if not periods_per_year > 0:
            raise DataError(f"periods_per_year must be > 0, got {periods_per_year}")
        return float(periods_per_year)
    if isinstance(x, pd.Series) and isinstance(x.index, pd.DatetimeIndex):
        return _periods_per_year(x.index)
    raise DataError(
        "cannot infer periods per year: pass a Series with a DatetimeIndex "
        "or periods_per_year= explicitly"
    )


def to_returns(equity: ArrayLike, *, initial: float | None = None) -> pd.Series:
    r"""Return simple per-bar returns of an equity curve.

    :math:`r_t = E_t / E_{t-1} - 1`; the first return is :math:`E_0 / \text{initial} - 1`
    when ``initial`` is given, else it is dropped.

    Examples
    --------
    >>> to_returns(pd.Series([110.0, 99.0]), initial=100.0).round(4).tolist()
    [0.1, -0.1]
    """
    s = equity if isinstance(equity, pd.Series) else pd.Series(np.asarray(equity, np.float64))
    values = _values(s, "equity")
    if initial is None:
        out = values[1:] / values[:-1] - 1.0
        return pd.Series(out, index=s.index[1:], name="returns")
    prev = np.empty_like(values)
    prev[0] = initial
    prev[1:] = values[:-1]
    return pd.Series(values / prev - 1.0, index=s.index, name="returns")


def total_return(returns: ArrayLike) -> float:
    r"""Return the compounded return :math:`\prod_t (1 + r_t) - 1`.

    Examples
    --------
    >>> round(total_return([0.1, -0.1]), 6)
    -0.01
    """
    r = _values(returns, "returns")
    return float(np.prod(1.0 + r) - 1.0) if r.size else 0.0


def _years(returns: pd.Series) -> float:
    index = returns.index
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError("cagr needs returns with a DatetimeIndex (calendar time)")
    if len(index) == 0:
        return 0.0
    spacing = infer_bar_spacing(index) if len(index) > 1 else pd.Timedelta(0)
    span = index[-1] - index[0] + spacing
    return float(span / pd.Timedelta(days=DAYS_PER_YEAR))


def cagr(returns: pd.Series, *, years: float | None = None) -> float:
    r"""Return the compound annual growth rate over calendar time.

    :math:`(1 + R)^{1/y} - 1` with :math:`R` the total return and :math:`y` the years covered:
    last timestamp - first timestamp + one bar spacing, over 365 days (or ``years``). A total
    loss (:math:`R \le -1`) gives -1.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=365, freq="1D", tz="UTC")
    >>> r = pd.Series(0.0, index=idx)
    >>> r.iloc[0] = 0.21
    >>> round(cagr(r), 6)
    0.21
    """
    y = _years(returns) if years is None else years
    growth = 1.0 + total_return(returns)
    if growth <= 0.0:
        return -1.0
    if not y > 0.0:
        return math.nan
    try:
        return float(growth ** (1.0 / y) - 1.0)
    except OverflowError:  # a gain compounded over a tiny fraction of a year
        return math.inf


def annual_volatility(returns: ArrayLike, *, periods_per_year: float | None = None) -> float:
    r"""Return the annualised volatility :math:`\mathrm{std}(r, \mathrm{ddof}=1)\sqrt{P}`.

    Examples
    --------
    >>> round(annual_volatility([0.01, -0.01, 0.01, -0.01], periods_per_year=365), 6)
    0.220605
    """
    r = _values(returns, "returns")
    if r.size < 2:
        return math.nan
    return float(np.std(r, ddof=1) * math.sqrt(_ppy(returns, periods_per_year)))


def _excess(returns: ArrayLike, risk_free: float, ppy: float) -> npt.NDArray[np.float64]:
    r = _values(returns, "returns")
    if risk_free == 0.0:
        return r
    out: npt.NDArray[np.float64] = r - ((1.0 + risk_free) ** (1.0 / ppy) - 1.0)
    return out


def sharpe_ratio(
    returns: ArrayLike, *, risk_free: float = 0.0, periods_per_year: float | None = None
) -> float:
    r"""Return the annualised Sharpe ratio :math:`\bar{x} / s_x \cdot \sqrt{P}`.

    :math:`x_t = r_t - r_f^{bar}` are excess returns, :math:`s_x` their sample standard
    deviation (``ddof=1``). ``nan`` for fewer than two returns or a flat series.

    Examples
    --------
    >>> round(sharpe_ratio([0.02, 0.0, 0.01, -0.01], periods_per_year=365), 4)
    7.3993
    """
    ppy = _ppy(returns, periods_per_year)
    x = _excess(returns, risk_free, ppy)
    if x.size < 2:
        return math.nan
    return _ratio(float(np.mean(x)), float(np.std(x, ddof=1))) * math.sqrt(ppy)


def sortino_ratio(
    returns: ArrayLike, *, risk_free: float = 0.0, periods_per_year: float | None = None
) -> float:
    r"""Return the annualised Sortino ratio :math:`\bar{x} / d \cdot \sqrt{P}`.

    :math:`d = \sqrt{\tfrac{1}{n}\sum_t \min(x_t, 0)^2}` is the downside deviation below the
    risk-free rate over all n bars (Sortino and Price, 1994). ``inf`` when nothing falls
    below it and the mean is positive.

    Examples
    --------
    >>> round(sortino_ratio([0.02, -0.01, 0.01, -0.01], periods_per_year=365), 4)
    6.7546
    """
    ppy = _ppy(returns, periods_per_year)
    x = _excess(returns, risk_free, ppy)
    if x.size < 2:
        return math.nan
    down = np.minimum(x, 0.0)
    dd = math.sqrt(float(np.mean(down * down)))
    return _ratio(float(np.mean(x)), dd) * math.sqrt(ppy)


def drawdown(equity: ArrayLike, *, initial: float | None = None) -> pd.Series:
    r"""Return the drawdown series :math:`E_t / \max(\text{initial}, \max_{s \le t} E_s) - 1`.

    Examples
    --------
    >>> drawdown(pd.Series([100.0, 80.0, 120.0])).round(12).tolist()
    [0.0, -0.2, 0.0]
    """
    e = _values(equity, "equity")
    peak = np.maximum.accumulate(e)
    if initial is not None:
        np.maximum(peak, initial, out=peak)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0.0, e / peak - 1.0, 0.0)
    index = equity.index if isinstance(equity, pd.Series) else None
    return pd.Series(dd, index=index, name="drawdown")


def max_drawdown(equity: ArrayLike, *, initial: float | None = None) -> float:
    """Return the largest peak-to-trough fall (<= 0), see :func:`drawdown`.

    Examples
    --------
    >>> max_drawdown([100.0, 90.0, 95.0], initial=120.0)
    -0.25
    """
    e = _values(equity, "equity")
    if e.size == 0:
        return 0.0
    peak = np.maximum.accumulate(e)
    if initial is not None:
        np.maximum(peak, initial, out=peak)
    with np.errstate(divide="ignore", invalid="ignore"):
        worst = float(np.min(np.where(peak > 0.0, e / peak, 1.0)))
    return min(worst - 1.0, 0.0)


def max_drawdown_duration(equity: pd.Series, *, initial: float | None = None) -> pd.Timedelta:
    """Return the longest time spent below a previous peak.

    Measured from the bar that set the peak to the first bar back at or above it (or to the
    last bar if equity never recovered). With ``initial``, the peak before the first bar
    counts from the first timestamp.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=5, freq="1D", tz="UTC")
    >>> max_drawdown_duration(pd.Series([10.0, 9.0, 9.5, 10.0, 11.0], index=idx))
    Timedelta('3 days 00:00:00')
    """
    e = _values(equity, "equity")
    if e.size == 0:
        return pd.Timedelta(0)
    if not isinstance(equity.index, pd.DatetimeIndex):
        raise DataError("max_drawdown_duration needs equity with a DatetimeIndex")
    peak = np.maximum.accumulate(e)
    if initial is not None:
        np.maximum(peak, initial, out=peak)
    at_peak = e >= peak
    # Position of the most recent bar at its peak (the start of any current drawdown).
    pos = np.arange(e.size)
    last_peak = np.maximum.accumulate(np.where(at_peak, pos, -1))
    t = equity.index.asi8
    start = np.where(last_peak >= 0, t[np.maximum(last_peak, 0)], t[0])
    under = ~at_peak
    if not under.any():
        return pd.Timedelta(0)
    # For each underwater stretch, its length runs to the next at-peak bar (or the end).
    nxt = np.full(e.size, e.size - 1)
    peak_pos = np.flatnonzero(at_peak)
    k = np.searchsorted(peak_pos, pos, side="right")
    has_next = k < peak_pos.size
    nxt[has_next] = peak_pos[k[has_next]]
    lengths = t[nxt] - start
    return pd.Timedelta(int(lengths[under].max()), unit=equity.index.unit)


def calmar_ratio(returns: pd.Series, *, years: float | None = None) -> float:
    """Return CAGR divided by the absolute maximum drawdown of the compounded returns.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=365, freq="1D", tz="UTC")
    >>> r = pd.Series(0.0, index=idx)
    >>> r.iloc[:2] = [-0.1, 0.4]
    >>> round(calmar_ratio(r), 4)
    2.6
    """
    wealth = np.cumprod(1.0 + _values(returns, "returns"), dtype=np.float64)
    dd = max_drawdown(wealth, initial=1.0)
    return _ratio(cagr(returns, years=years), -dd)


def _pnl(trade_pnl: ArrayLike | pd.DataFrame) -> npt.NDArray[np.float64]:
    if isinstance(trade_pnl, pd.DataFrame):
        return _values(trade_pnl["pnl"], "pnl")
    return _values(trade_pnl, "trade P&L")


def win_rate(trade_pnl: ArrayLike | pd.DataFrame) -> float:
    """Return the fraction of trades with P&L > 0 (``nan`` without trades).

    Accepts the P&L values or a trades frame with a ``pnl`` column.

    Examples
    --------
    >>> win_rate([10.0, -5.0, 0.0, 2.0])
    0.5
    """
    p = _pnl(trade_pnl)
    return float(np.mean(p > 0.0)) if p.size else math.nan


def profit_factor(trade_pnl: ArrayLike | pd.DataFrame) -> float:
    """Return gross profit / gross loss over trades (``inf`` with no loss, ``nan`` with none).

    Examples
    --------
    >>> profit_factor([10.0, -5.0, 5.0])
    3.0
    """
    p = _pnl(trade_pnl)
    if p.size == 0:
        return math.nan
    return _ratio(float(p[p > 0].sum()), float(-p[p < 0].sum()))


def average_win(trade_pnl: ArrayLike | pd.DataFrame) -> float:
    """Return the mean P&L of winning trades (``nan`` if there are none).

    Examples
    --------
    >>> average_win([10.0, -5.0, 6.0])
    8.0
    """
    p = _pnl(trade_pnl)
    wins = p[p > 0]
    return float(wins.mean()) if wins.size else math.nan


def average_loss(trade_pnl: ArrayLike | pd.DataFrame) -> float:
    """Return the mean P&L of losing trades, a negative number (``nan`` if there are none).

    Examples
    --------
    >>> average_loss([10.0, -5.0, -3.0])
    -4.0
    """
    p = _pnl(trade_pnl)
    losses = p[p < 0]
    return float(losses.mean()) if losses.size else math.nan


def n_trades(trades: pd.DataFrame | ArrayLike) -> int:
    """Return the number of trades (rows of a trades frame, or P&L values).

    Examples
    --------
    >>> n_trades([1.0, -2.0])
    2
    """
    return len(trades)


def total_fees(trades: pd.DataFrame) -> float:
    """Return the fees paid over all trades (the sum of the ``fees`` column).

    Examples
    --------
    >>> total_fees(pd.DataFrame({"fees": [1.5, 2.0]}))
    3.5
    """
    return float(trades["fees"].sum()) if len(trades) else 0.0


def exposure_time(positions: ArrayLike) -> float:
    """Return the fraction of bars with a non-zero position.

    Examples
    --------
    >>> exposure_time([0.0, 1.5, -2.0, 0.0])
    0.5
    """
    p = _values(positions, "positions")
    return float(np.count_nonzero(p) / p.size) if p.size else 0.0


def turnover(traded_notional: float, equity: ArrayLike) -> float:
    """Return traded notional over mean equity (how many times the book was traded).

    Annualise by dividing by the years covered.

    Examples
    --------
    >>> turnover(300.0, [100.0, 100.0])
    3.0
    """
    e = _values(equity, "equity")
    return _ratio(float(traded_notional), float(e.mean())) if e.size else math.nan
