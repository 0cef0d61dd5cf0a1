"""Bar arithmetic shared by the store and the exchange adapter (chimera_lab/timeframes.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chimera_lab.errors import ConfigError
from chimera_lab.timeframes import TIMEFRAMES, canonical_timeframe, ceil_to_bar, timeframe_ms


@pytest.mark.parametrize("name", list(TIMEFRAMES))
def test_timeframe_ms_is_the_bar_length_in_milliseconds(name: str) -> None:
    assert timeframe_ms(name) == round(TIMEFRAMES[name].total_seconds() * 1000)
    assert canonical_timeframe(name) == (name, TIMEFRAMES[name].value)


def test_aliases_name_the_canonical_timeframe() -> None:
    assert timeframe_ms("60min") == timeframe_ms("1 hour") == 3_600_000
    assert canonical_timeframe("1day") == ("1d", 86_400 * 10**9)
    with pytest.raises(ConfigError, match="unknown timeframe '7m'"):
        timeframe_ms("7m")
    with pytest.raises(ConfigError, match="must be a string"):
        canonical_timeframe(60)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(
    ms=st.integers(min_value=-(2**53), max_value=2**53),
    bar_ms=st.sampled_from([timeframe_ms(tf) for tf in TIMEFRAMES] + [1, 7]),
)
def test_ceil_to_bar_matches_an_exact_reference(ms: int, bar_ms: int) -> None:
    # Reference: the integer ceiling via divmod (exact; no float rounding at 2**53).
    q, r = divmod(ms, bar_ms)
    expected = (q + (r > 0)) * bar_ms
    got = ceil_to_bar(ms, bar_ms)
    assert got == expected
    assert got % bar_ms == 0 and 0 <= got - ms < bar_ms


def test_ceil_to_bar_refuses_a_non_positive_bar() -> None:
    with pytest.raises(ConfigError, match="bar_ms must be > 0"):
        ceil_to_bar(1, 0)


def test_the_exchange_adapter_does_not_load_the_store() -> None:
    # The bar helpers moved here so chimera_lab.exchange needs neither data/ nor duckdb.
    code = (
        "import sys, chimera_lab.exchange.bitget, chimera_lab.exchange.fetch, "
        "chimera_lab.exchange.stream; "
        "print(sorted(m for m in sys.modules if m.startswith(('chimera_lab.data', 'duckdb'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]"
