"""SimClock modes and argument checks."""

from __future__ import annotations

import time

import pytest

from chimera_lab.errors import ConfigError
from chimera_lab.exchange.simulator import SimClock


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
