"""Fixtures for pipeline tests: a trivial template and one shared two-worker LocalCluster.

The cluster is started once per session (a few seconds on two cores) and shut down after.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
TRIVIAL = HERE / "templates" / "trivial.ipynb"


@pytest.fixture(scope="session")
def trivial_template() -> Path:
    return TRIVIAL


@pytest.fixture(scope="session")
def dask_client() -> Iterator[Any]:
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address="127.0.0.1:0",  # random port: no clash, no port warning
        silence_logs=logging.ERROR,
    )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close(timeout=10)
        cluster.close(timeout=30)
