"""evaluate_fold: time rules, warm-up sufficiency, reproducibility (in-process, no papermill).

Data: the bundled Binance BTC/USDT 1-minute sample (data/samples/README.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chimera_lab.backtest import run
from chimera_lab.errors import LookAheadError, PipelineError
from chimera_lab.pipelines import fingerprint_bars, load_bars, window_bars
from chimera_lab.pipelines.folds import FoldResult, evaluate_fold

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
    return evaluate_fold(bars, strategy="sma_cross", grid=GRID, warmup_bars=119, **WINDOWS)


def test_fold_optimises_in_sample_and_scores_only_the_test_window(
    bars: pd.DataFrame, fold: FoldResult
) -> None:
    t0, t1 = pd.Timestamp(WINDOWS["test_start"]), pd.Timestamp(WINDOWS["test_end"])
    assert fold.oos_returns.index[0] == t0 and fold.oos_returns.index[-1] == t1
    assert len(fold.oos_returns) == 12 * 60
    assert fold.warmup_used_train == 119 and fold.warmup_used_test == 119
    # The chosen point is the best in-sample, and the table has every grid point.
    assert fold.n_candidates == 4
    best = fold.table.dropna(subset=["score"]).iloc[0]
    assert {k: best[k] for k in GRID} == fold.best_params
    assert fold.best_score == pytest.approx(fold.is_stats["sharpe"], rel=1e-12)
    # Independent check of the OOS numbers: the engine on the test window with its warm-up.
    ref = run(
        window_bars(bars, t0, t1, warmup_bars=119), "sma_cross", trade_start=t0, **fold.best_params
    )
    pd.testing.assert_series_equal(fold.oos_returns, ref.returns.loc[t0:], check_names=False)
    assert fold.oos_stats["sharpe"] == pytest.approx(ref.stats["sharpe"], rel=1e-12)


def test_the_measured_warmup_makes_the_window_match_full_history(
    bars: pd.DataFrame, fold: FoldResult
) -> None:
    # With slow=120 at most, 119 warm-up bars make the test signal what a live run with all
    # past data would compute: the same OOS returns as trading on the full history.
    t0, t1 = pd.Timestamp(WINDOWS["test_start"]), pd.Timestamp(WINDOWS["test_end"])
    full = run(bars.loc[:t1], "sma_cross", trade_start=t0, **fold.best_params)
    pd.testing.assert_series_equal(fold.oos_returns, full.returns.loc[t0:], check_names=False)
    cold = evaluate_fold(
        bars,
        strategy="sma_cross",
        grid={k: [v] for k, v in fold.best_params.items()},
        warmup_bars=0,
        **WINDOWS,
    )
    assert not np.allclose(cold.oos_returns.to_numpy(), fold.oos_returns.to_numpy())


def test_first_fold_without_history_warms_up_inside_its_train_window(bars: pd.DataFrame) -> None:
    first = bars.index[0]
    res = evaluate_fold(
        bars,
        strategy="sma_cross",
        grid={"fast": [10], "slow": [60]},
        warmup_bars=59,
        train_start=first,
        train_end=first + pd.Timedelta("1D") - pd.Timedelta("1min"),
        test_start=first + pd.Timedelta("1D"),
        test_end=first + pd.Timedelta("36h"),
    )
    assert res.warmup_used_train == 0 and res.warmup_used_test == 59
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
        warmup_bars=119,
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
            warmup_bars=119,
            expected_fingerprint=fold.data_fingerprint,
            **WINDOWS,
        )
    t0 = pd.Timestamp(WINDOWS["train_start"])
    expected = fingerprint_bars(window_bars(bars, t0, WINDOWS["test_end"], warmup_bars=119))
    assert fold.data_fingerprint == expected


def test_fold_result_files(tmp_path: Path, fold: FoldResult) -> None:
    fold.write(tmp_path)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["best_params"] == fold.best_params
    assert result["n_oos_bars"] == 720
    assert result["test_start"] == "2024-07-31T00:00:00+00:00"
    oos = pd.read_parquet(tmp_path / "oos_returns.parquet")
    assert list(oos.columns) == ["returns", "exposure"]
    pd.testing.assert_series_equal(
        oos["returns"], fold.oos_returns, check_names=False, check_freq=False
    )
    assert len(pd.read_csv(tmp_path / "is_table.csv")) == 4
    assert list(fold.summary_frame().columns) == ["in_sample", "out_of_sample"]
