"""A third-party client, unchanged: ccxt's implicit Bitget v2 methods against the simulator.

ccxt signs with its own code (bitget.sign: raw sorted query, compact JSON body) and its own
clock, so these tests check the simulator's wire compatibility independently of chimera_lab.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ccxt.async_support as ccxt_async  # a declared dev dependency: never skipped
import pytest
from _simkit import limit_buy

from chimera_lab.exchange.simulator import BitgetSimulator


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def _exchange(sim: BitgetSimulator, creds: dict[str, str]) -> Any:
    ex = ccxt_async.bitget(
        {
            "apiKey": creds["api_key"],
            "secret": creds["api_secret"],
            "password": creds["passphrase"],
            "enableRateLimit": False,
        }
    )
    ex.urls["api"] = {name: sim.base_url for name in ex.urls["api"]}
    return ex


def test_ccxt_public_candles_and_time(creds: dict[str, str]) -> None:
    async def scenario() -> None:
        async with BitgetSimulator(**creds) as sim:
            ex = _exchange(sim, creds)
            try:
                t = await ex.public_common_get_v2_public_time()
                assert t["code"] == "00000" and t["data"]["serverTime"].isdigit()
                candles = await ex.public_spot_get_v2_spot_market_candles(
                    {"symbol": "BTCUSDT", "granularity": "1min", "limit": "5"}
                )
                assert candles["code"] == "00000" and len(candles["data"]) == 5
                hist = await ex.public_mix_get_v2_mix_market_history_candles(
                    {
                        "symbol": "BTCUSDT",
                        "productType": "USDT-FUTURES",
                        "granularity": "5m",
                        "endTime": str(sim.clock.now_ms),
                        "limit": "3",
                    }
                )
                assert len(hist["data"]) == 3 and len(hist["data"][0]) == 7
            finally:
                await ex.close()

    run(scenario())


def test_ccxt_private_place_detail_cancel(creds: dict[str, str]) -> None:
    async def scenario() -> None:
        async with BitgetSimulator(**creds) as sim:
            ex = _exchange(sim, creds)
            try:
                placed = await ex.private_spot_post_v2_spot_trade_place_order(limit_buy("ccxt-1"))
                assert placed["code"] == "00000", placed
                info = await ex.private_spot_get_v2_spot_trade_orderinfo({"clientOid": "ccxt-1"})
                assert info["data"][0]["orderId"] == placed["data"]["orderId"]
                assert info["data"][0]["status"] == "live"
                fut = await ex.private_mix_post_v2_mix_order_place_order(
                    {
                        "symbol": "BTCUSDT",
                        "productType": "USDT-FUTURES",
                        "marginMode": "crossed",
                        "marginCoin": "USDT",
                        "side": "sell",
                        "orderType": "limit",
                        "price": "99999",
                        "size": "0.01",
                        "clientOid": "ccxt#2+x",  # signed raw, sent percent-encoded
                    }
                )
                detail = await ex.private_mix_get_v2_mix_order_detail(
                    {"symbol": "BTCUSDT", "productType": "USDT-FUTURES", "clientOid": "ccxt#2+x"}
                )
                assert detail["data"]["orderId"] == fut["data"]["orderId"]
                cancelled = await ex.private_spot_post_v2_spot_trade_cancel_order(
                    {"symbol": "BTCUSDT", "orderId": placed["data"]["orderId"]}
                )
                assert cancelled["data"]["clientOid"] == "ccxt-1"
                # A duplicate clientOid surfaces through ccxt's own error mapping.
                with pytest.raises(ccxt_async.BaseError) as info_err:
                    await ex.private_spot_post_v2_spot_trade_place_order(limit_buy("ccxt-1"))
                assert "43118" in str(info_err.value)
                assert [o.client_oid for o in sim.orders] == ["ccxt-1", "ccxt#2+x"]
                assert sim.orders[0].status == "cancelled"
            finally:
                await ex.close()

    run(scenario())


def test_ccxt_unified_fetch_ohlcv_pages_history(creds: dict[str, str]) -> None:
    async def scenario() -> None:
        async with BitgetSimulator(**creds) as sim:
            ex = _exchange(sim, creds)
            try:
                md = sim.markets["BTCUSDT"]
                ex.has["fetchCurrencies"] = False  # the simulator serves no coin/chain list
                await ex.load_markets()
                n = md.closed_count(sim.clock.now_ms)
                since = int(md.ts[n - 300])
                rows = await ex.fetch_ohlcv("BTC/USDT", "1m", since=since, limit=100)
                assert [r[0] for r in rows] == [int(t) for t in md.ts[n - 300 : n - 200]]
                assert rows[0][4] == float(md.close[n - 300])
            finally:
                await ex.close()

    run(scenario())
