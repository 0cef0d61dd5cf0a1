"""Fixtures for backtest tests."""

from __future__ import annotations

import pandas as pd
import pytest

from chimera_lab.data.synthetic import make_ohlcv


@pytest.fixture
def small_ohlcv() -> pd.DataFrame:
    """500 synthetic 1-minute bars (seed 11)."""
    return make_ohlcv(500, seed=11)
