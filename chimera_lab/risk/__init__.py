"""Risk: VaR and VaR backtests, Kelly sizing, market regimes and pre-trade checks.

Pure numerical code: frames and arrays in, values out; no I/O, clock or network.
"""

from __future__ import annotations

from chimera_lab.risk.kelly import (
    KellyEstimate,
    KellyPosition,
    continuous_kelly,
    kelly_fraction,
    kelly_growth_rate,
    kelly_inputs_from_trades,
    kelly_position_size,
    multi_asset_kelly,
    regime_multiplier,
)

__all__ = [
    "KellyEstimate",
    "KellyPosition",
    "continuous_kelly",
    "kelly_fraction",
    "kelly_growth_rate",
    "kelly_inputs_from_trades",
    "kelly_position_size",
    "multi_asset_kelly",
    "regime_multiplier",
]
