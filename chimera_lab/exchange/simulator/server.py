"""``BitgetSimulator``: a Bitget-compatible REST + WebSocket server on loopback (aiohttp).

Examples
--------
>>> sim = BitgetSimulator(symbol="BTCUSDT", clock="stepped", history_bars=200)
>>> sim.clock.mode, sorted(sim.markets)
('stepped', ['BTCUSDT'])

Used as an async context manager (tests, notebooks)::

    async with BitgetSimulator(api_key="k", api_secret="s", passphrase="p") as sim:
        print(sim.base_url, sim.ws_public_url)
        await sim.clock.advance_async(bars=1)
"""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pandas as pd
from aiohttp import web
from pydantic import SecretStr

from chimera_lab.errors import ConfigError
from chimera_lab.exchange.signing import sign
from chimera_lab.exchange.simulator.api import ApiError, envelope, error_body
from chimera_lab.exchange.simulator.clock import ClockMode, SimClock, _to_ms
from chimera_lab.exchange.simulator.engine import FeeSchedule, MatchingEngine, SimOrder
from chimera_lab.exchange.simulator.faults import FaultDecision, FaultInjector, FaultSpec
from chimera_lab.exchange.simulator.market import MarketData
from chimera_lab.exchange.simulator.ratelimit import (
    OVERALL_RULE,
    RateLimitRule,
    SimRateLimiter,
    SimStats,
)
from chimera_lab.exchange.simulator.rest import RequestContext
from chimera_lab.exchange.simulator.routes import SIM_ENDPOINTS, Endpoint
from chimera_lab.exchange.simulator.ws import WsHub
from chimera_lab.logging import get_logger

__all__ = ["BitgetSimulator", "Credentials", "TIMESTAMP_SKEW_MS"]

log = get_logger(__name__)

TIMESTAMP_SKEW_MS = 30_000
"""``ACCESS-TIMESTAMP`` must be within 30 s of server time, else ``40008`` (bitget-api.md §2)."""

_WS_CONNECT_RULE = RateLimitRule("ws_connect", limit=300, window_s=300.0, scope="ip")


def _plain(value: str | SecretStr | None) -> str | None:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return value


@dataclass(frozen=True)
class Credentials:
    """The one API key the simulator accepts (kept out of ``repr``)."""

    api_key: str
    api_secret: str
    passphrase: str

    def __repr__(self) -> str:
        return "Credentials(api_key='***', api_secret='***', passphrase='***')"


def _as_frame(
    bars: pd.DataFrame | None,
    replay: str | Path | None,
    store: str | None,
    symbol: str,
    timeframe: str,
) -> pd.DataFrame | None:
    given = [x is not None for x in (bars, replay, store)]
    if sum(given) > 1:
        raise ConfigError("give at most one of bars=, replay= and store=")
    if bars is not None:
        return bars
    if replay is not None:
        from chimera_lab.data import load_ohlcv

        return load_ohlcv(Path(replay), symbol=symbol)
    if store is not None:
        # Looked up at call time (tests swap in a fake); Store.bars, as every CLI command:
        # stored bars of the timeframe, else aggregated from a finer stored series.
        store_cls = importlib.import_module("chimera_lab.data").Store
        frame: pd.DataFrame = store_cls(store).bars(symbol, timeframe)
        if frame.empty:
            raise ConfigError(
                f"store {store} has no {symbol} {timeframe} bars; import or fetch some first"
            )
        return frame
    return None


class BitgetSimulator:
    """A Bitget API v2 lookalike: replayed market, matching engine, faults, rate limits.

    Parameters
    ----------
    bars : DataFrame or mapping of symbol to DataFrame, optional
        OHLCV bars to replay (frame convention). Default: seeded synthetic bars
        (``history_bars`` of them, see below).
    replay : str or Path, optional
        A bar file to replay (any format :func:`chimera_lab.data.load_ohlcv` reads).
    store : str, optional
        A store URL; ``symbol``'s ``timeframe`` bars are replayed (stored ones, else
        aggregated from a finer stored series, as :meth:`chimera_lab.data.Store.bars` does).
    symbol : str
        Symbol of ``bars``/``replay``/``store`` (spot and USDT-M futures share it).
    timeframe : str
        Timeframe served from ``store`` (other sources are inferred from their spacing).
    api_key, api_secret, passphrase : str or SecretStr
        The credentials private endpoints accept.
    balances : mapping
        Initial spot balances (default ``{"USDT": 100000}``).
    futures_balance : number, optional
        Initial USDT of the futures account (default: the spot USDT balance).
    fees : FeeSchedule, optional
        Maker/taker fee rates.
    leverage : int
        Futures leverage.
    faults : FaultSpec or str, optional
        Injected faults (a spec or its compact string); change later with ``sim.faults = ...``.
    clock : {"stepped", "realtime"} or float or SimClock
        How market time moves (see :class:`SimClock`).
    start : str, Timestamp or int, optional
        Market time when the simulator starts: a time, or an int bar index into the replayed
        bars (``100``: after 100 bars of history). Default: the end of the supplied bars, so
        history endpoints serve all of them at once and later bars are a synthetic
        continuation.
    history_bars : int
        Synthetic default only: bars of history before the start. In ``"stepped"`` mode they
        start at 2024-01-01 (deterministic); otherwise they end at the current wall time.
    rate_limits : bool
        Enforce Bitget's limits (counters are kept either way).
    host, port : str, int
        Where to listen; port 0 picks a free port.
    seed : int
        Seed of the synthetic bars and continuation.
    client_oid_window_s : float or None
        How long a clientOid stays reserved after its order was created (market time), and
        how long a finished order is kept before it is forgotten (bounded memory for long
        runs); ``None``: forever.
    ws_push_interval_s : float
        Real-time clocks: WebSocket update period (wall seconds).
    ws_idle_timeout_s : float
        Close a WebSocket that sent nothing (not even ``ping``) this long (Bitget: 2 min).
    ws_max_messages_per_s : int
        Close a WebSocket that sends more messages per second (Bitget: 10).
    server_time_offset_ms : int
        Added to the server (wall) clock, to test a client's clock-offset handling.
    """

    def __init__(
        self,
        bars: pd.DataFrame | Mapping[str, pd.DataFrame] | None = None,
        *,
        replay: str | Path | None = None,
        store: str | None = None,
        symbol: str = "BTCUSDT",
        timeframe: str = "1m",
        api_key: str | SecretStr | None = "sim-api-key",
        api_secret: str | SecretStr | None = "sim-api-secret",
        passphrase: str | SecretStr | None = "sim-passphrase",
        balances: Mapping[str, float | int | str | Decimal] | None = None,
        futures_balance: float | int | str | Decimal | None = None,
        fees: FeeSchedule | None = None,
        leverage: int = 10,
        faults: FaultSpec | str | None = None,
        clock: ClockMode | float | str | SimClock = "stepped",
        start: str | pd.Timestamp | int | None = None,
        history_bars: int = 1_000,
        rate_limits: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        client_oid_window_s: float | None = 7_200.0,
        ws_push_interval_s: float = 1.0,
        ws_idle_timeout_s: float = 120.0,
        ws_max_messages_per_s: int = 10,
        server_time_offset_ms: int = 0,
    ) -> None:
        key, secret, phrase = _plain(api_key), _plain(api_secret), _plain(passphrase)
        if not (key and secret and phrase):
            raise ConfigError(
                "the simulator needs api_key, api_secret and passphrase (flags or "
                "CHIMERA_SIM__API_KEY / __API_SECRET / __PASSPHRASE)"
            )
        self.credentials = Credentials(key, secret, phrase)
        self.host, self._port = host, port
        self.server_time_offset_ms = int(server_time_offset_ms)
        symbol = symbol.upper()
        frames: dict[str, pd.DataFrame]
        if isinstance(bars, Mapping):
            frames = {str(k).upper(): v for k, v in bars.items()}
        else:
            frame = _as_frame(bars, replay, store, symbol, timeframe)
            stepped = clock == "stepped" or (
                isinstance(clock, SimClock) and clock.mode == "stepped"
            )
            frames = {
                symbol: frame
                if frame is not None
                else _synthetic(
                    history_bars, seed=seed, timeframe=timeframe, anchored_to_wall=not stepped
                )
            }
        self.markets = {
            s: MarketData(s, df, seed=seed + i) for i, (s, df) in enumerate(frames.items())
        }
        first = next(iter(self.markets.values()))
        start_ms = _start_ms(first, start)
        if isinstance(clock, SimClock):
            self.clock = clock
        else:
            self.clock = SimClock(clock, start=start_ms, bar_ms=first.tf_ms)
        self.stats = SimStats()
        rules = [OVERALL_RULE, _WS_CONNECT_RULE, *(e.rule for e in SIM_ENDPOINTS.values())]
        self.limiter = SimRateLimiter(rules, stats=self.stats)
        self.limiter.enforce = bool(rate_limits)
        self._faults = FaultInjector(FaultSpec.parse(faults) if isinstance(faults, str) else faults)
        self.hub = WsHub(
            self,
            push_interval_s=ws_push_interval_s,
            idle_timeout_s=ws_idle_timeout_s,
            max_messages_per_s=ws_max_messages_per_s,
        )
        self.engine = MatchingEngine(
            self.markets,
            balances=balances,
            futures_balance=futures_balance,
            fees=fees,
            leverage=leverage,
            client_oid_window_ms=None
            if client_oid_window_s is None
            else int(client_oid_window_s * 1000),
            on_event=self.hub.on_engine_event,
        )
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._stopping: asyncio.Event | None = None

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> BitgetSimulator:
        """Start listening (idempotent); returns ``self``."""
        if self._runner is not None:
            return self
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=1 << 20)
        app.router.add_get("/v2/ws/public", self.hub.handle_public)
        app.router.add_get("/v2/ws/private", self.hub.handle_private)
        app.router.add_route("*", "/_sim/{action}", self._handle_control)
        app.router.add_route("*", "/{tail:.*}", self._handle_rest)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=2.0
        )
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.host, self._port, reuse_address=True)
        await self._site.start()
        self.clock.add_listener(self._on_clock)
        self.clock.add_waiter(self.hub.flush)
        await self.hub.start()
        log.info("sim.started", base_url=self.base_url, clock=repr(self.clock))
        return self

    async def stop(self) -> None:
        """Close WebSockets, release withheld responses and stop the server (bounded)."""
        if self._runner is None:
            return
        if self._stopping is not None:
            self._stopping.set()
        self.clock.remove_wiring()
        await self.hub.stop()  # withheld responses end when _stopping is set (above)
        runner, self._runner, self._site = self._runner, None, None
        await asyncio.wait_for(runner.cleanup(), timeout=10.0)
        log.info("sim.stopped")

    async def __aenter__(self) -> BitgetSimulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- public attributes -----------------------------------------------------------------
    @property
    def port(self) -> int:
        """The port listened on (after :meth:`start`)."""
        if self._site is None or self._runner is None:
            raise ConfigError("the simulator is not running; use `async with` or await start()")
        addresses = self._runner.addresses
        return int(addresses[0][1])

    @property
    def base_url(self) -> str:
        """REST base URL, e.g. ``http://127.0.0.1:8900`` (set CHIMERA_BITGET__BASE_URL to it)."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_public_url(self) -> str:
        """Public WebSocket URL (``.../v2/ws/public``)."""
        return f"ws://{self.host}:{self.port}/v2/ws/public"

    @property
    def ws_private_url(self) -> str:
        """Private WebSocket URL (``.../v2/ws/private``)."""
        return f"ws://{self.host}:{self.port}/v2/ws/private"

    @property
    def orders(self) -> list[SimOrder]:
        """The orders the simulator holds, oldest first.

        Every open order, and every finished one until it has been final for
        ``client_oid_window_s`` of market time; then it is forgotten, with its clientOid (with
        ``client_oid_window_s=None`` nothing is). :attr:`orders_accepted` counts them all.
        """
        return list(self.engine.orders.values())

    @property
    def orders_accepted(self) -> int:
        """How many orders were ever accepted (also those already forgotten)."""
        return self.engine.accepted

    @property
    def faults(self) -> FaultSpec:
        """The active :class:`FaultSpec`; assign a new one (or a string) to change it."""
        return self._faults.spec

    @faults.setter
    def faults(self, value: FaultSpec | str) -> None:
        self._faults.spec = FaultSpec.parse(value) if isinstance(value, str) else value

    def server_time_ms(self) -> int:
        """Server (wall) clock in Unix ms, as ``/api/v2/public/time`` answers it.

        ``ACCESS-TIMESTAMP`` and the WebSocket login timestamp are checked against it.
        """
        return int(time.time() * 1000) + self.server_time_offset_ms

    def request_time_ms(self) -> int:
        """Return the envelope's ``requestTime`` and the WebSocket push ``ts``: market time.

        On Bitget both are the server's clock, which *is* market time; a client decides with
        them which bars are still open. A replay of older data therefore reports the replay
        clock here, while authentication and ``/api/v2/public/time`` keep wall time.
        """
        return self.clock.now_ms

    async def disconnect_websockets(self, *, abrupt: bool = True) -> int:
        """Close every WebSocket connection (abruptly: TCP reset without close frame).

        Returns the number of connections closed.
        """
        return await self.hub.disconnect_all(abrupt=abrupt, reason="forced")

    def _on_clock(self, now_ms: int) -> None:
        self.engine.catch_up(now_ms)
        self.hub.wake()

    # -- REST ------------------------------------------------------------------------------
    async def _handle_control(self, request: web.Request) -> web.StreamResponse:
        # Control endpoints for a running `chimera sim serve` (not part of Bitget's API).
        action = request.match_info["action"]
        params = dict(request.query)
        try:
            if action == "advance":
                now = await self.clock.advance_async(
                    bars=int(params.get("bars", 0)), seconds=float(params.get("seconds", 0))
                )
                data: Any = {"now": now.isoformat(), "nowMs": str(self.clock.now_ms)}
            elif action == "faults":
                if "spec" in params:
                    self.faults = params["spec"]
                data = {"faults": self.faults.to_string()}
            elif action == "disconnect":
                data = {"closed": await self.disconnect_websockets()}
            elif action == "state":
                data = {
                    "now": self.clock.now.isoformat(),
                    "clock": repr(self.clock),
                    "orders": len(self.engine.orders),
                    "ordersAccepted": self.engine.accepted,
                    "requests": self.stats.total_requests,
                    "faults": self.faults.to_string(),
                }
            else:
                raise ApiError("40404", "Request URL NOT FOUND")
        except (ValueError, ConfigError) as exc:
            return self._json(
                error_body("40020", str(exc), request_time_ms=self.request_time_ms()), 400
            )
        except ApiError as exc:
            return self._json(
                error_body(exc.code, exc.msg, request_time_ms=self.request_time_ms()), exc.status
            )
        return self._json(envelope(data, request_time_ms=self.request_time_ms()), 200)

    def _json(
        self, body: Any, status: int, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        self.stats.statuses[status] += 1
        return web.Response(
            text=json.dumps(body, separators=(",", ":")),
            status=status,
            content_type="application/json",
            headers=headers,
        )

    async def _handle_rest(self, request: web.Request) -> web.StreamResponse:
        mono = time.monotonic()
        path = request.path
        self.stats.record(mono, path)
        endpoint = SIM_ENDPOINTS.get((request.method, path))
        server_ms = self.server_time_ms()  # authentication: wall time, as on Bitget
        if endpoint is None:
            # Unknown path or method: 404 with Bitget's 40404 (status/code unverified).
            return self._json(
                error_body(
                    "40404", "Request URL NOT FOUND", request_time_ms=self.request_time_ms()
                ),
                404,
            )
        decision = self._faults.draw(path, is_order=endpoint.is_order, now_s=mono)
        if decision.delay_s > 0:
            self.stats.faults["latency"] += 1
            await asyncio.sleep(decision.delay_s)
        if decision.before is not None:
            return self._before_fault(request, decision)
        remote = request.remote or "?"
        key = _limit_key(endpoint, request)
        # Both windows at once: a request the endpoint rule refuses uses no overall budget.
        refused = self.limiter.check_all(
            [(OVERALL_RULE.name, remote), (endpoint.rule.name, key)], now_s=mono
        )
        if refused is not None:
            return self._json(
                error_body("429", "Too Many Requests", request_time_ms=self.request_time_ms()), 429
            )
        try:
            body_text = await request.text() if request.method == "POST" else ""
            if endpoint.private:
                self._authenticate(request, body_text, server_ms)
            params = self._params(request, body_text)
            now_ms = self.clock.now_ms
            self.engine.catch_up(now_ms)
            ctx = RequestContext(
                params=params,
                now_ms=now_ms,
                server_ms=server_ms,
                markets=self.markets,
                engine=self.engine,
            )
            data = endpoint.handler(ctx)
        except ApiError as exc:
            log.debug("sim.rest.error", path=path, code=exc.code)
            return self._json(
                error_body(exc.code, exc.msg, request_time_ms=self.request_time_ms()), exc.status
            )
        if endpoint.is_order:
            self.hub.wake()
        if decision.after is not None:
            return await self._after_fault(request, decision, endpoint)
        # FAQ Q11 names this header; its exact semantics are unverified: here, what is left
        # of the endpoint's per-second budget for this key.
        remain = self.limiter.remaining(endpoint.rule.name, key)
        return self._json(
            envelope(data, request_time_ms=now_ms),
            200,
            {"x-mbx-used-remain-limit": str(remain)},
        )

    def _before_fault(self, request: web.Request, decision: FaultDecision) -> web.StreamResponse:
        kind = decision.before
        assert kind is not None
        self.stats.faults[kind] += 1
        if kind == "storm_429":
            return self._json(
                error_body("429", "Too Many Requests", request_time_ms=self.request_time_ms()), 429
            )
        if kind == "drop":
            return self._drop(request)
        return self._server_error(decision.status)

    def _server_error(self, status: int) -> web.StreamResponse:
        if status == 502:  # a gateway error page, not Bitget JSON
            self.stats.statuses[status] += 1
            return web.Response(text="502 Bad Gateway", status=502, content_type="text/plain")
        code = "45001" if status == 503 else "40015"
        msg = "System busy" if status == 503 else "System error"
        return self._json(error_body(code, msg, request_time_ms=self.request_time_ms()), status)

    def _drop(self, request: web.Request) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            transport.abort()  # TCP reset, no HTTP response
        return web.Response(status=200)  # never reaches the client

    async def _after_fault(
        self, request: web.Request, decision: FaultDecision, endpoint: Endpoint
    ) -> web.StreamResponse:
        kind = decision.after
        assert kind is not None
        self.stats.faults[kind] += 1
        log.debug("sim.fault", kind=kind, path=endpoint.path)
        if kind == "error_after_accept":
            return self._server_error(decision.status)
        if kind == "timeout_after_accept":
            stopping = self._stopping
            if stopping is not None:
                try:
                    await asyncio.wait_for(stopping.wait(), timeout=self.faults.withhold_s)
                except TimeoutError:
                    pass
        return self._drop(request)

    def _params(self, request: web.Request, body_text: str) -> dict[str, Any]:
        if request.method == "POST":
            if not body_text:
                return {}
            try:
                parsed = json.loads(body_text)
            except json.JSONDecodeError:
                raise ApiError("40017", "Parameter verification failed: body is not JSON") from None
            if not isinstance(parsed, dict):
                raise ApiError("40017", "Parameter verification failed: body must be an object")
            return parsed
        return dict(request.query)

    def _authenticate(self, request: web.Request, body_text: str, server_ms: int) -> None:
        """Check Bitget's four auth headers (bitget-api.md §2, codes §4)."""
        h = request.headers
        key, signature = h.get("ACCESS-KEY", ""), h.get("ACCESS-SIGN", "")
        ts, phrase = h.get("ACCESS-TIMESTAMP", ""), h.get("ACCESS-PASSPHRASE", "")
        if not key:
            raise ApiError("40001", "ACCESS_KEY cannot be empty")
        if not signature:
            raise ApiError("40002", "ACCESS_SIGN cannot be empty")
        if not ts:
            raise ApiError("40005", "Invalid ACCESS_TIMESTAMP")
        if not phrase:
            raise ApiError("40011", "ACCESS_PASSPHRASE cannot be empty")
        if not ts.isdigit():
            raise ApiError("40005", "Invalid ACCESS_TIMESTAMP")
        if key != self.credentials.api_key:
            raise ApiError("40006", "Invalid ACCESS_KEY")
        if abs(int(ts) - server_ms) > TIMESTAMP_SKEW_MS:
            raise ApiError("40008", "Request timestamp expired")
        if phrase != self.credentials.passphrase:
            raise ApiError("40012", "apikey/password is incorrect")
        # The signed query is the one received, URL-decoded (bitget-api.md §2: ccxt signs the
        # raw k=v form while sending it percent-encoded); "+" decodes to a space, as in the
        # parameters themselves.
        raw_path = request.raw_path
        query = unquote_plus(raw_path.split("?", 1)[1]) if "?" in raw_path else ""
        expected = sign(
            self.credentials.api_secret, ts, request.method, request.path, query, body_text
        )
        if signature != expected:
            raise ApiError("40009", "sign signature error")


def _synthetic(n: int, *, seed: int, timeframe: str, anchored_to_wall: bool) -> pd.DataFrame:
    from chimera_lab.data.synthetic import make_ohlcv
    from chimera_lab.timeframes import timeframe_to_timedelta

    if n < 2:
        raise ConfigError(f"history_bars must be >= 2, got {n}")
    if anchored_to_wall:
        step = timeframe_to_timedelta(timeframe)
        end = pd.Timestamp.now(tz="UTC").floor(step)
        start = end - n * step
    else:
        start = pd.Timestamp("2024-01-01", tz="UTC")
    return make_ohlcv(n, seed=seed, timeframe=timeframe, start=start)


def _limit_key(endpoint: Endpoint, request: web.Request) -> str:
    # Public limits count per IP, private ones per account (here: its API key).
    remote = request.remote or "?"
    if endpoint.rule.scope == "uid":
        return request.headers.get("ACCESS-KEY") or remote
    return remote


def _start_ms(md: MarketData, start: str | pd.Timestamp | int | None) -> int:
    if start is None:
        return md.end_ms
    if isinstance(start, int) and not isinstance(start, bool):
        if not 1 <= start <= len(md.ts):
            raise ConfigError(
                f"start={start} is not a bar index in 1..{len(md.ts)}; pass a time instead"
            )
        return int(md.ts[start - 1]) + md.tf_ms
    return _to_ms(start, name="start")
