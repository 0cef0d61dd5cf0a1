"""Crash-day validation of RegimeDetector on real BTC history (the issue's acceptance test).

Data: the bundled Binance BTC/USDT daily bars (always present) and, where the workplace's
shared data directory exists, Binance BTC/USDT hourly bars 2018-01-01..2026-05-16 (README
there). Crash days must be CRISIS; at most 5% of days may be CRISIS. On hourly bars a day is
CRISIS when any of its bars is.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from chimera_lab.data import load_ohlcv
from chimera_lab.risk import Regime, RegimeDetector

CRASH_DAYS = ("2020-03-12", "2021-05-19", "2022-11-09")


def _crisis_days(bars: pd.DataFrame) -> pd.Series:
    labels = RegimeDetector().fit(bars).predict(bars)
    crisis = labels == Regime.CRISIS
    return crisis.groupby(crisis.index.floor("D")).any()


def _check(days: pd.Series) -> None:
    for day in CRASH_DAYS:
        assert days.loc[pd.Timestamp(day, tz="UTC")], f"{day} is not CRISIS"
    assert days.mean() <= 0.05, f"{days.mean():.2%} of days CRISIS"


def test_daily_btc_crash_days_are_crisis(samples_dir: Path) -> None:
    bars = load_ohlcv(samples_dir / "btcusdt_1d_binance_20170817_20250826.csv")
    days = _crisis_days(bars)
    assert len(days) == 2932
    _check(days)
    assert 0.005 < days.mean() < 0.03  # crises are rare, but they are found


def test_hourly_btc_crash_days_are_crisis(shared_data: Path) -> None:
    path = shared_data / "btcusdt_1h_binance_20180101_20260516.csv.gz"
    if not path.exists():
        pytest.skip(f"{path.name} is not in {shared_data}")
    bars = load_ohlcv(path)
    days = _crisis_days(bars)
    _check(days)


def test_no_look_ahead_on_real_daily_data(samples_dir: Path) -> None:
    bars = load_ohlcv(samples_dir / "btcusdt_1d_binance_20170817_20250826.csv")
    det = RegimeDetector().fit(bars)
    full = det.predict(bars)
    # cut right after each crash: the label on the crash day cannot depend on what followed
    for day in CRASH_DAYS:
        cut = bars.index.get_loc(pd.Timestamp(day, tz="UTC")) + 1
        assert det.predict(bars.iloc[:cut]).equals(full.iloc[:cut])
