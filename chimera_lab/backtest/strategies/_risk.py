"""The ``kelly`` strategy's risk overlay: every new target passes :meth:`RiskManager.check_order`.

A strategy returns its whole target series at once, but a pre-trade check needs the account
as it is at the decision: equity, its peak, the position. The overlay therefore keeps a
*shadow account* of its own targets, simulated with the engine's kernel and fill rules
(:func:`chimera_lab.backtest._kernels.simulate_from`, the same costs), decision by decision:

1. advance the shadow account to the close of the next decision bar t (a new Kelly target,
   or a regime change); on the way, the first close at which the drawdown kill switch trips
   (:meth:`RiskManager.drawdown_breached`) makes every later target 0 (flat and locked);
2. at the close of t, the proposed exposure (scaled by the regime's exposure multiplier)
   becomes an order for the difference in units at the close price, and ``check_order``
   approves, cuts or refuses it given the shadow equity, its running peak, the position,
   the regime label at t and the one-bar VaR forecast from returns up to t;
3. the approved position, as exposure of the shadow equity at that close, is the target
   from t until the next decision; a refused order leaves the target (and the position)
   as it was.

Everything used at bar t is known at t's close, so a target at t does not change when later
bars are removed. The shadow account models fees and slippage as the engine does, from
``trade_start``; stops, take-profits and funding are not modelled there (the engine's equity
then differs from what the overlay saw).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from chimera_lab.backtest import _kernels as K
from chimera_lab.risk.limits import MarketState, OrderRequest, PortfolioState, RiskManager
from chimera_lab.risk.regime import Regime

__all__ = ["SYMBOL", "apply_risk", "manager_from"]

FloatArray = npt.NDArray[np.float64]

SYMBOL = "BACKTEST"
"""The instrument's name in the orders and states given to ``check_order``."""


def apply_risk(
    data: pd.DataFrame,
    proposed: FloatArray,
    decide: npt.NDArray[np.bool_],
    manager: RiskManager,
    *,
    regimes: npt.NDArray[np.object_] | None,
    var: FloatArray | None,
    fee_rate: float,
    slip_rate: float,
    initial_capital: float,
    start: int,
    cap: float,
) -> FloatArray:
    """Return the targets after the risk checks (see the module notes).

    Parameters
    ----------
    proposed : ndarray
        Target exposure before risk per bar (direction x Kelly size).
    decide : ndarray of bool
        Bars at whose close a new target is proposed.
    regimes : ndarray of Regime or None, optional
        Regime label per bar (None: unknown, NORMAL limits); changes are decisions too.
    var : ndarray, optional
        One-bar VaR per unit of notional known at each bar's close (NaN: not yet, the VaR
        check is skipped).
    start : int
        The engine's first traded bar (``trade_start``); the account is flat before it.
    cap : float
        Largest absolute target (the strategy's ``max_leverage``): a partly approved
        reduction of a position that drifted above it is clipped to it.
    """
    n = len(data)
    o, h, lo, c = (
        K.readonly(np.ascontiguousarray(data[k].to_numpy(dtype=np.float64)))
        for k in ("open", "high", "low", "close")
    )
    mult = np.ones(n)
    points = decide.copy()
    if regimes is not None:
        # One hashed lookup instead of Regime(r) per bar: code i is list(Regime)[i] (a plain
        # string equal to a member's value matches it), -1 is None (warm-up, NORMAL limits).
        members = list(Regime)
        codes = pd.Index(members, dtype=object).get_indexer(pd.Index(regimes, dtype=object))
        unknown = np.flatnonzero((codes < 0) & ~np.equal(regimes, np.array(None, dtype=object)))
        if unknown.size:
            raise ValueError(f"{regimes[unknown[0]]!r} is not a valid Regime")
        # index -1 picks the trailing 1.0: no label scales nothing
        table = np.array([manager.limits(r).exposure_multiplier for r in members] + [1.0])
        mult = table[codes]
        points[1:] |= codes[1:] != codes[:-1]
    desired = proposed * mult
    if start >= 1:
        points[start - 1] = True  # the target traded at the first bar's open is checked too
    decisions = np.flatnonzero(points)

    adj = np.zeros(n)
    cash, units, last = float(initial_capital), 0.0, 0.0
    peak = float(initial_capital)
    pos = start  # next bar the shadow account simulates
    eq_buf, u_buf = np.empty(n), np.empty(n)

    def advance(to: int) -> int:
        # Simulate bars pos..to; return the first bar whose close trips the kill switch, or -1.
        nonlocal cash, units, last, peak, pos
        m = to + 1 - pos
        eq, held = eq_buf[:m], u_buf[:m]
        cash, units = K.simulate_from(
            o[: to + 1], h[: to + 1], lo[: to + 1], c[: to + 1], K.readonly(adj[: to + 1]),
            pos, cash, units, last, fee_rate, slip_rate, eq, held,
        )  # fmt: skip
        peaks = np.maximum.accumulate(np.maximum(eq, peak))
        tripped = np.flatnonzero(manager.drawdown_breached(eq, peaks))
        if tripped.size:
            return pos + int(tripped[0])
        peak = float(peaks[-1])
        last = float(adj[to - 1]) if to >= 1 else 0.0
        pos = to + 1
        return -1

    for k, t in enumerate(decisions.tolist()):
        stop = int(decisions[k + 1]) if k + 1 < decisions.size else n
        if t >= pos:
            killed = advance(t)
            if killed >= 0:
                adj[killed:] = 0.0
                return adj
        current = float(adj[t - 1]) if t >= 1 else 0.0
        want = float(desired[t])
        if want == current and t >= start:
            adj[t:stop] = current
            continue
        price = float(c[t])
        equity = cash + units * price if t >= start else float(initial_capital)
        held = units if t >= start else 0.0
        delta = want * equity / price - held if equity > 0 else -held
        regime = None if regimes is None else regimes[t]
        v = math.nan if var is None else float(var[t])
        market = MarketState(
            prices={SYMBOL: price},
            regime=regime,
            var=None if math.isnan(v) else {SYMBOL: max(v, 0.0)},
        )
        book = PortfolioState(
            equity=equity, peak_equity=max(peak, equity), positions={SYMBOL: held}
        )
        if delta == 0.0:
            adj[t:stop] = want
            continue
        order = OrderRequest(SYMBOL, "buy" if delta > 0 else "sell", quantity=abs(delta))
        decision = manager.check_order(order, book, market)
        if decision.kill_switch:
            adj[t:] = 0.0
            return adj
        if decision.approved_quantity >= decision.requested_quantity:
            adj[t:stop] = want
        elif decision.approved_quantity == 0.0:
            adj[t:stop] = current  # refused: no order, the position stays as it is
        else:
            after = held + math.copysign(decision.approved_quantity, delta)
            adj[t:stop] = min(max(after * price / equity, -cap), cap)
    if pos < n:
        killed = advance(n - 1)
        if killed >= 0:
            adj[killed:] = 0.0
    return adj


def manager_from(risk: Any) -> RiskManager | None:
    """Return the :class:`RiskManager` for a ``risk=`` value, or None when risk is off."""
    from chimera_lab.config import RiskSettings, Settings
    from chimera_lab.errors import ConfigError

    if risk is None or risk is False:
        return None
    if risk is True:
        return RiskManager(RiskSettings())
    if isinstance(risk, RiskManager):
        return risk
    if isinstance(risk, RiskSettings | Settings):
        return RiskManager(risk)
    raise ConfigError(
        f"risk must be True/False, a RiskManager, RiskSettings or Settings, got {risk!r}"
    )
