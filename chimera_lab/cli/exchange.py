r"""``chimera data fetch``: page Bitget history candles into the store.

Registered lazily by the ``data`` group (``chimera_lab.cli.exchange:fetch``).

Examples
--------
::

    chimera data fetch --symbol BTCUSDT --timeframe 1m --start 2024-01-01 --end 2024-02-01
    chimera data fetch --symbol BTCUSDT --start 2024-01-01 --end 2024-01-02 --json \
        --base-url http://127.0.0.1:8900 --store data/chimera.duckdb
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import click

from chimera_lab.cli._common import emit_json, get_settings, json_option, parse_time, store_option

__all__ = ["fetch"]


@click.command("fetch")
@click.option("--symbol", required=True, help="Instrument, e.g. BTCUSDT.")
@click.option("--timeframe", default="1m", show_default=True, help="Bar timeframe.")
@click.option("--start", required=True, help="First bar (ISO date/time, UTC).")
@click.option("--end", required=True, help="End of the range, exclusive (ISO date/time, UTC).")
@click.option(
    "--product",
    type=click.Choice(["spot", "usdt-futures"]),
    default=None,
    help="Market (default: CHIMERA_BITGET__PRODUCT, else spot).",
)
@click.option(
    "--base-url",
    default=None,
    metavar="URL",
    help="Bitget REST base URL, e.g. http://127.0.0.1:8900 for `chimera sim serve`.",
)
@click.option(
    "--concurrency", default=4, show_default=True, type=click.IntRange(1, 32),
    help="Pages in flight at once (the rate limiter still paces every request).",
)  # fmt: skip
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on stderr.")
@store_option
@json_option
@click.pass_context
def fetch(
    ctx: click.Context,
    symbol: str,
    timeframe: str,
    start: str,
    end: str,
    product: str | None,
    base_url: str | None,
    concurrency: int,
    progress: bool,
    store_url: str | None,
    as_json: bool,
) -> None:
    """Fetch history candles from Bitget (or the simulator) into the store.

    Only the bars of the range the store lacks are fetched, so a rerun resumes where it
    stopped and a complete range costs nothing. Idempotent: bars are upserted. Bars the
    exchange does not have are reported (gaps inside its history; pending bars at the end).
    """
    from chimera_lab.data import Store
    from chimera_lab.exchange.base import Product
    from chimera_lab.exchange.bitget import BitgetClient
    from chimera_lab.exchange.fetch import fetch_to_store
    from chimera_lab.timeframes import timeframe_to_timedelta

    settings = get_settings(ctx)
    updates: dict[str, Any] = {}
    if base_url is not None:
        updates["base_url"] = base_url
    if product is not None:
        updates["product"] = product
    bitget = settings.bitget.model_copy(update=updates) if updates else settings.bitget
    t0, t1 = parse_time(start, name="start"), parse_time(end, name="end")
    assert t0 is not None and t1 is not None
    if t1 <= t0:
        raise click.BadParameter(f"--end {end} must be after --start {start}", param_hint="--end")
    total = int((t1 - t0) // timeframe_to_timedelta(timeframe))
    store = Store(store_url or None, settings=settings)

    async def run() -> Any:
        from tqdm import tqdm

        with tqdm(
            total=total, unit="bar", file=sys.stderr, disable=not progress or as_json,
            desc=f"{symbol} {timeframe}", leave=False,
        ) as bar:  # fmt: skip
            async with BitgetClient(bitget) as client:
                return await fetch_to_store(
                    client, store, symbol, timeframe, t0, t1, product=Product(bitget.product),
                    progress=bar.update, concurrency=concurrency,
                )  # fmt: skip

    result = asyncio.run(run())
    if as_json:
        emit_json(
            {
                "symbol": result.symbol,
                "timeframe": result.timeframe,
                "start": result.start,
                "end": result.end,
                "store": store.url,
                "product": bitget.product,
                "resumed_from": result.resumed_from,
                "bars_fetched": result.bars_fetched,
                "bars_new": result.bars_new,
                "requests": result.requests,
                "up_to_date": result.up_to_date,
                "bars_stored": result.bars_stored,
                "gaps": [list(gap) for gap in result.gaps],
                "bars_missing": result.bars_missing,
                "bars_pending": result.bars_pending,
                "elapsed_s": round(result.elapsed_s, 3),
            }
        )
    else:
        click.echo(f"{result.describe()} -> {store.url}")
