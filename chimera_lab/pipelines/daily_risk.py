"""The daily risk report: VaR now, how well VaR covered the past, and the market regime.

This is the logic of ``notebooks/templates/daily_risk.ipynb`` (run by
``pipelines/daily_risk.yaml``, typically from cron after the day's bars are fetched). It only
composes :mod:`chimera_lab.risk`:

- one-period VaR and CVaR of the latest ``window_bars`` returns by three methods
  (:func:`~chimera_lab.risk.value_at_risk`);
- rolling forecasts over the whole history backtested against the realised returns
  (:func:`~chimera_lab.risk.rolling_var`, :func:`~chimera_lab.risk.var_backtest`): Kupiec,
  Christoffersen, conditional coverage, a verdict per method, and the Basel zone for daily
  bars (not for intraday ones, where 250 bars are not a trading year);
- the regime of every bar (:class:`~chimera_lab.risk.RegimeDetector`), the current one, since
  when, the time shares, and the limits configured for it. Bars the detector cannot label
  yet (too little history) count as ``warm_up``; a current ``warm_up`` regime gets NORMAL's
  limits.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chimera_lab.config import Settings
from chimera_lab.errors import DataError
from chimera_lab.pipelines.manifest import iso_utc
from chimera_lab.timeframes import infer_bar_spacing

__all__ = ["RiskSnapshot", "risk_snapshot"]

_METHODS = ("historical", "parametric", "monte_carlo")


@dataclass(frozen=True, eq=False)
class RiskSnapshot:
    """The day's risk numbers (see :func:`risk_snapshot`)."""

    as_of: pd.Timestamp
    n_bars: int
    confidence: float
    window_bars: int
    var_table: pd.DataFrame
    coverage: pd.DataFrame
    regime: str
    regime_since: pd.Timestamp
    regime_shares: pd.Series
    limits: dict[str, float]
    labels: pd.Series = field(repr=False)
    returns: pd.Series = field(repr=False)
    forecasts: dict[str, pd.Series] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the snapshot as JSON-ready values (``risk_summary.json``)."""

        def clean(v: Any) -> Any:
            if isinstance(v, np.generic):
                v = v.item()
            if isinstance(v, float) and not np.isfinite(v):
                return None
            return v

        return {
            "as_of": iso_utc(self.as_of),
            "n_bars": self.n_bars,
            "confidence": self.confidence,
            "window_bars": self.window_bars,
            "var": {
                m: {k: clean(v) for k, v in row.items()}
                for m, row in self.var_table.to_dict(orient="index").items()
            },
            "coverage": {
                m: {k: clean(v) for k, v in row.items()}
                for m, row in self.coverage.to_dict(orient="index").items()
            },
            "regime": self.regime,
            "regime_since": iso_utc(self.regime_since),
            "regime_shares": {k: clean(v) for k, v in self.regime_shares.items()},
            "limits": self.limits,
        }

    def summary(self) -> str:
        """One paragraph for the top of the report."""
        hist = self.var_table.loc["historical"]
        return (
            f"as of {iso_utc(self.as_of)}: one-bar VaR({self.confidence:.0%}) "
            f"{hist['var']:.2%} (CVaR {hist['cvar']:.2%}, historical, last {self.window_bars} "
            f"bars); regime {self.regime.upper()} since {iso_utc(self.regime_since)}; limits "
            f"now: exposure x{self.limits['exposure_multiplier']:g}, leverage <= "
            f"{self.limits['max_leverage']:g}, VaR <= {self.limits['var_limit']:.1%}"
        )

    def write(self, output_dir: str | Path) -> Path:
        """Write ``risk_summary.json``, ``var.csv``, ``coverage.csv``, ``regimes.csv``."""
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False, default=str)
        (out / "risk_summary.json").write_text(text + "\n", encoding="utf-8")
        self.var_table.to_csv(out / "var.csv")
        self.coverage.to_csv(out / "coverage.csv")
        self.labels.rename("regime").to_csv(out / "regimes.csv")
        return out


def risk_snapshot(
    bars: pd.DataFrame,
    *,
    confidence: float = 0.99,
    window_bars: int | None = None,
    methods: Sequence[str] = _METHODS,
    settings: Settings | None = None,
) -> RiskSnapshot:
    """Compute today's VaR, the coverage of past VaR forecasts and the regime.

    Parameters
    ----------
    bars : DataFrame
        OHLCV bars, oldest first; the last bar is "now".
    confidence : float
        VaR level.
    window_bars : int, optional
        Trailing returns per VaR estimate (default: ``settings.risk.var_window_bars``, capped
        at a third of the returns so the coverage test has forecasts to check).
    methods : sequence of str
        VaR methods (``historical``, ``parametric``, ``monte_carlo``).
    settings : Settings, optional
        Supplies the default window and the regime limits.
    """
    from chimera_lab.pipelines.report import coverage_frame
    from chimera_lab.risk import (
        WARMUP,
        Regime,
        RegimeDetector,
        regime_limits,
        regime_shares,
        rolling_var,
        value_at_risk,
        var_backtest,
    )

    settings = settings or Settings()
    returns = bars["close"].pct_change().iloc[1:].astype("float64")
    if len(returns) < 30:
        raise DataError(f"need at least 30 returns for a risk report, got {len(returns)}")
    window = int(window_bars or settings.risk.var_window_bars)
    window = max(10, min(window, len(returns) // 3))
    rows, forecasts, backtests = {}, {}, {}
    for method in methods:
        now = value_at_risk(returns.iloc[-window:], method=method, confidence=confidence, seed=0)
        rows[method] = {"var": now.var, "cvar": now.cvar, "n_obs": now.n_obs}
        forecasts[method] = rolling_var(returns, window, method, confidence, seed=0)
        backtests[method] = var_backtest(returns, forecasts[method], confidence)
    coverage = coverage_frame(
        backtests, bar_spacing=infer_bar_spacing(pd.DatetimeIndex(bars.index))
    )
    labels = RegimeDetector().fit(bars).predict(bars)
    # Bars whose features are still warming up have no label (None): the regime is "warm_up"
    # and, as everywhere in chimera_lab.risk (MarketState(regime=None)), NORMAL limits apply.
    codes = labels.map(lambda r: WARMUP if r is None else str(r.value))
    current = codes.iloc[-1]
    changed = codes.ne(current)
    since = (
        labels.index[0]
        if not changed.any()
        else labels.index[changed.to_numpy().nonzero()[0][-1] + 1]
    )
    limits = regime_limits(settings)[Regime.NORMAL if current == WARMUP else Regime(current)]
    return RiskSnapshot(
        as_of=bars.index[-1],
        n_bars=len(bars),
        confidence=confidence,
        window_bars=window,
        var_table=pd.DataFrame.from_dict(rows, orient="index").rename_axis("method"),
        coverage=coverage,
        regime=current,
        regime_since=since,
        regime_shares=regime_shares(labels),
        limits={
            "exposure_multiplier": limits.exposure_multiplier,
            "max_leverage": limits.max_leverage,
            "var_limit": limits.var_limit,
        },
        labels=labels,
        returns=returns,
        forecasts=forecasts,
    )
