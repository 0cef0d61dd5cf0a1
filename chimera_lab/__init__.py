"""chimera_lab: a Jupyter-first quant research workbench for crypto markets.

Subpackages (import what you need; heavy dependencies load on first use):

- :mod:`chimera_lab.data` — loaders, validation, quality reports and the bar store.
- :mod:`chimera_lab.backtest` — simulation kernels, metrics, strategies, reports.
- :mod:`chimera_lab.risk` — VaR and VaR backtests, Kelly sizing, regimes, pre-trade checks.
- :mod:`chimera_lab.validation` — walk-forward splits and look-ahead detection.
- :mod:`chimera_lab.exchange` — the Bitget adapter and its loopback simulator.
- :mod:`chimera_lab.pipelines` — papermill + Dask notebook pipelines.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from chimera_lab.config import Settings
from chimera_lab.errors import ChimeraError, ChimeraWarning, DataError

__all__ = ["ChimeraError", "ChimeraWarning", "DataError", "Settings", "__version__"]

try:
    __version__ = version("chimera-lab")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"
