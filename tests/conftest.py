"""Shared fixtures. Test data sources are noted where they are used."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from chimera_lab.data.synthetic import make_ohlcv

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "samples"
# Real market data shared by this workplace (README there); present on development machines,
# maybe not on CI. Tests that need it skip with that reason when it is absent.
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


@pytest.fixture
def samples_dir() -> Path:
    return SAMPLES


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared real-data directory {SHARED_DATA} is not on this machine")
    return SHARED_DATA


@pytest.fixture
def ohlcv() -> pd.DataFrame:
    """2,000 synthetic 1-minute bars (seed 7)."""
    return make_ohlcv(2_000, seed=7)


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return str(tmp_path / "test.duckdb")
