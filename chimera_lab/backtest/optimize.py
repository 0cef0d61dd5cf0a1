"""Grid search over a strategy's parameters (the building block of walk-forward optimisation)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from chimera_lab.backtest.engine import run
from chimera_lab.backtest.result import SUMMARY_KEYS, BacktestResult
from chimera_lab.backtest.strategies._registry import StrategyFunc, StrategySpec, resolve_strategy
from chimera_lab.errors import ChimeraError, ConfigError
from chimera_lab.logging import get_logger

__all__ = ["OptimizeResult", "optimize"]

log = get_logger(__name__)

Objective = str | Callable[[BacktestResult], float]


@dataclass(frozen=True)
class OptimizeResult:
    """The outcome of :func:`optimize`.

    Attributes
    ----------
    best_params : dict
        The best valid combination (ties: the first in grid order).
    best_score : float
        Its objective value (as maximised: a ``"-key"`` objective reports ``-stats[key]``).
    table : DataFrame
        One row per combination, best first: the parameters, ``score``, ``error`` (why a
        combination was skipped, else ``None``) and the stats :data:`SUMMARY_KEYS`.
    objective : str
        The objective's name.
    strategy : str
        The strategy's name.
    """

    best_params: dict[str, Any]
    best_score: float
    table: pd.DataFrame
    objective: str
    strategy: str


def _score_function(objective: Objective) -> tuple[str, Callable[[BacktestResult], float]]:
    if callable(objective):
        return getattr(objective, "__name__", "objective"), objective
    if not isinstance(objective, str) or not objective.lstrip("-"):
        raise ConfigError(f"objective must be a stats key or a callable, got {objective!r}")
    sign = -1.0 if objective.startswith("-") else 1.0
    key = objective.lstrip("-")

    def score(result: BacktestResult) -> float:
        if key not in result.stats:
            import difflib

            close = difflib.get_close_matches(key, list(result.stats), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown objective {key!r}{hint} (any stats key works)")
        value = result.stats[key]
        if isinstance(value, pd.Timedelta):
            value = value / pd.Timedelta(days=1)
        return sign * float(value)

    return objective, score


def optimize(
    data: pd.DataFrame,
    strategy: str | StrategyFunc | StrategySpec,
    grid: Mapping[str, Sequence[Any]] | None = None,
    *,
    objective: Objective = "sharpe",
    trade_start: str | pd.Timestamp | None = None,
    **run_kwargs: Any,
) -> OptimizeResult:
    """Backtest every combination of ``grid`` and pick the one that maximises ``objective``.

    Parameters
    ----------
    data : DataFrame
        OHLCV bars.
    strategy : str, callable or StrategySpec
        As for :func:`~chimera_lab.backtest.run` (not a precomputed series).
    grid : mapping of str to sequence, optional
        Values to try per parameter; default: the strategy's registered grid.
    objective : str or callable
        A stats key, maximised (``"sharpe"``, ``"cagr"``, ``"calmar"`` ...). Drawdowns are
        negative fractions, so ``"max_drawdown"`` picks the *shallowest* drawdown. Prefix a
        key with ``-`` to minimise it (``"-volatility"``). A callable gets the
        :class:`~chimera_lab.backtest.BacktestResult` and returns a float. NaN scores (e.g.
        Sharpe without any trade) rank last.
    trade_start : str or Timestamp, optional
        Warm-up boundary, passed to :func:`~chimera_lab.backtest.run`: bars before it feed
        indicators but are not traded or scored.
    **run_kwargs
        Engine settings and fixed strategy parameters for every run.

    Returns
    -------
    OptimizeResult

    Raises
    ------
    ConfigError
        Empty grid, unknown parameter or objective, or no valid combination at all.
        Combinations the strategy rejects with a :class:`~chimera_lab.errors.ChimeraError`
        (e.g. ``fast >= slow``) are skipped and listed with their reason.

    Examples
    --------
    >>> from chimera_lab.data.synthetic import make_ohlcv
    >>> res = optimize(make_ohlcv(3_000, seed=2), "sma_cross", {"fast": [10, 50], "slow": [50]})
    >>> res.best_params
    {'fast': 10, 'slow': 50}
    >>> res.table["error"].tolist()
    [None, 'sma_cross needs 1 <= fast < slow, got fast=50, slow=50']
    """
    if isinstance(strategy, pd.Series | pd.DataFrame):
        raise ConfigError("optimize needs a strategy to call, not a precomputed series")
    spec = resolve_strategy(strategy)
    grid = dict(spec.grid if grid is None else grid)
    if not grid:
        raise ConfigError(
            f"no parameter grid for strategy {spec.name!r}; pass grid={{'name': [values]}}"
        )
    known = spec.parameters
    for key, values in grid.items():
        if key not in known and not spec.accepts_any:
            raise ConfigError(
                f"grid names {key!r}, which strategy {spec.name!r} does not take "
                f"(parameters: {', '.join(known)})"
            )
        if isinstance(values, str) or len(values) == 0:
            raise ConfigError(f"grid[{key!r}] must be a non-empty sequence of values")
        if key in run_kwargs:
            raise ConfigError(f"{key!r} is both in the grid and fixed in run_kwargs")
    name, score_of = _score_function(objective)
    keys = list(grid)
    rows: list[dict[str, Any]] = []
    combos = [dict(zip(keys, c, strict=True)) for c in itertools.product(*grid.values())]
    for params in combos:
        row: dict[str, Any] = {}
        try:
            result = run(data, spec, trade_start=trade_start, **run_kwargs, **params)
        except ChimeraError as exc:
            row.update(score=math.nan, error=str(exc))
            rows.append(row)
            continue
        score = score_of(result)
        row.update(score=score, error=None)
        row.update({k: result.stats[k] for k in SUMMARY_KEYS})
        rows.append(row)
    table = pd.DataFrame(rows)
    for key in keys:  # keep parameter values as given (None stays None, ints stay ints)
        table[key] = pd.Series([p[key] for p in combos], dtype=object)
    table = table[keys + [c for c in table.columns if c not in keys]]
    valid = table["error"].isna()
    if not valid.any():
        raise ConfigError(
            f"no valid parameter combination for {spec.name!r}; first reason: "
            f"{table['error'].iloc[0]}"
        )
    # Best first; NaN scores and skipped combinations last; ties keep grid order.
    order = table.assign(_valid=valid, _s=table["score"].fillna(-math.inf)).sort_values(
        ["_valid", "_s"], ascending=[False, False], kind="stable"
    )
    best_params = dict(combos[int(order.index[0])])
    table = table.loc[order.index].reset_index(drop=True)
    table["error"] = table["error"].astype(object).where(table["error"].notna(), None)
    best = table.iloc[0]
    log.info("backtest.optimize", strategy=spec.name, combos=len(table), objective=name)
    return OptimizeResult(
        best_params=best_params,
        best_score=float(best["score"]),
        table=table,
        objective=name,
        strategy=spec.name,
    )
