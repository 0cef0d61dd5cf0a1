"""Charts for notebooks and reports (matplotlib; works headless with the Agg backend).

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> from chimera_lab.data.synthetic import make_ohlcv
>>> fig = plot_ohlcv(make_ohlcv(30, seed=1, timeframe="1h"), title="demo")
>>> len(fig.axes)
2
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from chimera_lab.frames import validate_ohlcv
from chimera_lab.timeframes import infer_bar_spacing

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_ohlcv"]

_UP, _DOWN = "#26a69a", "#ef5350"


def plot_ohlcv(
    df: pd.DataFrame,
    *,
    title: str | None = None,
    volume: bool = True,
    figsize: tuple[float, float] = (11.0, 5.5),
) -> Figure:
    """Draw a candlestick chart with a volume panel and return the figure.

    Candles are drawn with plain matplotlib primitives (wicks as vertical lines, bodies as bars),
    so no extra charting dependency is needed. Up bars are green, down bars red.

    Parameters
    ----------
    df : DataFrame
        OHLCV bars (a few thousand at most for a readable chart; resample first).
    title : str, optional
        Chart title.
    volume : bool
        Add a volume panel below the prices.
    figsize : (float, float)
        Figure size in inches.
    """
    from matplotlib.figure import Figure

    bars = validate_ohlcv(df, name="df")
    fig = Figure(figsize=figsize, layout="constrained")
    if volume:
        ax, ax_vol = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    else:
        ax, ax_vol = fig.subplots(1, 1), None
    index = pd.DatetimeIndex(bars.index)
    x = index.tz_convert("UTC").tz_localize(None)
    # matplotlib dates count days; a lone bar gets a 1-minute candle
    spacing = infer_bar_spacing(index) if len(index) > 1 else pd.Timedelta(minutes=1)
    width = spacing / pd.Timedelta(days=1) * 0.7
    up = (bars["close"] >= bars["open"]).to_numpy()
    colors = np.where(up, _UP, _DOWN)
    ax.vlines(x, bars["low"], bars["high"], colors=colors, linewidth=0.8)
    body_lo = np.minimum(bars["open"], bars["close"])
    body = (bars["close"] - bars["open"]).abs()
    ax.bar(x, body.where(body > 0, bars["close"] * 1e-6), width, bottom=body_lo, color=colors)
    ax.set_ylabel("price")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    if ax_vol is not None:
        ax_vol.bar(x, bars["volume"], width, color=colors, alpha=0.7)
        ax_vol.set_ylabel("volume")
        ax_vol.grid(alpha=0.3)
        ax_vol.set_xlabel("time (UTC)")
    else:
        ax.set_xlabel("time (UTC)")
    return fig
