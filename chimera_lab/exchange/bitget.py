"""The async Bitget REST v2 client: :class:`BitgetClient`.

Use it as an async context manager (or ``await client.open()`` / ``await client.aclose()`` in a
notebook)::

    async with BitgetClient(settings) as ex:
        candles = await ex.get_candles("BTCUSDT", "1m", limit=100)
        ack = await ex.place_order(OrderRequest("BTCUSDT", Side.BUY, OrderType.LIMIT,
                                                Decimal("0.001"), price=Decimal("30000")))

Every request goes through, in order: the endpoint group's circuit breaker, the client's
priority rate limiter (global windows from Settings plus Bitget's per-endpoint limit), HMAC
signing of the exact bytes sent (sorted query string — signed raw, sent percent-encoded —
and the compact JSON body), one shared
``httpx.AsyncClient`` (explicit timeouts, bounded pool), envelope decoding (``code`` first,
HTTP status second) and a structured log event ``exchange.request`` (method, path, status,
code, latency_ms, attempt, request_id — never headers or credentials). Reads are retried with
jittered exponential backoff; orders are placed exactly once (see :meth:`place_order`).

Pointed at ``https://api.bitget.com`` it talks to Bitget; pointed at ``chimera sim serve``
(``CHIMERA_BITGET__BASE_URL=http://127.0.0.1:8900``) it talks to the loopback simulator.
"""

from __future__ import annotations

import itertools
import json
import random
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from types import TracebackType
from typing import Any, Self

import httpx

from chimera_lab.config import BitgetSettings, Settings
from chimera_lab.errors import (
    AuthenticationError,
    ConfigError,
    DuplicateOrder,
    ExchangeError,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
    OutcomeUnknown,
    RateLimited,
)
from chimera_lab.exchange.base import (
    Balance,
    Candle,
    FundingRate,
    OpenInterest,
    OrderBook,
    Position,
    Priority,
    Product,
    Ticker,
)
from chimera_lab.exchange.endpoints import ENDPOINTS, Endpoint, endpoint, granularity
from chimera_lab.exchange.limiter import Clock, RateLimiter, SystemClock, Window
from chimera_lab.exchange.parsing import (
    datetime_to_ms,
    ms_to_datetime,
    parse_balance,
    parse_candles,
    parse_funding_history,
    parse_funding_rate,
    parse_open_interest,
    parse_order_book,
    parse_position,
    parse_ticker,
)
from chimera_lab.exchange.resilience import CircuitBreaker, Resilience, RetryPolicy
from chimera_lab.exchange.signing import canonical_query, sign
from chimera_lab.exchange.trading import TradingMixin, new_client_oid
from chimera_lab.logging import get_logger
from chimera_lab.timeframes import ceil_to_bar, timeframe_ms

__all__ = ["BitgetClient", "ClientState", "map_bitget_error", "new_client_oid"]

log = get_logger(__name__)


# Bitget codes (bitget-api.md section 4) -> our hierarchy.
_AUTH_CODES = frozenset(
    "40001 40002 40003 40005 40006 40008 40009 40011 40012 40014 40018 40037".split()
)
_RATE_CODES = frozenset({"429"})
_FUNDS_CODES = frozenset({"43012", "40754", "40762"})
_NOT_FOUND_CODES = frozenset({"43001", "40109", "40768", "22001", "43004"})
_DUPLICATE_CODES = frozenset({"43118", "45034"})
_PARAM_CODES = frozenset(
    "40017 40019 40020 40034 40808 40102 40304 40305 43006 45110 45111".split()
)
_BUSY_CODES = frozenset({"40010", "40015", "40725", "45001"})


class ClientState(StrEnum):
    """Life cycle of a :class:`BitgetClient`; a closed client cannot be reopened."""

    UNOPENED = "unopened"
    OPENED = "opened"
    CLOSED = "closed"


def map_bitget_error(
    code: str, msg: str, *, status: int | None, where: str, trading: bool = False
) -> ExchangeError:
    """Return the :class:`~chimera_lab.errors.ExchangeError` subclass for a Bitget ``code``.

    Examples
    --------
    >>> err = map_bitget_error("43012", "Insufficient balance", status=400, where="POST /x")
    >>> type(err).__name__, err.code
    ('InsufficientFunds', '43012')
    >>> type(map_bitget_error("40009", "sign error", status=400, where="GET /y")).__name__
    'AuthenticationError'
    """
    text = f"Bitget {code}: {msg or 'no message'} ({where})"
    if code in _AUTH_CODES:
        hint = (
            "; the request timestamp is more than 30 s off server time: sync the system "
            "clock or call `await client.sync_time()`"
            if code == "40008"
            else "; check CHIMERA_BITGET__API_KEY, __API_SECRET and __PASSPHRASE"
        )
        return AuthenticationError(text + hint, code=code, status=status)
    if code in _RATE_CODES or status == 429:
        return RateLimited(text + "; back off and retry", code=code, status=status)
    if code in _FUNDS_CODES:
        return InsufficientFunds(text, code=code, status=status)
    if code in _NOT_FOUND_CODES:
        return OrderNotFound(text, code=code, status=status)
    if code in _DUPLICATE_CODES:
        return DuplicateOrder(
            text + "; the clientOid was used before (the order was probably placed)",
            code=code,
            status=status,
        )
    if code in _PARAM_CODES:
        cls = InvalidOrder if trading else ExchangeError
        return cls(text, code=code, status=status)
    if code in _BUSY_CODES or (status is not None and status >= 500):
        return ExchangeUnavailable(
            text + "; the exchange is busy, retry later", code=code, status=status
        )
    return ExchangeError(text, code=code, status=status)


def _map_transport(exc: httpx.HTTPError, where: str) -> ExchangeError:
    name = type(exc).__name__
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        # Nothing reached the exchange: safe to resend anything.
        return ExchangeUnavailable(f"could not reach Bitget ({name}: {exc}) ({where})")
    if isinstance(exc, httpx.UnsupportedProtocol):
        return ExchangeError(f"bad base URL for Bitget ({exc}); use http(s)://host[:port]")
    # Sent, but no (complete) answer: the exchange may have acted on it.
    return OutcomeUnknown(f"no answer from Bitget ({name}: {exc or 'timeout'}) ({where})")


def _reserve(limit: int, share: float) -> int:
    # Slots of an overall window only orders may use: `share` of it, at least one (so a read
    # flood cannot make an order wait for the window to roll over), never all of it.
    if share <= 0 or limit < 2:
        return 0
    return min(limit - 1, max(1, round(limit * share)))


class BitgetClient(TradingMixin):
    """Async Bitget REST API v2 client implementing :class:`~chimera_lab.exchange.base.Exchange`.

    Parameters
    ----------
    settings : Settings or BitgetSettings, optional
        Connection, credentials, limits and retry settings (``Settings().bitget`` if omitted).
    transport : httpx.AsyncBaseTransport, optional
        Replaces the network transport (tests pass ``httpx.MockTransport``).
    clock : Clock, optional
        Monotonic clock for the limiter, breakers and backoff sleeps.
    wall_clock : callable, optional
        Returns Unix seconds for ``ACCESS-TIMESTAMP`` (default :func:`time.time`).
    rng : random.Random, optional
        Jitter source for backoff.

    Attributes
    ----------
    limiter : RateLimiter
        The one limiter every request of this client passes.
    circuits : dict of str to CircuitBreaker
        One breaker per endpoint group: ``market``, ``trade``, ``account``.
    """

    def __init__(
        self,
        settings: Settings | BitgetSettings | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
        wall_clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if settings is None:
            settings = Settings()
        self.settings: BitgetSettings = (
            settings.bitget if isinstance(settings, Settings) else settings
        )
        s = self.settings
        self.product = Product(s.product)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._wall = wall_clock if wall_clock is not None else time.time
        self._rng = rng if rng is not None else random.Random()
        reserve = s.rate_limit_trading_reserve
        self.limiter = RateLimiter(
            [
                Window(s.rate_limit_per_minute, 60.0, _reserve(s.rate_limit_per_minute, reserve)),
                Window(s.rate_limit_per_second, 1.0, _reserve(s.rate_limit_per_second, reserve)),
            ],
            {
                ep.path: [Window(max(1, round(ep.limit_per_s * s.endpoint_limit_scale)), 1.0)]
                for ep in ENDPOINTS.values()
            },
            clock=self._clock,
            margin_s=s.rate_limit_margin_s,
            max_waiters=s.limiter_max_waiters,
            max_concurrent=s.max_connections,  # a granted request never waits for the pool
            name="bitget-limiter",
        )
        self.circuits = {
            group: CircuitBreaker(
                group,
                failure_threshold=s.circuit_failure_threshold,
                recovery_s=s.circuit_recovery_s,
                clock=self._clock,
            )
            for group in ("market", "trade", "account")
        }
        self._retry = RetryPolicy(s.retry_max_attempts, s.retry_base_delay_s, s.retry_max_delay_s)
        self._policies = {
            group: Resilience(
                self._retry, breaker, clock=self._clock, rng=self._rng, name=f"bitget.{group}"
            )
            for group, breaker in self.circuits.items()
        }
        self._http = httpx.AsyncClient(
            base_url=s.base_url.rstrip("/"),
            timeout=httpx.Timeout(s.timeout_s, connect=s.connect_timeout_s),
            limits=httpx.Limits(
                max_connections=s.max_connections,
                max_keepalive_connections=s.max_keepalive_connections,
            ),
            transport=transport,
            follow_redirects=False,
        )
        self._state = ClientState.UNOPENED
        self._offset_ms = 0
        self._ids = itertools.count(1)
        self._session = uuid.uuid4().hex[:8]

    # -- life cycle ------------------------------------------------------------------------

    @property
    def state(self) -> ClientState:
        """Current life-cycle state."""
        return self._state

    @property
    def time_offset_ms(self) -> int:
        """Server time minus local time, as last measured by :meth:`sync_time`."""
        return self._offset_ms

    async def open(self) -> Self:
        """Open the connection pool; returns ``self`` (``async with`` does this for you)."""
        if self._state is ClientState.OPENED:
            return self
        if self._state is ClientState.CLOSED:
            raise RuntimeError(
                "this BitgetClient is closed and cannot be reopened; create a new one"
            )
        await self._http.__aenter__()
        self._state = ClientState.OPENED
        return self

    async def aclose(self) -> None:
        """Close the connection pool; calling it again does nothing."""
        if self._state is ClientState.CLOSED:
            return
        self._state = ClientState.CLOSED
        self.limiter.close()
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return (
            f"BitgetClient(base_url={self.settings.base_url!r}, product={self.product.value!r}, "
            f"state={self._state.value!r})"
        )

    # -- request pipeline ------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._state is not ClientState.OPENED:
            raise RuntimeError(
                f"BitgetClient is {self._state.value}; use `async with BitgetClient(settings) "
                "as ex:` (or `await client.open()`)"
            )

    def timestamp_ms(self) -> int:
        """Return the server's clock as this client estimates it (Unix ms).

        Local wall time plus :attr:`time_offset_ms`: what ``ACCESS-TIMESTAMP`` carries (and
        :class:`~chimera_lab.exchange.stream.BitgetStream` signs its login with).
        """
        return int(self._wall() * 1000) + self._offset_ms

    async def _send(
        self,
        ep: Endpoint,
        params: Mapping[str, object] | None,
        body: Mapping[str, object] | None,
        priority: Priority,
        attempt: int,
    ) -> tuple[Any, int | None]:
        # One attempt (see _send_once), resent once after a stale-timestamp refusal (40008)
        # with the clock resynced. Every signed call passes here, orders included: a request
        # refused for its timestamp was not executed, so resending it cannot double an order.
        try:
            return await self._send_once(ep, params, body, priority, attempt)
        except AuthenticationError as exc:
            if exc.code != "40008" or not ep.signed or not self.settings.auto_time_sync:
                raise
            log.warning("exchange.time_resync", path=ep.path, offset_ms=self._offset_ms)
            try:
                await self.sync_time()
            except ExchangeError as sync_exc:
                # Surface the refusal itself (nothing executed), not the sync failure: an
                # OutcomeUnknown from the sync would read as an ambiguous order attempt.
                raise exc from sync_exc
        return await self._send_once(ep, params, body, priority, attempt)

    async def _send_once(
        self,
        ep: Endpoint,
        params: Mapping[str, object] | None,
        body: Mapping[str, object] | None,
        priority: Priority,
        attempt: int,
    ) -> tuple[Any, int | None]:
        # One attempt: limiter slot, sign, send, decode. Returns (data, server time ms).
        self._check_open()
        creds = self.settings.credentials() if ep.signed else None
        where = f"{ep.method} {ep.path}"
        request_id = f"{self._session}-{next(self._ids)}"
        # The limiter slot covers the whole exchange round trip (and caps requests in flight
        # at the pool size); signing happens inside it so the timestamp is fresh however long
        # the request queued.
        async with self.limiter.slot(priority, ep.path):
            query = canonical_query(params)  # signed raw, sent percent-encoded (section 2)
            body_text = json.dumps(body, separators=(",", ":")) if body is not None else ""
            headers: dict[str, str] = {}
            if body is not None:
                headers["Content-Type"] = "application/json"
            if self.settings.demo:
                headers["paptrading"] = "1"
            if creds is not None:
                key, secret, passphrase = creds
                ts = str(self.timestamp_ms())
                headers["ACCESS-KEY"] = key
                headers["ACCESS-SIGN"] = sign(secret, ts, ep.method, ep.path, query, body_text)
                headers["ACCESS-TIMESTAMP"] = ts
                headers["ACCESS-PASSPHRASE"] = passphrase
            url_query = canonical_query(params, encoded=True)
            url = ep.path + ("?" + url_query if url_query else "")
            started = time.perf_counter()
            try:
                response = await self._http.request(
                    ep.method, url, content=body_text.encode() if body is not None else None,
                    headers=headers,
                )  # fmt: skip
            except httpx.HTTPError as exc:
                latency_ms = round((time.perf_counter() - started) * 1000, 3)
                error = _map_transport(exc, where)
                log.warning(
                    "exchange.request", method=ep.method, path=ep.path, status=None, code=None,
                    latency_ms=latency_ms, attempt=attempt, request_id=request_id,
                    priority=priority.name, error=type(error).__name__, detail=type(exc).__name__,
                )  # fmt: skip
                raise error from exc
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        status = response.status_code
        try:
            payload = json.loads(response.content, parse_float=Decimal)
        except ValueError:
            payload = None
        code = str(payload.get("code")) if isinstance(payload, dict) and "code" in payload else None
        log.info(
            "exchange.request", method=ep.method, path=ep.path, status=status, code=code,
            latency_ms=latency_ms, attempt=attempt, request_id=request_id, priority=priority.name,
        )  # fmt: skip
        if isinstance(payload, dict) and code is not None:
            if code == "00000" and status < 400:
                server_ms = payload.get("requestTime")
                return payload.get("data"), int(server_ms) if server_ms is not None else None
            msg = str(payload.get("msg") or payload.get("message") or "")
        else:
            code, msg = str(status), response.text[:200] if status >= 400 else "not JSON"
            if status < 400:
                raise ExchangeError(f"Bitget answered {status} with a non-JSON body ({where})")
        error = map_bitget_error(code, msg, status=status, where=where, trading=ep.group == "trade")
        if isinstance(error, RateLimited):
            retry_after = response.headers.get("Retry-After")
            if retry_after is not None:
                try:
                    error.retry_after_s = float(retry_after)
                except ValueError:
                    pass
        raise error

    async def _call(
        self,
        name: str,
        *,
        product: Product,
        params: Mapping[str, object] | None = None,
        priority: Priority | None = None,
    ) -> tuple[Any, int | None]:
        # A read (or idempotent write) through the group's retry + circuit policy.
        ep = endpoint(name, product)
        prio = priority if priority is not None else ep.priority
        policy = self._policies[ep.group]

        async def attempt_fn(attempt: int) -> tuple[Any, int | None]:
            return await self._send(ep, params, None, prio, attempt)

        return await policy.call(attempt_fn)

    def _product(self, product: Product | str | None) -> Product:
        return self.product if product is None else Product(product)

    def _mix_params(self, product: Product, **params: object) -> dict[str, object]:
        if product.is_futures:
            params["productType"] = product.product_type
        return params

    # -- market data (orders: TradingMixin in chimera_lab/exchange/trading.py) ----------

    async def sync_time(self) -> int:
        """Measure server time minus local time (ms); signed requests use it from then on."""
        before = self._wall()
        data, _ = await self._call("time", product=Product.SPOT, priority=Priority.MONITORING)
        after = self._wall()
        server_ms = int(str(data["serverTime"]))
        self._offset_ms = server_ms - int((before + after) / 2 * 1000)
        return self._offset_ms

    async def server_time(self) -> datetime:
        """Return the exchange's clock (UTC)."""
        data, _ = await self._call("time", product=Product.SPOT)
        return ms_to_datetime(data["serverTime"])

    async def get_candles(
        self,
        symbol: str,
        timeframe: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
        product: Product | None = None,
        priority: Priority | None = None,
    ) -> list[Candle]:
        """Return recent candles oldest first; the newest may be forming (``closed=False``).

        ``start``/``end`` bound the bar open times (Bitget: bars after ``startTime`` and
        before ``endTime``); ``limit`` is at most 1000.
        """
        if not 1 <= limit <= 1000:
            raise ConfigError(f"limit must be in 1..1000 for candles, got {limit}")
        prod = self._product(product)
        params = self._mix_params(
            prod,
            symbol=symbol,
            granularity=granularity(timeframe, prod),
            startTime=datetime_to_ms(start) if start is not None else None,
            endTime=datetime_to_ms(end) if end is not None else None,
            limit=limit,
        )
        data, now_ms = await self._call("candles", product=prod, params=params, priority=priority)
        now_ms = now_ms if now_ms is not None else self.timestamp_ms()
        return parse_candles(data, symbol, timeframe, product=prod, now_ms=now_ms)

    async def get_history_candles(
        self,
        symbol: str,
        timeframe: str,
        *,
        end: datetime,
        limit: int = 200,
        product: Product | None = None,
        priority: Priority | None = None,
    ) -> list[Candle]:
        """Return up to ``limit`` (<= 200) closed candles opening before ``end``, oldest first.

        Bitget anchors the page on ``endTime``; page backwards by passing the oldest
        timestamp returned as the next ``end`` (:mod:`chimera_lab.exchange.fetch` does).

        ``endTime`` is sent as ``end`` rounded up to the bar and the rows are filtered to
        ``timestamp < end`` here, so the page holds the same bars whether Bitget treats
        ``endTime`` as inclusive or exclusive, or floors it to the granularity (all
        unverified, bitget-api.md section 3.2). Under the inclusive reading the page may
        hold one bar fewer than ``limit``.
        """
        if not 1 <= limit <= 200:
            raise ConfigError(f"limit must be in 1..200 for history candles, got {limit}")
        prod = self._product(product)
        end_ms = datetime_to_ms(end)
        bar_ms = timeframe_ms(timeframe)
        params = self._mix_params(
            prod,
            symbol=symbol,
            granularity=granularity(timeframe, prod),
            endTime=ceil_to_bar(end_ms, bar_ms),
            limit=limit,
        )
        data, now_ms = await self._call(
            "history_candles", product=prod, params=params, priority=priority
        )
        now_ms = now_ms if now_ms is not None else self.timestamp_ms()
        candles = parse_candles(data, symbol, timeframe, product=prod, now_ms=now_ms)
        return [c for c in candles if c.closed and datetime_to_ms(c.timestamp) < end_ms]

    async def get_ticker(
        self, symbol: str, *, product: Product | None = None, priority: Priority | None = None
    ) -> Ticker:
        """Return the ticker of ``symbol``."""
        prod = self._product(product)
        params = self._mix_params(prod, symbol=symbol)
        data, _ = await self._call("ticker", product=prod, params=params, priority=priority)
        return parse_ticker(data, symbol)

    async def get_order_book(
        self,
        symbol: str,
        *,
        limit: int = 50,
        product: Product | None = None,
        priority: Priority | None = None,
    ) -> OrderBook:
        """Return an order-book snapshot with at most ``limit`` levels a side (spot <= 150)."""
        prod = self._product(product)
        if prod.is_futures:
            depth: object = next((n for n in (1, 5, 15, 50) if n >= limit), "max")
            params = self._mix_params(prod, symbol=symbol, limit=depth)
        else:
            if not 1 <= limit <= 150:
                raise ConfigError(f"limit must be in 1..150 for a spot order book, got {limit}")
            params = {"symbol": symbol, "type": "step0", "limit": limit}
        data, _ = await self._call("orderbook", product=prod, params=params, priority=priority)
        book = parse_order_book(data, symbol)
        return OrderBook(book.symbol, book.timestamp, book.bids[:limit], book.asks[:limit])

    async def get_funding_rate(self, symbol: str) -> FundingRate:
        """Return the current funding rate of a USDT-M perpetual."""
        prod = Product.USDT_FUTURES
        params = self._mix_params(prod, symbol=symbol)
        data, _ = await self._call("funding_rate", product=prod, params=params)
        return parse_funding_rate(data, symbol)

    async def get_funding_history(self, symbol: str, *, limit: int = 100) -> list[FundingRate]:
        """Return up to ``limit`` (<= 100) past funding rates, oldest first."""
        if not 1 <= limit <= 100:
            raise ConfigError(f"limit must be in 1..100 for funding history, got {limit}")
        prod = Product.USDT_FUTURES
        params = self._mix_params(prod, symbol=symbol, pageSize=limit, pageNo=1)
        data, _ = await self._call("funding_history", product=prod, params=params)
        return parse_funding_history(data, symbol)

    async def get_open_interest(self, symbol: str) -> OpenInterest:
        """Return the open interest of a USDT-M perpetual (base coin)."""
        prod = Product.USDT_FUTURES
        params = self._mix_params(prod, symbol=symbol)
        data, _ = await self._call("open_interest", product=prod, params=params)
        return parse_open_interest(data, symbol)

    async def get_balances(self, *, product: Product | None = None) -> list[Balance]:
        """Return spot assets, or USDT-M futures accounts."""
        prod = self._product(product)
        params = self._mix_params(prod)
        data, _ = await self._call("balances", product=prod, params=params or None)
        return [parse_balance(item, prod) for item in (data or [])]

    async def get_positions(self, symbol: str | None = None) -> list[Position]:
        """Return open USDT-M futures positions (of ``symbol``, or all)."""
        prod = Product.USDT_FUTURES
        params = self._mix_params(prod, marginCoin="USDT")
        data, _ = await self._call("positions", product=prod, params=params)
        positions = [parse_position(item) for item in (data or [])]
        return [p for p in positions if p.size != 0 and (symbol is None or p.symbol == symbol)]
