"""Bitget WebSocket v2 streaming: :class:`BitgetStream`.

::

    async with BitgetClient(settings) as rest, BitgetStream(settings, rest=rest) as stream:
        await stream.subscribe_candles("BTCUSDT", "1m")
        await stream.subscribe_ticker("BTCUSDT")
        async for event in stream:           # Candle, Ticker, Trade, Order, Fill, StreamStatus
            if isinstance(event, Candle):      # closed candles only (see include_forming)
                ...

What it guarantees:

- **Keep-alive**: a text ``ping`` every ``ws_ping_interval_s`` (30 s); no ``pong`` within
  ``ws_pong_timeout_s`` → the connection is dropped and rebuilt (bitget-api.md section 7).
- **Reconnect**: any drop (reset, close, 24-hour forced disconnect, silent peer, a failed
  keep-alive) reconnects with jittered exponential backoff — reset only once a connection
  has stayed up ``stable_after_s`` — logs in again (private socket, signed with the REST
  client's measured clock offset; an expired-timestamp refusal resyncs once) and
  resubscribes everything.
- **Closed candles exactly once, in order**: a candle is closed once a newer one appears; each
  closed candle is emitted once, oldest first. A gap — after a reconnect, or a push that skips
  bars — is filled from the reconnect snapshot and, where that does not reach, from REST
  history candles (``rest``), but only once REST covers the whole gap: history may lag the
  stream, so an incomplete answer is retried on the next push, and after
  ``backfill_attempts`` tries the hole is reported as a ``gap`` :class:`StreamStatus` and
  skipped. Consumers never see a bar twice or out of order, and never miss one silently.
- **Bounded memory**: one bounded event queue (``ws_queue_size``), one bounded inbox, O(1)
  state per subscription. Lossy events (tickers, trades, forming candles, status notices) are
  dropped and counted when the consumer lags; closed candles, orders and fills wait for room.

Private channels (``orders``, ``fill``) need credentials; after a reconnect a
:class:`StreamStatus` ``connected`` event tells the consumer to reconcile over REST (Bitget may
lose private pushes while disconnected).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from types import TracebackType
from typing import Any, Literal, Self

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from chimera_lab.config import BitgetSettings, Settings
from chimera_lab.errors import AuthenticationError, ConfigError, ExchangeError
from chimera_lab.exchange.base import (
    Candle,
    Exchange,
    Fill,
    Order,
    Product,
    Ticker,
    Trade,
)
from chimera_lab.exchange.endpoints import ws_candle_channel
from chimera_lab.exchange.limiter import Clock, RateLimiter, SystemClock, Window
from chimera_lab.exchange.parsing import (
    datetime_to_ms,
    ms_to_datetime,
    parse_fill,
    parse_ticker,
    parse_trade,
    parse_ws_order,
)
from chimera_lab.exchange.signing import ws_login_sign
from chimera_lab.exchange.stream_candles import CandleSyncMixin, _CandleSub
from chimera_lab.logging import get_logger
from chimera_lab.timeframes import ceil_to_bar, timeframe_ms

__all__ = ["BitgetStream", "StreamEvent", "StreamState", "StreamStats", "StreamStatus"]

log = get_logger(__name__)

_MAX_ARGS_BYTES = 4000  # Bitget: all args of one request <= 4096 bytes
_FATAL_WS_CODES = frozenset({"30001", "30002", "30003", "30016"})
_AUTH_WS_CODES = frozenset({"30004", "30005", "30011", "30012", "30013", "30014", "30015"})


class StreamState(StrEnum):
    """Life cycle of a :class:`BitgetStream`."""

    UNOPENED = "unopened"
    OPENED = "opened"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """A stream notice.

    ``connected`` (after (re)subscribing), ``disconnected``, or ``gap``: closed candles that
    neither the WebSocket nor REST history delivered after ``attempt`` tries; ``gap`` holds
    the open times of the first and last missing bar, ``reason`` names symbol, timeframe and
    count. The stream then moves on (later bars keep coming, in order).
    """

    kind: Literal["connected", "disconnected", "gap"]
    socket: Literal["public", "private"]
    attempt: int
    reason: str
    timestamp: datetime
    gap: tuple[datetime, datetime] | None = None


StreamEvent = Candle | Ticker | Trade | Order | Fill | StreamStatus
"""Everything a :class:`BitgetStream` yields."""


@dataclass
class StreamStats:
    """Counters of a :class:`BitgetStream` (for monitoring a 24/7 process)."""

    messages: int = 0
    connects: int = 0
    reconnects: int = 0
    dropped: int = 0
    backfilled: int = 0
    candles_emitted: int = 0
    bad_pushes: int = 0  # malformed data pushes dropped (logged as exchange.ws.bad_push)


@dataclass
class _Socket:
    # One WebSocket (public or private): its subscriptions, task and live connection.
    name: Literal["public", "private"]
    url: str
    args: dict[tuple[str, str, str], dict[str, str]] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    ws: ClientConnection | None = None
    pong: asyncio.Event = field(default_factory=asyncio.Event)
    generation: int = 0
    send_limiter: RateLimiter | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)


class _Marker:
    # Inbox item telling the processor a socket (re)connected: forming candles are stale.
    __slots__ = ("socket",)

    def __init__(self, socket: str) -> None:
        self.socket = socket


class _BadLoginReply(Exception):
    # A login reply that is not a JSON object: a broken connection or proxy, not a refusal,
    # so the socket reconnects instead of failing the stream.
    pass


class _Failure:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_CLOSED = object()


def _key(arg: dict[str, str]) -> tuple[str, str, str]:
    return (arg["instType"], arg["channel"], arg.get("instId") or arg.get("coin") or "")


class BitgetStream(CandleSyncMixin):
    """Bitget WebSocket v2 client: public candles/ticker/trades, private orders/fills.

    Parameters
    ----------
    settings : Settings or BitgetSettings, optional
        URLs (``ws_public_url``, ``ws_private_url``), credentials, ping and reconnect settings.
    rest : Exchange, optional
        Used to backfill missed closed candles. When omitted the stream opens (and closes) its
        own :class:`~chimera_lab.exchange.bitget.BitgetClient` from ``settings``.
    include_forming : bool
        Also yield updates of the candle still forming (``closed=False``); lossy.
    clock : Clock, optional
        For ping intervals and reconnect backoff.
    rng : random.Random, optional
        Jitter source for reconnect backoff.
    backfill_attempts : int
        How many times a gap in the closed candles is tried over REST (once per candle push,
        about every second on Bitget) before it is reported as a ``gap``
        :class:`StreamStatus` and skipped. REST history can lag the stream by a few seconds.
    stable_after_s : float
        A connection that lived this long resets the reconnect backoff; one that drops
        sooner keeps it growing, so a server that accepts and then drops at once is not
        hammered.
    """

    def __init__(
        self,
        settings: Settings | BitgetSettings | None = None,
        *,
        rest: Exchange | None = None,
        include_forming: bool = False,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        backfill_attempts: int = 10,
        stable_after_s: float = 30.0,
    ) -> None:
        if backfill_attempts < 1 or stable_after_s < 0:
            raise ConfigError(
                "need backfill_attempts >= 1 and stable_after_s >= 0, got "
                f"{backfill_attempts}, {stable_after_s}"
            )
        self.backfill_attempts = backfill_attempts
        self.stable_after_s = stable_after_s
        if settings is None:
            settings = Settings()
        self.settings: BitgetSettings = (
            settings.bitget if isinstance(settings, Settings) else settings
        )
        self.product = Product(self.settings.product)
        self._rest = rest
        self._own_rest = rest is None
        self.include_forming = include_forming
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._rng = rng if rng is not None else random.Random()
        self._state = StreamState.UNOPENED
        self._sockets = {
            "public": _Socket("public", _demo_host(self.settings, self.settings.ws_public_url)),
            "private": _Socket("private", _demo_host(self.settings, self.settings.ws_private_url)),
        }
        self._candles: dict[tuple[str, str, str], _CandleSub] = {}
        self._private_products: dict[tuple[str, str, str], Product] = {}
        self._queue: asyncio.Queue[object] | None = None
        self._inbox: asyncio.Queue[object] | None = None
        self._processor: asyncio.Task[None] | None = None
        self.stats = StreamStats()

    # -- life cycle ------------------------------------------------------------------------

    @property
    def state(self) -> StreamState:
        """Current life-cycle state."""
        return self._state

    async def open(self) -> Self:
        """Start the stream's tasks (``async with`` does this); returns ``self``."""
        if self._state is StreamState.OPENED:
            return self
        if self._state is StreamState.CLOSED:
            raise RuntimeError("this BitgetStream is closed and cannot be reopened; create one")
        if self._rest is None:
            from chimera_lab.exchange.bitget import BitgetClient

            self._rest = await BitgetClient(self.settings).open()
        self._queue = asyncio.Queue(maxsize=self.settings.ws_queue_size)
        self._inbox = asyncio.Queue(maxsize=self.settings.ws_queue_size)
        self._processor = asyncio.get_running_loop().create_task(
            self._process(), name="bitget-stream-processor"
        )
        self._processor.add_done_callback(self._task_done)
        self._state = StreamState.OPENED
        return self

    async def aclose(self) -> None:
        """Stop every task and close the sockets; calling it again does nothing."""
        if self._state is StreamState.CLOSED:
            return
        was_open = self._state is StreamState.OPENED
        self._state = StreamState.CLOSED
        tasks = [s.task for s in self._sockets.values() if s.task is not None]
        if self._processor is not None:
            tasks.append(self._processor)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sock in self._sockets.values():
            if sock.ws is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(sock.ws.close(), timeout=2.0)
                sock.ws = None
        if self._own_rest and self._rest is not None:
            aclose: Callable[[], Any] | None = getattr(self._rest, "aclose", None)
            if aclose is not None:
                await aclose()
        if was_open:
            self._offer(_CLOSED, force=True)

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self

    async def __anext__(self) -> StreamEvent:
        if self._queue is None:
            raise RuntimeError("use `async with BitgetStream(...) as stream:` before iterating")
        if self._state is StreamState.CLOSED and self._queue.empty():
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is _CLOSED:
            raise StopAsyncIteration
        if isinstance(item, _Failure):
            self._offer(item, force=True)  # every later call fails the same way
            raise item.exc
        return item  # type: ignore[return-value]

    async def wait_ready(self, timeout_s: float | None = None) -> None:
        """Wait until the subscriptions are live.

        Every socket with subscriptions is connected and every candle subscription has its
        starting point (its first snapshot was processed). Raises ``TimeoutError`` after
        ``timeout_s``, or the stream's fatal error.
        """

        async def ready() -> None:
            for sock in self._sockets.values():
                if sock.args:
                    await sock.connected.wait()
            for sub in list(self._candles.values()):
                await sub.ready.wait()

        waiter = asyncio.get_running_loop().create_task(ready(), name="bitget-stream-ready")
        failed = [s.task for s in self._sockets.values() if s.task is not None]
        if self._processor is not None:
            failed.append(self._processor)
        try:
            done, _ = await asyncio.wait(
                [waiter, *failed], timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
            if waiter in done:
                return
            for task in done:
                exc = None if task.cancelled() else task.exception()
                if exc is not None:
                    raise exc
            raise TimeoutError(f"stream not ready after {timeout_s} s")
        finally:
            waiter.cancel()

    async def next_event(self, timeout_s: float | None = None) -> StreamEvent:
        """Return the next event, waiting at most ``timeout_s`` (``TimeoutError`` after)."""
        return await asyncio.wait_for(self.__anext__(), timeout=timeout_s)

    # -- subscribing -----------------------------------------------------------------------

    async def subscribe_candles(
        self,
        symbol: str,
        timeframe: str,
        *,
        product: Product | None = None,
        since: datetime | None = None,
    ) -> None:
        """Stream closed candles of ``symbol`` (and forming ones if ``include_forming``).

        Without ``since`` the stream starts with the first candle that closes after
        subscribing; with ``since`` it first delivers every closed candle opening at or after
        ``since`` (from the snapshot, else over REST).
        """
        prod = self._product(product)
        arg = {
            "instType": prod.inst_type,
            "channel": ws_candle_channel(timeframe),
            "instId": symbol,
        }
        bar_ms = timeframe_ms(timeframe)
        last_emitted_ms = None  # set by the first snapshot
        if since is not None:
            # The bar before the first one at/after `since` counts as emitted.
            last_emitted_ms = ceil_to_bar(datetime_to_ms(since), bar_ms) - bar_ms
        self._candles[_key(arg)] = _CandleSub(symbol, timeframe, prod, bar_ms, last_emitted_ms)
        await self._subscribe("public", arg)

    async def subscribe_ticker(self, symbol: str, *, product: Product | None = None) -> None:
        """Stream tickers of ``symbol`` (lossy: the latest matters)."""
        prod = self._product(product)
        await self._subscribe(
            "public", {"instType": prod.inst_type, "channel": "ticker", "instId": symbol}
        )

    async def subscribe_trades(self, symbol: str, *, product: Product | None = None) -> None:
        """Stream public trades of ``symbol`` (lossy under back-pressure)."""
        prod = self._product(product)
        await self._subscribe(
            "public", {"instType": prod.inst_type, "channel": "trade", "instId": symbol}
        )

    async def subscribe_orders(
        self, symbol: str | None = None, *, product: Product | None = None
    ) -> None:
        """Stream this account's order updates (needs credentials)."""
        await self._subscribe_private("orders", symbol, product)

    async def subscribe_fills(
        self, symbol: str | None = None, *, product: Product | None = None
    ) -> None:
        """Stream this account's fills (needs credentials)."""
        await self._subscribe_private("fill", symbol, product)

    async def _subscribe_private(
        self, channel: str, symbol: str | None, product: Product | None
    ) -> None:
        self.settings.credentials()  # fail early without credentials
        prod = self._product(product)
        arg = {"instType": prod.inst_type, "channel": channel, "instId": symbol or "default"}
        self._private_products[_key(arg)] = prod
        await self._subscribe("private", arg)

    def _product(self, product: Product | str | None) -> Product:
        return self.product if product is None else Product(product)

    async def _subscribe(self, socket: Literal["public", "private"], arg: dict[str, str]) -> None:
        if self._state is not StreamState.OPENED:
            raise RuntimeError("open the stream first: `async with BitgetStream(...) as stream:`")
        sock = self._sockets[socket]
        sock.args[_key(arg)] = arg
        if sock.task is None or sock.task.done():
            sock.task = asyncio.get_running_loop().create_task(
                self._run_socket(sock), name=f"bitget-stream-{socket}"
            )
            sock.task.add_done_callback(self._task_done)
        elif sock.ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._send_subscribe(sock, [arg])

    # -- connections -----------------------------------------------------------------------

    def _login_args(self, ts_s: int) -> dict[str, str]:
        key, secret, passphrase = self.settings.credentials()
        ts = str(ts_s)
        return {
            "apiKey": key,
            "passphrase": passphrase,
            "timestamp": ts,
            "sign": ws_login_sign(secret, ts),
        }

    async def _send(self, sock: _Socket, ws: ClientConnection, text: str) -> None:
        # Bitget closes a socket sending more than 10 messages a second: stay below 8.
        if sock.send_limiter is None:
            sock.send_limiter = RateLimiter(
                [Window(8, 1.0)], clock=self._clock, name=f"bitget-ws-{sock.name}"
            )
        await sock.send_limiter.acquire()
        await ws.send(text)

    async def _send_subscribe(self, sock: _Socket, args: list[dict[str, str]]) -> None:
        ws = sock.ws
        if ws is None:
            return
        batch: list[dict[str, str]] = []
        for arg in args:
            if batch and len(json.dumps(batch + [arg])) > _MAX_ARGS_BYTES:
                await self._send(sock, ws, json.dumps({"op": "subscribe", "args": batch}))
                batch = []
            batch.append(arg)
        if batch:
            await self._send(sock, ws, json.dumps({"op": "subscribe", "args": batch}))

    def _backoff(self, attempt: int) -> float:
        s = self.settings
        cap = min(s.ws_reconnect_max_delay_s, s.ws_reconnect_base_delay_s * 2.0 ** (attempt - 1))
        return self._rng.uniform(cap / 2, cap) if cap > 0 else 0.0

    async def _run_socket(self, sock: _Socket) -> None:
        attempt = 0
        resynced = False
        while self._state is StreamState.OPENED:
            reason = "closed"
            connected_at: float | None = None
            try:
                async with connect(
                    sock.url,
                    ping_interval=None,  # Bitget uses text ping/pong, not protocol pings
                    open_timeout=self.settings.connect_timeout_s,
                    close_timeout=2.0,
                    max_queue=64,
                    compression=None,
                ) as ws:
                    if sock.name == "private":
                        await self._login(sock, ws)
                        resynced = False
                    connected_at = self._clock.monotonic()
                    sock.ws = ws
                    sock.connected.set()
                    sock.generation += 1
                    await self._put_inbox(_Marker(sock.name))
                    await self._send_subscribe(sock, list(sock.args.values()))
                    self.stats.connects += 1
                    if attempt or sock.generation > 1:
                        self.stats.reconnects += 1
                    log.info("exchange.ws.connected", socket=sock.name, attempt=attempt)
                    self._offer(StreamStatus("connected", sock.name, attempt, "", _now()))
                    pinger = asyncio.get_running_loop().create_task(
                        self._keepalive(sock, ws), name=f"bitget-stream-{sock.name}-ping"
                    )
                    pinger.add_done_callback(functools.partial(self._pinger_done, sock, ws))
                    try:
                        async for message in ws:
                            self.stats.messages += 1
                            if message == "pong":
                                sock.pong.set()
                                continue
                            await self._put_inbox((sock.name, message))
                    finally:
                        pinger.cancel()
                        await asyncio.gather(pinger, return_exceptions=True)
                        sock.ws = None
                        sock.connected.clear()
            except AuthenticationError as exc:
                # Login refused for its timestamp: measure the server clock once and retry.
                sync = self._clock_sync()
                if exc.code != "30014" or resynced or sync is None:
                    raise
                try:
                    await sync()
                except ExchangeError as sync_exc:
                    # REST unreachable or busy for the moment: not a reason to give up the
                    # stream; try the login (and the resync) again after the usual backoff.
                    reason = (
                        f"login timestamp expired ({exc.code}); clock resync failed "
                        f"({type(sync_exc).__name__}: {sync_exc})"
                    )
                else:
                    resynced = True
                    reason = f"login timestamp expired ({exc.code}); clock resynced"
            except ConfigError:
                raise  # a bad URL: reconnecting cannot help
            except (
                OSError, ConnectionClosed, InvalidHandshake, TimeoutError, _BadLoginReply
            ) as exc:  # fmt: skip
                reason = f"{type(exc).__name__}: {exc}"
            except InvalidURI as exc:
                raise ConfigError(f"bad WebSocket URL {sock.url!r}: {exc}") from exc
            if self._state is not StreamState.OPENED:
                return
            if connected_at is not None:
                uptime = self._clock.monotonic() - connected_at
                if uptime >= self.stable_after_s:
                    attempt = 0  # it had been stable: start the backoff afresh
            attempt += 1
            delay = self._backoff(attempt)
            log.warning(
                "exchange.ws.disconnected", socket=sock.name, reason=reason, attempt=attempt,
                retry_in_s=round(delay, 3),
            )  # fmt: skip
            self._offer(StreamStatus("disconnected", sock.name, attempt, reason, _now()))
            await self._clock.sleep(delay)

    def _pinger_done(self, sock: _Socket, ws: ClientConnection, task: asyncio.Task[None]) -> None:
        # The keep-alive must not die silently: without pings Bitget drops the socket after
        # 2 minutes and a dead peer goes unnoticed. Log it and rebuild the connection.
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None or isinstance(exc, ConnectionClosed):
            return  # no pong (it aborted the connection itself), or the socket closed
        log.error("exchange.ws.pinger_failed", socket=sock.name, error=repr(exc))
        ws.transport.abort()  # the reader sees the drop and reconnects

    def _server_time_s(self) -> int:
        # Local wall time corrected by the offset the REST client measured (sync_time).
        timestamp_ms: Callable[[], int] | None = getattr(self._rest, "timestamp_ms", None)
        now_ms = timestamp_ms() if timestamp_ms is not None else int(time.time() * 1000)
        return now_ms // 1000

    def _clock_sync(self) -> Callable[[], Awaitable[object]] | None:
        # The REST client's sync_time, when it has one and auto_time_sync is on.
        sync: Callable[[], Awaitable[object]] | None = getattr(self._rest, "sync_time", None)
        return sync if self.settings.auto_time_sync else None

    async def _login(self, sock: _Socket, ws: ClientConnection) -> None:
        args = self._login_args(self._server_time_s())
        await self._send(sock, ws, json.dumps({"op": "login", "args": [args]}))
        while True:
            raw = await asyncio.wait_for(ws.recv(), timeout=self.settings.ws_pong_timeout_s)
            if raw == "pong":
                continue
            try:
                message = json.loads(raw)
            except ValueError:
                message = None
            if not isinstance(message, dict):
                raise _BadLoginReply(f"login reply is not a JSON object: {str(raw)[:200]!r}")
            if message.get("event") == "login" and str(message.get("code")) in ("0", "00000"):
                return
            if message.get("event") == "error":
                code = str(message.get("code"))
                raise AuthenticationError(
                    f"Bitget WebSocket login refused: {code} {message.get('msg', '')}; check "
                    "CHIMERA_BITGET__API_KEY, __API_SECRET, __PASSPHRASE and the system clock",
                    code=code,
                )

    async def _keepalive(self, sock: _Socket, ws: ClientConnection) -> None:
        while True:
            await self._clock.sleep(self.settings.ws_ping_interval_s)
            sock.pong.clear()
            await self._send(sock, ws, "ping")
            try:
                await asyncio.wait_for(sock.pong.wait(), timeout=self.settings.ws_pong_timeout_s)
            except TimeoutError:
                log.warning("exchange.ws.no_pong", socket=sock.name)
                ws.transport.abort()  # the reader sees the connection drop and reconnects
                return

    async def _put_inbox(self, item: object) -> None:
        assert self._inbox is not None
        await self._inbox.put(item)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("exchange.ws.task_failed", task=task.get_name(), error=repr(exc))
            self._offer(_Failure(exc), force=True)

    # -- delivery --------------------------------------------------------------------------

    def _offer(self, item: object, *, force: bool = False) -> bool:
        # Non-blocking put for lossy events and sentinels; with force, evict to make room.
        if self._queue is None:
            return False
        try:
            self._queue.put_nowait(item)
            return True
        except asyncio.QueueFull:
            if not force:
                self.stats.dropped += 1
                return False
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
                self.stats.dropped += 1
            self._queue.put_nowait(item)
            return True

    async def _gap_notice(self, sub: _CandleSub, holes: list[int]) -> None:
        # Closed candles REST could not deliver after backfill_attempts tries: tell the
        # consumer (not lossy) and the log; the stream then moves on.
        first, last = ms_to_datetime(holes[0]), ms_to_datetime(holes[-1])
        reason = (
            f"{sub.symbol} {sub.timeframe}: {len(holes)} closed bars between {first} and "
            f"{last} are missing from the stream and from REST history"
        )
        log.warning(
            "exchange.ws.gap", symbol=sub.symbol, timeframe=sub.timeframe,
            bars=len(holes), first=first.isoformat(), last=last.isoformat(),
        )  # fmt: skip
        status = StreamStatus("gap", "public", sub.backfill_tries, reason, _now(), (first, last))
        await self._deliver(status)

    async def _deliver(self, item: StreamEvent) -> None:
        assert self._queue is not None
        await self._queue.put(item)

    async def _process(self) -> None:
        assert self._inbox is not None
        while True:
            item = await self._inbox.get()
            if isinstance(item, _Marker):
                if item.socket == "public":
                    for sub in self._candles.values():
                        sub.forming = None  # stale after a gap: the snapshot brings it again
                continue
            assert isinstance(item, tuple)
            socket: str = item[0]
            raw: str = item[1]
            try:
                message = json.loads(raw, parse_float=Decimal)
            except ValueError:
                log.warning("exchange.ws.bad_message", socket=socket, message=str(raw)[:200])
                continue
            if not isinstance(message, dict):
                continue
            if "event" in message:
                self._on_event(socket, message)
                continue
            arg = message.get("arg")
            data = message.get("data")
            if not isinstance(arg, dict) or not isinstance(data, list):
                continue
            try:
                await self._on_push({str(k): str(v) for k, v in arg.items()}, data)
            except (ExchangeError, KeyError, ValueError, TypeError, AttributeError) as exc:
                # A malformed push (missing keys, wrong shapes) is dropped, not fatal: one
                # bad message must not end a 24/7 stream.
                self.stats.bad_pushes += 1
                log.warning(
                    "exchange.ws.bad_push", socket=socket, channel=arg.get("channel"), arg=arg,
                    error=f"{type(exc).__name__}: {exc}",
                )  # fmt: skip

    def _on_event(self, socket: str, message: dict[str, Any]) -> None:
        if message.get("event") != "error":
            return
        code = str(message.get("code"))
        text = f"Bitget WebSocket error {code}: {message.get('msg', '')} (arg={message.get('arg')})"
        if code in _AUTH_WS_CODES:
            raise AuthenticationError(text, code=code)
        if code in _FATAL_WS_CODES:
            raise ExchangeError(text + "; check the channel, instType and symbol", code=code)
        log.warning("exchange.ws.error", socket=socket, code=code, msg=message.get("msg"))

    async def _on_push(self, arg: dict[str, str], data: list[Any]) -> None:
        channel = arg.get("channel", "")
        key = _key(arg)
        if channel.startswith("candle"):
            sub = self._candles.get(key)
            if sub is not None:
                await self._on_candles(sub, data)
        elif channel == "ticker":
            for item in data:
                self._offer(parse_ticker(item, arg.get("instId", "")))
        elif channel == "trade":
            for item in sorted(data, key=lambda i: int(str(i.get("ts", 0)))):
                self._offer(parse_trade(item, arg.get("instId", "")))
        elif channel == "orders":
            product = self._private_products.get(key, self.product)
            for item in data:
                await self._deliver(parse_ws_order(item, product))
        elif channel == "fill":
            product = self._private_products.get(key, self.product)
            for item in data:
                await self._deliver(parse_fill(item, product))


def _demo_host(settings: BitgetSettings, url: str) -> str:
    # Demo trading streams from wspap.bitget.com (bitget-api.md section 7); a user who set
    # CHIMERA_BITGET__DEMO=true but kept the default URLs gets the demo host.
    if settings.demo and "://ws.bitget.com/" in url:
        return url.replace("://ws.bitget.com/", "://wspap.bitget.com/")
    return url


def _now() -> datetime:
    return datetime.now(UTC)
