"""The real market-data samples bundled in ``data/samples/`` (provenance in its README).

Examples
--------
>>> sorted(SAMPLES)[:2]
['btcusdt_1d', 'btcusdt_1m']
>>> SAMPLES["btcusdt_1m"].timeframe
'1m'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from chimera_lab.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from chimera_lab.data.store import Store

__all__ = ["SAMPLES", "Sample", "import_sample", "load_sample", "sample_path", "samples_dir"]


@dataclass(frozen=True)
class Sample:
    """One bundled file: what it holds and how the store names it."""

    name: str
    file: str
    symbol: str
    timeframe: str
    description: str


SAMPLES: dict[str, Sample] = {
    s.name: s
    for s in (
        Sample(
            "btcusdt_1m",
            "btcusdt_1m_binance_20240726_20240825.csv.gz",
            "BTCUSDT",
            "1m",
            "Binance spot BTC/USDT 1m, 2024-07-26..2024-08-25 (incl. the 5 Aug 2024 crash)",
        ),
        Sample(
            "ethusdt_1m",
            "ethusdt_1m_binance_20240726_20240825.csv.gz",
            "ETHUSDT",
            "1m",
            "Binance spot ETH/USDT 1m, same window",
        ),
        Sample(
            "btcusdt_1d",
            "btcusdt_1d_binance_20170817_20250826.csv",
            "BTCUSDT",
            "1d",
            "Binance spot BTC/USDT daily, 2017-08-17..2025-08-26",
        ),
    )
}
"""Bundled OHLCV samples by short name. (The funding file is read with ``load_funding``.)"""

FUNDING_SAMPLE = "btcusdt_perp_funding_binance_20190910_20260207.csv"


def samples_dir() -> Path:
    """Return the ``data/samples`` directory of the source tree the package is installed from."""
    here = Path(__file__).resolve()
    candidate = here.parents[2] / "data" / "samples"
    if not candidate.is_dir():
        raise DataError(
            f"bundled samples not found at {candidate}; install chimera_lab from its source "
            "tree (pip install -e .) or pass a file path instead"
        )
    return candidate


def sample_path(name: str) -> Path:
    """Return the path of a bundled sample by short name (see :data:`SAMPLES`) or file name."""
    if name in SAMPLES:
        return samples_dir() / SAMPLES[name].file
    path = samples_dir() / name
    if path.is_file():
        return path
    raise DataError(f"unknown sample {name!r}; bundled samples are {', '.join(SAMPLES)}")


def load_sample(name: str) -> pd.DataFrame:
    """Load a bundled OHLCV sample as an OHLCV frame."""
    from chimera_lab.data.loaders import load_ohlcv

    return load_ohlcv(sample_path(name))


def import_sample(store: Store, name: str = "btcusdt_1m") -> int:
    """Write a bundled sample into ``store`` (idempotent); return the number of new rows."""
    sample = SAMPLES.get(name)
    if sample is None:
        raise DataError(f"unknown sample {name!r}; bundled samples are {', '.join(SAMPLES)}")
    return int(store.write_bars(sample.symbol, sample.timeframe, load_sample(name)))
