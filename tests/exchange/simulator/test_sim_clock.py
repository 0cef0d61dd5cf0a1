"""SimClock modes and argument checks."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from chimera_lab.data.synthetic import make_ohlcv
from chimera_lab.errors import ConfigError
from chimera_lab.exchange.simulator import BitgetSimulator, SimClock


def test_stepped_clock_moves_only_when_advanced() -> None:
    clock = SimClock("stepped", start="2024-01-01", bar_ms=300_000)
    t = clock.now_ms
    assert clock.now_ms == t
    clock.advance(bars=2, seconds=1.5)
    assert clock.now_ms == t + 600_000 + 1_500
    with pytest.raises(ConfigError, match="forward"):
        clock.advance(seconds=-1)


def test_realtime_clock_flows_at_its_speed() -> None:
    clock = SimClock(1000.0, start=0)
    assert clock.mode == "realtime" and clock.speed == 1000.0
    deadline = time.monotonic() + 5
    while clock.now_ms < 50_000 and time.monotonic() < deadline:  # poll, bounded
        time.sleep(0.01)
    assert clock.now_ms >= 50_000
    assert SimClock("2.5", start=0).speed == 2.5


@pytest.mark.parametrize("mode", ["sometimes", 0, -1.0, "nan"])
def test_bad_clock_modes_are_config_errors(mode: object) -> None:
    with pytest.raises(ConfigError, match="speed-up factor"):
        SimClock(mode, start=0)  # type: ignore[arg-type]


@pytest.mark.parametrize("start", ["garbage", "NaT", "", float("nan"), True])
def test_bad_clock_start_is_a_config_error_naming_it(start: object) -> None:
    with pytest.raises(ConfigError, match="start"):
        SimClock("stepped", start=start)  # type: ignore[arg-type]


@pytest.mark.parametrize("start", ["garbage", "NaT", "2024-13-45"])
def test_bad_simulator_start_is_a_config_error_naming_it(start: str) -> None:
    with pytest.raises(ConfigError, match="start"):
        BitgetSimulator(make_ohlcv(50, seed=1), start=start)


def test_start_times_are_utc_and_naive_means_utc() -> None:
    want = int(pd.Timestamp("2024-01-01 00:10", tz="UTC").value // 1_000_000)
    assert SimClock("stepped", start="2024-01-01 00:10").now_ms == want
    assert SimClock("stepped", start="2024-01-01T01:10:00+01:00").now_ms == want
    assert SimClock("stepped", start=pd.Timestamp("2024-01-01 00:10", tz="UTC")).now_ms == want
    assert SimClock("stepped", start=want).now_ms == want  # an int is Unix ms
    bars = make_ohlcv(50, seed=1, start="2024-01-01")
    assert BitgetSimulator(bars, start="2024-01-01 00:10").clock.now_ms == want
    assert BitgetSimulator(bars, start=10).clock.now_ms == want  # an int is a bar count
