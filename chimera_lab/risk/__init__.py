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
from chimera_lab.risk.limits import (
    MarketState,
    OrderRequest,
    PortfolioState,
    RiskDecision,
    RiskManager,
)
from chimera_lab.risk.plots import plot_regimes, plot_var_exceedances
from chimera_lab.risk.portfolio import PortfolioVaR, portfolio_var
from chimera_lab.risk.regime import (
    MarkovRegimeDetector,
    Regime,
    RegimeDetector,
    RegimeLimits,
    regime_limits,
    regime_shares,
)
from chimera_lab.risk.var import VaRResult, rolling_var, value_at_risk
from chimera_lab.risk.var_backtest import (
    VaRBacktest,
    basel_zone,
    christoffersen_test,
    coverage_table,
    kupiec_test,
    var_backtest,
)

__all__ = [
    "KellyEstimate",
    "KellyPosition",
    "MarkovRegimeDetector",
    "MarketState",
    "OrderRequest",
    "PortfolioState",
    "PortfolioVaR",
    "Regime",
    "RegimeDetector",
    "RegimeLimits",
    "RiskDecision",
    "RiskManager",
    "VaRBacktest",
    "VaRResult",
    "basel_zone",
    "christoffersen_test",
    "continuous_kelly",
    "coverage_table",
    "kelly_fraction",
    "kelly_growth_rate",
    "kelly_inputs_from_trades",
    "kelly_position_size",
    "kupiec_test",
    "multi_asset_kelly",
    "plot_regimes",
    "plot_var_exceedances",
    "portfolio_var",
    "regime_limits",
    "regime_multiplier",
    "regime_shares",
    "rolling_var",
    "value_at_risk",
    "var_backtest",
]
