"""A deliberately simple pure-Python backtest simulator: the reference for the numba kernel.

It follows the fill rules written in ``chimera_lab/backtest/engine.py`` one bar at a time with
plain floats, records every fill and funding payment in a list, and only afterwards cuts the
fills into trades (flat to flat). Nothing is shared with the kernel except the rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Fill:
    bar: int
    units: float  # signed
    price: float
    fee: float
    reason: str


@dataclass
class RefResult:
    equity: list[float]
    units: list[float]
    fills: list[Fill]
    funding: list[tuple[int, float]]  # (bar, amount paid)
    trades: list[dict[str, object]] = field(default_factory=list)
    fees: float = 0.0
    funding_paid: float = 0.0


def target_units(units: float, equity: float, price: float, target: float, fee: float, slip: float):
    """Units to trade so that afterwards units * price == target * (equity after costs).

    Buying d > 0 units at price*(1+slip) with fee rate f lowers equity (marked at price) by
    d*price*(slip + (1+slip)*f); selling lowers it by |d|*price*(slip + (1-slip)*f). Writing
    (units + d) * price = target * (equity - cost(d)) and solving for d in each case.
    """
    if target == 0.0:
        return -units
    gap = target * equity - units * price
    if gap > 0:
        c = slip + (1 + slip) * fee
        return gap / (price * (1 + target * c))
    if gap < 0:
        c = slip + (1 - slip) * fee
        return gap / (price * (1 - target * c))
    return 0.0


def simulate(
    o: list[float],
    h: list[float],
    lo: list[float],
    c: list[float],
    target: list[float],
    *,
    start: int = 0,
    capital: float = 100_000.0,
    fee: float = 0.0,
    slip: float = 0.0,
    stop_loss: float | None = None,
    take_profit: float | None = None,
    tolerance: float | None = None,
    funding: dict[int, list[float]] | None = None,
) -> RefResult:
    funding = funding or {}
    cash = capital
    units = 0.0
    acted = 0.0
    bankrupt = False
    fills: list[Fill] = []
    paid: list[tuple[int, float]] = []
    equity: list[float] = []
    held: list[float] = []
    # Trade-average entry price for stops: recomputed from the fills of the open trade.
    entry_value = 0.0
    entry_units = 0.0

    def do_fill(i: int, d: float, px: float, reason: str) -> None:
        nonlocal cash, units, entry_value, entry_units
        fee_amt = abs(d) * px * fee
        cash -= d * px + fee_amt
        before = units
        units = before + d
        fills.append(Fill(i, d, px, fee_amt, reason))
        # Average entry price of the current trade (increasing fills only).
        if before == 0 or (before > 0) != (units > 0) and units != 0:
            # new trade (from flat, or the opening part of a flip)
            entry_value = abs(units) * px
            entry_units = abs(units)
        elif abs(units) > abs(before) and units != 0:
            entry_value += abs(d) * px
            entry_units += abs(d)
        if units == 0:
            entry_value = entry_units = 0.0

    for i in range(start, len(c)):
        if bankrupt:
            equity.append(cash)
            held.append(0.0)
            continue
        for rate in funding.get(i, []):
            if units != 0:
                amount = units * o[i] * rate
                cash -= amount
                paid.append((i, amount))
        if i > 0:
            tgt = target[i - 1]
            eq = cash + units * o[i]
            if eq <= 0:
                if units != 0:
                    px = o[i] * (1 - slip) if units > 0 else o[i] * (1 + slip)
                    do_fill(i, -units, px, "bankrupt")
                bankrupt = True
                equity.append(cash)
                held.append(0.0)
                continue
            go = False
            if tgt != acted:
                go = True
                acted = tgt
            elif tolerance is not None and units != 0:
                go = abs(units * o[i] / eq - tgt) > tolerance
            if go:
                d = target_units(units, eq, o[i], tgt, fee, slip)
                if d != 0:
                    px = o[i] * (1 + slip) if d > 0 else o[i] * (1 - slip)
                    do_fill(i, d, px, "signal")
        if units != 0 and (stop_loss is not None or take_profit is not None):
            entry = entry_value / entry_units
            long = units > 0
            sl = None if stop_loss is None else entry * (1 - stop_loss if long else 1 + stop_loss)
            tp = (
                None
                if take_profit is None
                else entry * (1 + take_profit if long else 1 - take_profit)
            )

            def hit_open(level, adverse, price=o[i], long=long):
                # Is the open already through `level`? adverse=True: the stop side (below
                # the entry for longs, above for shorts); False: the target side.
                if level is None:
                    return False
                return price <= level if (long == adverse) else price >= level

            exit_px = None
            if hit_open(sl, True):
                exit_px, why = o[i], "stop_loss"
            elif hit_open(tp, False):
                exit_px, why = o[i], "take_profit"
            elif sl is not None and (lo[i] <= sl if long else h[i] >= sl):
                exit_px, why = sl, "stop_loss"
            elif tp is not None and (h[i] >= tp if long else lo[i] <= tp):
                exit_px, why = tp, "take_profit"
            if exit_px is not None:
                px = exit_px * (1 - slip) if long else exit_px * (1 + slip)
                do_fill(i, -units, px, why)
        eq = cash + units * c[i]
        if eq <= 0 and units != 0:
            px = c[i] * (1 - slip) if units > 0 else c[i] * (1 + slip)
            do_fill(i, -units, px, "bankrupt")
            bankrupt = True
            eq = cash
        equity.append(eq)
        held.append(units)

    result = RefResult(equity, held, fills, paid)
    result.fees = sum(f.fee for f in fills)
    result.funding_paid = sum(a for _, a in paid)
    result.trades = _trades(fills, paid, c, held[-1] if held else 0.0)
    return result


def _trades(fills, paid, close, last_units):
    """Cut the fill list into flat-to-flat trades; a flip ends one trade and starts the next."""
    trades = []
    cur = None
    pos = 0.0

    def new(bar, side):
        return {
            "entry_bar": bar,
            "exit_bar": None,
            "side": side,
            "size": 0.0,
            "in_value": 0.0,
            "in_units": 0.0,
            "out_value": 0.0,
            "out_units": 0.0,
            "cash": 0.0,
            "fees": 0.0,
            "funding": 0.0,
            "exit_reason": "open",
        }

    pay_iter = sorted(paid)
    k = 0
    for f in fills:
        # funding paid before this fill belongs to the trade open at that time
        while k < len(pay_iter) and pay_iter[k][0] <= f.bar:
            if cur is not None:
                cur["funding"] += pay_iter[k][1]
            k += 1
        d = f.units
        parts = []
        if pos != 0 and (d > 0) != (pos > 0):
            closing = math.copysign(min(abs(d), abs(pos)), d)
            parts.append(closing)
            if abs(d) > abs(pos):
                parts.append(d - closing)
        else:
            parts.append(d)
        for part in parts:
            share = abs(part) / abs(d)
            if pos == 0:
                cur = new(f.bar, "long" if part > 0 else "short")
                trades.append(cur)
            opening = pos == 0 or (part > 0) == (pos > 0)
            if opening:
                cur["in_value"] += abs(part) * f.price
                cur["in_units"] += abs(part)
            else:
                cur["out_value"] += abs(part) * f.price
                cur["out_units"] += abs(part)
            cur["cash"] -= part * f.price
            cur["fees"] += f.fee * share
            pos = pos + part  # a full close is exactly -pos, so this lands on 0.0
            cur["size"] = max(cur["size"], abs(pos))
            if pos == 0:
                cur["exit_bar"] = f.bar
                cur["exit_reason"] = f.reason
                cur = None
    while k < len(pay_iter):
        if cur is not None:
            cur["funding"] += pay_iter[k][1]
        k += 1
    n = len(close)
    for t in trades:
        is_open = t["exit_bar"] is None
        if is_open:
            t["exit_bar"] = n - 1
            t["exit_price"] = close[-1]
            mark = last_units * close[-1]
        else:
            t["exit_price"] = t["out_value"] / t["out_units"]
            mark = 0.0
        t["entry_price"] = t["in_value"] / t["in_units"]
        t["pnl"] = t["cash"] + mark - t["fees"] - t["funding"]
        t["return"] = t["pnl"] / t["in_value"]
        t["bars_held"] = t["exit_bar"] - t["entry_bar"]
    return trades
