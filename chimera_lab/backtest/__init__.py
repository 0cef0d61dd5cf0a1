"""Backtest engine: honest fills, numba kernels, metrics, strategies and tear sheets.

>>> from chimera_lab.backtest import run, metrics
>>> from chimera_lab.data.synthetic import make_ohlcv
>>> res = run(make_ohlcv(1_000, seed=3), "breakout", lookback=20)
>>> sorted(res.stats)[:3]
['avg_bars_held', 'avg_loss', 'avg_trade_return']
"""

from __future__ import annotations

from chimera_lab.backtest import metrics, strategies
from chimera_lab.backtest.engine import StrategyLike, run
from chimera_lab.backtest.optimize import OptimizeResult, optimize
from chimera_lab.backtest.result import SUMMARY_KEYS, BacktestResult, format_summary
from chimera_lab.backtest.strategies import (
    StrategySpec,
    load_strategy,
    resolve_strategy,
    strategy,
)

__all__ = [
    "SUMMARY_KEYS",
    "BacktestResult",
    "OptimizeResult",
    "StrategyLike",
    "StrategySpec",
    "format_summary",
    "load_strategy",
    "metrics",
    "optimize",
    "resolve_strategy",
    "run",
    "strategies",
    "strategy",
]
