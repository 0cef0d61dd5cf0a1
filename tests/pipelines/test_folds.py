"""evaluate_fold and the walk-forward gate: time rules, look-ahead of the chosen parameters,
warm-up verification, exits at fold ends, reproducibility (in-process, no papermill).

Data: the bundled Binance BTC/USDT 1-minute sample (data/samples/README.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from strategies_for_tests import ma_trend

from chimera_lab.backtest import run
from chimera_lab.errors import ConfigError, LookAheadError, PipelineError
from chimera_lab.pipelines import PipelineSpec, fingerprint_bars, load_bars, window_bars
from chimera_lab.pipelines.folds import FoldResult, evaluate_fold
from chimera_lab.pipelines.walk_forward import prepare

GRID = {"fast": [10, 30], "slow": [60, 120]}
WINDOWS = {
    "train_start": "2024-07-29T00:00:00Z",
    "train_end": "2024-07-30T23:59:00Z",
    "test_start": "2024-07-31T00:00:00Z",
    "test_end": "2024-07-31T11:59:00Z",
}


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return load_bars(data_path="btcusdt_1m", end="2024-08-01")


@pytest.fixture(scope="module")
def fold(bars: pd.DataFrame) -> FoldResult:
    # slow <= 120: the signal needs 119 bars, the position on the first test bar one more.
    return evaluate_fold(bars, strategy="sma_cross", grid=GRID, warmup_bars=120, **WINDOWS)


def flat_at_end(data: pd.DataFrame, **params: int) -> pd.Series:
    """The reference for a fold's trading: sma_cross, target 0 on the last two bars."""
    target = run(data, "sma_cross", **params).signal.copy()
    target.iloc[-2:] = 0.0
    return target


def test_fold_optimises_in_sample_and_scores_only_the_test_window(
    bars: pd.DataFrame, fold: FoldResult
) -> None:
    t0, t1 = pd.Timestamp(WINDOWS["test_start"]), pd.Timestamp(WINDOWS["test_end"])
    assert fold.oos_returns.index[0] == t0 and fold.oos_returns.index[-1] == t1
    assert len(fold.oos_returns) == 12 * 60
    assert fold.warmup_used_train == 120 and fold.warmup_used_test == 120
    # The chosen point is the best in-sample, and the table has every grid point.
    assert fold.n_candidates == 4
    best = fold.table.dropna(subset=["score"]).iloc[0]
    assert {k: best[k] for k in GRID} == fold.best_params
    assert fold.best_score == pytest.approx(fold.is_stats["sharpe"], rel=1e-12)
    # Independent check of the OOS numbers: the engine on the test window with its warm-up,
    # the position closed at the last bar's open (the fold ends flat).
    window = window_bars(bars, t0, t1, warmup_bars=120)
    ref = run(window, flat_at_end(window, **fold.best_params), trade_start=t0)
    pd.testing.assert_series_equal(fold.oos_returns, ref.returns.loc[t0:], check_names=False)
    assert fold.oos_stats["sharpe"] == pytest.approx(ref.stats["sharpe"], rel=1e-12)
    assert fold.lookahead_check is not None and fold.lookahead_check["passed"]
    assert fold.warmup_check["agreed"] and not fold.warmup_check["extended"]


def test_the_measured_warmup_makes_the_window_match_full_history(
    bars: pd.DataFrame, fold: FoldResult
) -> None:
    # With slow=120 at most, 120 warm-up bars make the test positions what a live run with
    # all past data would trade: the same OOS returns as trading on the full history.
    t0, t1 = pd.Timestamp(WINDOWS["test_start"]), pd.Timestamp(WINDOWS["test_end"])
    history = bars.loc[:t1]
    full = run(history, flat_at_end(history, **fold.best_params), trade_start=t0)
    pd.testing.assert_series_equal(fold.oos_returns, full.returns.loc[t0:], check_names=False)
    cold = evaluate_fold(
        bars,
        strategy="sma_cross",
        grid={k: [v] for k, v in fold.best_params.items()},
        warmup_bars=0,
        verify_warmup=False,
        **WINDOWS,
    )
    assert not np.allclose(cold.oos_returns.to_numpy(), fold.oos_returns.to_numpy())
    assert cold.warmup_short is False and cold.warmup_check["agreed"] is None


def test_a_too_short_warmup_is_caught_and_extended(bars: pd.DataFrame, fold: FoldResult) -> None:
    # 20 bars cannot warm up a 120-bar mean: the positions with 20 and 40 bars of history
    # differ, so the fold doubles the warm-up until they agree, and trades what a live run
    # with all the past would have traded. (With 80 bars the mean is still missing for the
    # first 40 test bars, but the positions there are those of 160 bars: flat either way.)
    short = evaluate_fold(
        bars,
        strategy="sma_cross",
        grid={k: [v] for k, v in fold.best_params.items()},
        warmup_bars=20,
        **WINDOWS,
    )
    check = short.warmup_check
    assert check["extended"] and check["agreed"] and check["requested"] == 20
    assert check["used"] == 80  # 20 -> 40 -> 80, which agrees with 160
    assert [s["warmup"] for s in check["steps"]] == [20, 40, 80]
    assert [s["n_different"] > 0 for s in check["steps"]] == [True, True, False]
    assert short.warmup_used_test == 80 and not short.warmup_short
    pd.testing.assert_series_equal(short.oos_returns, fold.oos_returns)
    assert short.to_dict()["warmup_check"] == check


def test_a_future_shock_does_not_change_the_out_of_sample_past(
    bars: pd.DataFrame, fold: FoldResult
) -> None:
    # Prices after t shocked up or down: the fold's OOS returns and exposure up to t are the
    # same (the chosen parameters come from the train window, the test window is traded with
    # its past only). Only bars after t may differ.
    t = pd.Timestamp("2024-07-31T06:00:00Z")
    cols = ["open", "high", "low", "close", "volume"]
    for factor in (1.5, 0.5):
        shocked = bars.copy()
        shocked.loc[shocked.index > t, cols] *= factor
        res = evaluate_fold(shocked, strategy="sma_cross", grid=GRID, warmup_bars=120, **WINDOWS)
        assert res.best_params == fold.best_params
        pd.testing.assert_series_equal(res.oos_returns.loc[:t], fold.oos_returns.loc[:t])
        assert res.oos_exposure is not None and fold.oos_exposure is not None
        pd.testing.assert_series_equal(res.oos_exposure.loc[:t], fold.oos_exposure.loc[:t])
        assert not res.oos_returns.loc[t:].iloc[1:].equals(fold.oos_returns.loc[t:].iloc[1:])


def test_each_fold_ends_flat_and_pays_its_exit(bars: pd.DataFrame) -> None:
    # Long into the end of the test window: the fold closes the position at the last bar's
    # open and pays fee and slippage on the exit; without it the stitched equity would skip
    # the exit cost of every fold boundary while paying every entry.
    def always_long(data: pd.DataFrame, size: float = 1.0) -> pd.Series:
        return pd.Series(size, index=data.index)

    costs = {"fee_bps": 10.0, "slippage_bps": 5.0}
    res = evaluate_fold(
        bars, strategy=always_long, grid={"size": [1.0]}, run_kwargs=costs, warmup_bars=1, **WINDOWS
    )
    assert res.oos_exposure is not None
    assert res.oos_exposure.iloc[-1] == 0.0 and res.oos_exposure.iloc[-2] > 0.99
    assert res.oos_stats["n_trades"] == 1
    t0, t1 = pd.Timestamp(WINDOWS["test_start"]), pd.Timestamp(WINDOWS["test_end"])
    test = bars.loc[t0:t1]
    # Hand computation: buy at the first open, sell at the last open, both with costs.
    fee, slip = 10e-4, 5e-4
    units = 100_000.0 / (test["open"].iloc[0] * (1 + slip) * (1 + fee))
    final = units * test["open"].iloc[-1] * (1 - slip) * (1 - fee)
    assert res.oos_stats["final_equity"] == pytest.approx(final, rel=1e-12)
    assert float((1 + res.oos_returns).prod()) == pytest.approx(final / 100_000.0, rel=1e-12)
    assert res.cost_model == {
        "fee_bps": 10.0,
        "slippage_bps": 5.0,
        "initial_capital": 100_000.0,
        "leverage": 1.0,
        "allow_short": False,
        "exit_at_end": True,
    }
    held = evaluate_fold(
        bars,
        strategy=always_long,
        grid={"size": [1.0]},
        run_kwargs=costs,
        warmup_bars=1,
        exit_at_end=False,
        **WINDOWS,
    )
    assert held.oos_exposure is not None and held.oos_exposure.iloc[-1] > 0.99
    assert held.oos_stats["fees"] < res.oos_stats["fees"]


def test_the_chosen_parameters_are_checked_for_lookahead(
    tmp_path: Path, bars: pd.DataFrame
) -> None:
    # The leaky mode wins in-sample (it knows the next 5 bars): the fold refuses to trade it
    # and records the verdict in result.json.
    grid = {"window": [10, 20], "mode": ["trailing", "confirm"]}
    with pytest.raises(LookAheadError, match="'mode': 'confirm'") as info:
        evaluate_fold(
            bars, strategy=ma_trend, grid=grid, warmup_bars=30, output_dir=tmp_path, **WINDOWS
        )
    assert "LOOK-AHEAD" in str(info.value)
    refused = json.loads((tmp_path / "result.json").read_text())
    assert refused["status"] == "refused" and refused["best_params"]["mode"] == "confirm"
    assert refused["lookahead_check"]["lookahead"] is True
    assert not (tmp_path / "oos_returns.parquet").exists()
    # Without the leaky value the fold runs and records its clean verdict.
    ok = evaluate_fold(
        bars,
        strategy=ma_trend,
        grid={"window": [10, 20], "mode": ["trailing"]},
        warmup_bars=30,
        output_dir=tmp_path,
        **WINDOWS,
    )
    verdict = json.loads((tmp_path / "result.json").read_text())["lookahead_check"]
    assert verdict["passed"] and verdict["params"] == ok.best_params
    assert verdict["n_cuts"] > 5  # random cuts plus the early ladder


def _wf_spec(strategy: str, grid: dict[str, list[object]], **fold_params: object) -> PipelineSpec:
    from chimera_lab.pipelines.spec import DataSpec
    from chimera_lab.pipelines.walk_forward import walk_forward_spec

    spec = walk_forward_spec(
        data=DataSpec(path="btcusdt_1m"),
        strategy=strategy,
        train="1D",
        test="1D",
        grid=grid,
        warmup=0,
    )
    steps = [
        s.model_copy(update={"parameters": {**s.parameters, **fold_params}}) if s.foreach else s
        for s in spec.steps
    ]
    return spec.model_copy(update={"steps": steps})


STRATEGIES = Path(__file__).resolve().parent / "strategies_for_tests.py"


def test_the_gate_checks_every_grid_point(bars: pd.DataFrame) -> None:
    # 9 points; the leaky mode sits where a 4-point sample of the grid (0, 3, 5, 8) misses it.
    grid = {"window": [10, 20, 30], "mode": ["trailing", "confirm", "ewm"]}
    spec = _wf_spec(f"{STRATEGIES}:ma_trend", grid)
    with pytest.raises(LookAheadError, match="3 of 9 grid point") as info:
        prepare(spec, bars.iloc[:3000])
    assert "'mode': 'confirm'" in str(info.value)
    clean = _wf_spec(f"{STRATEGIES}:ma_trend", {"window": [10, 20], "mode": ["trailing", "ewm"]})
    checks = prepare(clean, bars.iloc[:3000])["checks"]
    assert checks["lookahead"]["passed"] and len(checks["lookahead"]["checked"]) == 4
    assert checks["grid"] == {"n_points": 4, "n_valid": 4, "skipped": [], "objective": "sharpe"}


def test_the_gate_skips_invalid_combinations_but_not_runtime_failures(
    bars: pd.DataFrame,
) -> None:
    # fast >= slow is an invalid combination (skipped, as the optimiser skips it) ...
    spec = _wf_spec("sma_cross", {"fast": [10, 60], "slow": [60]})
    checks = prepare(spec, bars.iloc[:3000])["checks"]
    assert checks["grid"]["n_valid"] == 1
    assert "fast < slow" in checks["grid"]["skipped"][0]["reason"]
    # ... a strategy that runs on the full history but raises on a shorter one is a finding.
    fragile = _wf_spec(f"{STRATEGIES}:needs_3000_bars", {"window": [10]})
    with pytest.raises(LookAheadError, match="RAISED"):
        prepare(fragile, bars.iloc[:3000])


def test_the_objective_is_checked_before_anything_runs(bars: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="did you mean sharpe"):
        prepare(_wf_spec("sma_cross", {"fast": [10], "slow": [60]}, objective="sharp"), bars)
    with pytest.raises(ConfigError, match="not a number"):
        prepare(_wf_spec("sma_cross", {"fast": [10], "slow": [60]}, objective="start"), bars)
    prepare(_wf_spec("sma_cross", {"fast": [10], "slow": [60]}, objective="-max_drawdown"), bars)


def test_first_fold_without_history_warms_up_inside_its_train_window(bars: pd.DataFrame) -> None:
    first = bars.index[0]
    res = evaluate_fold(
        bars,
        strategy="sma_cross",
        grid={"fast": [10], "slow": [60]},
        warmup_bars=60,
        train_start=first,
        train_end=first + pd.Timedelta("1D") - pd.Timedelta("1min"),
        test_start=first + pd.Timedelta("1D"),
        test_end=first + pd.Timedelta("36h"),
    )
    assert res.warmup_used_train == 0 and res.warmup_used_test == 60
    assert res.warmup_check["agreed"] and not res.warmup_check["extended"]
    assert res.is_stats["n_trades"] > 0


def test_leaking_or_embargo_violating_windows_are_refused(bars: pd.DataFrame) -> None:
    overlapping = dict(WINDOWS, test_start="2024-07-30T23:00:00Z")
    with pytest.raises(LookAheadError) as info:
        evaluate_fold(bars, strategy="sma_cross", grid=GRID, **overlapping)
    assert len(info.value.timestamps) == 60  # type: ignore[attr-defined]
    with pytest.raises(LookAheadError, match="embargo"):
        evaluate_fold(bars, strategy="sma_cross", grid=GRID, embargo="30min", **WINDOWS)


def test_changed_bars_are_detected(bars: pd.DataFrame, fold: FoldResult) -> None:
    evaluate_fold(
        bars,
        strategy="sma_cross",
        grid={"fast": [10], "slow": [60]},
        warmup_bars=120,
        expected_fingerprint=fold.data_fingerprint,
        **WINDOWS,
    )
    edited = bars.copy()
    edited.loc[pd.Timestamp(WINDOWS["test_start"]), "close"] *= 1.0001
    with pytest.raises(PipelineError, match="differ from the ones"):
        evaluate_fold(
            edited,
            strategy="sma_cross",
            grid=GRID,
            warmup_bars=120,
            expected_fingerprint=fold.data_fingerprint,
            **WINDOWS,
        )
    t0 = pd.Timestamp(WINDOWS["train_start"])
    expected = fingerprint_bars(window_bars(bars, t0, WINDOWS["test_end"], warmup_bars=120))
    assert fold.data_fingerprint == expected


def test_fold_result_files(tmp_path: Path, fold: FoldResult) -> None:
    fold.write(tmp_path)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["best_params"] == fold.best_params
    assert result["n_oos_bars"] == 720
    assert result["test_start"] == "2024-07-31T00:00:00Z"  # the run folder's one format
    assert result["grid"] == GRID and result["n_valid_candidates"] == 4
    assert result["cost_model"]["fee_bps"] == 6.0 and result["cost_model"]["exit_at_end"]
    oos = pd.read_parquet(tmp_path / "oos_returns.parquet")
    assert list(oos.columns) == ["returns", "exposure"]
    pd.testing.assert_series_equal(
        oos["returns"], fold.oos_returns, check_names=False, check_freq=False
    )
    assert len(pd.read_csv(tmp_path / "is_table.csv")) == 4
    assert list(fold.summary_frame().columns) == ["in_sample", "out_of_sample"]


def _count_test_window_runs(monkeypatch: pytest.MonkeyPatch, t0: pd.Timestamp) -> list[int]:
    # Records the length of every backtest of the test window (trade_start == t0).
    import chimera_lab.backtest as backtest

    calls: list[int] = []
    real = backtest.run

    def counting(data: pd.DataFrame, *args: object, **kwargs: object) -> object:
        if kwargs.get("trade_start") == t0:
            calls.append(len(data))
        return real(data, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(backtest, "run", counting)
    return calls


def test_the_verified_warmup_backtest_is_the_out_of_sample_one(
    bars: pd.DataFrame, fold: FoldResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    t0 = pd.Timestamp(WINDOWS["test_start"])
    calls = _count_test_window_runs(monkeypatch, t0)
    grid = {k: [v] for k, v in fold.best_params.items()}
    again = evaluate_fold(bars, strategy="sma_cross", grid=grid, warmup_bars=120, **WINDOWS)
    # 120 bars are compared with 240 and agree: two backtests, the first is the result.
    assert calls == [120 + 720, 240 + 720]
    pd.testing.assert_series_equal(again.oos_returns, fold.oos_returns)
    assert again.oos_stats == fold.oos_stats
    calls.clear()
    unverified = evaluate_fold(
        bars, strategy="sma_cross", grid=grid, warmup_bars=120, verify_warmup=False, **WINDOWS
    )
    assert calls == [120 + 720]  # nothing verified: the one backtest is run here
    pd.testing.assert_series_equal(unverified.oos_returns, fold.oos_returns)


def above_expanding_mean(data: pd.DataFrame, min_periods: int = 1) -> pd.Series:
    """Every bar of history matters: a warm-up never agrees with twice itself."""
    close = data["close"]
    return (close > close.expanding(min_periods=min_periods).mean()).astype(float)


def test_a_warmup_that_never_agrees_uses_all_the_history_there_is(
    bars: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = bars.index[0]
    t0, t1 = first + pd.Timedelta("1D"), first + pd.Timedelta("30h")
    calls = _count_test_window_runs(monkeypatch, t0)
    res = evaluate_fold(
        bars,
        strategy=above_expanding_mean,
        grid={"min_periods": [1]},
        warmup_bars=60,
        check_lookahead=False,
        train_start=first,
        train_end=t0 - pd.Timedelta("1min"),
        test_start=t0,
        test_end=t1,
    )
    check = res.warmup_check
    assert check["agreed"] is False and check["used"] == check["available"] == 1440
    n_test = 6 * 60 + 1
    assert calls == [w + n_test for w in (60, 120, 240, 480, 960, 1440)]  # each warm-up once
    # The result is the backtest on all 1440 bars of history, the position closed at the end.
    window = window_bars(bars, t0, t1, warmup_bars=1440)
    target = above_expanding_mean(window)
    target.iloc[-2:] = 0.0
    ref = run(window, target, trade_start=t0)
    pd.testing.assert_series_equal(res.oos_returns, ref.returns.loc[t0:], check_names=False)
