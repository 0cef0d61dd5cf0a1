"""Tear sheets: matplotlib figures and a self-contained HTML report of a backtest.

Figures are drawn on :class:`matplotlib.figure.Figure` objects with the Agg canvas (no
``pyplot`` state, no display needed) and embedded in the HTML as base64 PNG images, so the
file opens anywhere without its neighbours. Long series are thinned to ``max_points`` for
drawing; every statistic is computed on the full data.
"""

from __future__ import annotations

import base64
import html
import io
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from chimera_lab.backtest.result import SUMMARY_KEYS, BacktestResult
from chimera_lab.timeframes import DAYS_PER_YEAR

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "monthly_returns",
    "plot_equity",
    "plot_monthly_heatmap",
    "plot_overview",
    "plot_rolling_sharpe",
    "plot_trades",
    "render_html",
    "rolling_sharpe",
]

_GREEN = "#1a9850"
_RED = "#d73027"
_BLUE = "#2c7fb8"


def _thin(series: pd.Series, max_points: int) -> pd.Series:
    if len(series) <= max_points:
        return series
    step = math.ceil(len(series) / max_points)
    thinned = series.iloc[::step]
    if thinned.index[-1] != series.index[-1]:
        thinned = pd.concat([thinned, series.iloc[-1:]])
    return thinned


def _figure(width: float, height: float, rows: int = 1, **kwargs: Any) -> tuple[Figure, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(rows, 1, **kwargs)
    return fig, axes


def monthly_returns(returns: pd.Series) -> pd.DataFrame:
    """Return compounded returns per calendar month (UTC) as a year × month table.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-30", periods=4, freq="1D", tz="UTC")
    >>> monthly_returns(pd.Series([0.1, 0.1, -0.5, 0.0], index=idx)).round(2)
    month     1    2
    year
    2024   0.21 -0.5
    """
    if len(returns) == 0:
        return pd.DataFrame()
    idx = pd.DatetimeIndex(returns.index)
    growth = (1.0 + returns).groupby([idx.year.rename("year"), idx.month.rename("month")]).prod()
    return (growth - 1.0).unstack("month")


def rolling_sharpe(returns: pd.Series, window_bars: int, *, periods_per_year: float) -> pd.Series:
    """Return the annualised Sharpe ratio over a trailing window of ``window_bars`` bars.

    Examples
    --------
    >>> r = pd.Series([0.01, -0.01, 0.02, 0.0])
    >>> round(float(rolling_sharpe(r, 3, periods_per_year=365).iloc[-1]), 3)
    4.169
    """
    roll = returns.rolling(window_bars, min_periods=window_bars)
    std = roll.std(ddof=1)
    return (roll.mean() / std.where(std > 0)) * math.sqrt(periods_per_year)


def _window_bars(result: BacktestResult) -> int:
    return int(max(20, len(result.returns) // 20))


def _headline(result: BacktestResult) -> str:
    return f"{result.strategy} {result.params}  —  {result.summary()}"


def plot_equity(
    result: BacktestResult, ax: Axes, dd_ax: Axes, *, max_points: int, title: bool = True
) -> None:
    """Draw equity (log scale if it spans 10x) and drawdown on two axes.

    With ``title`` the equity axes get the strategy, its parameters and the summary line.
    """
    equity = _thin(result.equity, max_points)
    ax.plot(equity.index, equity.to_numpy(), color=_BLUE, lw=1.0)
    ax.axhline(result.config["initial_capital"], color="grey", lw=0.6, ls="--")
    if equity.max() > 10 * max(equity.min(), 1e-12) and equity.min() > 0:
        ax.set_yscale("log")
    ax.set_ylabel("equity")
    if title:
        ax.set_title(_headline(result), fontsize=9)
    dd = _thin(result.drawdown, max_points)
    dd_ax.fill_between(dd.index, dd.to_numpy() * 100, 0.0, color=_RED, alpha=0.4, lw=0)
    dd_ax.set_ylabel("drawdown %")


def plot_trades(result: BacktestResult, ax: Axes, *, max_points: int) -> None:
    """Draw the close price with entry (▲ long, ▼ short) and exit (×) markers."""
    close = result.data["close"].loc[result.equity.index[0] :]
    thin = _thin(close, max_points)
    ax.plot(thin.index, thin.to_numpy(), color="black", lw=0.7)
    trades = result.trades
    if len(trades):
        longs = trades[trades["side"] == "long"]
        shorts = trades[trades["side"] == "short"]
        closed = trades[trades["exit_reason"] != "open"]
        for rows, time, price, marker, color, label in (
            (longs, "entry_time", "entry_price", "^", _GREEN, "long entry"),
            (shorts, "entry_time", "entry_price", "v", _RED, "short entry"),
            (closed, "exit_time", "exit_price", "x", "#555555", "exit"),
        ):
            if len(rows):
                ax.scatter(rows[time], rows[price], marker=marker, color=color, s=16,
                           label=label, zorder=3)  # fmt: skip
        ax.legend(loc="best", fontsize=7)
    ax.set_ylabel("price")


def plot_rolling_sharpe(result: BacktestResult, ax: Axes, *, max_points: int) -> None:
    """Draw the rolling Sharpe ratio (window: 1/20 of the bars, at least 20)."""
    w = _window_bars(result)
    rs = rolling_sharpe(result.returns, w, periods_per_year=result.config["periods_per_year"])
    rs = _thin(rs.dropna(), max_points)
    ax.plot(rs.index, rs.to_numpy(), color=_BLUE, lw=0.8)
    ax.axhline(0.0, color="grey", lw=0.6)
    span = pd.Timedelta(seconds=w * DAYS_PER_YEAR * 86_400 / result.config["periods_per_year"])
    ax.set_ylabel("Sharpe")
    ax.set_title(f"rolling Sharpe, window {w:,} bars ({span})", fontsize=9)


def plot_monthly_heatmap(result: BacktestResult, ax: Axes) -> None:
    """Draw monthly returns as a year × month heatmap with the values written in."""
    table = monthly_returns(result.returns).reindex(columns=range(1, 13))
    values = table.to_numpy(dtype=float) * 100
    finite = values[np.isfinite(values)]
    lim = float(np.max(np.abs(finite))) if finite.size else 1.0
    ax.imshow(values, cmap="RdYlGn", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(12), ["J", "F", "M", "A", "M", "J", "J", "A", "S", "O", "N", "D"])
    ax.set_yticks(range(len(table.index)), [str(y) for y in table.index])
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7)
    ax.set_title("monthly returns %", fontsize=9)


def plot_overview(result: BacktestResult, *, max_points: int = 5_000) -> Figure:
    """Return one figure: price and trades, equity, drawdown, rolling Sharpe."""
    fig, axes = _figure(11, 9, 4, sharex=True, height_ratios=[3, 3, 1.3, 1.5])
    plot_trades(result, axes[0], max_points=max_points)
    plot_equity(result, axes[1], axes[2], max_points=max_points, title=False)
    plot_rolling_sharpe(result, axes[3], max_points=max_points)
    axes[0].set_title(_headline(result), fontsize=9)  # on top of the shared-x stack
    return fig


def _png(fig: Figure) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="chart" src="data:image/png;base64,{data}">'


def _fmt(key: str, value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a" if math.isnan(value) else ("∞" if value > 0 else "-∞")
        pct_keys = {"max_drawdown", "cagr", "total_return", "volatility", "win_rate"}
        pct_keys |= {"exposure", "avg_trade_return"}
        if key in pct_keys:
            return f"{value * 100:.2f}%"
        if abs(value) >= 1_000:
            return f"{value:,.2f}"
        return f"{value:.4g}"
    return html.escape(str(value))


def _table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#222;
max-width:1150px}
h1{font-size:20px} h2{font-size:16px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px} th,td{padding:3px 10px;border-bottom:1px solid #eee}
th{text-align:left;font-weight:600;background:#fafafa} td{text-align:right}
code,pre{background:#f4f4f4;padding:2px 4px;font-size:12px;white-space:pre-wrap}
.summary{font-size:18px;font-family:monospace;margin:10px 0} img{max-width:100%}
.cols{display:flex;gap:40px;flex-wrap:wrap}
"""


def render_html(
    result: BacktestResult, *, command: str | None = None, max_points: int = 5_000
) -> str:
    """Return the tear sheet as one self-contained HTML document.

    Sections: summary line, provenance (command, strategy parameters, engine settings, data
    range), the stats table, equity and drawdown, monthly returns heatmap, rolling Sharpe,
    price with trade markers, and the first and last trades.
    """
    data = result.data
    stats_rows = [(k, _fmt(k, v)) for k, v in result.stats.items()]
    provenance = [
        ("command", f"<code>{html.escape(command)}</code>" if command else "(Python API)"),
        ("strategy", html.escape(result.strategy)),
        ("parameters", f"<code>{html.escape(repr(result.params))}</code>"),
        ("data", f"{data.index[0]} .. {data.index[-1]} ({len(data):,} bars)"),
        ("traded", f"{result.equity.index[0]} .. {result.equity.index[-1]}"),
    ]
    provenance += [(k, _fmt(k, v)) for k, v in result.config.items()]

    fig, (ax, dd_ax) = _figure(11, 5.5, 2, sharex=True, height_ratios=[3, 1.2])
    plot_equity(result, ax, dd_ax, max_points=max_points)
    equity_png = _png(fig)
    months = monthly_returns(result.returns)
    fig, ax = _figure(11, max(1.6, 0.45 * len(months) + 1.0))
    plot_monthly_heatmap(result, ax)
    heat_png = _png(fig)
    fig, ax = _figure(11, 3)
    plot_rolling_sharpe(result, ax, max_points=max_points)
    sharpe_png = _png(fig)
    fig, ax = _figure(11, 4.5)
    plot_trades(result, ax, max_points=max_points)
    trades_png = _png(fig)

    trades = result.trades
    shown = trades if len(trades) <= 40 else pd.concat([trades.head(20), trades.tail(20)])
    trades_html = (
        shown.drop(columns=["entry_bar", "exit_bar"]).to_html(float_format=lambda x: f"{x:.6g}")
        if len(shown)
        else "<p>no trades</p>"
    )
    more = f"<p>showing {len(shown)} of {len(trades):,} trades</p>" if len(trades) > 40 else ""
    headline = " | ".join(f"{k}: {_fmt(k, result.stats[k])}" for k in SUMMARY_KEYS[:4])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Backtest: {html.escape(result.strategy)}</title><style>{_CSS}</style></head>
<body>
<h1>Backtest: {html.escape(result.strategy)} {html.escape(repr(result.params))}</h1>
<div class="summary">{html.escape(result.summary())}</div>
<p>{html.escape(headline)}</p>
<div class="cols"><div><h2>Statistics</h2>{_table(stats_rows)}</div>
<div><h2>Provenance</h2>{_table(provenance)}</div></div>
<h2>Equity and drawdown</h2>{equity_png}
<h2>Monthly returns</h2>{heat_png}
<h2>Rolling Sharpe</h2>{sharpe_png}
<h2>Trades on price</h2>{trades_png}
<h2>Trades</h2>{more}{trades_html}
</body></html>
"""
