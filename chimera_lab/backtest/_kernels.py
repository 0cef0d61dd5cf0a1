"""Numba kernels of the backtest engine (private; :mod:`chimera_lab.backtest.engine` wraps them).

Everything here works on plain numpy arrays with fixed dtypes (float64 prices and targets,
int64 indices), so each kernel compiles exactly once per machine: ``cache=True`` stores the
machine code in ``__pycache__`` and later processes load it instead of compiling.

The fill rules implemented by :func:`simulate` are documented on
:func:`chimera_lab.backtest.run` and in ``docs/backtest.md``; the tests compare this kernel
with a deliberately simple pure-Python simulator (``tests/backtest/bt_reference.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

__all__ = [
    "REASON_NAMES",
    "check_bars",
    "compound",
    "drawdown_stats",
    "hold_until_exit",
    "prepare_target",
    "readonly",
    "return_moments",
    "simulate",
    "simulate_from",
]


def readonly(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Return a read-only view of ``a``.

    The kernels are compiled for read-only arrays (pandas copy-on-write hands those out), so
    every caller passes the same array type and numba compiles each kernel once.
    """
    view = a.view()
    view.flags.writeable = False
    return view


# Exit reasons of a trade (int8 in the kernel, strings in BacktestResult.trades).
REASON_SIGNAL = 0
REASON_STOP_LOSS = 1
REASON_TAKE_PROFIT = 2
REASON_BANKRUPT = 3
REASON_OPEN = 4
REASON_NAMES: tuple[str, ...] = ("signal", "stop_loss", "take_profit", "bankrupt", "open")

# Columns of the float trade-record matrix returned by simulate().
T_SIZE = 0  # largest absolute position (units) during the trade
T_ENTRY_VALUE = 1  # sum of |fill units| * fill price over fills that opened/increased it
T_ENTRY_UNITS = 2  # sum of |fill units| over those fills
T_EXIT_VALUE = 3  # same for fills that reduced/closed it
T_EXIT_UNITS = 4
T_CASH = 5  # sum of -(signed fill units) * fill price (cash flow of the fills, before fees)
T_FEES = 6
T_FUNDING = 7  # funding paid (positive) or received (negative) while the trade was open
T_NFIELDS = 8


@njit(cache=True)
def check_bars(open_, high, low, close, times):  # type: ignore[no-untyped-def]  # numba kernel
    """Validate bars and their timestamps in one pass.

    Returns ``(position, code, spacing)``: the first invalid bar and why (-1, 0 if none) and
    the common spacing of ``times`` if every step is equal, else -1. Codes: 1 NaN or
    non-positive price, 2 low above min(open, close) or above high, 3 high below
    max(open, close), 4 timestamp not after the previous one.
    """
    n = close.shape[0]
    spacing = times[1] - times[0] if n > 1 else -1
    for i in range(n):
        o = open_[i]
        h = high[i]
        lo = low[i]
        c = close[i]
        # "not (x > 0)" is also true for NaN.
        if not (o > 0.0) or not (h > 0.0) or not (lo > 0.0) or not (c > 0.0):
            return i, 1, spacing
        if lo > o or lo > c or lo > h:
            return i, 2, spacing
        if h < o or h < c:
            return i, 3, spacing
        if i > 0:
            step = times[i] - times[i - 1]
            if step <= 0:
                return i, 4, spacing
            if step != spacing:
                spacing = -1
    return -1, 0, spacing


@njit(cache=True)
def prepare_target(values, leverage, allow_short, out):  # type: ignore[no-untyped-def]  # numba kernel
    """Write the cleaned target into ``out``; return ``(first_bad, n_changes)``.

    NaN becomes 0 (flat); negative values become 0 unless ``allow_short``; ``first_bad`` is
    the first position whose absolute exposure exceeds ``leverage`` (or -1), ``n_changes``
    counts bars whose target differs from the previous bar's.
    """
    n = values.shape[0]
    bad = -1
    changes = 0
    limit = leverage * (1.0 + 1e-12)
    prev = 0.0
    for i in range(n):
        x = values[i]
        if np.isnan(x):
            x = 0.0
        elif x < 0.0 and not allow_short:
            x = 0.0
        if bad < 0 and not (abs(x) <= limit):
            bad = i
        out[i] = x
        if i > 0 and x != prev:
            changes += 1
        prev = x
    return bad, changes


@njit(cache=True)
def return_moments(r):  # type: ignore[no-untyped-def]  # numba kernel
    """Return ``(mean, std, downside)`` of returns in two passes.

    ``std`` is the sample standard deviation (ddof=1, NaN for fewer than two values) and
    ``downside`` the root mean square of ``min(r, 0)`` over all values (Sortino's downside
    deviation with a zero target). The formulas that use them are in
    :mod:`chimera_lab.backtest.metrics`.
    """
    n = r.shape[0]
    if n == 0:
        return np.nan, np.nan, np.nan
    # Four accumulators per sum: the additions no longer wait on each other (about 3x faster
    # than one running sum) and the rounding is, if anything, smaller.
    m = n - n % 4
    a0 = a1 = a2 = a3 = 0.0
    for i in range(0, m, 4):
        a0 += r[i]
        a1 += r[i + 1]
        a2 += r[i + 2]
        a3 += r[i + 3]
    for i in range(m, n):
        a0 += r[i]
    mean = ((a0 + a1) + (a2 + a3)) / n
    s0 = s1 = s2 = s3 = 0.0
    d0 = d1 = d2 = d3 = 0.0
    for i in range(0, m, 4):
        x0 = r[i] - mean
        x1 = r[i + 1] - mean
        x2 = r[i + 2] - mean
        x3 = r[i + 3] - mean
        s0 += x0 * x0
        s1 += x1 * x1
        s2 += x2 * x2
        s3 += x3 * x3
        y0 = min(r[i], 0.0)
        y1 = min(r[i + 1], 0.0)
        y2 = min(r[i + 2], 0.0)
        y3 = min(r[i + 3], 0.0)
        d0 += y0 * y0
        d1 += y1 * y1
        d2 += y2 * y2
        d3 += y3 * y3
    for i in range(m, n):
        x0 = r[i] - mean
        s0 += x0 * x0
        y0 = min(r[i], 0.0)
        d0 += y0 * y0
    ss = (s0 + s1) + (s2 + s3)
    down = (d0 + d1) + (d2 + d3)
    std = np.sqrt(ss / (n - 1)) if n > 1 else np.nan
    return mean, std, np.sqrt(down / n)


@njit(cache=True)
def compound(r):  # type: ignore[no-untyped-def]  # numba kernel
    """Return ``prod(1 + r)`` in one pass, without a temporary array (four accumulators)."""
    n = r.shape[0]
    m = n - n % 4
    p0 = p1 = p2 = p3 = 1.0
    for i in range(0, m, 4):
        p0 *= 1.0 + r[i]
        p1 *= 1.0 + r[i + 1]
        p2 *= 1.0 + r[i + 2]
        p3 *= 1.0 + r[i + 3]
    for i in range(m, n):
        p0 *= 1.0 + r[i]
    return (p0 * p1) * (p2 * p3)


@njit(cache=True)
def drawdown_stats(equity, initial, times):  # type: ignore[no-untyped-def]  # numba kernel
    """Return ``(max_drawdown, longest_drawdown)`` of an equity curve in one pass.

    The running peak starts at ``initial`` (NaN: at the first value). ``max_drawdown`` is
    ``min(E_t / peak_t - 1)`` over bars with a positive peak, capped at 0. The longest
    drawdown runs from the time of the bar that set a peak to the first bar back at or above
    it, or to the last bar, in the units of ``times`` (int64, e.g. nanoseconds; pass an
    empty array to skip it: it is then 0).
    """
    n = equity.shape[0]
    timed = times.shape[0] == n and n > 0
    peak = initial if not np.isnan(initial) else -np.inf
    peak_t = times[0] if timed else 0
    under = False
    max_dd = 0.0
    max_dur = 0
    for i in range(n):
        e = equity[i]
        if e >= peak:
            if under and timed:
                dur = times[i] - peak_t
                if dur > max_dur:
                    max_dur = dur
            under = False
            peak = e
            if timed:
                peak_t = times[i]
        else:
            under = True
            if peak > 0.0:
                dd = e / peak - 1.0
                if dd < max_dd:
                    max_dd = dd
    if under and timed:
        dur = times[n - 1] - peak_t
        if dur > max_dur:
            max_dur = dur
    return max_dd, max_dur


@njit(cache=True)
def hold_until_exit(enter_long, exit_long, enter_short, exit_short):  # type: ignore[no-untyped-def]  # numba kernel
    """Turn entry/exit event arrays into a +1/0/-1 state that holds between events.

    At each bar, in this order: an open long exits on ``exit_long``, an open short on
    ``exit_short``; then a flat (or just exited) book enters long on ``enter_long`` or short on
    ``enter_short`` (long wins a tie); an opposite entry flips the position directly.
    """
    n = enter_long.shape[0]
    out = np.zeros(n)
    state = 0.0
    for i in range(n):
        if state > 0.0 and exit_long[i]:
            state = 0.0
        elif state < 0.0 and exit_short[i]:
            state = 0.0
        if enter_long[i]:
            state = 1.0
        elif enter_short[i]:
            state = -1.0
        out[i] = state
    return out


@njit(cache=True)
def simulate(  # type: ignore[no-untyped-def]  # numba kernel
    open_,
    high,
    low,
    close,
    target,
    start,
    initial_capital,
    fee_rate,
    slip_rate,
    stop_loss,
    take_profit,
    rebalance_tol,
    fund_idx,
    fund_rate,
    max_trades,
    equity,
    units_out,
):
    """Simulate target-exposure trading bar by bar from a flat account (see :func:`_simulate`)."""
    return _simulate(
        open_, high, low, close, target, start, initial_capital, fee_rate, slip_rate,
        stop_loss, take_profit, rebalance_tol, fund_idx, fund_rate, max_trades, equity,
        units_out, 0.0, 0.0,
    )  # fmt: skip


@njit(cache=True)
def simulate_from(  # type: ignore[no-untyped-def]  # numba kernel
    open_, high, low, close, target, start, cash, units, last_target, fee_rate, slip_rate,
    equity, units_out,
):  # fmt: skip
    """Continue a simulation from a known account state, without stops, funding or rebalancing.

    The account holds ``cash`` and ``units`` at bar ``start``'s open, last traded to
    ``last_target``; bars ``start .. n - 1`` are simulated with the same fill rules as
    :func:`simulate` (so running it in pieces gives the same equity as one run). Used by the
    ``kelly`` strategy's risk overlay to know its own equity at each decision. Writes
    ``equity`` and ``units_out`` (length ``n - start``) and returns ``(cash, units)`` after
    the last bar's close.
    """
    no_i = np.empty(0, dtype=np.int64)
    no_f = np.empty(0, dtype=np.float64)
    # Each target change can open at most one trade record: bound them for the buffers.
    n = close.shape[0]
    changes = 0
    prev = last_target
    for i in range(max(start, 1), n):
        if target[i - 1] != prev:
            changes += 1
            prev = target[i - 1]
    _simulate(
        open_, high, low, close, target, start, cash, fee_rate, slip_rate, np.nan, np.nan,
        np.inf, no_i, no_f, changes + 2, equity, units_out, units, last_target,
    )  # fmt: skip
    last = close.shape[0] - 1 - start
    held = units_out[last]
    return equity[last] - held * close[close.shape[0] - 1], held


@njit(cache=True)
def _simulate(  # type: ignore[no-untyped-def]  # numba kernel
    open_,
    high,
    low,
    close,
    target,
    start,
    initial_capital,
    fee_rate,
    slip_rate,
    stop_loss,
    take_profit,
    rebalance_tol,
    fund_idx,
    fund_rate,
    max_trades,
    equity,
    units_out,
    units0,
    target0,
):
    """Simulate target-exposure trading bar by bar; see :func:`chimera_lab.backtest.run`.

    Parameters are float64 arrays of length n (``target[t]`` is decided at bar t's close),
    the first traded bar ``start``, scalar costs as fractions (``fee_rate = fee_bps / 1e4``),
    ``stop_loss``/``take_profit`` as fractions or NaN for none, ``rebalance_tol`` (inf for
    never), funding events as sorted bar indices ``fund_idx`` (charged at that bar's open)
    with rates ``fund_rate``, an upper bound on the number of trades, and the output arrays
    ``equity`` and ``units_out`` of length n - start (allocated by the caller: numpy asks the
    kernel for huge pages on large arrays, which makes first-touch page faults far cheaper
    than numba's own allocations). ``units0`` and ``target0`` are the position held at
    ``start`` and the target it was last traded to (0 for a fresh account; a held position
    opens a trade record at ``start``'s open).

    Each bar has three moments at which a fill can happen: the open (the order decided at
    the previous close, or closing a bankrupt account), intrabar (a stop or target), and
    the close (closing a bankrupt account). They share one fill routine below.

    Returns
    -------
    t_int : int64 (n_trades, 4) entry bar, exit bar (-1 while open), side, exit reason
    t_flt : float64 (n_trades, T_NFIELDS) trade accumulators (see the T_* columns)
    totals : float64 [fees, funding, traded notional]
    """
    n = close.shape[0]
    t_int = np.empty((max_trades + 1, 4), dtype=np.int64)
    t_flt = np.empty((max_trades + 1, T_NFIELDS))
    use_sl = not np.isnan(stop_loss)
    use_tp = not np.isnan(take_profit)
    use_stops = use_sl or use_tp
    rebalance = np.isfinite(rebalance_tol)
    n_fund = fund_idx.shape[0]

    cash = initial_capital
    units = units0
    last_target = target0
    cur = -1
    n_trades = 0
    if units != 0.0 and start < n:
        cur = 0
        n_trades = 1
        t_int[0, 0] = start
        t_int[0, 1] = -1
        t_int[0, 2] = 1 if units > 0.0 else -1
        t_int[0, 3] = REASON_OPEN
        for k in range(T_NFIELDS):
            t_flt[0, k] = 0.0
        t_flt[0, T_SIZE] = abs(units)
        t_flt[0, T_ENTRY_VALUE] = abs(units) * open_[start]
        t_flt[0, T_ENTRY_UNITS] = abs(units)
        t_flt[0, T_CASH] = -units * open_[start]
    fees = 0.0
    funding = 0.0
    notional = 0.0
    bankrupt = False
    j = 0
    while j < n_fund and fund_idx[j] < start:
        j += 1

    for i in range(start, n):
        o = open_[i]
        if bankrupt:
            equity[i - start] = cash
            units_out[i - start] = 0.0
            continue

        # Funding events of this bar, on the position carried in, at the open price.
        while j < n_fund and fund_idx[j] == i:
            if units != 0.0:
                pay = units * o * fund_rate[j]
                cash -= pay
                funding += pay
                t_flt[cur, T_FUNDING] += pay
            j += 1

        # Fast path: no order, no stop to check, solvent at the open and the close.
        c = close[i]
        if not (
            (i > 0 and (target[i - 1] != last_target or (rebalance and units != 0.0)))
            or (units != 0.0 and (use_stops or cash + units * o <= 0.0 or cash + units * c <= 0.0))
        ):
            equity[i - start] = cash + units * c
            units_out[i - start] = units
            continue

        for phase in range(3):
            delta = 0.0
            px = 0.0
            reason = REASON_SIGNAL
            if phase == 0:
                # The order decided at the previous close, filled at this open.
                if i == 0:
                    continue
                tgt = target[i - 1]
                eq_open = cash + units * o
                if eq_open <= 0.0:
                    bankrupt = True
                    if units != 0.0:
                        delta = -units
                        px = o * (1.0 - slip_rate) if units > 0.0 else o * (1.0 + slip_rate)
                        reason = REASON_BANKRUPT
                else:
                    trade = False
                    if tgt != last_target:
                        trade = True
                        last_target = tgt
                    elif rebalance and units != 0.0:
                        trade = abs(units * o / eq_open - tgt) > rebalance_tol
                    if trade:
                        if tgt == 0.0:
                            delta = -units
                        else:
                            gap = tgt * eq_open - units * o
                            if gap > 0.0:
                                cost = slip_rate + (1.0 + slip_rate) * fee_rate
                                delta = gap / (o * (1.0 + tgt * cost))
                            elif gap < 0.0:
                                cost = slip_rate + (1.0 - slip_rate) * fee_rate
                                delta = gap / (o * (1.0 - tgt * cost))
                        px = o * (1.0 + slip_rate) if delta > 0.0 else o * (1.0 - slip_rate)
            elif phase == 1:
                # Stop-loss / take-profit, intrabar, from the trade's average entry price.
                if bankrupt or not use_stops or units == 0.0:
                    continue
                entry = t_flt[cur, T_ENTRY_VALUE] / t_flt[cur, T_ENTRY_UNITS]
                level = 0.0
                reason = -1
                if units > 0.0:
                    sl_px = entry * (1.0 - stop_loss)
                    tp_px = entry * (1.0 + take_profit)
                    if use_sl and o <= sl_px:
                        level, reason = o, REASON_STOP_LOSS
                    elif use_tp and o >= tp_px:
                        level, reason = o, REASON_TAKE_PROFIT
                    elif use_sl and low[i] <= sl_px:
                        level, reason = sl_px, REASON_STOP_LOSS
                    elif use_tp and high[i] >= tp_px:
                        level, reason = tp_px, REASON_TAKE_PROFIT
                else:
                    sl_px = entry * (1.0 + stop_loss)
                    tp_px = entry * (1.0 - take_profit)
                    if use_sl and o >= sl_px:
                        level, reason = o, REASON_STOP_LOSS
                    elif use_tp and o <= tp_px:
                        level, reason = o, REASON_TAKE_PROFIT
                    elif use_sl and high[i] >= sl_px:
                        level, reason = sl_px, REASON_STOP_LOSS
                    elif use_tp and low[i] <= tp_px:
                        level, reason = tp_px, REASON_TAKE_PROFIT
                if reason < 0:
                    continue
                delta = -units
                px = level * (1.0 - slip_rate) if units > 0.0 else level * (1.0 + slip_rate)
            else:
                # Mark to market at the close; a non-positive equity ends the account.
                if bankrupt or units == 0.0 or cash + units * c > 0.0:
                    continue
                bankrupt = True
                delta = -units
                px = c * (1.0 - slip_rate) if units > 0.0 else c * (1.0 + slip_rate)
                reason = REASON_BANKRUPT
            if delta == 0.0:
                continue

            # The fill: `delta` units at `px` (slippage included). A fill that crosses zero
            # is split into the part closing the open trade and the part opening a new one;
            # the fee is split in proportion to units.
            fee_total = abs(delta) * px * fee_rate
            fees += fee_total
            notional += abs(delta) * px
            remaining = delta
            if units != 0.0 and (delta > 0.0) != (units > 0.0):
                close_qty = min(abs(delta), abs(units))
                part = close_qty if delta > 0.0 else -close_qty
                fee = fee_total * (close_qty / abs(delta))
                t_flt[cur, T_EXIT_VALUE] += close_qty * px
                t_flt[cur, T_EXIT_UNITS] += close_qty
                t_flt[cur, T_CASH] -= part * px
                t_flt[cur, T_FEES] += fee
                cash -= part * px + fee
                if close_qty >= abs(units):
                    units = 0.0
                    t_int[cur, 1] = i
                    t_int[cur, 3] = reason
                    cur = -1
                else:
                    units += part
                remaining = delta - part
            if remaining != 0.0:
                if cur < 0:
                    cur = n_trades
                    n_trades += 1
                    t_int[cur, 0] = i
                    t_int[cur, 1] = -1
                    t_int[cur, 2] = 1 if remaining > 0.0 else -1
                    t_int[cur, 3] = REASON_OPEN
                    for k in range(T_NFIELDS):
                        t_flt[cur, k] = 0.0
                fee = fee_total * (abs(remaining) / abs(delta))
                t_flt[cur, T_ENTRY_VALUE] += abs(remaining) * px
                t_flt[cur, T_ENTRY_UNITS] += abs(remaining)
                t_flt[cur, T_CASH] -= remaining * px
                t_flt[cur, T_FEES] += fee
                cash -= remaining * px + fee
                units += remaining
                if abs(units) > t_flt[cur, T_SIZE]:
                    t_flt[cur, T_SIZE] = abs(units)

        equity[i - start] = cash + units * c if not bankrupt else cash
        units_out[i - start] = units

    totals = np.array([fees, funding, notional])
    return t_int[:n_trades], t_flt[:n_trades], totals
