"""Risk charts for notebooks and reports: prices shaded by regime, VaR with its exceedances.

Figures are built with :class:`matplotlib.figure.Figure` (no pyplot state), so they work
headless and in notebooks alike.

Examples
--------
>>> from chimera_lab.data.synthetic import make_ohlcv
>>> from chimera_lab.risk import RegimeDetector
>>> bars = make_ohlcv(500, seed=2, timeframe="1d")
>>> labels = RegimeDetector().fit(bars).predict(bars)
>>> fig = plot_regimes(bars, labels)
>>> len(fig.axes)
1
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from chimera_lab.errors import DataError
from chimera_lab.risk.regime import Regime

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["REGIME_COLORS", "plot_regimes", "plot_var_exceedances"]

REGIME_COLORS = {
    Regime.NORMAL: "#ffffff",
    Regime.TRENDING: "#c8e6c9",
    Regime.VOLATILE: "#ffe0b2",
    Regime.CRISIS: "#ef9a9a",
}
"""Background colour of each regime (NORMAL is left unshaded)."""


def _spans(labels: pd.Series) -> list[tuple[pd.Timestamp, pd.Timestamp, Regime]]:
    # Runs of equal labels as (start, end, regime); a run ends where the next one starts.
    codes = [Regime(v) for v in labels]
    idx = labels.index
    spans = []
    start = 0
    for i in range(1, len(codes) + 1):
        if i == len(codes) or codes[i] != codes[start]:
            end = idx[i] if i < len(codes) else idx[-1]
            spans.append((idx[start], end, codes[start]))
            start = i
    return spans


def plot_regimes(
    ohlcv: pd.DataFrame,
    labels: pd.Series,
    *,
    title: str | None = None,
    log_scale: bool = True,
    figsize: tuple[float, float] = (11.0, 4.5),
) -> Figure:
    """Draw the close price with the background shaded by regime.

    Parameters
    ----------
    ohlcv : DataFrame
        Bars (only ``close`` is drawn).
    labels : Series
        Regime per bar, same index (e.g. ``RegimeDetector().fit(bars).predict(bars)``).
    title : str, optional
    log_scale : bool, default True
    figsize : (float, float)
    """
    from matplotlib.dates import date2num
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if not labels.index.equals(ohlcv.index):
        raise DataError("labels must have the same index as ohlcv (predict on the same bars)")
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.subplots()
    ax.plot(ohlcv.index, ohlcv["close"], color="#263238", lw=0.9)
    for start, end, regime in _spans(labels):
        if regime is not Regime.NORMAL:
            x0 = date2num(start.to_pydatetime())  # type: ignore[no-untyped-call]
            x1 = date2num(end.to_pydatetime())  # type: ignore[no-untyped-call]
            ax.axvspan(x0, x1, color=REGIME_COLORS[regime], lw=0, zorder=0)
    if log_scale:
        ax.set_yscale("log")
    ax.set_ylabel("close")
    handles = [
        Patch(facecolor=REGIME_COLORS[r], edgecolor="#9e9e9e", label=r.value)
        for r in (Regime.TRENDING, Regime.VOLATILE, Regime.CRISIS)
    ]
    ax.legend(handles=handles, loc="upper left", frameon=False, ncols=3)
    ax.margins(x=0)
    if title:
        ax.set_title(title)
    return fig


def plot_var_exceedances(
    returns: pd.Series,
    var_forecasts: pd.Series | dict[str, pd.Series],
    *,
    title: str | None = None,
    figsize: tuple[float, float] = (11.0, 4.5),
) -> Figure:
    """Draw realised returns, the ``-VaR`` forecast line(s) and mark the exceedances.

    Parameters
    ----------
    returns : Series
        Realised returns.
    var_forecasts : Series or dict of str to Series
        VaR forecasts (positive loss fractions) aligned with ``returns``; several by name.
        Exceedances (``r < -VaR``) of the first are marked.
    title : str, optional
    figsize : (float, float)
    """
    from matplotlib.figure import Figure

    series = {"VaR": var_forecasts} if isinstance(var_forecasts, pd.Series) else dict(var_forecasts)
    if not series:
        raise DataError("pass at least one VaR forecast series")
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.subplots()
    ax.plot(returns.index, returns.to_numpy(), color="#90a4ae", lw=0.6, label="return")
    palette = ["#c62828", "#1565c0", "#2e7d32", "#6a1b9a"]
    for i, (name, v) in enumerate(series.items()):
        aligned = v.reindex(returns.index)
        ax.plot(returns.index, -aligned.to_numpy(), color=palette[i % 4], lw=1.0, label=f"-{name}")
    first = next(iter(series.values())).reindex(returns.index)
    hits = returns.to_numpy() < -first.to_numpy()
    hits &= np.isfinite(first.to_numpy())
    ax.scatter(
        returns.index[hits],
        returns.to_numpy()[hits],
        color="#c62828",
        s=14,
        zorder=3,
        label=f"exceedance ({int(hits.sum())})",
    )
    ax.axhline(0.0, color="#b0bec5", lw=0.5)
    ax.set_ylabel("return")
    ax.legend(loc="lower left", frameon=False, ncols=min(4, len(series) + 2))
    ax.margins(x=0)
    if title:
        ax.set_title(title)
    return fig
