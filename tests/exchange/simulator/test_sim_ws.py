"""WebSocket v2: ping/pong, candle snapshot + updates, ticker/trade/books, private login."""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from typing import Any

import httpx
import pytest
import websockets
from _simkit import DOC_KEY, DOC_PASSPHRASE, DOC_SECRET, DOC_SIGN_D, Signed, hand_sign

from chimera_lab.data.synthetic import make_ohlcv
from chimera_lab.exchange.simulator import BitgetSimulator


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def recv_json(ws: Any, wait_s: float = 5.0) -> dict[str, Any]:
    while True:
        text = await asyncio.wait_for(ws.recv(), timeout=wait_s)
        if text != "pong":
            return json.loads(text)


def _arg(channel: str, inst_type: str = "SPOT", inst_id: str = "BTCUSDT") -> dict[str, str]:
    return {"instType": inst_type, "channel": channel, "instId": inst_id}


def test_ping_pong_and_candles_arrive_once_each_in_order(creds: dict) -> None:
    bars = make_ohlcv(400, seed=11)

    async def scenario() -> None:
        sim = BitgetSimulator(bars, start=100, **creds)
        md = sim.markets["BTCUSDT"]
        async with sim, websockets.connect(sim.ws_public_url) as ws:
            await ws.send("ping")
            assert await asyncio.wait_for(ws.recv(), timeout=5) == "pong"
            arg = _arg("candle1m", "USDT-FUTURES")
            await ws.send(json.dumps({"op": "subscribe", "args": [arg]}))
            assert await recv_json(ws) == {"event": "subscribe", "arg": arg}
            snap = await recv_json(ws)
            assert snap["action"] == "snapshot" and snap["arg"] == arg
            assert snap["ts"] == sim.clock.now_ms  # market time, like requestTime
            assert all(
                len(row) == 8 and all(isinstance(x, str) for x in row) for row in snap["data"]
            )
            latest: dict[int, list[str]] = {int(r[0]): r for r in snap["data"]}
            for step in (1, 3, 1, 7):  # stepped clock, several bars at once too
                await sim.clock.advance_async(bars=step)
                update = await recv_json(ws)
                assert update["action"] == "update" and update["ts"] == sim.clock.now_ms
                ts = [int(r[0]) for r in update["data"]]
                assert ts == sorted(ts)
                latest.update({int(r[0]): r for r in update["data"]})
            # Every bar from the snapshot's first to the open one, once, with final values.
            keys = sorted(latest)
            assert keys == list(range(keys[0], keys[-1] + 60_000, 60_000))
            n_closed = md.closed_count(sim.clock.now_ms)
            for i in range(n_closed - 12, n_closed):
                row = latest[int(md.ts[i])]
                assert float(row[4]) == pytest.approx(float(md.close[i]))

    run(scenario())


def test_ticker_trade_and_books_with_checksum(creds: dict) -> None:
    async def scenario() -> None:
        sim = BitgetSimulator(make_ohlcv(500, seed=3), start=300, **creds)
        async with sim, websockets.connect(sim.ws_public_url) as ws:
            args = [_arg("ticker"), _arg("trade"), _arg("books"), _arg("books5")]
            await ws.send(json.dumps({"op": "subscribe", "args": args}))
            got: dict[str, list[dict[str, Any]]] = {}
            for _ in range(8):
                msg = await recv_json(ws)
                if "action" in msg:
                    got.setdefault(msg["arg"]["channel"], []).append(msg)
            assert got["ticker"][0]["data"][0]["instId"] == "BTCUSDT"
            assert got["trade"][0]["action"] == "snapshot"
            assert {"ts", "price", "size", "side", "tradeId"} <= set(got["trade"][0]["data"][0])
            assert len(got["books5"][0]["data"][0]["bids"]) == 5
            # Rebuild `books` from snapshot + updates and check Bitget's CRC32 checksum.
            book = got["books"][0]["data"][0]
            levels = {s: {p: q for p, q in book[s]} for s in ("bids", "asks")}
            await sim.clock.advance_async(seconds=40)
            while True:
                msg = await recv_json(ws)
                if msg.get("arg", {}).get("channel") == "books":
                    break
            assert msg["action"] == "update"
            delta = msg["data"][0]
            for side in ("bids", "asks"):
                for p, q in delta[side]:
                    if q == "0":
                        levels[side].pop(p, None)
                    else:
                        levels[side][p] = q
            bids = sorted(levels["bids"].items(), key=lambda kv: -float(kv[0]))[:25]
            asks = sorted(levels["asks"].items(), key=lambda kv: float(kv[0]))[:25]
            parts: list[str] = []
            for i in range(25):
                if i < len(bids):
                    parts += list(bids[i])
                if i < len(asks):
                    parts += list(asks[i])
            crc = zlib.crc32(":".join(parts).encode())
            assert delta["checksum"] == (crc - 2**32 if crc >= 2**31 else crc)

    run(scenario())


def test_subscribe_errors(creds: dict) -> None:
    async def scenario() -> None:
        async with BitgetSimulator(**creds) as sim, websockets.connect(sim.ws_public_url) as ws:
            await ws.send(json.dumps({"op": "subscribe", "args": [_arg("candle1m", "SPOT", "X")]}))
            err = await recv_json(ws)
            assert err["event"] == "error" and err["code"] == "30001"
            await ws.send(json.dumps({"op": "dance", "args": []}))
            assert (await recv_json(ws))["code"] == "30003"
            await ws.send("not json")
            assert (await recv_json(ws))["code"] == "30002"

    run(scenario())


def test_private_login_with_the_worked_example_and_order_pushes() -> None:
    async def scenario() -> None:
        offset = 1_700_000_000_000 - int(time.time() * 1000)
        sim = BitgetSimulator(
            api_key=DOC_KEY,
            api_secret=DOC_SECRET,
            passphrase=DOC_PASSPHRASE,
            server_time_offset_ms=offset,
        )
        async with sim, websockets.connect(sim.ws_private_url) as ws:
            # Private channels need login first.
            await ws.send(
                json.dumps({"op": "subscribe", "args": [_arg("orders", "SPOT", "default")]})
            )
            assert (await recv_json(ws))["code"] == "30004"
            login = {
                "apiKey": DOC_KEY,
                "passphrase": DOC_PASSPHRASE,
                "timestamp": "1700000000",
                "sign": DOC_SIGN_D,
            }
            await ws.send(json.dumps({"op": "login", "args": [login]}))
            assert await recv_json(ws) == {"event": "login", "code": "0", "msg": ""}
            args = [
                _arg("orders", "SPOT", "default"),
                _arg("fill", "SPOT", "default"),
                {"instType": "SPOT", "channel": "account", "coin": "default"},
            ]
            await ws.send(json.dumps({"op": "subscribe", "args": args}))
            for _ in range(6):  # three acks and three snapshots
                await recv_json(ws)
            async with httpx.AsyncClient(base_url=sim.base_url) as http:
                client = Signed(http, DOC_KEY, DOC_SECRET, DOC_PASSPHRASE)
                ts = str(1_700_000_000_000 + int(time.time() * 1000) % 1000)
                r = await client.call(
                    "POST",
                    "/api/v2/spot/trade/place-order",
                    timestamp=ts,
                    body={
                        "symbol": "BTCUSDT",
                        "side": "buy",
                        "orderType": "market",
                        "force": "gtc",
                        "size": "100",
                        "clientOid": "ws-1",
                    },
                )
                assert r["code"] == "00000", r
            channels: dict[str, dict[str, Any]] = {}
            while len(channels) < 3:
                msg = await recv_json(ws)
                channels[msg["arg"]["channel"]] = msg
            order = channels["orders"]["data"][-1]
            assert order["clientOid"] == "ws-1" and order["status"] == "filled"
            assert channels["fill"]["data"][0]["orderId"] == order["orderId"]
            assert {row["coin"] for row in channels["account"]["data"]} >= {"BTC", "USDT"}

    run(scenario())


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("sign", "bad", "30015"),
        ("timestamp", "1", "30014"),
        ("passphrase", "x", "30012"),
        ("apiKey", "x", "30011"),
    ],
)
def test_private_login_failures_close_the_socket(
    creds: dict, field: str, value: str, code: str
) -> None:
    async def scenario() -> None:
        async with BitgetSimulator(**creds) as sim, websockets.connect(sim.ws_private_url) as ws:
            ts = str(int(time.time()))
            login = {
                "apiKey": creds["api_key"],
                "passphrase": creds["passphrase"],
                "timestamp": ts,
                "sign": hand_sign(creds["api_secret"], ts + "GET/user/verify"),
            }
            login[field] = value
            await ws.send(json.dumps({"op": "login", "args": [login]}))
            err = await recv_json(ws)
            assert err["event"] == "error" and err["code"] == code
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), timeout=5)

    run(scenario())


def test_idle_and_flooding_connections_are_closed(creds: dict) -> None:
    async def scenario() -> None:
        sim = BitgetSimulator(**creds, ws_idle_timeout_s=0.3, ws_max_messages_per_s=5)
        async with sim:
            async with websockets.connect(sim.ws_public_url) as ws:
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), timeout=5)  # no ping: closed
            async with websockets.connect(sim.ws_public_url) as ws:
                for _ in range(6):
                    await ws.send("ping")
                with pytest.raises(websockets.ConnectionClosed):
                    for _ in range(10):
                        await asyncio.wait_for(ws.recv(), timeout=5)

    run(scenario())


def test_accelerated_clock_pushes_closed_candles_in_order(creds: dict) -> None:
    async def scenario() -> None:
        sim = BitgetSimulator(
            make_ohlcv(500, seed=8), start=100, clock=600.0, ws_push_interval_s=0.05, **creds
        )
        async with sim, websockets.connect(sim.ws_public_url) as ws:
            arg = _arg("candle1m")
            await ws.send(json.dumps({"op": "subscribe", "args": [arg]}))
            await recv_json(ws)
            snap = await recv_json(ws)
            first_open = int(snap["data"][-1][0])
            seen = [first_open]
            for _ in range(200):  # bounded; 600x: a bar every 0.1 s of wall time
                msg = await recv_json(ws)
                for row in msg["data"]:
                    if int(row[0]) != seen[-1]:
                        seen.append(int(row[0]))
                if len(seen) >= 6:
                    break
            assert seen == list(range(first_open, first_open + 6 * 60_000, 60_000))

    run(scenario())


def test_ticker_push_fields_match_the_market_at_its_timestamp(creds: dict) -> None:
    bars = make_ohlcv(3000, seed=5)  # > 1 day of 1m bars, so the 24h window is full

    async def scenario() -> None:
        sim = BitgetSimulator(bars, start=2000, **creds)
        md = sim.markets["BTCUSDT"]
        interval = sim.engine.funding_interval_ms
        async with sim, websockets.connect(sim.ws_public_url) as ws:
            args = [_arg("ticker"), _arg("ticker", "USDT-FUTURES")]
            await ws.send(json.dumps({"op": "subscribe", "args": args}))
            rows: dict[str, dict[str, Any]] = {}
            for _ in range(8):  # bounded: 2 acks + 2 snapshots
                msg = await recv_json(ws)
                if msg.get("action") == "snapshot":
                    rows[msg["arg"]["instType"]] = msg["data"][0]
                if len(rows) == 2:
                    break
            for row in rows.values():
                now = int(row["ts"])
                stats = md.stats_24h(now)
                assert float(row["open24h"]) == pytest.approx(stats["open24h"], abs=1e-9)
                assert float(row["lastPr"]) == pytest.approx(stats["last"], abs=1e-9)
            fut = rows["USDT-FUTURES"]
            assert int(fut["nextFundingTime"]) == (int(fut["ts"]) // interval + 1) * interval

    run(scenario())
