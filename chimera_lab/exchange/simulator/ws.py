"""WebSocket v2 of the simulator: public candles/ticker/trades/books, private orders/fills.

Protocol (bitget-api.md §7): text ``ping`` → ``pong``; ``{"op":"subscribe","args":[...]}`` is
acknowledged with ``{"event":"subscribe","arg":{...}}`` and followed by a ``snapshot`` push,
then ``update`` pushes (candles, trades, ``books``) or further snapshots (ticker, ``books1/5/15``,
private channels). Pushes carry ``{"action","arg","data":[...],"ts":<number>}``.

* Candles: the snapshot holds the last 200 candles (the newest is the open one); each update
  re-sends the candle that was open at the previous push (now final, if it closed) and every
  candle since, oldest first — a consumer that keeps the latest row per ``ts`` sees every
  closed candle exactly once with its final values.
* Pushes happen on every stepped clock advance and, with a real-time clock, every
  ``push_interval_s`` wall seconds (Bitget: about once a second while trading).
* The private socket needs ``login`` (timestamp in **seconds**, valid ±30 s); failures answer
  ``{"event":"error","code":...}`` and close. WS error codes 30001–30016 come from ccxt's
  table only (**unverified**): 30001 unknown channel, 30002 illegal request, 30003 bad op,
  30004 login required, 30006 too many requests, 30011 bad key, 30012 bad passphrase,
  30013 bad timestamp, 30014 timestamp expired, 30015 bad sign, 30016 parameter error.
* A connection that sends no ``ping`` for ``idle_timeout_s`` (2 min) or more than
  ``max_messages_per_s`` messages in a second is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from chimera_lab.exchange.signing import ws_login_sign
from chimera_lab.exchange.simulator.engine import SimFill, SimOrder
from chimera_lab.exchange.simulator.market import Granularity, MarketData, fmt, parse_granularity
from chimera_lab.exchange.simulator.rest import RequestContext, _ticker_row, dfmt
from chimera_lab.exchange.simulator.rest_trade import _mix_account_row, _position_rows
from chimera_lab.logging import get_logger

if TYPE_CHECKING:
    from chimera_lab.exchange.simulator.server import BitgetSimulator

__all__ = ["WsHub"]

log = get_logger(__name__)

_INST_TYPES = {"SPOT", "USDT-FUTURES", "COIN-FUTURES", "USDC-FUTURES"}
_PUBLIC = {"ticker", "trade", "books", "books1", "books5", "books15"}
_PRIVATE = {"orders", "fill", "account", "positions"}
_SKEW_S = 30


@dataclass(eq=False)
class _Sub:
    arg: dict[str, str]
    channel: str
    inst_type: str
    md: MarketData | None = None
    gran: Granularity | None = None
    last_ts: int | None = None
    last_row: tuple[Any, ...] | None = None
    last_now: int = -1
    book: dict[str, dict[str, str]] | None = None
    seq: int = 0


@dataclass(eq=False)
class _Conn:
    ws: web.WebSocketResponse
    private: bool
    remote: str
    logged_in: bool = False
    subs: dict[tuple[str, str, str], _Sub] = field(default_factory=dict)
    msg_times: deque[float] = field(default_factory=deque)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, payload: Any) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
        async with self.lock:
            if not self.ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await self.ws.send_str(text)


def _key(arg: dict[str, str]) -> tuple[str, str, str]:
    return (
        arg.get("instType", ""),
        arg.get("channel", ""),
        arg.get("instId") or arg.get("coin") or "",
    )


def _checksum(book: dict[str, dict[str, str]]) -> int:
    # Signed CRC32 of the top 25 levels interleaved bid:ask (bitget-api.md §7 "books upkeep").
    bids = sorted(book["bids"].items(), key=lambda kv: -float(kv[0]))[:25]
    asks = sorted(book["asks"].items(), key=lambda kv: float(kv[0]))[:25]
    parts: list[str] = []
    for i in range(25):
        if i < len(bids):
            parts += [bids[i][0], bids[i][1]]
        if i < len(asks):
            parts += [asks[i][0], asks[i][1]]
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


class WsHub:
    """All WebSocket connections of one simulator and the task that pushes to them."""

    def __init__(
        self,
        sim: BitgetSimulator,
        *,
        push_interval_s: float = 1.0,
        idle_timeout_s: float = 120.0,
        max_messages_per_s: int = 10,
    ) -> None:
        self.sim = sim
        self.push_interval_s = push_interval_s
        self.idle_timeout_s = idle_timeout_s
        self.max_messages_per_s = max_messages_per_s
        self._conns: set[_Conn] = set()
        self._events: deque[tuple[str, dict[str, Any]]] = deque(maxlen=100_000)
        self._wake = asyncio.Event()
        self._done = asyncio.Condition()
        self._gen_requested = 0
        self._gen_done = 0
        self._task: asyncio.Task[None] | None = None
        self._last_disconnect = time.monotonic()
        self._trade_ids = 1_400_000_000_000_000_000

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the pusher task."""
        self._wake = asyncio.Event()
        self._done = asyncio.Condition()
        self._last_disconnect = time.monotonic()
        self._task = asyncio.create_task(self._run(), name="chimera-sim-ws-pusher")

    async def stop(self) -> None:
        """Stop pushing and close every connection."""
        await self.disconnect_all(abrupt=False, reason="shutdown")
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        """Ask the pusher to run now."""
        self._gen_requested += 1
        self._wake.set()

    async def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until the pusher has sent everything due at call time."""
        if self._task is None:
            return
        self.wake()
        target = self._gen_requested
        async with self._done:
            await asyncio.wait_for(
                self._done.wait_for(lambda: self._gen_done >= target), timeout=timeout_s
            )

    async def disconnect_all(self, *, abrupt: bool, reason: str) -> int:
        """Close every connection; abruptly means a TCP reset without a close frame."""
        conns = list(self._conns)
        for conn in conns:
            self.sim.stats.faults["ws_disconnect"] += reason != "shutdown"
            if abrupt and conn.ws._req is not None and conn.ws._req.transport is not None:
                conn.ws._req.transport.abort()
            else:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        conn.ws.close(code=1001, message=b"server closing"), timeout=1.0
                    )
        self._conns.difference_update(conns)
        return len(conns)

    # -- engine events ---------------------------------------------------------------------
    def on_engine_event(self, kind: str, payload: dict[str, Any]) -> None:
        """Record an order/fill/position event for private pushes (rendered now)."""
        if not any(c.private and c.logged_in for c in self._conns):
            return
        if kind == "order":
            order: SimOrder = payload["order"]
            last_fill = order.fills[-1] if order.fills else None
            self._events.append(("orders", {"order": order, "row": _order_push(order, last_fill)}))
        elif kind == "fill":
            fill: SimFill = payload["fill"]
            self._events.append(("fill", {"fill": fill, "row": _fill_push(fill, payload["order"])}))
        self._events.append(("account", {}))

    # -- connections -----------------------------------------------------------------------
    async def handle_public(self, request: web.Request) -> web.StreamResponse:
        """Serve ``/v2/ws/public``."""
        return await self._serve(request, private=False)

    async def handle_private(self, request: web.Request) -> web.StreamResponse:
        """Serve ``/v2/ws/private``."""
        return await self._serve(request, private=True)

    async def _serve(self, request: web.Request, *, private: bool) -> web.StreamResponse:
        remote = request.remote or "?"
        if self.sim.limiter.check("ws_connect", remote, now_s=time.monotonic()) is not None:
            raise web.HTTPTooManyRequests(text="Too Many Requests")
        ws = web.WebSocketResponse(autoping=True, heartbeat=None, max_msg_size=1 << 16)
        await ws.prepare(request)
        conn = _Conn(ws=ws, private=private, remote=remote)
        self._conns.add(conn)
        self.sim.stats.ws_connections += 1
        last_ping = time.monotonic()
        try:
            while not ws.closed:
                remaining = last_ping + self.idle_timeout_s - time.monotonic()
                if remaining <= 0:
                    await ws.close(code=1000, message=b"no ping for too long")
                    break
                try:
                    msg = await ws.receive(timeout=remaining)
                except TimeoutError:
                    continue
                if msg.type != WSMsgType.TEXT:
                    if msg.type in (
                        WSMsgType.CLOSE,
                        WSMsgType.CLOSING,
                        WSMsgType.CLOSED,
                        WSMsgType.ERROR,
                    ):
                        break
                    continue
                now = time.monotonic()
                conn.msg_times.append(now)
                while conn.msg_times and conn.msg_times[0] <= now - 1.0:
                    conn.msg_times.popleft()
                if len(conn.msg_times) > self.max_messages_per_s:
                    await conn.send({"event": "error", "code": "30006", "msg": "request too many"})
                    await ws.close(code=1008, message=b"too many messages")
                    break
                if msg.data == "ping":
                    last_ping = now
                    await conn.send("pong")
                    continue
                await self._on_message(conn, msg.data)
        finally:
            self._conns.discard(conn)
        return ws

    async def _on_message(self, conn: _Conn, text: str) -> None:
        try:
            message = json.loads(text)
        except json.JSONDecodeError:
            await conn.send({"event": "error", "code": "30002", "msg": "illegal request"})
            return
        if not isinstance(message, dict):
            await conn.send({"event": "error", "code": "30002", "msg": "illegal request"})
            return
        op = message.get("op")
        args = message.get("args")
        if op not in ("subscribe", "unsubscribe", "login") or not isinstance(args, list):
            await conn.send({"event": "error", "code": "30003", "msg": f"invalid op {op!r}"})
            return
        if op == "login":
            await self._login(conn, args)
            return
        for arg in args:
            if not isinstance(arg, dict):
                await conn.send({"event": "error", "code": "30016", "msg": "param error"})
                continue
            arg = {str(k): str(v) for k, v in arg.items()}
            if op == "unsubscribe":
                conn.subs.pop(_key(arg), None)
                await conn.send({"event": "unsubscribe", "arg": arg})
                continue
            sub, error = self._make_sub(conn, arg)
            if sub is None:
                await conn.send(
                    {
                        "event": "error",
                        "arg": arg,
                        "code": error[0],
                        "msg": error[1],
                        "op": "subscribe",
                    }
                )
                continue
            conn.subs[_key(arg)] = sub
            await conn.send({"event": "subscribe", "arg": arg})
            await self._push_snapshot(conn, sub)

    async def _login(self, conn: _Conn, args: list[Any]) -> None:
        creds = self.sim.credentials
        a = args[0] if args and isinstance(args[0], dict) else {}
        key, phrase = str(a.get("apiKey", "")), str(a.get("passphrase", ""))
        ts, sig = str(a.get("timestamp", "")), str(a.get("sign", ""))
        error: tuple[str, str] | None = None
        if not (key and phrase and ts and sig):
            error = ("30016", "param error")
        elif key != creds.api_key:
            error = ("30011", "Invalid ACCESS_KEY")
        elif phrase != creds.passphrase:
            error = ("30012", "Invalid ACCESS_PASSPHRASE")
        elif not ts.isdigit():
            error = ("30013", "Invalid ACCESS_TIMESTAMP")
        elif abs(int(ts) - self.sim.server_time_ms() / 1000) > _SKEW_S:
            # Seconds, as the doc's example, the SDK and ccxt use (ms acceptance unverified).
            error = ("30014", "Request timestamp expired")
        elif sig != ws_login_sign(creds.api_secret, ts):
            error = ("30015", "Invalid sign")
        if error is not None:
            await conn.send({"event": "error", "code": error[0], "msg": error[1]})
            await conn.ws.close(code=1008, message=b"login failed")
            return
        conn.logged_in = True
        await conn.send({"event": "login", "code": "0", "msg": ""})

    def _make_sub(self, conn: _Conn, arg: dict[str, str]) -> tuple[_Sub | None, tuple[str, str]]:
        inst_type, channel = arg.get("instType", "").upper(), arg.get("channel", "")
        inst_id = arg.get("instId") or arg.get("coin") or ""
        what = f"instType:{inst_type},channel:{channel},instId:{inst_id}"
        if inst_type not in _INST_TYPES:
            return None, ("30001", f"{what} doesn't exist")
        if channel in _PRIVATE:
            if not conn.private:
                return None, ("30001", f"{what} doesn't exist")
            if not conn.logged_in:
                return None, ("30004", "User not logged in")
            md = self.sim.markets.get(inst_id.upper()) if inst_id != "default" else None
            if inst_id != "default" and md is None:
                return None, ("30001", f"{what} doesn't exist")
            return _Sub(arg, channel, inst_type, md=md), ("", "")
        if conn.private:
            return None, ("30001", f"{what} doesn't exist")
        md = self.sim.markets.get(inst_id.upper())
        if md is None:
            return None, ("30001", f"{what} doesn't exist")
        if channel.startswith("candle"):
            gran = parse_granularity("ws", channel)
            if gran is None or (gran.ms < md.tf_ms and not gran.months):
                return None, ("30001", f"{what} doesn't exist")
            return _Sub(arg, channel, inst_type, md=md, gran=gran), ("", "")
        if channel not in _PUBLIC:
            return None, ("30001", f"{what} doesn't exist")
        return _Sub(arg, channel, inst_type, md=md), ("", "")

    # -- pushing ---------------------------------------------------------------------------
    def _push(self, sub: _Sub, action: str, data: list[Any]) -> dict[str, Any]:
        # ts: market time, like requestTime (see BitgetSimulator.request_time_ms).
        return {"action": action, "arg": sub.arg, "data": data, "ts": self.sim.request_time_ms()}

    async def _push_snapshot(self, conn: _Conn, sub: _Sub) -> None:
        now = self.sim.clock.now_ms
        self.sim.engine.catch_up(now)
        sub.last_now = now
        md = sub.md
        if sub.gran is not None and md is not None:
            rows = md.candles(
                sub.gran, now_ms=now, start_ms=None, end_ms=None, limit=200, include_open=True
            )
            if rows:
                sub.last_ts, sub.last_row = rows[-1][0], rows[-1]
            await conn.send(self._push(sub, "snapshot", [_ws_candle(md, r) for r in rows]))
        elif sub.channel == "ticker" and md is not None:
            await conn.send(self._push(sub, "snapshot", [self._ticker(sub, md, now)]))
        elif sub.channel == "trade" and md is not None:
            n = md.closed_count(now)
            trades = []
            for i in range(max(0, n - 50), n):  # one synthetic print per recent bar
                trades.append(
                    {
                        "ts": str(int(md.ts[i]) + md.tf_ms - 1),
                        "price": fmt(float(md.close[i]), md.price_decimals),
                        "size": fmt(float(md.volume[i]) / 10, 6),
                        "side": "buy" if md.close[i] >= md.open[i] else "sell",
                        "tradeId": str(self._next_trade_id()),
                    }
                )
            sub.last_row = (md.price_at(now),)
            await conn.send(self._push(sub, "snapshot", trades[::-1]))
        elif sub.channel.startswith("books") and md is not None:
            await conn.send(self._push(sub, "snapshot", [self._book(sub, md, now, first=True)]))
        elif sub.channel == "account":
            await conn.send(self._push(sub, "snapshot", self._account(sub, now)))
        elif sub.channel == "positions":
            await conn.send(self._push(sub, "snapshot", self._positions(now)))
        elif sub.channel in ("orders", "fill"):
            await conn.send(self._push(sub, "snapshot", []))

    def _next_trade_id(self) -> int:
        self._trade_ids += 1
        return self._trade_ids

    def _ticker(self, sub: _Sub, md: MarketData, now: int) -> dict[str, Any]:
        futures = sub.inst_type != "SPOT"
        row = _ticker_row(md, now, futures=futures, engine=self.sim.engine)
        out = {
            "instId": md.symbol,
            "lastPr": row["lastPr"],
            # _ticker_row already formatted the 24h open (as "open" on spot rows)
            "open24h": row["open24h" if futures else "open"],
            "high24h": row["high24h"],
            "low24h": row["low24h"],
            "change24h": row["change24h"],
            "bidPr": row["bidPr"],
            "askPr": row["askPr"],
            "bidSz": row["bidSz"],
            "askSz": row["askSz"],
            "baseVolume": row["baseVolume"],
            "quoteVolume": row["quoteVolume"],
            "openUtc": row["openUtc"],
            "changeUtc24h": row["changeUtc24h"],
            "ts": str(now),
        }
        if futures:
            out.update(
                {
                    "fundingRate": row["fundingRate"],
                    "nextFundingTime": str(self.sim.engine.next_funding_ms(now)),
                    "markPrice": row["markPrice"],
                    "indexPrice": row["indexPrice"],
                    "holdingAmount": row["holdingAmount"],
                    "symbol": md.symbol,
                    "symbolType": "1",
                    "deliveryPrice": "0",
                }
            )
        return out

    def _book(self, sub: _Sub, md: MarketData, now: int, *, first: bool) -> dict[str, Any]:
        depth = {"books1": 1, "books5": 5, "books15": 15}.get(sub.channel, 150)
        bids, asks = md.book(now, depth)
        d = md.price_decimals
        levels = {
            "bids": {fmt(p, d): fmt(q, 6) for p, q in bids},
            "asks": {fmt(p, d): fmt(q, 6) for p, q in asks},
        }
        sub.seq += 1
        if sub.channel != "books" or first or sub.book is None:
            sub.book = levels
            data = {side: [[p, q] for p, q in lv.items()] for side, lv in levels.items()}
        else:
            data = {}
            for side in ("bids", "asks"):
                old, new = sub.book[side], levels[side]
                delta = [[p, "0"] for p in old if p not in new]
                delta += [[p, q] for p, q in new.items() if old.get(p) != q]
                data[side] = delta
            sub.book = levels
        return {
            **data,
            "checksum": _checksum(levels) if sub.channel == "books" else 0,
            "seq": sub.seq,
            "ts": str(now),
        }

    def _ctx(self, now: int) -> RequestContext:
        return RequestContext(
            params={},
            now_ms=now,
            server_ms=self.sim.server_time_ms(),
            markets=self.sim.markets,
            engine=self.sim.engine,
        )

    def _account(self, sub: _Sub, now: int) -> list[dict[str, Any]]:
        if sub.inst_type == "SPOT":
            return [
                {
                    "coin": c,
                    "available": dfmt(a),
                    "frozen": dfmt(f),
                    "locked": "0",
                    "limitAvailable": "0",
                    "uTime": str(now),
                }
                for c, (a, f) in sorted(self.sim.engine.account.spot.items())
            ]
        row = _mix_account_row(self._ctx(now))
        return [
            {
                "marginCoin": "USDT",
                "frozen": row["locked"],
                "available": row["available"],
                "maxOpenPosAvailable": row["available"],
                "maxTransferOut": row["available"],
                "equity": row["accountEquity"],
                "usdtEquity": row["usdtEquity"],
                "crossedRiskRate": "0",
                "unrealizedPL": row["unrealizedPL"],
            }
        ]

    def _positions(self, now: int) -> list[dict[str, Any]]:
        rows = _position_rows(self._ctx(now), None)
        return [{**r, "instId": r["symbol"], "posId": r["symbol"]} for r in rows]

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.push_interval_s)
            self._wake.clear()
            target = self._gen_requested
            try:
                await self._tick()
            except Exception as exc:  # keep pushing; a broken push must not stop the hub
                log.warning("sim.ws.push_failed", error=repr(exc))
            async with self._done:
                self._gen_done = max(self._gen_done, target)
                self._done.notify_all()

    async def _tick(self) -> None:
        spec = self.sim.faults
        mono = time.monotonic()
        if spec.ws_disconnect_every_s is not None:
            if mono - self._last_disconnect >= spec.ws_disconnect_every_s:
                self._last_disconnect = mono
                await self.disconnect_all(abrupt=True, reason="fault")
        else:
            self._last_disconnect = mono
        now = self.sim.clock.now_ms
        self.sim.engine.catch_up(now)
        events = list(self._events)
        self._events.clear()
        account_dirty = any(kind == "account" for kind, _ in events)
        for conn in list(self._conns):
            for sub in list(conn.subs.values()):
                if sub.channel in _PRIVATE:
                    await self._push_private(conn, sub, events, account_dirty, now)
                elif sub.last_now != now:
                    await self._push_public(conn, sub, now)

    async def _push_public(self, conn: _Conn, sub: _Sub, now: int) -> None:
        md = sub.md
        assert md is not None
        sub.last_now = now
        if sub.gran is not None:
            rows = md.candles(
                sub.gran,
                now_ms=now,
                start_ms=sub.last_ts,
                end_ms=None,
                limit=1000,
                include_open=True,
            )
            if rows and (len(rows) > 1 or rows[-1] != sub.last_row):
                sub.last_ts, sub.last_row = rows[-1][0], rows[-1]
                await conn.send(self._push(sub, "update", [_ws_candle(md, r) for r in rows]))
        elif sub.channel == "ticker":
            await conn.send(self._push(sub, "snapshot", [self._ticker(sub, md, now)]))
        elif sub.channel == "trade":
            price = md.price_at(now)
            prev = sub.last_row[0] if sub.last_row else price
            if price != prev:
                ob = md.open_bar(now)
                size = max((ob[5] if ob else 0.0) / 20, 10**-6)
                sub.last_row = (price,)
                await conn.send(
                    self._push(
                        sub,
                        "update",
                        [
                            {
                                "ts": str(now),
                                "price": fmt(price, md.price_decimals),
                                "size": fmt(size, 6),
                                "side": "buy" if price > prev else "sell",
                                "tradeId": str(self._next_trade_id()),
                            }
                        ],
                    )
                )
        elif sub.channel.startswith("books"):
            action = "update" if sub.channel == "books" else "snapshot"
            await conn.send(self._push(sub, action, [self._book(sub, md, now, first=False)]))

    async def _push_private(
        self, conn: _Conn, sub: _Sub, events: list[tuple[str, Any]], account_dirty: bool, now: int
    ) -> None:
        want_spot = sub.inst_type == "SPOT"
        if sub.channel in ("orders", "fill"):
            rows = []
            for kind, payload in events:
                if kind != sub.channel:
                    continue
                item: SimOrder | SimFill = payload["order" if kind == "orders" else "fill"]
                if (item.market == "spot") != want_spot:
                    continue
                if sub.md is not None and item.symbol != sub.md.symbol:
                    continue
                rows.append(payload["row"])
            if rows:
                await conn.send(self._push(sub, "snapshot", rows))
        elif account_dirty and sub.channel == "account":
            await conn.send(self._push(sub, "snapshot", self._account(sub, now)))
        elif account_dirty and sub.channel == "positions" and not want_spot:
            await conn.send(self._push(sub, "snapshot", self._positions(now)))


def _ws_candle(md: MarketData, row: tuple[Any, ...]) -> list[str]:
    ts, o, h, lo, c, v, qv = row
    d = md.price_decimals
    quote = fmt(qv, 4)
    # [ts, o, h, l, c, baseVolume, quoteVolume, usdtVolume]
    return [str(ts), fmt(o, d), fmt(h, d), fmt(lo, d), fmt(c, d), fmt(v, 6), quote, quote]


def _order_push(order: SimOrder, fill: SimFill | None) -> dict[str, Any]:
    status = order.api_status
    row: dict[str, Any] = {
        "instId": order.symbol,
        "orderId": order.order_id,
        "clientOid": order.client_oid,
        "size": dfmt(order.size),
        "price": dfmt(order.price) if order.price is not None else "0",
        "notional": dfmt(order.size if order.price is None else order.size * order.price),
        "orderType": order.order_type,
        "force": order.force,
        "side": order.side,
        "accBaseVolume": dfmt(order.filled_size),
        "priceAvg": dfmt(order.price_avg),
        "status": status,
        "cTime": str(order.c_time),
        "uTime": str(order.u_time),
        "feeDetail": [{"feeCoin": order.fee_coin, "fee": dfmt(-order.fee)}],
        "enterPointSource": "API",
        "cancelReason": order.cancel_reason,
    }
    if fill is not None:
        row.update(
            {
                "fillPrice": dfmt(fill.price),
                "tradeId": fill.trade_id,
                "baseVolume": dfmt(fill.size),
                "fillTime": str(fill.time_ms),
                "fillFee": dfmt(-fill.fee),
                "fillFeeCoin": fill.fee_coin,
                "tradeScope": fill.scope,
            }
        )
    if order.market == "mix":
        row.update(
            {
                "marginCoin": order.margin_coin,
                "marginMode": order.margin_mode,
                "posSide": "net",
                "posMode": "one_way_mode",
                "reduceOnly": "yes" if order.reduce_only else "no",
                "tradeSide": order.trade_side or f"{order.side}_single",
                "totalProfits": dfmt(order.profit),
                "pnl": dfmt(order.profit),
            }
        )
    return row


def _fill_push(fill: SimFill, order: SimOrder) -> dict[str, Any]:
    row: dict[str, Any] = {
        "orderId": fill.order_id,
        "tradeId": fill.trade_id,
        "symbol": fill.symbol,
        "orderType": order.order_type,
        "side": fill.side,
        "priceAvg": dfmt(fill.price),
        "size": dfmt(fill.size),
        "amount": dfmt(fill.quote),
        "tradeScope": fill.scope,
        "feeDetail": [
            {
                "feeCoin": fill.fee_coin,
                "deduction": "no",
                "totalDeductionFee": "0",
                "totalFee": dfmt(-fill.fee),
            }
        ],
        "cTime": str(fill.time_ms),
        "uTime": str(fill.time_ms),
    }
    if fill.market == "mix":
        row.update(
            {
                "price": dfmt(fill.price),
                "baseVolume": dfmt(fill.size),
                "quoteVolume": dfmt(fill.quote),
                "profit": dfmt(fill.profit),
                "tradeSide": fill.trade_side or f"{fill.side}_single",
                "posMode": "one_way_mode",
            }
        )
    return row
