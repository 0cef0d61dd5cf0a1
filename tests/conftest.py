"""Shared fixtures. Test data sources are noted where they are used."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from chimera_lab.data.synthetic import make_ohlcv

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "samples"
# Real market data shared by this workplace (README there); present on development machines,
# maybe not on CI. Tests that need it skip with that reason when it is absent.
# CHIMERA_SHARED_DATA points elsewhere.
SHARED_DATA = Path(
    os.environ.get("CHIMERA_SHARED_DATA") or (REPO / ".." / "shared" / "data")
).resolve()


@pytest.fixture(autouse=True)
def _hermetic_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Tests see no CHIMERA_* variables and no .env from the developer's checkout.

    Settings anchor relative paths and find `.env` at the project root; here the root is an
    empty directory, so a test's Settings() are the documented defaults unless it sets more.
    """
    for var in [v for v in os.environ if v.startswith("CHIMERA_")]:
        monkeypatch.delenv(var)
    root = tmp_path_factory.mktemp("project")
    monkeypatch.setattr("chimera_lab.config.find_project_root", lambda start=None: root)
    yield


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
