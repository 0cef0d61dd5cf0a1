"""Fixtures for the exchange tests: a fake clock, settings, and the in-process fake Bitget."""

from __future__ import annotations

import pytest
from exchange_fakes import FakeClock


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
