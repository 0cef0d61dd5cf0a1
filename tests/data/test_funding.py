"""load_funding on the bundled Binance funding file and on small hand-written files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chimera_lab.data.funding import load_funding
from chimera_lab.errors import DataError

SAMPLE = "btcusdt_perp_funding_binance_20190910_20260207.csv"


def test_bundled_binance_file(samples_dir: Path) -> None:
    rates = load_funding(samples_dir / SAMPLE)
    assert len(rates) == 7_028  # rows in the file (data/samples/README.md)
    assert rates.index.is_monotonic_increasing and rates.index.is_unique
    assert str(rates.index.tz) == "UTC" and rates.index.name == "timestamp"
    # every time sits on the 8-hour grid after snapping the millisecond jitter
    assert set(rates.index.hour) == {0, 8, 16}
    assert (rates.index.minute == 0).all() and (rates.index.second == 0).all()
    # 2019-10-03 08:00:00.001 -> 08:00, rate -6.876e-05 (scientific notation in the file)
    assert rates.loc["2019-10-03 08:00:00+00:00"] == pytest.approx(-6.876e-05)
    # data/samples/README.md: the rate reaches its -0.3% floor on 2020-03-13 08:00
    assert rates.loc["2020-03-13 08:00:00+00:00"] == pytest.approx(-0.003)


def test_epoch_milliseconds_and_exchange_column_names(tmp_path: Path) -> None:
    path = tmp_path / "bitget.csv"
    t0 = pd.Timestamp("2024-01-01 08:00", tz="UTC").value // 10**6
    path.write_text(
        "symbol,fundingRate,fundingTime\n"
        f"BTCUSDT,0.0001,{t0 + 3}\nBTCUSDT,1e-4,{t0 + 8 * 3600_000}\n"
    )
    rates = load_funding(path)
    assert rates.index.tolist() == [
        pd.Timestamp("2024-01-01 08:00", tz="UTC"),
        pd.Timestamp("2024-01-01 16:00", tz="UTC"),
    ]
    np.testing.assert_allclose(rates.to_numpy(), [1e-4, 1e-4])


def test_repeated_rows_are_dropped_conflicts_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text(
        "timestamp,funding_rate\n2024-01-01 08:00:00.000,0.0001\n2024-01-01 08:00:00.002,0.0001\n"
    )
    assert len(load_funding(path)) == 1
    path.write_text(
        "timestamp,funding_rate\n2024-01-01 08:00:00.000,0.0001\n2024-01-01 08:00:00.002,0.0002\n"
    )
    with pytest.raises(DataError, match="two different funding rates") as info:
        load_funding(path)
    assert info.value.row == 2 and info.value.line == 3


def test_times_off_the_hour_and_missing_columns_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text(
        "timestamp,funding_rate\n2024-01-01 08:00:00,0.0001\n2024-01-01 08:30:00,0.0001\n"
    )
    with pytest.raises(DataError, match="from the hour") as info:
        load_funding(path)
    assert info.value.row == 2
    path.write_text("timestamp,price\n2024-01-01 08:00:00,1\n")
    with pytest.raises(DataError, match="no funding rate column"):
        load_funding(path)
    path.write_text("timestamp,funding_rate\n2024-01-01 08:00:00,abc\n")
    with pytest.raises(DataError, match="not a number"):
        load_funding(path)
