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

from chimera_lab.backtest import _kernels as K
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
FloatArray = npt.NDArray[np.float64]

_NO_TIMES = np.empty(0, dtype=np.int64)  # read-only use: drawdown_stats without durations


def _values(x: ArrayLike, name: str) -> npt.NDArray[np.float64]:
    # Every metric's input check: numeric, one-dimensional, finite (NaN and +-inf refused).
    try:
        if isinstance(x, pd.Series):
            arr = x.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        what = f"dtype {x.dtype}" if isinstance(x, pd.Series) else type(x).__name__
        raise DataError(f"{name} must be numeric, got {what}") from None
    if arr.ndim != 1:
        raise DataError(f"{name} must be one-dimensional, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        what = "a NaN" if np.isnan(arr[pos]) else f"an infinite value ({arr[pos]})"
        where = f" ({x.index[pos]})" if isinstance(x, pd.Series) else ""
        raise DataError(
            f"{name} has {what} at position {pos}{where}; drop or fill it first", row=pos + 1
        )
    return arr


def _ratio(num: float, den: float) -> float:
    if den > 0.0:
        return num / den
    if num == 0.0:
        return math.nan
    return math.copysign(math.inf, num)


def _positive(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be a number > 0, got {value!r}") from None
    if not (v > 0.0 and math.isfinite(v)):
        raise DataError(f"{name} must be finite and > 0, got {value!r}")
    return v


def _ppy(x: ArrayLike, periods_per_year: float | None) -> float:
    if periods_per_year is not None:
        return _positive("periods_per_year", periods_per_year)
    if isinstance(x, pd.Series) and isinstance(x.index, pd.DatetimeIndex):
        return _periods_per_year(x.index)
    raise DataError(
        "cannot infer periods per year: pass a Series with a DatetimeIndex "
        "or periods_per_year= explicitly"
    )


# ---------------------------------------------------------------------------------------------
# The formulas, on validated float64 arrays. Each metric is written once, here; the public
# functions below check their input and call these, and so does the backtest engine (whose
# arrays are finite by construction and whose bar spacing is known).


def _to_returns(values: npt.NDArray[np.float64], initial: float | None) -> FloatArray:
    # One output array and no full-length temporaries (a 10M-bar backtest calls this).
    n = values.size
    first = 0 if initial is None else 1
    out = np.empty(max(n - 1 + first, 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        if initial is not None and n:
            out[0] = values[0] / initial
        np.divide(values[1:], values[:-1], out=out[first:])
    out -= 1.0
    # a wiped-out account has no base to measure a return from
    if initial is not None and initial <= 0.0 and n:
        out[0] = 0.0
    nonpositive = np.flatnonzero(values[:-1] <= 0.0)
    if nonpositive.size:
        out[nonpositive + first] = 0.0
    return out


def _growth(r: FloatArray) -> float:
    return float(K.compound(r))


def _cagr(growth: float, years: float) -> float:
    if growth <= 0.0:
        return -1.0
    if not years > 0.0:
        return math.nan
    try:
        return float(growth ** (1.0 / years) - 1.0)
    except OverflowError:  # a gain compounded over a tiny fraction of a year
        return math.inf


def _moment_ratios(x: FloatArray, ppy: float) -> tuple[float, float, float]:
    # (Sharpe, Sortino, volatility), annualised, from one pass of return_moments.
    if x.size < 2:
        return math.nan, math.nan, math.nan
    mean, std, downside = K.return_moments(x)
    root = math.sqrt(ppy)
    return (
        _ratio(float(mean), float(std)) * root,
        _ratio(float(mean), float(downside)) * root,
        float(std) * root,
    )


def _volatility(r: FloatArray, ppy: float) -> float:
    return _moment_ratios(r, ppy)[2]


def _sharpe(x: FloatArray, ppy: float) -> float:
    return _moment_ratios(x, ppy)[0]


def _sortino(x: FloatArray, ppy: float) -> float:
    return _moment_ratios(x, ppy)[1]


def _drawdowns(
    e: FloatArray, initial: float | None, times: npt.NDArray[np.int64] | None = None
) -> tuple[float, int]:
    # (max drawdown <= 0, longest drawdown in the units of `times`; 0 without times)
    start = math.nan if initial is None else initial
    max_dd, longest = K.drawdown_stats(e, start, _NO_TIMES if times is None else times)
    return float(max_dd), int(longest)


def _calmar(cagr_value: float, max_dd: float) -> float:
    return _ratio(cagr_value, -max_dd)


# ---------------------------------------------------------------------------------------------


def to_returns(equity: ArrayLike, *, initial: float | None = None) -> pd.Series:
    r"""Return simple per-bar returns of an equity curve.

    :math:`r_t = E_t / E_{t-1} - 1`; the first return is :math:`E_0 / \text{initial} - 1`
    when ``initial`` is given, else it is dropped. After equity reaches zero or below
    (a bankrupt backtest) there is no base to measure from: those returns are 0.

    Examples
    --------
    >>> to_returns(pd.Series([110.0, 99.0]), initial=100.0).round(4).tolist()
    [0.1, -0.1]
    """
    s = equity if isinstance(equity, pd.Series) else pd.Series(np.asarray(equity, np.float64))
    values = _values(s, "equity")
    start = None if initial is None else _positive("initial", initial)
    index = s.index if initial is not None else s.index[1:]
    return pd.Series(_to_returns(values, start), index=index, name="returns")


def total_return(returns: ArrayLike) -> float:
    r"""Return the compounded return :math:`\prod_t (1 + r_t) - 1`.

    Examples
    --------
    >>> round(total_return([0.1, -0.1]), 6)
    -0.01
    """
    return _growth(_values(returns, "returns")) - 1.0


def _span_years(index: pd.DatetimeIndex, spacing: pd.Timedelta) -> float:
    # Calendar time covered by bars: last - first + one bar, in 365-day years.
    if len(index) == 0:
        return 0.0
    return float((index[-1] - index[0] + spacing) / pd.Timedelta(days=DAYS_PER_YEAR))


def _years(returns: pd.Series) -> float:
    index = returns.index if isinstance(returns, pd.Series) else None
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError("cagr needs returns as a Series with a DatetimeIndex (calendar time)")
    spacing = infer_bar_spacing(index) if len(index) > 1 else pd.Timedelta(0)
    return _span_years(index, spacing)


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
    y = _years(returns) if years is None else _positive("years", years)
    return _cagr(_growth(_values(returns, "returns")), y)


def annual_volatility(returns: ArrayLike, *, periods_per_year: float | None = None) -> float:
    r"""Return the annualised volatility :math:`\mathrm{std}(r, \mathrm{ddof}=1)\sqrt{P}`.

    Examples
    --------
    >>> round(annual_volatility([0.01, -0.01, 0.01, -0.01], periods_per_year=365), 6)
    0.220605
    """
    return _volatility(_values(returns, "returns"), _ppy(returns, periods_per_year))


def _excess(returns: ArrayLike, risk_free: float, ppy: float) -> npt.NDArray[np.float64]:
    r = _values(returns, "returns")
    try:
        risk_free = float(risk_free)
    except (TypeError, ValueError):
        raise DataError(f"risk_free must be an annual rate, got {risk_free!r}") from None
    if not (risk_free > -1.0 and math.isfinite(risk_free)):
        raise DataError(f"risk_free must be a finite annual rate > -1, got {risk_free!r}")
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
    return _sharpe(_excess(returns, risk_free, ppy), ppy)


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
    return _sortino(_excess(returns, risk_free, ppy), ppy)


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
    start = None if initial is None else _positive("initial", initial)
    return _drawdowns(_values(equity, "equity"), start)[0]


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
    if not isinstance(equity, pd.Series) or not isinstance(equity.index, pd.DatetimeIndex):
        raise DataError(
            "max_drawdown_duration needs equity as a Series with a DatetimeIndex (time is "
            f"measured on it), got {type(equity).__name__}"
        )
    start = None if initial is None else _positive("initial", initial)
    _, longest = _drawdowns(_values(equity, "equity"), start, equity.index.asi8)
    return pd.Timedelta(longest, unit=equity.index.unit)


def calmar_ratio(
    returns: pd.Series, *, years: float | None = None, max_drawdown: float | None = None
) -> float:
    r"""Return CAGR divided by the absolute maximum drawdown of the compounded returns.

    ``max_drawdown`` (<= 0) may be passed when it is already known, e.g. from the equity
    curve the returns come from (:func:`max_drawdown` with ``initial=``); otherwise it is
    computed from the wealth path :math:`\prod_{s \le t}(1 + r_s)` starting at 1.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=365, freq="1D", tz="UTC")
    >>> r = pd.Series(0.0, index=idx)
    >>> r.iloc[:2] = [-0.1, 0.4]
    >>> round(calmar_ratio(r), 4)
    2.6
    """
    if max_drawdown is None:
        wealth = np.cumprod(1.0 + _values(returns, "returns"), dtype=np.float64)
        dd = _drawdowns(wealth, 1.0)[0]
    else:
        dd = float(max_drawdown)
        if not dd <= 0.0:
            raise DataError(f"max_drawdown must be a fraction <= 0, got {max_drawdown!r}")
    return _calmar(cagr(returns, years=years), dd)


def _pnl(trade_pnl: ArrayLike | pd.DataFrame) -> npt.NDArray[np.float64]:
    if isinstance(trade_pnl, pd.DataFrame):
        if "pnl" not in trade_pnl.columns:
            raise DataError(
                "a trades frame needs a 'pnl' column (BacktestResult.trades), got "
                f"{list(trade_pnl.columns)}"
            )
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
    if not isinstance(trades, pd.DataFrame) or "fees" not in trades.columns:
        cols = list(trades.columns) if isinstance(trades, pd.DataFrame) else type(trades).__name__
        raise DataError(
            f"total_fees needs a trades frame with a 'fees' column (BacktestResult.trades), "
            f"got {cols}"
        )
    return float(_values(trades["fees"], "fees").sum()) if len(trades) else 0.0


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
