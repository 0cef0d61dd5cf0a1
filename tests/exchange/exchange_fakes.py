"""An in-process fake of Bitget's REST API for ``httpx.MockTransport`` (unit tests).

It answers with Bitget's envelope and payload shapes (bitget-api.md sections 3-4), verifies
signatures like the real server, keeps a tiny order book keyed by clientOid with Bitget's
duplicate error, and replays scripted faults per path:

- ``"ok"``: normal answer;
- ``"accept_timeout"``: execute the request, then raise ``httpx.ReadTimeout`` (the reply is lost);
- ``"timeout"``: raise ``httpx.ReadTimeout`` without executing;
- ``"reset"``: execute, then raise ``httpx.RemoteProtocolError`` (connection dropped);
- ``"accept_500"``: execute, then answer 502 (a gateway failing after the server acted);
- ``"connect"``: raise ``httpx.ConnectError`` (nothing reached the server);
- ``"500"`` / ``"429"`` / ``"busy"``: an error answer without executing;
- ``"lagging"``: an order lookup that does not show the order yet (eventual consistency);
- ``"hang"``: never answer (until the caller gives up or is cancelled).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import httpx

from chimera_lab.config import Settings
from chimera_lab.exchange.signing import sign

# Credentials of the worked example in bitget-api.md section 2 (dummy values).
KEY = "bg_dummy_key_0001"
SECRET = "dummy-secret-0123456789abcdef"
PASSPHRASE = "dummy-passphrase"


@dataclass
class FakeOrder:
    order_id: str
    client_oid: str
    symbol: str
    side: str
    order_type: str
    price: str
    size: str
    status: str = "live"
    product_type: str | None = None


@dataclass
class FakeBitget:
    secret: str = SECRET
    key: str = KEY
    passphrase: str = PASSPHRASE
    now_ms: Callable[[], int] = field(default=lambda: int(time.time() * 1000))
    candles: list[list[str]] = field(default_factory=list)
    # How endTime bounds history rows (unverified upstream): "exclusive", "inclusive", or
    # "floored" / "floored_inclusive" (endTime first floored to the bar, bar_ms).
    end_semantics: str = "exclusive"
    bar_ms: int = 60_000
    faults: dict[str, deque[str]] = field(default_factory=lambda: defaultdict(deque))
    orders: dict[str, FakeOrder] = field(default_factory=dict)  # by clientOid
    requests: list[httpx.Request] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    executed: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    _ids: Any = field(default_factory=lambda: itertools.count(1001))

    def fault(self, path: str, *kinds: str) -> None:
        self.faults[path].extend(kinds)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    # -- envelope helpers ------------------------------------------------------------------

    def ok(self, data: Any) -> httpx.Response:
        return httpx.Response(
            200,
            json={"code": "00000", "msg": "success", "requestTime": self.now_ms(), "data": data},
        )

    def error(self, status: int, code: str, msg: str) -> httpx.Response:
        return httpx.Response(
            status, json={"code": code, "msg": msg, "requestTime": self.now_ms(), "data": None}
        )

    # -- dispatch --------------------------------------------------------------------------

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = await request.aread()
        self.bodies.append(body)
        path = request.url.path
        kind = self.faults[path].popleft() if self.faults[path] else "ok"
        if kind == "connect":
            raise httpx.ConnectError("connection refused", request=request)
        if kind == "timeout":
            raise httpx.ReadTimeout("timed out", request=request)
        if kind == "500":
            return httpx.Response(500, text="Internal Server Error")
        if kind == "429":
            return self.error(429, "429", "Too Many Requests")
        if kind == "busy":
            return self.error(200, "40015", "System busy")
        if kind == "hang":
            await asyncio.Event().wait()
        if kind == "lagging":
            if path.endswith("/detail"):
                return self.error(400, "40109", "The data of the order cannot be found")
            return self.ok([])
        response = self.dispatch(request, path, body)
        if kind == "accept_timeout":
            raise httpx.ReadTimeout("timed out after the server acted", request=request)
        if kind == "reset":
            raise httpx.RemoteProtocolError("peer closed connection", request=request)
        if kind == "accept_500":
            return httpx.Response(502, text="Bad Gateway")
        return response

    def _auth(self, request: httpx.Request, path: str, body: bytes) -> httpx.Response | None:
        headers = request.headers
        if not headers.get("ACCESS-KEY"):
            return self.error(400, "40001", "ACCESS_KEY cannot be empty")
        if headers["ACCESS-KEY"] != self.key:
            return self.error(400, "40006", "Invalid ACCESS_KEY")
        if headers.get("ACCESS-PASSPHRASE") != self.passphrase:
            return self.error(400, "40012", "apikey/password is incorrect")
        ts = headers.get("ACCESS-TIMESTAMP", "")
        if not ts.isdigit():
            return self.error(400, "40005", "Invalid ACCESS_TIMESTAMP")
        if abs(int(ts) - self.now_ms()) > 30_000:
            return self.error(400, "40008", "Request timestamp expired")
        # Bitget signs the raw query: what was received, URL-decoded (bitget-api.md section 2).
        query = unquote_plus(request.url.query.decode())
        expected = sign(self.secret, ts, request.method, path, query, body.decode())
        if headers.get("ACCESS-SIGN") != expected:
            return self.error(400, "40009", "sign signature error")
        return None

    def dispatch(self, request: httpx.Request, path: str, body: bytes) -> httpx.Response:
        params = dict(parse_qsl(request.url.query.decode()))
        signed = (
            "/trade/" in path or "/order/" in path or "/account/" in path or "/position/" in path
        )
        if signed:
            refused = self._auth(request, path, body)
            if refused is not None:
                return refused
        self.executed[path] += 1
        if path == "/api/v2/public/time":
            return self.ok({"serverTime": str(self.now_ms())})
        if path.endswith("/market/candles") or path.endswith("/market/history-candles"):
            rows = self.candles
            if "endTime" in params:
                end = int(params["endTime"])
                if self.end_semantics.startswith("floored"):
                    end = end // self.bar_ms * self.bar_ms
                if self.end_semantics.endswith("inclusive"):
                    rows = [r for r in rows if int(r[0]) <= end]
                else:
                    rows = [r for r in rows if int(r[0]) < end]
            if "startTime" in params:
                rows = [r for r in rows if int(r[0]) > int(params["startTime"])]
            limit = int(params.get("limit", 100))
            return self.ok(rows[-limit:])
        if path.endswith("/place-order"):
            payload = json.loads(body)
            oid = payload["clientOid"]
            if oid in self.orders:
                code = "45034" if "/mix/" in path else "43118"
                return self.error(400, code, "clientOid duplicate")
            order = FakeOrder(
                str(next(self._ids)), oid, payload["symbol"], payload["side"],
                payload["orderType"], payload.get("price", "0"), payload["size"],
                product_type=payload.get("productType"),
            )  # fmt: skip
            self.orders[oid] = order
            return self.ok({"orderId": order.order_id, "clientOid": oid})
        if path.endswith("/trade/orderInfo") or path.endswith("/order/detail"):
            order = self._find(params)
            if order is None:
                if path.endswith("/detail"):
                    return self.error(400, "40109", "The data of the order cannot be found")
                return self.ok([])
            item = self._order_item(order)
            return self.ok(item if path.endswith("/detail") else [item])
        if path.endswith("/cancel-order"):
            order = self._find(json.loads(body))
            if order is None or order.status != "live":
                return self.error(400, "43001", "The order does not exist")
            order.status = "cancelled"
            return self.ok({"orderId": order.order_id, "clientOid": order.client_oid})
        if path == "/api/v2/spot/account/assets":
            return self.ok(
                [{"coin": "USDT", "available": "1000.5", "frozen": "10", "locked": "0",
                  "limitAvailable": "0", "uTime": "1622697148"}]
            )  # fmt: skip
        if path == "/api/v2/mix/order/orders-pending":
            live = [self._order_item(o) for o in self.orders.values() if o.status == "live"]
            return self.ok({"entrustedList": live or None, "endId": None})
        if path == "/api/v2/spot/trade/unfilled-orders":
            return self.ok(
                [self._order_item(o) for o in self.orders.values() if o.status == "live"]
            )
        return self.error(404, "40404", f"Request URL NOT FOUND {path}")

    def _find(self, params: dict[str, Any]) -> FakeOrder | None:
        if params.get("clientOid"):
            return self.orders.get(params["clientOid"])
        return next((o for o in self.orders.values() if o.order_id == params.get("orderId")), None)

    @staticmethod
    def _order_item(order: FakeOrder) -> dict[str, Any]:
        return {
            "symbol": order.symbol, "orderId": order.order_id, "clientOid": order.client_oid,
            "price": order.price, "size": order.size, "orderType": order.order_type,
            "side": order.side, "status": order.status, "priceAvg": order.price,
            "baseVolume": "0", "quoteVolume": "0", "force": "gtc", "cTime": "1695865232127",
            "uTime": "1695865233051",
        }  # fmt: skip


class FakeClock:
    """A monotonic clock that only moves when a test calls :meth:`advance`."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._seq), future))
        await future

    def advance(self, seconds: float) -> None:
        self.now += seconds
        while self._sleepers and self._sleepers[0][0] <= self.now + 1e-9:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    def next_deadline(self) -> float | None:
        live = [t for t, _, f in self._sleepers if not f.done()]
        return min(live) if live else None

    @property
    def sleeping(self) -> int:
        return sum(1 for *_, f in self._sleepers if not f.done())


async def settle(rounds: int = 30) -> None:
    """Let every ready task run (no real time passes)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


def make_settings(**bitget: object) -> Settings:
    """Settings for tests: no .env, fake credentials, fast retries, a non-Bitget host."""
    values: dict[str, object] = {
        "api_key": KEY,
        "api_secret": SECRET,
        "passphrase": PASSPHRASE,
        "base_url": "http://bitget.test",
        "retry_base_delay_s": 0.0,
        "retry_max_delay_s": 0.0,
        "rate_limit_margin_s": 0.0,
    }
    values.update(bitget)
    return Settings(_env_file=None, bitget=values)  # type: ignore[call-arg]
