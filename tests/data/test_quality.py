"""quality_report against hand-counted examples and a real file's documented quirks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chimera_lab.data import load_ohlcv, quality_report
from chimera_lab.data.synthetic import make_ohlcv
from chimera_lab.errors import DataError


def test_gaps_missing_bars_and_coverage_hand_counted() -> None:
    df = make_ohlcv(20, seed=2)
    # Drop bars 3,4 (one gap of 2) and 10 (a gap of 1): 17 rows, 20 expected.
    df = df.drop(index=df.index[[3, 4, 10]])
    r = quality_report(df)
    assert r.timeframe == "1m"
    assert (r.rows, r.expected_bars, r.missing_bars, r.n_gaps) == (17, 20, 3, 2)
    assert [g.missing for g in r.gaps] == [2, 1]
    assert r.gaps[0].after == df.index[2] and r.gaps[0].before == df.index[3]
    assert r.coverage == pytest.approx(17 / 20)


def test_off_grid_duplicates_zero_volume_flat_bars() -> None:
    idx = pd.DatetimeIndex(
        ["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 01:28:14", "2024-01-01 03:00"],
        tz="UTC",
    )
    df = pd.DataFrame(
        {
            "open": 1.0,
            "high": [1.0, 2.0, 1.0, 1.0],
            "low": 1.0,
            "close": 1.0,
            "volume": [0.0, 1.0, 2.0, 0.0],
        },
        index=idx,
    )
    r = quality_report(df, timeframe="1h")
    assert r.off_grid == 1
    assert (r.zero_volume, r.flat_zero_volume) == (2, 2)
    assert r.missing_bars == 1  # 01:28:14 -> 03:00 is 1.53 h: the 02:00 bar is missing
    dup = pd.concat([df, df.iloc[[1]]]).sort_index()
    assert quality_report(dup, timeframe="1h").duplicates == 1


def test_outliers_use_robust_sigma() -> None:
    df = make_ohlcv(500, seed=4, volatility=0.001)
    close = df["close"].to_numpy().copy()
    close[250:] *= 1.05  # one +4.9% log-return jump, ~ 49 sigma
    df["close"] = close
    df["high"] = np.maximum(df["high"], df[["open", "close"]].max(axis=1))
    df["low"] = np.minimum(df["low"], df[["open", "close"]].min(axis=1))
    r = quality_report(df, outlier_sigma=10)
    assert [ts for ts, _ in r.outliers] == [df.index[250]]
    assert r.outliers[0][1] == pytest.approx(np.log(close[250] / close[249]))


def test_report_text_and_dict() -> None:
    r = quality_report(make_ohlcv(100, seed=0))
    text = str(r)
    assert "rows          100 (1m)" in text and "coverage      100.00%" in text
    d = r.to_dict()
    assert d["rows"] == 100 and d["gaps"] == 0 and d["start"] == "2024-01-01T00:00:00Z"


def test_bad_arguments() -> None:
    with pytest.raises(DataError, match="DatetimeIndex"):
        quality_report(pd.DataFrame({"close": [1.0]}))
    with pytest.raises(DataError, match="outlier_sigma"):
        quality_report(make_ohlcv(5), outlier_sigma=0)
    assert quality_report(make_ohlcv(5).iloc[:0]).rows == 0


def test_real_archive_file_quirks(shared_data: Path) -> None:
    # ../shared/data/README.md: 4 zero-volume bars, 43 off-grid hourly bars after the Feb 2018
    # outage, 28 gaps; the longest ends at 2018-02-09 09:28:14 (33.5 h after 2018-02-08 00:00).
    r = quality_report(load_ohlcv(shared_data / "btcusdt_1h_binance_20170817_20240101.csv.gz"))
    assert (r.rows, r.zero_volume, r.off_grid, r.n_gaps) == (55_765, 4, 43, 28)
    longest = max(r.gaps, key=lambda g: g.missing)
    assert longest.after == pd.Timestamp("2018-02-08 00:00", tz="UTC")
    assert longest.before == pd.Timestamp("2018-02-09 09:28:14", tz="UTC")


def test_real_thin_market_flat_bars(shared_data: Path) -> None:
    # README: Binance.US BTC/USDC has 12,971 zero-volume flat bars.
    r = quality_report(load_ohlcv(shared_data / "btcusdc_1m_binanceus_20230301_20230321.csv.gz"))
    assert r.zero_volume == 12_971
