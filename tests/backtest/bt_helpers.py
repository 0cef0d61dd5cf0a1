"""Helpers for backtest tests: hand-made bars and exposure series."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import strategies as st

from chimera_lab.backtest import BacktestResult, run

CAPITAL = 10_000.0
LEVELS = [-2.0, -1.0, -0.4, 0.0, 0.3, 0.5, 1.0, 2.0]


def bars(
    opens: Sequence[float],
    closes: Sequence[float],
    highs: Sequence[float] | None = None,
    lows: Sequence[float] | None = None,
    *,
    freq: str = "1min",
    start: str = "2024-01-01",
) -> pd.DataFrame:
    """Hand-written bars; high/low default to the body's extremes."""
    o = np.asarray(opens, float)
    c = np.asarray(closes, float)
    h = np.maximum(o, c) if highs is None else np.asarray(highs, float)
    lo = np.minimum(o, c) if lows is None else np.asarray(lows, float)
    idx = pd.date_range(start, periods=len(o), freq=freq, tz="UTC", name="timestamp")
    return pd.DataFrame(
        {"open": o, "high": h, "low": lo, "close": c, "volume": np.ones(len(o))}, index=idx
    )


def signal(data: pd.DataFrame, values: Sequence[float]) -> pd.Series:
    return pd.Series(np.asarray(values, float), index=data.index, name="target")


@st.composite
def paths(draw: st.DrawFn) -> dict[str, Any]:
    """Random bars (1min/1h/1d), a random target path with shorts and 2x leverage, costs
    and a warm-up boundary (hypothesis strategy)."""
    n = draw(st.integers(2, 50))
    rets = draw(st.lists(st.floats(-0.08, 0.08), min_size=n, max_size=n))
    gaps = draw(st.lists(st.floats(-0.03, 0.03), min_size=n, max_size=n))
    o, c = [], []
    prev = 100.0
    for k in range(n):
        op = prev * math.exp(gaps[k])
        prev = op * math.exp(rets[k])
        o.append(op)
        c.append(prev)
    steps = draw(st.lists(st.one_of(st.none(), st.sampled_from(LEVELS)), min_size=n, max_size=n))
    target, last = [], 0.0
    for s in steps:
        last = last if s is None else s
        target.append(last)
    freq = draw(st.sampled_from(["1min", "1h", "1D"]))
    idx = pd.date_range("2024-01-01", periods=n, freq=freq, tz="UTC", name="timestamp")
    data = pd.DataFrame(
        {
            "open": o,
            "high": np.maximum(o, c) * 1.001,
            "low": np.minimum(o, c) * 0.999,
            "close": c,
            "volume": 1.0,
        },
        index=idx,
    )
    return {
        "data": data,
        "target": pd.Series(target, index=idx),
        "fee_bps": draw(st.sampled_from([0.0, 6.0, 30.0])),
        "slippage_bps": draw(st.sampled_from([0.0, 5.0, 50.0])),
        "start": draw(st.integers(0, n - 1)),
    }


def run_path(p: dict[str, Any]) -> BacktestResult:
    """Backtest a :func:`paths` example (2x leverage, shorts allowed)."""
    data = p["data"]
    return run(
        data,
        p["target"],
        initial_capital=CAPITAL,
        fee_bps=p["fee_bps"],
        slippage_bps=p["slippage_bps"],
        leverage=2.0,
        allow_short=True,
        trade_start=data.index[p["start"]],
    )
