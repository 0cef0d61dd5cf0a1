"""REST trade views: fill listings (filters and paging), order status spelling, budget header.

The fill listings' reference is the obvious one: every fill the engine holds, newest trade id
first, filtered in Python; the endpoints must page through exactly that.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from _simkit import Signed, limit_buy

from chimera_lab.data.synthetic import make_ohlcv
from chimera_lab.exchange.simulator import BitgetSimulator
from chimera_lab.exchange.simulator.engine import SimFill
from chimera_lab.exchange.simulator.ws import _order_push

SPOT = "/api/v2/spot/trade/fills"
MIX = "/api/v2/mix/order/fills"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def _trade(sim: BitgetSimulator) -> None:
    # Spot and futures market orders on two symbols at several market times; large orders
    # walk several book levels, so one order has several fills.
    eng = sim.engine
    for step in range(6):
        now = sim.clock.now_ms
        for symbol in ("BTCUSDT", "ETHUSDT"):
            md = sim.markets[symbol]
            size = round(5_000 / md.price_at(now), 4)
            eng.place_spot(
                {
                    "symbol": symbol,
                    "side": "buy" if step % 2 == 0 else "sell",
                    "orderType": "market",
                    "force": "gtc",
                    # spot market buys are sized in quote; a big one walks the book
                    "size": str(60_000 if step % 2 == 0 else size),
                },
                now_ms=now,
            )
            eng.place_mix(
                {
                    "symbol": symbol,
                    "productType": "USDT-FUTURES",
                    "marginMode": "isolated",
                    "marginCoin": "USDT",
                    "orderType": "market",
                    "side": "buy" if step % 3 else "sell",
                    "size": str(size * 12),
                },
                now_ms=now,
            )
        sim.clock.advance(bars=3)


def _reference(
    sim: BitgetSimulator,
    market: str,
    *,
    symbol: str | None = None,
    order_id: str | None = None,
    start: int | None = None,
    end: int | None = None,
) -> list[SimFill]:
    out = [
        f
        for f in sorted(sim.engine.fills, key=lambda f: int(f.trade_id), reverse=True)
        if f.market == market
        and (symbol is None or f.symbol == symbol)
        and (order_id is None or f.order_id == order_id)
        and (start is None or f.time_ms >= start)
        and (end is None or f.time_ms <= end)
    ]
    return out


async def _walk(client: Signed, path: str, limit: int, **params: Any) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    for _ in range(200):  # bounded: at most a few hundred fills in these tests
        query = {**params, "limit": limit}
        if cursor is not None:
            query["idLessThan"] = cursor
        body = await client.call("GET", path, params=query)
        assert body["code"] == "00000", body
        data = body["data"]
        if path == MIX:
            rows = data["fillList"] or []
            assert data["endId"] == (rows[-1]["tradeId"] if rows else None)
        else:
            rows = data
        if not rows:
            return pages
        ids = [r["tradeId"] for r in rows]
        assert len(ids) <= limit
        pages.append(ids)
        cursor = ids[-1]
    raise AssertionError("paging did not end")


def test_fill_listings_page_newest_first_through_every_filter(creds: dict) -> None:
    bars = {"BTCUSDT": make_ohlcv(300, seed=1), "ETHUSDT": make_ohlcv(300, seed=2, price=3000)}

    async def scenario() -> None:
        balances = {"USDT": 1_000_000, "BTC": 100, "ETH": 1_000}
        sim = BitgetSimulator(bars, start=100, rate_limits=False, balances=balances, **creds)
        _trade(sim)
        fills = list(sim.engine.fills)
        assert [int(f.trade_id) for f in fills] == sorted(int(f.trade_id) for f in fills)
        spot_orders = {f.order_id for f in fills if f.market == "spot"}
        assert len([f for f in fills if f.market == "spot"]) > len(spot_orders)  # multi-fill
        times = sorted({f.time_ms for f in fills})
        lo, hi = times[1], times[-2]
        async with sim, httpx.AsyncClient(base_url=sim.base_url) as http:
            client = Signed(http)
            fut = {"productType": "USDT-FUTURES"}
            cases: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
                (SPOT, "spot", {}, {}),
                (SPOT, "spot", {"symbol": "ETHUSDT"}, {"symbol": "ETHUSDT"}),
                (SPOT, "spot", {"startTime": lo, "endTime": hi}, {"start": lo, "end": hi}),
                (MIX, "mix", fut, {}),
                (MIX, "mix", {**fut, "symbol": "btcusdt"}, {"symbol": "BTCUSDT"}),
                (MIX, "mix", {**fut, "startTime": lo}, {"start": lo}),
                (
                    MIX,
                    "mix",
                    {**fut, "endTime": hi, "symbol": "ETHUSDT"},
                    {"end": hi, "symbol": "ETHUSDT"},
                ),
            ]
            multi = next(o for o in spot_orders if len(sim.engine.orders[o].fills) > 1)
            cases.append((SPOT, "spot", {"orderId": multi}, {"order_id": multi}))
            mix_order = next(f.order_id for f in fills if f.market == "mix")
            cases.append((MIX, "mix", {**fut, "orderId": mix_order}, {"order_id": mix_order}))
            for path, market, params, ref in cases:
                want = [f.trade_id for f in _reference(sim, market, **ref)]
                assert want, (path, params)
                for limit in (1, 3, 100):
                    pages = await _walk(client, path, limit, **params)
                    got = [i for page in pages for i in page]
                    assert got == want, (path, params, limit)
                    assert all(len(p) == limit for p in pages[:-1])
            # One page in full: the rows are the reference fills rendered.
            body = await client.call("GET", SPOT, params={"symbol": "BTCUSDT", "limit": 2})
            ref_rows = _reference(sim, "spot", symbol="BTCUSDT")[:2]
            assert [(r["orderId"], r["cTime"]) for r in body["data"]] == [
                (f.order_id, str(f.time_ms)) for f in ref_rows
            ]
            # Bad paging parameters are refused before anything is listed.
            bad = await client.request("GET", MIX, params={**fut, "limit": 0})
            assert bad.status_code == 400 and bad.json()["code"] == "40020"

    run(scenario())


def test_cancelled_is_spelled_per_market_and_the_budget_header_counts_down(creds: dict) -> None:
    # Bitget spells the state "cancelled" in spot and "canceled" in futures (bitget-api.md).
    async def scenario() -> None:
        sim = BitgetSimulator(make_ohlcv(300, seed=4), start=100, **creds)
        async with sim, httpx.AsyncClient(base_url=sim.base_url) as http:
            client = Signed(http)
            placed = await client.call(
                "POST", "/api/v2/spot/trade/place-order", body=limit_buy("spot-1")
            )
            assert placed["code"] == "00000", placed
            await client.call(
                "POST",
                "/api/v2/spot/trade/cancel-order",
                body={"symbol": "BTCUSDT", "clientOid": "spot-1"},
            )
            info = await client.request(
                "GET", "/api/v2/spot/trade/orderInfo", params={"clientOid": "spot-1"}
            )
            assert info.json()["data"][0]["status"] == "cancelled"
            assert info.headers["x-mbx-used-remain-limit"] == "19"  # 20/s per API key
            mix = {
                "symbol": "BTCUSDT",
                "productType": "USDT-FUTURES",
                "marginMode": "isolated",
                "marginCoin": "USDT",
            }
            body = {**mix, "side": "buy", "orderType": "limit", "price": "1000", "size": "0.01"}
            placed = await client.call(
                "POST", "/api/v2/mix/order/place-order", body={**body, "clientOid": "mix-1"}
            )
            assert placed["code"] == "00000", placed
            await client.call(
                "POST", "/api/v2/mix/order/cancel-order", body={**mix, "clientOid": "mix-1"}
            )
            params = {"symbol": "BTCUSDT", "productType": "USDT-FUTURES", "clientOid": "mix-1"}
            detail = await client.request("GET", "/api/v2/mix/order/detail", params=params)
            row = detail.json()["data"]
            assert row["status"] == row["state"] == "canceled"
            assert detail.headers["x-mbx-used-remain-limit"] == "9"  # 10/s per API key
            public = await http.get("/api/v2/public/time")
            assert public.headers["x-mbx-used-remain-limit"] == "19"  # 20/s per IP
            orders = {o.client_oid: o for o in sim.engine.orders.values()}
            assert _order_push(orders["spot-1"], None)["status"] == "cancelled"
            assert _order_push(orders["mix-1"], None)["status"] == "canceled"

    run(scenario())
