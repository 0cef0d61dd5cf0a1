"""Metrics against hand-computed examples and stdlib; the engine's stats equal them (property)."""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np
import pandas as pd
import pytest
from bt_helpers import CAPITAL, paths, run_path
from hypothesis import HealthCheck, given, settings

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


_IDX = pd.date_range("2024-01-01", periods=3, freq="1D", tz="UTC")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: M.sharpe_ratio(pd.Series([0.1, np.inf, 0.2], index=_IDX)), "infinite value"),
        (lambda: M.sortino_ratio([0.1, -np.inf], periods_per_year=365), "infinite value"),
        (lambda: M.annual_volatility([0.1, np.inf], periods_per_year=365), "infinite value"),
        (lambda: M.total_return([np.inf]), r"infinite value \(inf\) at position 0"),
        (lambda: M.max_drawdown([100.0, np.inf]), "equity has an infinite value"),
        (lambda: M.sharpe_ratio(["a", "b"], periods_per_year=1), "returns must be numeric"),
        (lambda: M.sharpe_ratio(pd.Series(["a", "b"]), periods_per_year=1), "must be numeric"),
        (lambda: M.sharpe_ratio(np.ones((2, 2)), periods_per_year=1), "one-dimensional"),
        (lambda: M.sharpe_ratio([0.1, 0.2], periods_per_year="x"), "periods_per_year"),
        (lambda: M.sharpe_ratio([0.1, 0.2], periods_per_year=np.inf), "periods_per_year"),
        (lambda: M.max_drawdown_duration(np.array([1.0, 2.0])), "Series with a DatetimeIndex"),
        (lambda: M.max_drawdown_duration(pd.Series([1.0, 2.0])), "Series with a DatetimeIndex"),
        (lambda: M.total_fees(pd.DataFrame({"x": [1.0]})), "'fees' column"),
        (lambda: M.total_fees([1.0, 2.0]), "'fees' column"),
        (lambda: M.win_rate(pd.DataFrame({"x": [1.0]})), "'pnl' column"),
        (lambda: M.profit_factor([1.0, np.nan]), "NaN at position 1"),
    ],
)
def test_bad_inputs_raise_data_error_naming_the_problem(call: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        call()  # type: ignore[operator]


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


def _same(got: float, want: float, rel: float = 1e-9) -> bool:
    if math.isnan(want) or math.isnan(got):
        return math.isnan(want) and math.isnan(got)
    if math.isinf(want) or math.isinf(got):
        return got == want
    return got == pytest.approx(want, rel=rel, abs=1e-12)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(paths())
def test_engine_stats_equal_metrics_and_independent_formulas(p: dict[str, Any]) -> None:
    res = run_path(p)
    s, eq, r = res.stats, res.equity, res.returns
    e = eq.to_numpy()
    n = e.size
    index = p["data"].index
    spacing = index[1] - index[0]
    ppy = pd.Timedelta(days=365) / spacing
    years = n * spacing / pd.Timedelta(days=365)

    # 1. the public metric functions on the engine's own output
    assert s["periods_per_year"] == pytest.approx(ppy, rel=1e-12)
    pd.testing.assert_series_equal(r, M.to_returns(eq, initial=CAPITAL), check_names=False)
    public = {
        "sharpe": M.sharpe_ratio(r, periods_per_year=ppy),
        "sortino": M.sortino_ratio(r, periods_per_year=ppy),
        "volatility": M.annual_volatility(r, periods_per_year=ppy),
        "total_return": M.total_return(r),
        "cagr": M.cagr(r, years=years),
        "calmar": M.calmar_ratio(r, years=years),
        "max_drawdown": M.max_drawdown(eq, initial=CAPITAL),
        "exposure": M.exposure_time(res.positions),
        "win_rate": M.win_rate(res.trades),
        "profit_factor": M.profit_factor(res.trades),
        "fees": M.total_fees(res.trades),
    }
    for key, want in public.items():
        assert _same(s[key], want), (key, s[key], want)
    assert s["max_drawdown_duration"] == M.max_drawdown_duration(eq, initial=CAPITAL)
    assert s["n_trades"] == M.n_trades(res.trades) == len(res.trades)

    # 2. independent formulas, written out
    prev = np.r_[CAPITAL, e[:-1]]
    ret = np.where(prev > 0, e / np.where(prev > 0, prev, 1.0) - 1.0, 0.0)
    np.testing.assert_allclose(r.to_numpy(), ret, rtol=1e-12, atol=0)
    if n > 1:
        sd = float(np.std(ret, ddof=1))
        down = math.sqrt(float(np.mean(np.minimum(ret, 0.0) ** 2)))
        mean = float(np.mean(ret))
        if sd > 1e-12 * max(abs(mean), 1e-300):
            assert _same(s["sharpe"], mean / sd * math.sqrt(ppy), rel=1e-7)
            assert _same(s["volatility"], sd * math.sqrt(ppy), rel=1e-7)
        if down > 0:
            assert _same(s["sortino"], mean / down * math.sqrt(ppy), rel=1e-7)
    growth = float(np.prod(1.0 + ret))
    assert _same(s["total_return"], growth - 1.0)
    assert _same(s["final_equity"], float(e[-1]))
    try:
        want_cagr = -1.0 if growth <= 0 else growth ** (1.0 / years) - 1.0
    except OverflowError:  # a gain over minutes, annualised
        want_cagr = math.inf
    assert _same(s["cagr"], want_cagr)
    peak = np.maximum.accumulate(np.r_[CAPITAL, e])[1:]
    want_mdd = min(0.0, float(np.min(e / peak - 1.0)))
    assert s["max_drawdown"] == pytest.approx(want_mdd, rel=1e-12, abs=1e-15)
    # the longest stretch below a running peak (a plain loop), from the bar that set the peak
    t = eq.index.asi8
    best, top, top_t, under = 0, CAPITAL, t[0], False
    for i in range(n):
        if e[i] >= top:
            if under:
                best = max(best, t[i] - top_t)
            top, top_t, under = e[i], t[i], False
        else:
            under = True
    if under:
        best = max(best, t[-1] - top_t)
    assert s["max_drawdown_duration"] == pd.Timedelta(int(best), unit=eq.index.unit)
    assert s["exposure"] == np.count_nonzero(res.positions.to_numpy()) / n
    pnl = res.trades["pnl"].to_numpy()
    if pnl.size:
        assert s["win_rate"] == np.mean(pnl > 0)
    assert s["fees"] == pytest.approx(float(res.trades["fees"].sum()), rel=1e-12, abs=1e-12)
