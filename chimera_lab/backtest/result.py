"""The result of a backtest: equity, returns, positions, trades, stats and reports."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["SUMMARY_KEYS", "TRADE_COLUMNS", "BacktestResult", "format_summary"]

SUMMARY_KEYS: tuple[str, ...] = (
    "sharpe",
    "sortino",
    "max_drawdown",
    "cagr",
    "total_return",
    "volatility",
    "calmar",
    "win_rate",
    "profit_factor",
    "n_trades",
    "exposure",
    "fees",
    "final_equity",
)
"""The stats every backtest reports (and ``chimera backtest --json`` prints), in order."""

TRADE_COLUMNS: tuple[str, ...] = (
    "entry_time",
    "exit_time",
    "side",
    "size",
    "entry_price",
    "exit_price",
    "pnl",
    "return",
    "fees",
    "funding",
    "bars_held",
    "exit_reason",
    "entry_bar",
    "exit_bar",
)
"""Columns of :attr:`BacktestResult.trades` (see :func:`chimera_lab.backtest.run`)."""


def _pct(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value * 100:.1f}%"


def format_summary(stats: Mapping[str, Any]) -> str:
    """Return the one-line summary ``Sharpe: 1.42 | MaxDD: -12.8% | CAGR: 47.0%``.

    Sharpe has two decimals, drawdown and CAGR are percentages with one; an undefined value
    (no variance, no time) prints as ``n/a``.

    Examples
    --------
    >>> format_summary({"sharpe": 1.4234, "max_drawdown": -0.128, "cagr": 0.47})
    'Sharpe: 1.42 | MaxDD: -12.8% | CAGR: 47.0%'
    """
    sharpe = float(stats["sharpe"])
    sharpe_text = f"{sharpe:.2f}" if math.isfinite(sharpe) else "n/a"
    dd = _pct(float(stats["max_drawdown"]))
    return f"Sharpe: {sharpe_text} | MaxDD: {dd} | CAGR: {_pct(float(stats['cagr']))}"


@dataclass(frozen=True, repr=False)
class BacktestResult:
    """What :func:`chimera_lab.backtest.run` returns.

    Attributes
    ----------
    equity : Series
        Account value marked at each bar's close, from the first traded bar (``trade_start``).
    returns : Series
        Simple per-bar returns of ``equity``; the first is measured from ``initial_capital``.
    positions : Series
        Signed position in units of the instrument at each close (negative: short).
    trades : DataFrame
        One row per trade (flat to flat, or until a flip), columns :data:`TRADE_COLUMNS`:
        entry/exit time and volume-weighted price (slippage included), side ``long``/``short``,
        size (largest absolute units held), pnl (after fees and funding), return (pnl over the
        entry notional), fees, funding, bars held (the bar closes at which the position was
        held: ``exit_bar - entry_bar`` for a trade closed at the open of ``exit_bar``, one more
        for a trade still open at the last close), exit reason (``signal``, ``stop_loss``,
        ``take_profit``, ``bankrupt``, or ``open`` for a trade still open at the end, marked
        at the last close without exit costs) and the bar positions. ``trades.pnl.sum()``
        equals ``final_equity - initial_capital``.
    stats : dict
        :data:`SUMMARY_KEYS` first, then ``sharpe``-style extras (see ``docs/backtest.md``).
    params : dict
        The strategy parameters used (defaults filled in).
    signal : Series
        The target exposure per bar over all of ``data`` (after long-only clipping), as
        traded at the next bar's open.
    data : DataFrame
        The OHLCV bars the backtest ran on (a reference, not a copy).
    strategy : str
        The strategy's name.
    config : dict
        The engine settings (capital, costs, leverage, stops, ``trade_start`` ...).
    """

    equity: pd.Series
    returns: pd.Series
    positions: pd.Series
    trades: pd.DataFrame
    stats: dict[str, Any]
    params: dict[str, Any]
    signal: pd.Series
    data: pd.DataFrame
    strategy: str
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def exposure(self) -> pd.Series:
        """Position value over equity at each close (the realised exposure)."""
        close = self.data["close"].to_numpy()[len(self.data) - len(self.positions) :]
        value = self.positions.to_numpy() * close
        equity = self.equity.to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(equity > 0, value / equity, np.nan)
        return pd.Series(out, index=self.positions.index, name="exposure")

    @property
    def drawdown(self) -> pd.Series:
        """Drawdown of ``equity`` from its running peak (initial capital included)."""
        from chimera_lab.backtest.metrics import drawdown

        return drawdown(self.equity, initial=float(self.config["initial_capital"]))

    def summary(self) -> str:
        """Return the one-line summary (:func:`format_summary`)."""
        return format_summary(self.stats)

    def plot(self, *, max_points: int = 5_000) -> Figure:
        """Return a matplotlib figure: price with trades, equity, drawdown, rolling Sharpe."""
        from chimera_lab.backtest.report import plot_overview

        return plot_overview(self, max_points=max_points)

    def to_html(self, path: str | Path | None = None, *, command: str | None = None) -> str:
        """Render the self-contained HTML tear sheet; write it to ``path`` when given.

        Parameters
        ----------
        path : str or Path, optional
            File to write (UTF-8). The HTML is returned either way.
        command : str, optional
            The command line that produced the result, shown in the provenance section.
        """
        from chimera_lab.backtest.report import render_html

        html = render_html(self, command=command)
        if path is not None:
            Path(path).write_text(html, encoding="utf-8")
        return html

    def __repr__(self) -> str:
        start = self.equity.index[0] if len(self.equity) else None
        end = self.equity.index[-1] if len(self.equity) else None
        return (
            f"<BacktestResult {self.strategy} {self.params} {start} .. {end}: "
            f"{self.summary()} | trades: {self.stats.get('n_trades')}>"
        )

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td>{_fmt(v)}</td></tr>"
            for k, v in self.stats.items()
        )
        return (
            f"<div><b>{self.strategy}</b> {self.params}<br><code>{self.summary()}</code>"
            f"<table>{rows}</table></div>"
        )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
