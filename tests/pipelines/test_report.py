"""The walk-forward report's tables against hand-computed values (synthetic fold records)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from chimera_lab.data.synthetic import make_ohlcv
from chimera_lab.pipelines.report import (
    WalkForwardRun,
    equity_curves,
    fold_table,
    oos_summary,
    parameter_stability,
    plot_equity,
    plot_parameter_stability,
    plot_sharpe_gap,
    sharpe_gap,
    var_coverage,
)


def _run(timeframe: str = "1m") -> WalkForwardRun:
    bars = make_ohlcv(3000, seed=5, timeframe=timeframe)
    idx = bars.index
    folds, parts = [], []
    chosen = [{"fast": 30, "slow": 60}, {"fast": 30, "slow": 60}, {"fast": 10, "slow": 60}]
    sharpes = [(2.0, 0.5), (1.5, -0.5), (3.0, 1.0)]
    rng = np.random.default_rng(0)
    for k in range(3):
        a, b = 1000 + 600 * k, 1600 + 600 * k
        r = pd.Series(rng.normal(0, 0.001, b - a), index=idx[a:b])
        parts.append(r)
        folds.append(
            {
                "fold": k,
                "status": "ok",
                "error": None,
                "best_params": chosen[k],
                "is_stats": {"sharpe": sharpes[k][0], "total_return": 0.01},
                "oos_stats": {
                    "sharpe": sharpes[k][1],
                    "total_return": float((1 + r).prod() - 1),
                    "max_drawdown": -0.01,
                    "n_trades": 3,
                },
                "test_start": idx[a].isoformat(),
                "test_end": idx[b - 1].isoformat(),
                "grid": {"fast": [10, 30], "slow": [60]},
                "n_candidates": 2,
                "cost_model": {"fee_bps": 6.0, "slippage_bps": 2.0, "exit_at_end": True},
                "warmup_used_test": 60 if k else 20,
                "warmup_short": k == 0,
                "warmup_check": {"extended": k == 2, "agreed": k != 0},
            }
        )
    folds.append(
        {
            "fold": 3,
            "status": "failed",
            "error": {"message": "boom"},
            "test_start": idx[2800].isoformat(),
            "test_end": idx[2999].isoformat(),
        }
    )
    return WalkForwardRun("synthetic", folds, pd.concat(parts), bars)


def test_equity_and_summary_match_hand_computation() -> None:
    run = _run()
    curves = equity_curves(run)
    r = run.oos_returns
    assert curves["strategy"].iloc[-1] == pytest.approx(float(np.prod(1 + r.to_numpy())))
    close = run.bars["close"]
    bh = close.pct_change().loc[r.index]
    assert curves["buy_and_hold"].iloc[-1] == pytest.approx(float(np.prod(1 + bh.to_numpy())))
    s = oos_summary(run)
    assert s["n_bars"] == 1800 and s["total_return"] == pytest.approx(
        curves["strategy"].iloc[-1] - 1
    )
    expected_sharpe = r.mean() / r.std(ddof=1) * math.sqrt(525_600)
    assert s["sharpe"] == pytest.approx(expected_sharpe, rel=1e-9)
    text = run.summary()
    assert "3 of 4 folds finished (1 failed)" in text


def test_fold_table_lists_failures_with_their_error() -> None:
    table = fold_table(_run())
    assert list(table.index) == [0, 1, 2, 3]
    assert table.loc[3, "status"] == "failed" and table.loc[3, "error"] == "boom"
    assert table.loc[2, "param_fast"] == 10 and table.loc[1, "oos_sharpe"] == -0.5
    # Integer parameters stay integers next to a failed fold (printed 10, not 10.0).
    assert str(table["param_fast"].dtype) == "Int64" and pd.isna(table.loc[3, "param_fast"])
    assert "10.0" not in table[["param_fast"]].to_string()
    # One timestamp format (ISO Z), and the warm-up each test window got, flagged.
    assert table.loc[0, "test_start"].endswith("Z") and "+00:00" not in table.to_string()
    assert table["warmup_note"].tolist()[:3] == ["SHORT", "", "extended"]


def test_parameter_stability_by_hand() -> None:
    stab = parameter_stability(_run())
    fast, slow = stab.loc["fast"], stab.loc["slow"]
    assert [fast[f"fold_{k}"] for k in range(3)] == [30, 30, 10]
    assert fast["n_distinct"] == 2 and fast["mode"] == 30
    assert fast["mode_share"] == pytest.approx(2 / 3) and fast["changes"] == 1
    values = np.array([30, 30, 10], dtype=float)
    assert fast["cv"] == pytest.approx(values.std() / values.mean())
    assert slow["n_distinct"] == 1 and slow["changes"] == 0 and slow["cv"] == 0.0


def test_sharpe_gap_by_hand() -> None:
    gap = sharpe_gap(_run())
    assert gap["gap"].tolist() == [1.5, 2.0, 2.0]
    assert gap["is_sharpe"].mean() == pytest.approx(6.5 / 3)


def test_var_coverage_uses_risk_backtests() -> None:
    from chimera_lab.risk import rolling_var, var_backtest

    run = _run()
    table = var_coverage(
        run, confidence=0.95, window_bars=200, methods=("historical", "parametric")
    )
    assert list(table.index) == ["historical", "parametric"]
    ref = var_backtest(run.oos_returns, rolling_var(run.oos_returns, 200, "historical", 0.95), 0.95)
    assert table.loc["historical", "exceedances"] == ref.n_exceedances
    assert table.loc["historical", "n_obs"] == 1600
    # One-minute bars: no Basel traffic light (its 250 observations are trading days, not
    # four hours), and a verdict per method that agrees with the tests' p-values.
    assert not {"basel", "basel_obs", "basel_exceedances"} & set(table.columns)
    verdict = table.loc["historical", "verdict"]
    expected_word = "OK" if ref.kupiec_pvalue >= 0.05 else "too"
    assert expected_word in verdict and str(ref.n_exceedances) in verdict
    # Too few returns for the requested window: it shrinks to a third of them.
    assert var_coverage(run, window_bars=5000, methods=("historical",))["window"].iloc[0] == 600


def test_report_figures_render() -> None:
    import matplotlib

    matplotlib.use("Agg")
    run = _run()
    for make in (plot_equity, plot_parameter_stability, plot_sharpe_gap):
        fig = make(run)
        assert fig.axes
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_basel_zone_only_for_daily_bars_with_its_window() -> None:
    from chimera_lab.risk import rolling_var, var_backtest

    run = _run("1d")
    table = var_coverage(run, confidence=0.99, window_bars=250, methods=("historical",))
    ref = var_backtest(run.oos_returns, rolling_var(run.oos_returns, 250, "historical", 0.99), 0.99)
    row = table.loc["historical"]
    assert row["basel"] == ref.basel_zone
    assert (row["basel_exceedances"], row["basel_obs"]) == (ref.basel_exceedances, 250)


def test_coverage_verdicts() -> None:
    from chimera_lab.pipelines.report import coverage_verdict

    low = coverage_verdict(
        {"exceedances": 622, "expected": 302.4, "kupiec_p": 0.0, "christoffersen_p": 0.0}
    )
    assert low.startswith("VaR too LOW: 622 exceedances vs 302.4 expected") and "CLUSTER" in low
    high = coverage_verdict(
        {"exceedances": 1, "expected": 10.0, "kupiec_p": 0.001, "christoffersen_p": 0.9}
    )
    assert "too HIGH" in high and "no clustering" in high
    ok = coverage_verdict(
        {"exceedances": 11, "expected": 10.0, "kupiec_p": 0.75, "christoffersen_p": 0.5}
    )
    assert ok.startswith("coverage OK")


def test_the_report_header_states_costs_grid_candidates_and_warmup() -> None:
    text = _run().describe()
    assert "fee 6 bps and slippage 2 bps per fill" in text
    assert "closes its position at the end of its test window" in text
    assert "grid fast [10, 30], slow [60]: 2 candidates per fold, 6 backtests in all" in text
    assert "fold(s) [0] had fewer warm-up bars" in text and "extended" in text
