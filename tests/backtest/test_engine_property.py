"""The numba kernel equals the pure-Python reference simulator (tests/backtest/reference.py).

Tolerance: 1e-9 relative on equity at every bar and on every trade field, with an absolute
floor of 1e-9 x initial capital (so bars where an account is bankrupt near zero compare on
the capital's scale).
"""

from __future__ import annotations

import bt_reference as ref
import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chimera_lab.backtest import run

CAPITAL = 10_000.0
RTOL = 1e-9
ATOL = 1e-9 * CAPITAL
LEVELS = [-2.0, -1.0, -0.5, 0.0, 0.25, 0.5, 1.0, 1.5, 2.0]


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, object]:
    n = draw(st.integers(2, 40))
    # Mostly ordinary moves; now and then a crash or squeeze big enough to bankrupt 2x leverage.
    move = st.one_of(st.floats(-0.15, 0.15), st.floats(-0.15, 0.15), st.sampled_from([-0.7, 0.7]))
    rets = draw(st.lists(move, min_size=n, max_size=n))
    gaps = draw(st.lists(st.floats(-0.08, 0.08), min_size=n, max_size=n))
    wicks = draw(
        st.lists(st.tuples(st.floats(0, 0.08), st.floats(0, 0.08)), min_size=n, max_size=n)
    )
    o, c, h, lo = [], [], [], []
    prev = 100.0
    for k in range(n):
        op = prev * float(np.exp(gaps[k]))
        cl = op * float(np.exp(rets[k]))
        o.append(op)
        c.append(cl)
        h.append(max(op, cl) * (1 + wicks[k][0]))
        lo.append(min(op, cl) * (1 - wicks[k][1]))
        prev = cl
    # Targets: a new level or "hold the previous one", so runs of equal targets occur.
    steps = draw(st.lists(st.one_of(st.none(), st.sampled_from(LEVELS)), min_size=n, max_size=n))
    target, last = [], 0.0
    for s in steps:
        last = last if s is None else s
        target.append(last)
    funding_bars = draw(st.lists(st.integers(0, n - 1), max_size=6))
    funding_rates = draw(
        st.lists(st.floats(-0.01, 0.01), min_size=len(funding_bars), max_size=len(funding_bars))
    )
    return {
        "o": o,
        "h": h,
        "lo": lo,
        "c": c,
        "target": target,
        "fee_bps": draw(st.sampled_from([0.0, 1.0, 6.0, 25.0])),
        "slippage_bps": draw(st.sampled_from([0.0, 2.0, 10.0])),
        "stop_loss": draw(st.one_of(st.none(), st.floats(0.005, 0.2))),
        "take_profit": draw(st.one_of(st.none(), st.floats(0.005, 0.3))),
        "tolerance": draw(st.one_of(st.none(), st.floats(0.0, 0.5))),
        "start": draw(st.integers(0, n - 1)),
        # Funding events: some exactly at a bar's open, some 30 s before it (same bar).
        "funding": list(zip(funding_bars, funding_rates, strict=True)),
        "offset": draw(st.booleans()),
    }


def _frame(s: dict[str, object]) -> pd.DataFrame:
    n = len(s["c"])  # type: ignore[arg-type]
    idx = pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC", name="timestamp")
    return pd.DataFrame(
        {"open": s["o"], "high": s["h"], "low": s["lo"], "close": s["c"], "volume": 1.0},
        index=idx,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_kernel_matches_reference_on_equity_and_every_trade(s: dict[str, object]) -> None:
    data = _frame(s)
    index = data.index
    fund_times, fund_rates = [], []
    for bar, rate in s["funding"]:  # type: ignore[attr-defined]
        shift = pd.Timedelta(seconds=30) if (s["offset"] and bar > 0) else pd.Timedelta(0)
        fund_times.append(index[bar] - shift)
        fund_rates.append(rate)
    funding = pd.Series(fund_rates, index=pd.DatetimeIndex(fund_times), dtype=float)
    # The reference gets events per bar (the first bar opening at or after each time), in
    # time order; events before the first traded bar are ignored, as the engine documents.
    ref_funding: dict[int, list[float]] = {}
    for t, rate in sorted(zip(fund_times, fund_rates, strict=True), key=lambda x: x[0]):
        bar = int(index.searchsorted(t))
        if bar >= s["start"]:  # type: ignore[operator]
            ref_funding.setdefault(bar, []).append(rate)

    res = run(
        data,
        pd.Series(s["target"], index=index),
        initial_capital=CAPITAL,
        fee_bps=s["fee_bps"],
        slippage_bps=s["slippage_bps"],
        leverage=2.0,
        allow_short=True,
        stop_loss=s["stop_loss"],
        take_profit=s["take_profit"],
        rebalance_tolerance=s["tolerance"],
        funding=funding,
        trade_start=index[s["start"]],
    )
    want = ref.simulate(
        s["o"],
        s["h"],
        s["lo"],
        s["c"],
        s["target"],
        start=s["start"],
        capital=CAPITAL,
        fee=s["fee_bps"] / 1e4,
        slip=s["slippage_bps"] / 1e4,
        stop_loss=s["stop_loss"],
        take_profit=s["take_profit"],
        tolerance=s["tolerance"],
        funding=ref_funding,
    )
    np.testing.assert_allclose(res.equity.to_numpy(), want.equity, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(res.positions.to_numpy(), want.units, rtol=RTOL, atol=1e-12)
    assert res.stats["fees"] == _approx(want.fees)
    assert res.stats["funding"] == _approx(want.funding_paid)

    trades = res.trades
    assert len(trades) == len(want.trades)
    for got, exp in zip(trades.to_dict("records"), want.trades, strict=True):
        for key in ("entry_bar", "exit_bar", "side", "exit_reason", "bars_held"):
            assert got[key] == exp[key], key
        for key in ("size", "entry_price", "exit_price", "return"):
            assert got[key] == _approx(exp[key], scale=1.0), key
        for key in ("fees", "funding", "pnl"):
            assert got[key] == _approx(exp[key]), key
    # Every unit of profit is accounted for by a trade.
    assert trades["pnl"].sum() == _approx(res.stats["final_equity"] - CAPITAL)


def _approx(x: float, scale: float = CAPITAL):  # noqa: ANN202 - pytest.approx object
    import pytest

    return pytest.approx(x, rel=RTOL, abs=1e-9 * scale)
