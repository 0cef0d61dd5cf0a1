"""``run``: prepare arrays, call the numba kernel, build the :class:`BacktestResult`.

Fill rules (the only ones; ``docs/backtest.md`` has worked examples)
--------------------------------------------------------------------
1. **Signal timing.** The strategy returns a target exposure per bar, decided with that bar's
   close. The target of bar t is traded at bar t+1's **open**. Bars before ``trade_start``
   are warm-up: the strategy sees them, nothing is traded or reported.
2. **Only changes trade.** An order is sent when the target differs from the previous one
   (or, with ``rebalance_tolerance``, when the held exposure at the open has drifted further
   than that from the target). A fully invested position is not re-traded as prices move.
3. **Sizing.** After the fill, position value at the open price equals ``target`` × equity at
   the open price *net of this fill's costs* (so a target of 1.0 from cash buys
   ``equity / (open × (1 + costs))`` units, like "all in" on an exchange). Units are
   fractional. A target of 0 closes the position exactly.
4. **Costs.** Buys fill at ``open × (1 + slippage)``, sells at ``open × (1 - slippage)``;
   every fill pays ``fee_bps`` on its notional (fill price × |units|).
5. **Stops.** With ``stop_loss``/``take_profit`` (fractions of the trade's average entry
   price), each bar from the entry bar on is checked intrabar: if the open is already through
   a level the exit fills at the open; else if the low (long) reaches the stop it fills at
   the stop price; else if the high reaches the target, at the target price. **When both the
   stop and the target lie inside one bar's range, the stop is assumed to come first** (the
   worse outcome). Exits pay slippage and fees like any fill. After a stop or target exit
   the position stays flat until the strategy's target changes.
6. **Funding** (perpetuals): each funding event at time T charges ``units × price × rate``
   (longs pay positive rates, shorts receive them) on the position carried into the first
   bar that opens at or after T, at that bar's open price, before its order. Events before
   the first bar or after the last bar's open are ignored.
7. **Marking.** Equity is ``cash + units × close`` at each close. If equity at an open or a
   close is <= 0 the account is bankrupt: the position is closed there (exit reason
   ``bankrupt``) and nothing trades afterwards. Margin calls before that are not modelled.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from chimera_lab import timeframes
from chimera_lab.backtest import _kernels as K
from chimera_lab.backtest import metrics as M
from chimera_lab.backtest.result import TRADE_COLUMNS, BacktestResult
from chimera_lab.backtest.strategies._registry import StrategySpec, resolve_strategy
from chimera_lab.errors import ConfigError, DataError
from chimera_lab.frames import OHLCV_COLUMNS, exposure_values, to_utc
from chimera_lab.logging import get_logger
from chimera_lab.timeframes import infer_bar_spacing

__all__ = ["StrategyLike", "run"]

log = get_logger(__name__)

_SIDES = ["long", "short"]

FloatArray = npt.NDArray[np.float64]
StrategyLike = str | Callable[..., Any] | StrategySpec | pd.Series | np.ndarray
"""A registered name, a callable, ``"file.py:function"``, or a precomputed exposure series."""


def _bar_arrays(
    data: pd.DataFrame,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, pd.Timedelta]:
    # Validate bars and index in one numba pass; also returns the bar spacing.
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be an OHLCV DataFrame, got {type(data).__name__}")
    missing = [c for c in OHLCV_COLUMNS[:4] if c not in data.columns]
    if missing:
        raise DataError(
            f"data lacks column(s) {missing}; load bars with chimera_lab.data.load_ohlcv"
        )
    index = data.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise DataError(
            "data needs a tz-aware UTC DatetimeIndex of bar open times; "
            "see chimera_lab.frames.validate_ohlcv"
        )
    if len(index) < 2:
        raise DataError(f"a backtest needs at least 2 bars, got {len(index)}")
    arrays = []
    for col in OHLCV_COLUMNS[:4]:
        try:
            arrays.append(np.ascontiguousarray(data[col].to_numpy(dtype=np.float64)))
        except (TypeError, ValueError):
            raise DataError(f"column {col!r} of data must be numeric", column=col) from None
    o, h, lo, c = (K.readonly(a) for a in arrays)
    times = K.readonly(np.ascontiguousarray(index.asi8))
    pos, code, step = K.check_bars(o, h, lo, c, times)
    if pos >= 0:
        if code == 4:
            raise DataError(
                f"data's index is not strictly increasing at {index[pos]} (after "
                f"{index[pos - 1]}); use data.sort_index() and drop duplicate timestamps",
                row=int(pos) + 1,
                column="timestamp",
            )
        what = {
            1: "a missing (NaN) or non-positive price",
            2: "low above open, close or high",
            3: "high below open or close",
        }[int(code)]
        raise DataError(
            f"data has {what} at bar {index[pos]}; fix or drop the bar "
            "(chimera_lab.data.quality_report lists problems)",
            row=int(pos) + 1,
        )
    # Regular bars: the common step is the median spacing; otherwise compute the median.
    spacing = pd.Timedelta(int(step), unit=index.unit) if step > 0 else infer_bar_spacing(index)
    return o, h, lo, c, spacing


def _target_array(
    raw: Any, index: pd.DatetimeIndex, *, leverage: float, allow_short: bool, name: str
) -> tuple[FloatArray, int]:
    # Returns the cleaned target and the number of target changes.
    values = exposure_values(raw, index, name=f"strategy {name!r}")
    values = K.readonly(np.ascontiguousarray(values))
    out = np.empty(len(values))
    bad, changes = K.prepare_target(values, float(leverage), bool(allow_short), out)
    if bad >= 0:
        raise DataError(
            f"strategy {name!r} asks for exposure {float(values[bad]):g} at bar {index[bad]}, "
            f"outside [-{leverage:g}, {leverage:g}]; raise leverage= or scale the signal",
            row=int(bad) + 1,
        )
    return out, int(changes)


def _funding_events(
    funding: pd.Series | None, index: pd.DatetimeIndex, start: int
) -> tuple[npt.NDArray[np.int64], FloatArray]:
    if funding is None or len(funding) == 0:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    if not isinstance(funding, pd.Series):
        raise DataError(
            f"funding must be a Series of rates indexed by time, got {type(funding).__name__}; "
            "read files with chimera_lab.data.load_funding"
        )
    fidx = funding.index
    if not isinstance(fidx, pd.DatetimeIndex) or fidx.tz is None:
        raise DataError("funding needs a tz-aware UTC DatetimeIndex of funding times")
    rates = funding.to_numpy(dtype=np.float64, na_value=np.nan)
    if not np.isfinite(rates).all():
        bad = int(np.flatnonzero(~np.isfinite(rates))[0])
        raise DataError(f"funding has a missing or infinite rate at {fidx[bad]}", row=bad + 1)
    order = np.argsort(fidx.asi8, kind="stable")
    fidx, rates = fidx[order], rates[order]
    # Each event is charged at the first bar opening at or after it.
    bar = np.asarray(index.searchsorted(fidx, side="left"), dtype=np.int64)
    keep = np.asarray(fidx >= index[0]) & (bar < len(index)) & (bar >= start)
    return np.ascontiguousarray(bar[keep]), np.ascontiguousarray(rates[keep])


def _start_position(trade_start: Any, index: pd.DatetimeIndex) -> int:
    if trade_start is None:
        return 0
    ts = to_utc(trade_start, name="trade_start")
    start = int(index.searchsorted(ts, side="left"))
    if start >= len(index):
        raise ConfigError(
            f"trade_start {ts} is after the last bar {index[-1]}; nothing would be traded"
        )
    return start


def _check_number(name: str, value: Any, *, low: float, high: float = math.inf) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not (low <= x < high) or math.isnan(x):
        raise ConfigError(f"{name} must be in [{low:g}, {high:g}), got {value!r}")
    return x


def _check_fraction(name: str, value: Any, *, below_one: bool = False) -> float:
    # Stops are fractions of the entry price: a long's stop at entry x (1 - stop_loss) must
    # stay above zero, so stop_loss < 1; a take-profit may exceed 100%.
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a fraction of the entry price, got {value!r}") from None
    high = 1.0 if below_one else math.inf
    if not (0.0 < x < high):
        bound = "(0, 1)" if below_one else "> 0"
        raise ConfigError(
            f"{name} must be a fraction of the entry price {bound} (0.02 = 2%), got {value!r}"
        )
    return x


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise ConfigError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def _trades_frame(
    t_int: npt.NDArray[np.int64],
    t_flt: FloatArray,
    index: pd.DatetimeIndex,
    close: FloatArray,
    last_units: float,
) -> pd.DataFrame:
    n = len(index)
    entry_bar = t_int[:, 0]
    is_open = t_int[:, 1] < 0
    exit_bar = np.where(is_open, n - 1, t_int[:, 1])
    last_close = float(close[-1])
    with np.errstate(invalid="ignore", divide="ignore"):
        entry_price = t_flt[:, K.T_ENTRY_VALUE] / t_flt[:, K.T_ENTRY_UNITS]
        exit_price = np.where(
            is_open, last_close, t_flt[:, K.T_EXIT_VALUE] / t_flt[:, K.T_EXIT_UNITS]
        )
    mark = np.where(is_open, last_units * last_close, 0.0)
    pnl = t_flt[:, K.T_CASH] + mark - t_flt[:, K.T_FEES] - t_flt[:, K.T_FUNDING]
    # Categoricals from integer codes: no per-row string objects.
    reason = pd.Categorical.from_codes(t_int[:, 3], dtype=pd.CategoricalDtype(list(K.REASON_NAMES)))
    side = pd.Categorical.from_codes(
        (t_int[:, 2] < 0).astype(np.int8), dtype=pd.CategoricalDtype(_SIDES)
    )
    frame = pd.DataFrame(
        {
            "entry_time": index[entry_bar],
            "exit_time": index[exit_bar],
            "side": side,
            "size": t_flt[:, K.T_SIZE],
            "entry_price": entry_price,
            "exit_price": exit_price,
            "pnl": pnl,
            "return": pnl / t_flt[:, K.T_ENTRY_VALUE],
            "fees": t_flt[:, K.T_FEES],
            "funding": t_flt[:, K.T_FUNDING],
            # Bar closes at which the position was held: a closed trade exits at the open of
            # exit_bar (held at the closes entry_bar .. exit_bar - 1); an open trade is held
            # at the last close too.
            "bars_held": exit_bar - entry_bar + is_open,
            "exit_reason": reason,
            "entry_bar": entry_bar,
            "exit_bar": exit_bar,
        },
        columns=list(TRADE_COLUMNS),
    )
    frame.index.name = "trade"
    return frame


def _stats(
    equity: pd.Series,
    returns: pd.Series,
    positions: pd.Series,
    trades: pd.DataFrame,
    totals: FloatArray,
    *,
    initial_capital: float,
    ppy: float,
    years: float,
) -> dict[str, Any]:
    # Every number is a formula of the metrics module (each written once there), applied to
    # arrays the kernel made finite, with the engine's own bar spacing (periods per year,
    # calendar years) instead of re-inferring it; tests check them against the public metric
    # functions and independent formulas.
    idx = equity.index
    assert isinstance(idx, pd.DatetimeIndex)
    r = returns.to_numpy()
    mdd, longest = M._drawdowns(equity.to_numpy(), initial_capital, idx.asi8)
    growth = M._growth(r)
    cagr = M._cagr(growth, years)
    has_trades = len(trades) > 0
    sharpe, sortino, volatility = M._moment_ratios(r, ppy)
    pnl = M._pnl(trades)  # once for the four trade metrics below
    return {
        "sharpe": sharpe,
        "sortino": sortino,
        "max_drawdown": mdd,
        "cagr": cagr,
        "total_return": growth - 1.0,
        "volatility": volatility,
        "calmar": M._calmar(cagr, mdd),
        "win_rate": M.win_rate(pnl),
        "profit_factor": M.profit_factor(pnl),
        "n_trades": M.n_trades(trades),
        "exposure": M.exposure_time(positions),
        "fees": M.total_fees(trades),
        "final_equity": float(equity.iloc[-1]),
        # extras
        "initial_capital": float(initial_capital),
        "funding": float(totals[1]),
        "turnover": M.turnover(float(totals[2]), equity),
        "avg_win": M.average_win(pnl),
        "avg_loss": M.average_loss(pnl),
        "avg_trade_return": float(trades["return"].mean()) if has_trades else math.nan,
        "avg_bars_held": float(trades["bars_held"].mean()) if has_trades else math.nan,
        "max_drawdown_duration": pd.Timedelta(longest, unit=idx.unit),
        "start": idx[0],
        "end": idx[-1],
        "n_bars": len(idx),
        "years": years,
        "periods_per_year": float(ppy),
    }


def run(
    data: pd.DataFrame,
    strategy: StrategyLike,
    *,
    initial_capital: float = 100_000.0,
    fee_bps: float = 6.0,
    slippage_bps: float = 0.0,
    leverage: float = 1.0,
    allow_short: bool = False,
    stop_loss: float | None = None,
    take_profit: float | None = None,
    funding: pd.Series | None = None,
    rebalance_tolerance: float | None = None,
    trade_start: str | pd.Timestamp | None = None,
    periods_per_year: float | None = None,
    **params: Any,
) -> BacktestResult:
    """Backtest a target-exposure strategy on OHLCV bars.

    The fill rules are in this module's docstring (:mod:`chimera_lab.backtest.engine`):
    the target decided at bar t's close trades at bar t+1's open, only when it changes;
    costs are paid on every fill; stops are checked intrabar, the worse case first.

    Parameters
    ----------
    data : DataFrame
        OHLCV bars (``chimera_lab.frames`` convention).
    strategy : str, callable, StrategySpec, Series or ndarray
        A registered name (``"sma_cross"``), any ``f(data, **params) -> Series`` of target
        exposure, ``"path/to/file.py:function"``, or the exposure series itself.
    initial_capital : float
        Starting cash (quote currency).
    fee_bps, slippage_bps : float
        Fee on traded notional, and price slippage against the trader, in basis points.
    leverage : float
        Largest absolute exposure allowed; a strategy asking for more is an error.
    allow_short : bool
        Trade negative targets; when False they are treated as flat (long-only).
    stop_loss, take_profit : float, optional
        Fractions of the entry price (``0.02`` = 2%).
    funding : Series, optional
        Funding rates (fractions) indexed by their UTC timestamps
        (:func:`chimera_lab.data.funding.load_funding`).
    rebalance_tolerance : float, optional
        Re-trade an unchanged target when held exposure drifts further than this from it
        (default: never).
    trade_start : str or Timestamp, optional
        First bar that may hold a position and from which equity and stats are reported;
        earlier bars only warm up the strategy.
    periods_per_year : float, optional
        Annualisation factor; inferred from the bar spacing (365-day years) by default.
    **params
        Strategy parameters (checked against its signature). A strategy that declares a
        parameter named ``allow_short``, ``fee_bps``, ``slippage_bps``, ``initial_capital``
        or ``trade_start`` receives the engine's value unless one is given (the ``kelly``
        strategy uses this to simulate its base trades, and its risk overlay's account, the
        way this backtest takes them).

    Returns
    -------
    BacktestResult

    Raises
    ------
    DataError
        Malformed bars, or a strategy output that is misaligned or outside the leverage.
    ConfigError
        Unknown strategy or parameter, or an invalid engine setting.

    Examples
    --------
    >>> from chimera_lab.data.synthetic import make_ohlcv
    >>> res = run(make_ohlcv(2_000, seed=7), "sma_cross", fast=10, slow=50)
    >>> res.stats["n_trades"], round(res.stats["final_equity"], 2)
    (25, 94200.24)
    """
    initial_capital = _check_number("initial_capital", initial_capital, low=1e-12)
    fee_rate = _check_number("fee_bps", fee_bps, low=0.0, high=10_000.0) / 1e4
    slip_rate = _check_number("slippage_bps", slippage_bps, low=0.0, high=10_000.0) / 1e4
    leverage = _check_number("leverage", leverage, low=1e-12)
    sl = math.nan if stop_loss is None else _check_fraction("stop_loss", stop_loss, below_one=True)
    tp = math.nan if take_profit is None else _check_fraction("take_profit", take_profit)
    allow_short = _check_bool("allow_short", allow_short)
    tol = (
        math.inf
        if rebalance_tolerance is None
        else _check_number("rebalance_tolerance", rebalance_tolerance, low=0.0)
    )
    o, h, lo, c, spacing = _bar_arrays(data)
    index = data.index
    assert isinstance(index, pd.DatetimeIndex)

    if isinstance(strategy, pd.Series | np.ndarray | pd.DataFrame):
        if params:
            raise ConfigError(
                f"parameters {sorted(params)} were given with a precomputed exposure series"
            )
        name = str(getattr(strategy, "name", None) or "signal")
        raw: Any = strategy
        used_params: dict[str, Any] = {}
    else:
        spec = resolve_strategy(strategy)
        name = spec.name
        context = {
            "allow_short": allow_short,
            "fee_bps": fee_bps,
            "slippage_bps": slippage_bps,
            "initial_capital": initial_capital,
            "trade_start": trade_start,
        }
        for key, value in context.items():
            if key in spec.parameters and key not in params:
                params[key] = value
        checked = spec.check_params(params)
        used_params = {**spec.defaults, **checked}
        raw = spec.func(data, **checked)
    target, changes = _target_array(
        raw, index, leverage=leverage, allow_short=allow_short, name=name
    )

    start = _start_position(trade_start, index)
    fund_idx, fund_rate = _funding_events(funding, index, start)
    m = len(index) - start
    equity_a, units_a = np.empty(m), np.empty(m)
    t_int, t_flt, totals = K.simulate(
        o, h, lo, c, K.readonly(target), start, initial_capital, fee_rate, slip_rate,
        sl, tp, tol, K.readonly(fund_idx), K.readonly(fund_rate), changes + 2, equity_a, units_a,
    )  # fmt: skip

    out_index = index[start:]
    equity = pd.Series(equity_a, index=out_index, name="equity", copy=False)
    returns = pd.Series(
        M._to_returns(equity_a, initial_capital), index=out_index, name="returns", copy=False
    )
    positions = pd.Series(units_a, index=out_index, name="position", copy=False)
    trades = _trades_frame(t_int, t_flt, index, c, float(units_a[-1]))

    if periods_per_year is not None:
        ppy = _check_number("periods_per_year", periods_per_year, low=1e-12)
    else:
        ppy = timeframes.periods_per_year(spacing)
    stats = _stats(
        equity,
        returns,
        positions,
        trades,
        totals,
        initial_capital=initial_capital,
        ppy=ppy,
        years=M._span_years(out_index, spacing),
    )
    config = {
        "initial_capital": initial_capital,
        "fee_bps": float(fee_bps),
        "slippage_bps": float(slippage_bps),
        "leverage": leverage,
        "allow_short": bool(allow_short),
        "stop_loss": stop_loss,
        "take_profit": take_profit,
        "rebalance_tolerance": rebalance_tolerance,
        "trade_start": out_index[0],
        "warmup_bars": start,
        "funding_events": int(fund_idx.size),
        "periods_per_year": ppy,
    }
    log.debug("backtest.run", strategy=name, bars=len(index), trades=len(trades))
    return BacktestResult(
        equity=equity,
        returns=returns,
        positions=positions,
        trades=trades,
        stats=stats,
        params=used_params,
        signal=pd.Series(target, index=index, name="target", copy=False),
        data=data,
        strategy=name,
        config=config,
    )
