"""Grid search: objectives, skipped combinations, warm-up, the result table."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from chimera_lab.backtest import SUMMARY_KEYS, optimize, run
from chimera_lab.data.synthetic import make_ohlcv
from chimera_lab.errors import ConfigError


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return make_ohlcv(1_500, seed=21, volatility=0.002)


GRID = {"fast": [5, 10, 30], "slow": [30, 60]}


def test_best_row_matches_a_direct_run(data: pd.DataFrame) -> None:
    res = optimize(data, "sma_cross", GRID, objective="sharpe", fee_bps=2)
    direct = run(data, "sma_cross", fee_bps=2, **res.best_params)
    assert res.best_score == pytest.approx(direct.stats["sharpe"])
    assert list(res.table.columns[:4]) == ["fast", "slow", "score", "error"]
    assert set(SUMMARY_KEYS) <= set(res.table.columns)
    valid = res.table[res.table["error"].isna()]
    assert valid["score"].is_monotonic_decreasing
    assert len(res.table) == 6 and res.table["error"].notna().sum() == 1  # fast=30, slow=30


def test_max_drawdown_objective_prefers_the_shallowest(data: pd.DataFrame) -> None:
    res = optimize(data, "sma_cross", GRID, objective="max_drawdown")
    valid = res.table[res.table["error"].isna()]
    assert res.best_score == valid["max_drawdown"].max() <= 0


def test_minus_prefix_minimises_and_callables_work(data: pd.DataFrame) -> None:
    res = optimize(data, "sma_cross", GRID, objective="-volatility")
    valid = res.table[res.table["error"].isna()]
    assert -res.best_score == pytest.approx(valid["volatility"].min())
    res = optimize(data, "sma_cross", GRID, objective=lambda r: -r.stats["n_trades"])
    assert -res.best_score == valid["n_trades"].min()


def test_trade_start_is_passed_as_warm_up(data: pd.DataFrame) -> None:
    start = data.index[500]
    res = optimize(data, "sma_cross", {"fast": [5], "slow": [60]}, trade_start=start)
    direct = run(data, "sma_cross", fast=5, slow=60, trade_start=start)
    assert direct.equity.index[0] == start
    assert res.best_score == pytest.approx(direct.stats["sharpe"])


def test_nan_scores_rank_last(data: pd.DataFrame) -> None:
    # A 500-bar slow average on 200 bars never trades: Sharpe is NaN and ranks last.
    res = optimize(data.iloc[:200], "sma_cross", {"fast": [5], "slow": [20, 500]})
    assert res.best_params == {"fast": 5, "slow": 20}
    assert math.isnan(res.table["score"].iloc[-1])


def test_parameter_values_keep_their_types(data: pd.DataFrame) -> None:
    res = optimize(data, "breakout", {"lookback": [20], "exit_lookback": [None, 10]})
    assert res.best_params["exit_lookback"] in (None, 10)
    assert res.table["exit_lookback"].tolist().count(None) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"grid": {"fats": [1]}}, "does not take"),
        ({"grid": {"fast": []}}, "non-empty"),
        ({"grid": {"fast": [50], "slow": [10]}}, "no valid parameter combination"),
        ({"grid": {"fast": [5], "slow": [10]}, "objective": "sharp"}, "did you mean sharpe"),
        ({"grid": {"fast": [5]}, "slow": 10, "fast": 3}, "both in the grid"),
    ],
)
def test_bad_requests_are_config_errors(
    data: pd.DataFrame, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        optimize(data, "sma_cross", **kwargs)  # type: ignore[arg-type]
