"""Metrics against hand-computed examples (the arithmetic is in the comments) and stdlib."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest

from chimera_lab.backtest import metrics as M
from chimera_lab.errors import DataError


def _daily(values: list[float], start: str = "2024-01-01") -> pd.Series:
    idx = pd.date_range(start, periods=len(values), freq="1D", tz="UTC")
    return pd.Series(values, index=idx)


def test_to_returns_measures_the_first_bar_from_initial_capital() -> None:
    r = M.to_returns(pd.Series([105.0, 94.5]), initial=100.0)
    assert r.tolist() == pytest.approx([0.05, -0.1])
    assert M.to_returns(pd.Series([105.0, 94.5])).tolist() == pytest.approx([-0.1])


def test_total_return_compounds() -> None:
    # 1.05 * 0.9 * 1.1 = 1.0395
    assert M.total_return([0.05, -0.1, 0.1]) == pytest.approx(0.0395)


def test_cagr_uses_calendar_time_with_365_day_years() -> None:
    # 730 daily bars = 2 years (last - first + one day); doubling => sqrt(2) - 1 per year.
    r = _daily([0.0] * 730)
    r.iloc[0] = 1.0
    assert M.cagr(r) == pytest.approx(math.sqrt(2) - 1)
    # 1-minute bars: 525,600 per year; 262,800 bars (half a year) with +10% => 1.1**2 - 1.
    idx = pd.date_range("2024-01-01", periods=262_800, freq="1min", tz="UTC")
    r = pd.Series(0.0, index=idx)
    r.iloc[-1] = 0.1
    assert M.cagr(r) == pytest.approx(0.21)
    assert M.cagr(_daily([-1.0, 0.0])) == -1.0


def test_volatility_sharpe_and_sortino_match_stdlib_formulas() -> None:
    rets = [0.01, -0.02, 0.015, 0.003, -0.007, 0.02]
    ppy = 8_760.0
    mean, sd = statistics.mean(rets), statistics.stdev(rets)
    assert M.annual_volatility(rets, periods_per_year=ppy) == pytest.approx(sd * math.sqrt(ppy))
    assert M.sharpe_ratio(rets, periods_per_year=ppy) == pytest.approx(mean / sd * math.sqrt(ppy))
    downside = math.sqrt(sum(min(x, 0.0) ** 2 for x in rets) / len(rets))
    assert M.sortino_ratio(rets, periods_per_year=ppy) == pytest.approx(
        mean / downside * math.sqrt(ppy)
    )


def test_sharpe_infers_periods_per_year_from_the_bar_spacing() -> None:
    values = [0.001, -0.002, 0.0015, 0.0005]
    for freq, ppy in [("1min", 525_600), ("1h", 8_760), ("1D", 365)]:
        idx = pd.date_range("2024-01-01", periods=4, freq=freq, tz="UTC")
        got = M.sharpe_ratio(pd.Series(values, index=idx))
        assert got == pytest.approx(M.sharpe_ratio(values, periods_per_year=ppy))


def test_sharpe_with_a_risk_free_rate_compounds_it_per_bar() -> None:
    rets = [0.01, 0.0, 0.02]
    rf_bar = 1.05 ** (1 / 365) - 1
    excess = [x - rf_bar for x in rets]
    want = statistics.mean(excess) / statistics.stdev(excess) * math.sqrt(365)
    assert M.sharpe_ratio(rets, risk_free=0.05, periods_per_year=365) == pytest.approx(want)


def test_ratios_with_zero_denominators() -> None:
    assert math.isnan(M.sharpe_ratio([0.0, 0.0, 0.0], periods_per_year=365))
    assert M.sharpe_ratio([0.01, 0.01], periods_per_year=365) == math.inf
    assert M.sortino_ratio([0.01, 0.02], periods_per_year=365) == math.inf
    assert math.isnan(M.sharpe_ratio([0.01], periods_per_year=365))


def test_max_drawdown_and_its_duration() -> None:
    # peak 120 on day 1, trough 90 on day 2 (-25%), back to 120 on day 4.
    eq = _daily([100.0, 120.0, 90.0, 110.0, 120.0, 125.0])
    assert M.max_drawdown(eq) == pytest.approx(-0.25)
    assert M.drawdown(eq).tolist() == pytest.approx([0.0, 0.0, -0.25, -1 / 12, 0.0, 0.0])
    assert M.max_drawdown_duration(eq) == pd.Timedelta(days=3)
    # never recovered: runs to the last bar
    assert M.max_drawdown_duration(_daily([100.0, 90.0, 95.0])) == pd.Timedelta(days=2)
    # the initial capital is the first peak
    assert M.max_drawdown([90.0, 100.0], initial=100.0) == pytest.approx(-0.1)
    assert M.max_drawdown_duration(_daily([90.0, 95.0, 101.0]), initial=100.0) == pd.Timedelta(
        days=2
    )
    assert M.max_drawdown(_daily([100.0, 101.0])) == 0.0


def test_calmar_is_cagr_over_drawdown() -> None:
    r = _daily([0.0] * 365)
    r.iloc[:3] = [0.1, -0.2, 0.5]  # wealth 1.1, 0.88, 1.32 => dd -20%, CAGR 32%
    assert M.calmar_ratio(r) == pytest.approx(0.32 / 0.2)


def test_trade_statistics() -> None:
    pnl = [100.0, -50.0, 30.0, -10.0, 0.0]
    assert M.win_rate(pnl) == pytest.approx(2 / 5)
    assert M.profit_factor(pnl) == pytest.approx(130 / 60)
    assert M.average_win(pnl) == pytest.approx(65.0)
    assert M.average_loss(pnl) == pytest.approx(-30.0)
    assert M.n_trades(pnl) == 5
    assert M.profit_factor([5.0, 1.0]) == math.inf
    assert math.isnan(M.profit_factor([]))
    assert math.isnan(M.win_rate([]))
    trades = pd.DataFrame({"pnl": pnl, "fees": [1.0, 2.0, 0.5, 0.5, 0.0]})
    assert M.win_rate(trades) == pytest.approx(0.4)
    assert M.total_fees(trades) == pytest.approx(4.0)


def test_exposure_and_turnover() -> None:
    assert M.exposure_time(np.array([0.0, 0.0, 2.0, -1.0])) == 0.5
    assert M.turnover(1_000.0, [100.0, 300.0]) == pytest.approx(5.0)


def test_nan_input_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="NaN at position 1"):
        M.sharpe_ratio([0.01, float("nan")], periods_per_year=365)
    with pytest.raises(DataError, match="periods_per_year"):
        M.sharpe_ratio([0.01, 0.02])


def test_engine_stats_equal_the_metric_functions_on_its_output() -> None:
    from chimera_lab.backtest import run
    from chimera_lab.data.synthetic import make_ohlcv

    res = run(make_ohlcv(3_000, seed=12, volatility=0.003), "breakout", lookback=30)
    s, eq, r = res.stats, res.equity, res.returns
    cap = s["initial_capital"]
    pd.testing.assert_series_equal(r, M.to_returns(eq, initial=cap), check_names=False)
    assert s["sharpe"] == pytest.approx(M.sharpe_ratio(r), rel=1e-9)
    assert s["sortino"] == pytest.approx(M.sortino_ratio(r), rel=1e-9)
    assert s["volatility"] == pytest.approx(M.annual_volatility(r), rel=1e-9)
    assert s["total_return"] == pytest.approx(M.total_return(r), rel=1e-9)
    assert s["cagr"] == pytest.approx(M.cagr(r), rel=1e-9)
    assert s["calmar"] == pytest.approx(M.calmar_ratio(r), rel=1e-9)
    assert s["max_drawdown"] == pytest.approx(M.max_drawdown(eq, initial=cap), rel=1e-12)
    assert s["max_drawdown_duration"] == M.max_drawdown_duration(eq, initial=cap)
    assert s["exposure"] == M.exposure_time(res.positions)
    assert s["win_rate"] == M.win_rate(res.trades)
    assert s["profit_factor"] == pytest.approx(M.profit_factor(res.trades))
    assert s["fees"] == pytest.approx(M.total_fees(res.trades), rel=1e-9)
    assert s["n_trades"] == M.n_trades(res.trades) > 10
    assert s["final_equity"] == pytest.approx(cap * (1 + s["total_return"]), rel=1e-9)
