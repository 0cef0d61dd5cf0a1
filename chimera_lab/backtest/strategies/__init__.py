"""The strategy registry and the built-in strategies.

A strategy is a plain function ``f(data, **params) -> pd.Series`` of **target exposure**
(fraction of equity, in ``[-leverage, leverage]``) per bar, computed from bars up to and
including that bar's close. Register one with :func:`strategy`; look it up with :func:`get`
(unknown names suggest close matches); load one from a file with
:func:`load_strategy` (``"path/to/file.py:function"``); or let :func:`resolve_strategy`
accept any of a name, a callable or a file target.

Built-ins: ``sma_cross``, ``rsi_reversion``, ``breakout``, ``bollinger_reversion`` and
``kelly`` (a base signal sized by the Kelly criterion).

Examples
--------
>>> from chimera_lab.backtest import strategies
>>> strategies.names()[:3]
['bollinger_reversion', 'breakout', 'kelly']
>>> strategies.get("rsi_reversion").defaults
{'period': 14, 'lower': 30.0, 'upper': 70.0}
"""

from __future__ import annotations

from chimera_lab.backtest.strategies._registry import (
    StrategyFunc,
    StrategySpec,
    get,
    load_strategy,
    names,
    resolve_strategy,
    strategy,
    unregister,
)
from chimera_lab.backtest.strategies.kelly import kelly
from chimera_lab.backtest.strategies.technical import (
    bollinger_reversion,
    breakout,
    rsi_reversion,
    sma_cross,
)

__all__ = [
    "StrategyFunc",
    "StrategySpec",
    "bollinger_reversion",
    "breakout",
    "get",
    "kelly",
    "load_strategy",
    "names",
    "resolve_strategy",
    "rsi_reversion",
    "sma_cross",
    "strategy",
    "unregister",
]
