"""Built-in strategies: no look-ahead, indicator values, parameter checks, default grids."""

from __future__ import annotations

import statistics

import numpy as np
import pandas as pd
import pytest

from chimera_lab.backtest import indicators, optimize, run, strategies
from chimera_lab.data.synthetic import make_ohlcv
from chimera_lab.errors import ConfigError

BUILTINS = ["sma_cross", "rsi_reversion", "breakout", "bollinger_reversion", "kelly"]
# Small parameters so that every strategy trades on 400 bars.
SMALL = {
    "sma_cross": {"fast": 5, "slow": 20},
    "rsi_reversion": {"period": 7},
    "breakout": {"lookback": 10, "exit_lookback": 5},
    "bollinger_reversion": {"period": 10, "k": 1.5},
    "kelly": {"base": "sma_cross", "base_params": {"fast": 3, "slow": 8}, "lookback_trades": 10},
}


def test_registry_lists_the_builtins_by_name() -> None:
    assert set(BUILTINS) <= set(strategies.names())


@pytest.mark.parametrize("name", BUILTINS)
def test_signal_at_t_is_unchanged_when_later_bars_are_removed(name: str) -> None:
    data = make_ohlcv(400, seed=5, volatility=0.004)
    full = strategies.get(name)(data, **SMALL[name])
    assert full.index.equals(data.index)
    assert full.abs().sum() > 0, "strategy never took a position; the test would be vacuous"
    for cut in (25, 60, 150, 275, 399):
        part = strategies.get(name)(data.iloc[: cut + 1], **SMALL[name])
        pd.testing.assert_series_equal(part, full.iloc[: cut + 1], check_names=False)


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_has_a_grid_and_a_docstring_and_runs(name: str) -> None:
    spec = strategies.get(name)
    assert spec.grid, "default grid for optimisation"
    assert spec.description
    assert set(spec.grid) <= set(spec.parameters)
    res = run(make_ohlcv(400, seed=5, volatility=0.004), name, allow_short=True, **SMALL[name])
    assert res.stats["n_trades"] > 0


def test_sma_cross_is_the_sign_of_the_average_difference() -> None:
    data = make_ohlcv(60, seed=3)
    sig = strategies.sma_cross(data, fast=3, slow=10)
    close = data["close"].tolist()
    for t in range(len(close)):
        if t < 9:
            assert sig.iloc[t] == 0
            continue
        fast = sum(close[t - 2 : t + 1]) / 3
        slow = sum(close[t - 9 : t + 1]) / 10
        assert sig.iloc[t] == np.sign(fast - slow)


def test_rsi_matches_wilder_by_hand_loop() -> None:
    close = make_ohlcv(80, seed=9)["close"]
    period = 14
    values = close.tolist()
    changes = [b - a for a, b in zip(values[:-1], values[1:], strict=True)]
    gain = sum(max(c, 0) for c in changes[:period]) / period
    loss = sum(max(-c, 0) for c in changes[:period]) / period
    want = [float("nan")] * period + [100 - 100 / (1 + gain / loss)]
    for c in changes[period:]:
        gain = (gain * (period - 1) + max(c, 0)) / period
        loss = (loss * (period - 1) + max(-c, 0)) / period
        want.append(100 - 100 / (1 + gain / loss))
    np.testing.assert_allclose(indicators.rsi(close, period).to_numpy(), want, rtol=1e-12)


def test_bollinger_bands_use_population_standard_deviation() -> None:
    close = make_ohlcv(30, seed=4)["close"]
    lo, mid, up = indicators.bollinger_bands(close, 20, 2.0)
    window = close.iloc[-20:].tolist()
    assert mid.iloc[-1] == pytest.approx(statistics.mean(window))
    assert up.iloc[-1] - mid.iloc[-1] == pytest.approx(2 * statistics.pstdev(window))
    assert np.isnan(lo.iloc[18]) and not np.isnan(lo.iloc[19])


def test_donchian_excludes_the_current_bar() -> None:
    high = pd.Series([1.0, 2.0, 3.0, 10.0, 4.0])
    up, _ = indicators.donchian_channel(high, high, 2)
    assert up.tolist()[2:] == [2.0, 3.0, 10.0]


def test_breakout_enters_above_the_prior_high_and_reverses_below_the_low() -> None:
    idx = pd.date_range("2024-01-01", periods=6, freq="1h", tz="UTC")
    close = pd.Series([10.0, 10.5, 10.2, 11.0, 10.6, 9.0], index=idx)
    data = pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1.0})
    assert strategies.breakout(data, lookback=2).tolist() == [0, 0, 0, 1, 1, -1]


def test_bollinger_reversion_exits_at_the_middle_band() -> None:
    idx = pd.date_range("2024-01-01", periods=8, freq="1h", tz="UTC")
    close = pd.Series([10.0, 10.1, 9.9, 10.0, 8.0, 9.0, 10.5, 10.4], index=idx)
    data = pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1.0})
    sig = strategies.bollinger_reversion(data, period=4, k=1.0)
    # 8.0 falls below the lower band -> long; held at 9.0 (< middle); 10.5 >= middle -> flat
    # and above the upper band -> short.
    assert sig.tolist()[4:7] == [1.0, 1.0, -1.0]


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("sma_cross", {"fast": 50, "slow": 20}, "fast < slow"),
        ("rsi_reversion", {"lower": 80.0, "upper": 70.0}, "lower < upper"),
        ("breakout", {"lookback": 0}, "lookback >= 1"),
        ("bollinger_reversion", {"k": -1.0}, "k > 0"),
        ("sma_cross", {"fats": 5}, "did you mean fast"),
        ("sma_cross", {"fast": 2.5}, "must be an int"),
    ],
)
def test_invalid_parameters_raise_config_error(
    name: str, params: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        run(make_ohlcv(50, seed=1), name, **params)


def test_optimize_over_a_default_grid_skips_invalid_combinations() -> None:
    res = optimize(make_ohlcv(600, seed=8, volatility=0.003), "sma_cross")
    table = res.table
    assert len(table) == 12  # 4 x 3 combinations, one row each
    skipped = table[table["error"].notna()]
    assert skipped[["fast", "slow"]].to_numpy().tolist() == [[50, 50]]
    assert res.best_score == table["score"].max()
