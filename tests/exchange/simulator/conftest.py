"""Fixtures for the simulator tests (helpers live in _simkit.py)."""

from __future__ import annotations

import pytest
from _simkit import KEY, PASSPHRASE, SECRET


@pytest.fixture
def creds() -> dict[str, str]:
    return {"api_key": KEY, "api_secret": SECRET, "passphrase": PASSPHRASE}
