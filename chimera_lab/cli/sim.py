"""``chimera sim``: run the loopback Bitget-compatible simulator."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Any

import click

from chimera_lab.cli._common import get_settings
from chimera_lab.errors import ConfigError

__all__ = ["serve", "sim"]


@click.group()
def sim() -> None:
    """Run the loopback Bitget-compatible simulator (REST + WebSocket v2)."""


def _balances(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        coin, sep, amount = pair.partition("=")
        if not sep or not coin.strip():
            raise click.BadParameter(f"{pair!r} is not COIN=AMOUNT", param_hint="--balance")
        try:
            float(amount)
        except ValueError:
            raise click.BadParameter(
                f"{pair!r}: amount {amount!r} is not a number", param_hint="--balance"
            ) from None
        out[coin.strip().upper()] = amount.strip()
    return out


def _start(value: str | None) -> str | int | None:
    if value is None:
        return None
    return int(value) if value.isdigit() else value


@sim.command()
@click.option("--host", default=None, help="Interface to listen on (default: settings, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: settings, 8900; 0 = any).")
@click.option("--symbol", default="BTCUSDT", show_default=True, help="Symbol to serve.")
@click.option("--timeframe", default="1m", show_default=True, help="Bars read from --store.")
@click.option(
    "--replay",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Replay bars from this file (CSV/gz/Parquet/Feather).",
)
@click.option("--store", "store_url", default=None, metavar="URL", help="Replay from the store.")
@click.option(
    "--clock",
    default=None,
    metavar="MODE",
    help="realtime (default), stepped (advance via /_sim/advance) or a speed-up factor (60).",
)
@click.option(
    "--start",
    default=None,
    metavar="TIME|N",
    help="Market start: a time or a bar count. Default: the end of the data; with --clock "
    "and a replay, after 100 bars.",
)
@click.option("--faults", default=None, metavar="SPEC", help="e.g. latency=0.05,error_rate=0.1")
@click.option("--api-key", default=None, help="Accepted API key (or CHIMERA_SIM__API_KEY).")
@click.option("--api-secret", default=None, help="Its secret (or CHIMERA_SIM__API_SECRET).")
@click.option("--passphrase", default=None, help="Its passphrase (or CHIMERA_SIM__PASSPHRASE).")
@click.option(
    "--balance",
    "balances",
    multiple=True,
    metavar="COIN=AMOUNT",
    help="Initial spot balance (repeatable; default USDT=100000).",
)
@click.option("--futures-balance", default=None, help="Initial futures USDT (default: spot USDT).")
@click.option("--leverage", type=int, default=10, show_default=True, help="Futures leverage.")
@click.option("--seed", type=int, default=0, show_default=True, help="Synthetic data seed.")
@click.option("--no-rate-limits", is_flag=True, help="Count requests but never answer 429.")
@click.option("--json", "as_json", is_flag=True, help="Print the URLs as one JSON line.")
@click.pass_context
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    symbol: str,
    timeframe: str,
    replay: Path | None,
    store_url: str | None,
    clock: str | None,
    start: str | None,
    faults: str | None,
    api_key: str | None,
    api_secret: str | None,
    passphrase: str | None,
    balances: tuple[str, ...],
    futures_balance: str | None,
    leverage: int,
    seed: int,
    no_rate_limits: bool,
    as_json: bool,
) -> None:
    """Serve a Bitget-compatible exchange on loopback until Ctrl-C.

    Point CHIMERA_BITGET__BASE_URL (and the WS URLs) at the printed addresses and use
    BitgetClient, ccxt or any Bitget client unchanged.
    """
    from chimera_lab.exchange.simulator import BitgetSimulator, FaultSpec
    from chimera_lab.logging import configure_logging

    settings = get_settings(ctx)
    if replay is not None and store_url is not None:
        raise click.UsageError("give at most one of --replay FILE and --store URL")
    key = api_key or _secret(settings.sim.api_key)
    secret = api_secret or _secret(settings.sim.api_secret)
    phrase = passphrase or _secret(settings.sim.passphrase)
    if not (key and secret and phrase):
        raise ConfigError(
            "the simulator needs credentials to accept: pass --api-key, --api-secret and "
            "--passphrase or set CHIMERA_SIM__API_KEY, CHIMERA_SIM__API_SECRET and "
            "CHIMERA_SIM__PASSPHRASE"
        )
    configure_logging(settings, extra_secrets=[key, secret, phrase])
    start_value = _start(start)
    if start_value is None and clock is not None and (replay or store_url):
        start_value = 100
    simulator = BitgetSimulator(
        replay=replay,
        store=store_url,
        symbol=symbol,
        timeframe=timeframe,
        api_key=key,
        api_secret=secret,
        passphrase=phrase,
        balances=_balances(balances) or None,
        futures_balance=futures_balance,
        leverage=leverage,
        faults=FaultSpec.parse(faults),
        clock=clock or "realtime",
        start=start_value,
        rate_limits=not no_rate_limits,
        host=host or settings.sim.host,
        port=settings.sim.port if port is None else port,
        seed=seed,
    )
    asyncio.run(_serve(simulator, as_json=as_json))


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


async def _serve(simulator: Any, *, as_json: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with simulator as s:
        market = next(iter(s.markets.values()))
        if as_json:
            info = {
                "base_url": s.base_url,
                "ws_public_url": s.ws_public_url,
                "ws_private_url": s.ws_private_url,
                "symbol": market.symbol,
                "now": s.clock.now.isoformat(),
            }
            print(json.dumps(info), flush=True)
        else:
            print(
                f"chimera sim listening\n"
                f"  REST        {s.base_url}\n"
                f"  WS public   {s.ws_public_url}\n"
                f"  WS private  {s.ws_private_url}\n"
                f"  market      {market.symbol}, {len(market.ts)} bars, {s.clock!r}\n"
                f"  faults      {s.faults.to_string() or 'none'}\n"
                "Press Ctrl-C to stop.",
                flush=True,
            )
        await stop.wait()
    print("chimera sim stopped", file=sys.stderr, flush=True)
