r"""``chimera backtest``: run a strategy on bars and print its stats (or JSON), with reports.

Examples::

    chimera backtest --csv data/samples/btcusdt_1m_binance_20240726_20240825.csv.gz \
        --strategy kelly --initial-capital 100000
    chimera backtest --symbol BTCUSDT --timeframe 1h --start 2024-01-01 \
        --strategy sma_cross --param fast=10 --param slow=50 --json
    chimera backtest --csv bars.csv --strategy my_strats.py:momentum --report tearsheet.html
    chimera backtest --list-strategies
"""

from __future__ import annotations

import math
import shlex
from pathlib import Path
from typing import Any

import click

from chimera_lab.cli._common import (
    SourceArgs,
    emit_json,
    get_settings,
    json_option,
    parse_params,
    source_options,
)

__all__ = ["backtest", "format_stats_table"]

_PCT = {"max_drawdown", "cagr", "total_return", "volatility", "win_rate", "exposure"}
_PCT |= {"avg_trade_return"}
_TABLE_KEYS = (
    "start",
    "end",
    "n_bars",
    "total_return",
    "volatility",
    "sortino",
    "calmar",
    "max_drawdown_duration",
    "n_trades",
    "win_rate",
    "profit_factor",
    "avg_trade_return",
    "exposure",
    "turnover",
    "fees",
    "funding",
    "final_equity",
)


def _fmt(key: str, value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if key in _PCT:
            return f"{value * 100:.2f}%"
        if key in {"fees", "funding", "final_equity"}:
            return f"{value:,.2f}"
        return f"{value:.2f}"
    return str(value)


def format_stats_table(stats: dict[str, Any]) -> str:
    """Return the short stats table printed above the summary line."""
    width = max(len(k) for k in _TABLE_KEYS)
    return "\n".join(f"{k:<{width}}  {_fmt(k, stats[k])}" for k in _TABLE_KEYS if k in stats)


def _command_line(ctx: click.Context) -> str:
    # Rebuild the command from the parsed options (defaults resolved), so the report names
    # exactly what produced it, whatever shorthand was typed.
    parts = ["chimera", "backtest"]
    p = ctx.params
    if p.get("csv_path") is not None:
        parts += ["--csv", str(p["csv_path"])]
    else:
        parts += ["--symbol", str(p["symbol"]), "--timeframe", str(p["timeframe"])]
        if p.get("store_url"):
            parts += ["--store", str(p["store_url"])]
    for opt in ("start", "end"):
        if p.get(opt):
            parts += [f"--{opt}", str(p[opt])]
    parts += ["--strategy", str(p["strategy_name"])]
    for pair in p.get("params", ()):
        parts += ["--param", pair]
    for opt in ("initial_capital", "fee_bps", "slippage_bps", "leverage"):
        parts += [f"--{opt.replace('_', '-')}", f"{p[opt]:g}"]
    if p.get("allow_short"):
        parts.append("--allow-short")
    for opt in ("stop_loss", "take_profit", "rebalance_tolerance"):
        if p.get(opt) is not None:
            parts += [f"--{opt.replace('_', '-')}", f"{p[opt]:g}"]
    if p.get("funding_path") is not None:
        parts += ["--funding", str(p["funding_path"])]
    if p.get("trade_start"):
        parts += ["--trade-start", str(p["trade_start"])]
    return " ".join(shlex.quote(x) for x in parts)


def _list_strategies() -> None:
    from chimera_lab.backtest import strategies

    for name in strategies.names():
        spec = strategies.get(name)
        params = ", ".join(f"{k}={v!r}" for k, v in spec.defaults.items())
        click.echo(f"{name}({params})")
        if spec.description:
            click.echo(f"    {spec.description}")
        if spec.grid:
            grid = "; ".join(f"{k}: {list(v)}" for k, v in spec.grid.items())
            click.echo(f"    grid: {grid}")


@click.command("backtest")
@source_options
@click.option(
    "--strategy",
    "strategy_name",
    metavar="NAME|FILE.py:FUNC",
    default=None,
    help="A registered strategy (see --list-strategies) or a function in a Python file.",
)
@click.option("--param", "params", multiple=True, metavar="K=V", help="Strategy parameter.")
@click.option("--initial-capital", type=float, default=None, help="Starting cash [100000].")
@click.option("--fee-bps", type=float, default=None, help="Fee per fill on notional, bps [6].")
@click.option("--slippage-bps", type=float, default=None, help="Slippage per fill, bps [0].")
@click.option("--leverage", type=float, default=1.0, show_default=True, help="Max |exposure|.")
@click.option("--allow-short", is_flag=True, help="Trade negative targets (else flat).")
@click.option("--stop-loss", type=float, default=None, help="Stop at this fraction from entry.")
@click.option("--take-profit", type=float, default=None, help="Target at this fraction.")
@click.option(
    "--rebalance-tolerance",
    type=float,
    default=None,
    help="Re-trade an unchanged target when exposure drifts this far from it.",
)
@click.option(
    "--funding",
    "funding_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Funding-rate file (perpetuals), e.g. data/samples/btcusdt_perp_funding_*.csv.",
)
@click.option("--trade-start", default=None, help="Warm up on earlier bars; trade from here.")
@json_option
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a self-contained HTML tear sheet.",
)
@click.option(
    "--trades",
    "trades_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the trades as CSV.",
)
@click.option(
    "--equity",
    "equity_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write equity, returns and position per bar as CSV.",
)
@click.option("--list-strategies", is_flag=True, help="List registered strategies and exit.")
@click.pass_context
def backtest(
    ctx: click.Context,
    source: SourceArgs,
    strategy_name: str | None,
    params: tuple[str, ...],
    initial_capital: float | None,
    fee_bps: float | None,
    slippage_bps: float | None,
    leverage: float,
    allow_short: bool,
    stop_loss: float | None,
    take_profit: float | None,
    rebalance_tolerance: float | None,
    funding_path: Path | None,
    trade_start: str | None,
    as_json: bool,
    report_path: Path | None,
    trades_path: Path | None,
    equity_path: Path | None,
    list_strategies: bool,
) -> None:
    """Backtest a strategy: the signal at each close trades at the next bar's open.

    Prints a short stats table and, last, the summary line
    ``Sharpe: 1.42 | MaxDD: -12.8% | CAGR: 47.0%``; with --json only the stats as JSON.
    """
    if list_strategies:
        _list_strategies()
        return
    if strategy_name is None:
        raise click.UsageError("--strategy is required (see --list-strategies)")
    from chimera_lab.backtest import SUMMARY_KEYS, resolve_strategy, run
    from chimera_lab.data.funding import load_funding

    settings = get_settings(ctx)
    cfg = settings.backtest
    ctx.params["initial_capital"] = initial_capital = (
        cfg.initial_capital if initial_capital is None else initial_capital
    )
    ctx.params["fee_bps"] = fee_bps = cfg.fee_bps if fee_bps is None else fee_bps
    ctx.params["slippage_bps"] = slippage_bps = (
        cfg.slippage_bps if slippage_bps is None else slippage_bps
    )
    data, origin = source.load(settings)
    funding = load_funding(funding_path) if funding_path is not None else None
    strategy_params = parse_params(params)
    if strategy_params.get("risk") is True and "risk" in resolve_strategy(strategy_name).parameters:
        # --param risk=True: the pre-trade limits configured for this environment
        # (CHIMERA_RISK__*), not the library defaults.
        from chimera_lab.risk import RiskManager

        strategy_params["risk"] = RiskManager(settings)
    result = run(
        data,
        strategy_name,
        initial_capital=initial_capital,
        fee_bps=fee_bps,
        slippage_bps=slippage_bps,
        leverage=leverage,
        allow_short=allow_short,
        stop_loss=stop_loss,
        take_profit=take_profit,
        rebalance_tolerance=rebalance_tolerance,
        funding=funding,
        trade_start=trade_start,
        **strategy_params,
    )
    if report_path is not None:
        result.to_html(report_path, command=_command_line(ctx))
    if trades_path is not None:
        result.trades.to_csv(trades_path)
    if equity_path is not None:
        frame = result.equity.to_frame().join([result.returns, result.positions])
        frame.to_csv(equity_path)
    if as_json:
        emit_json({k: result.stats[k] for k in SUMMARY_KEYS})
        return
    click.echo(f"{result.strategy} {result.params} on {origin.describe()}")
    click.echo(format_stats_table(result.stats))
    if report_path is not None:
        click.echo(f"report: {report_path}")
    click.echo(result.summary())
