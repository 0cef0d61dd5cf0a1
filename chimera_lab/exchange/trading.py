"""The order path of :class:`~chimera_lab.exchange.bitget.BitgetClient`: exactly-once orders.

:class:`TradingMixin` holds what trades and queries orders — :meth:`~TradingMixin.place_order`
(one ``clientOid`` per intent, looked up before any resend after an ambiguous failure),
:meth:`~TradingMixin.cancel_order` (idempotent, with a follow-up lookup when an earlier attempt
may have acted), :meth:`~TradingMixin.get_order`, open orders and fills. It runs on the
client's request pipeline (``_send`` / ``_call``: limiter, signing, circuit breakers).

Examples
--------
>>> _is_ambiguous(OutcomeUnknown("read timeout"))  # sent, no answer: it may have acted
True
>>> _is_ambiguous(ExchangeUnavailable("connect refused"))  # nothing reached the exchange
False
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx

from chimera_lab.config import BitgetSettings
from chimera_lab.errors import (
    CircuitOpenError,
    ConfigError,
    DuplicateOrder,
    ExchangeError,
    ExchangeUnavailable,
    InvalidOrder,
    OrderNotFound,
    OutcomeUnknown,
)
from chimera_lab.exchange.base import (
    Fill,
    Order,
    OrderAck,
    OrderRequest,
    OrderStatus,
    OrderType,
    Priority,
    Product,
)
from chimera_lab.exchange.endpoints import Endpoint, endpoint
from chimera_lab.exchange.limiter import Clock
from chimera_lab.exchange.parsing import ms_to_datetime, parse_ack, parse_fill, parse_order
from chimera_lab.exchange.resilience import CircuitBreaker, Resilience, RetryPolicy
from chimera_lab.logging import get_logger

__all__ = ["TradingMixin", "new_client_oid"]

log = get_logger("chimera_lab.exchange.bitget")  # one logger for the whole client

_REAL_HOSTS = ("api.bitget.com",)
_MAX_PAGES = 50  # bound on paginated listings (open orders): 5,000 orders


def new_client_oid() -> str:
    """Return a fresh client order id (35 characters from Bitget's allowed set).

    Examples
    --------
    >>> oid = new_client_oid()
    >>> oid.startswith("chl-"), len(oid)
    (True, 36)
    """
    return f"chl-{uuid.uuid4().hex}"


def _is_ambiguous(exc: BaseException) -> bool:
    # The exchange may have executed the request: a transport failure after sending, or a
    # 5xx / busy answer from a server that may have processed it before failing.
    if isinstance(exc, OutcomeUnknown):
        return True
    return (
        isinstance(exc, ExchangeUnavailable)
        and not isinstance(exc, CircuitOpenError)
        and exc.status is not None
    )


def _unknown(client_oid: str, cause: ExchangeError) -> OutcomeUnknown:
    return OutcomeUnknown(
        f"order clientOid={client_oid} may or may not have been placed: an earlier attempt "
        f"got no clear answer and the last one failed ({type(cause).__name__}: {cause}); "
        "look it up later by this clientOid",
        client_oid=client_oid,
        code=cause.code,
        status=cause.status,
    )


def _fmt(value: Decimal) -> str:
    # Plain notation: str(Decimal("1E-7")) would be "1E-7", which Bitget rejects.
    return format(value, "f")


class TradingMixin:
    """Orders and order queries of :class:`~chimera_lab.exchange.bitget.BitgetClient`."""

    if TYPE_CHECKING:  # provided by BitgetClient
        settings: BitgetSettings
        circuits: dict[str, CircuitBreaker]
        _retry: RetryPolicy
        _clock: Clock
        _rng: random.Random
        _policies: dict[str, Resilience]

        def _product(self, product: Product | str | None) -> Product: ...

        def _mix_params(self, product: Product, **params: object) -> dict[str, object]: ...

        async def _send(
            self,
            ep: Endpoint,
            params: Mapping[str, object] | None,
            body: Mapping[str, object] | None,
            priority: Priority,
            attempt: int,
        ) -> tuple[Any, int | None]: ...

        async def _call(
            self,
            name: str,
            *,
            product: Product,
            params: Mapping[str, object] | None = None,
            priority: Priority | None = None,
        ) -> tuple[Any, int | None]: ...

    def _check_trading_allowed(self) -> None:
        s = self.settings
        host = httpx.URL(s.base_url).host
        if host in _REAL_HOSTS and not s.demo and not (s.mode == "live" and s.confirm_live):
            raise ConfigError(
                f"refusing to trade with real money on {host}: set CHIMERA_BITGET__MODE=live and "
                "CHIMERA_BITGET__CONFIRM_LIVE=true, or CHIMERA_BITGET__DEMO=true for demo "
                "trading, or point CHIMERA_BITGET__BASE_URL at `chimera sim serve`"
            )

    @staticmethod
    def _order_body(request: OrderRequest, product: Product, client_oid: str) -> dict[str, object]:
        body: dict[str, object] = {"symbol": request.symbol}
        if product.is_futures:
            body["productType"] = product.product_type
            body["marginMode"] = request.margin_mode.value
            body["marginCoin"] = request.margin_coin
        body["side"] = request.side.value
        if product.is_futures and request.trade_side is not None:
            body["tradeSide"] = request.trade_side.value
        body["orderType"] = request.order_type.value
        body["force"] = request.force.value
        if request.price is not None and request.order_type is OrderType.LIMIT:
            body["price"] = _fmt(request.price)
        body["size"] = _fmt(request.size)
        body["clientOid"] = client_oid
        if product.is_futures and request.reduce_only:
            body["reduceOnly"] = "YES"
        return body

    async def _find_order(self, symbol: str, client_oid: str, product: Product) -> Order | None:
        try:
            return await self.get_order(
                symbol, client_oid=client_oid, product=product, priority=Priority.TRADING
            )
        except OrderNotFound:
            return None

    async def place_order(self, request: OrderRequest) -> OrderAck:
        """Place an order **exactly once**.

        One ``clientOid`` (``request.client_oid`` or a fresh one) is used for every attempt.
        A 429 or a failure to connect is simply retried with backoff. After an **ambiguous**
        failure — a timeout or a reset after sending, a 5xx — the order is first looked up by
        ``clientOid`` and only resent if the exchange does not know it. A duplicate-clientOid
        answer is reconciled the same way (the earlier attempt landed).

        Raises
        ------
        OutcomeUnknown
            The order's fate is unknown: the attempts ran out (or the circuit opened) after an
            ambiguous failure, the exchange refused a resend ("duplicate clientOid", or any
            refusal but a parameter error) while the lookup did not show the order yet, or
            the lookup itself failed. Look it up later by ``exc.client_oid``.
        DuplicateOrder
            The ``clientOid`` belongs to another order (``exc.client_oid`` names it).
        InvalidOrder, InsufficientFunds, AuthenticationError, RateLimited
            As answered by the exchange (no order was placed).
        """
        self._check_trading_allowed()
        product = self._product(request.product)
        oid = request.client_oid or new_client_oid()
        body = self._order_body(request, product, oid)
        ep = endpoint("place_order", product)
        circuit = self.circuits[ep.group]
        attempt = 0
        pending: ExchangeError | None = None  # an ambiguous failure not yet reconciled
        maybe_placed = False  # an earlier attempt may have placed the order
        try:
            while True:
                attempt += 1
                if pending is not None:
                    found = await self._reconcile(request.symbol, oid, product, pending)
                    if found is not None:
                        return self._recovered(found, oid)
                    pending = None
                try:
                    circuit.before_call()
                except CircuitOpenError as exc:
                    if maybe_placed:
                        raise _unknown(oid, exc) from exc
                    raise
                try:
                    data, _ = await self._send(ep, None, body, Priority.TRADING, attempt)
                except DuplicateOrder as dup:
                    circuit.record_success()
                    dup.client_oid = oid
                    found = await self._reconcile(request.symbol, oid, product, dup)
                    if found is not None and _same_order(found, request):
                        return self._recovered(found, oid)
                    if found is None and attempt > 1:
                        # An earlier attempt of ours used this clientOid: it most likely
                        # placed the order, and the lookup does not show it yet.
                        raise _unknown(oid, dup) from dup
                    raise
                except ExchangeError as exc:
                    circuit.record(exc)
                    ambiguous = _is_ambiguous(exc)
                    maybe_placed = maybe_placed or ambiguous
                    if not self._retry.should_retry(exc, attempt):
                        if maybe_placed:
                            found = await self._reconcile(request.symbol, oid, product, exc)
                            if found is not None:
                                return self._recovered(found, oid)
                            # A parameter error is about the body, the same on every attempt:
                            # no attempt placed anything. Anything else leaves it open.
                            if not isinstance(exc, InvalidOrder):
                                raise _unknown(oid, exc) from exc
                        raise
                    pending = exc if ambiguous else None
                    delay = self._retry.delay_s(attempt, self._rng, exc)
                    log.info(
                        "exchange.order_retry", client_oid=oid, attempt=attempt,
                        error=type(exc).__name__, ambiguous=ambiguous, delay_s=round(delay, 3),
                    )  # fmt: skip
                    await self._clock.sleep(delay)
                    continue
                except BaseException:
                    circuit.record_neutral()
                    raise
                circuit.record_success()
                return parse_ack(data, oid)
        except BaseException as exc:
            if not isinstance(exc, Exception):  # cancelled (or interrupted) mid-flight
                log.warning(
                    "exchange.order_interrupted", client_oid=oid, attempt=attempt,
                    error=type(exc).__name__,
                    hint="the order may have been placed; look it up by this clientOid",
                )  # fmt: skip
            raise

    @staticmethod
    def _recovered(found: Order, client_oid: str) -> OrderAck:
        log.info("exchange.order_recovered", client_oid=client_oid, order_id=found.order_id)
        return OrderAck(found.order_id, client_oid, recovered=True, status=found.status)

    async def _reconcile(
        self, symbol: str, client_oid: str, product: Product, cause: ExchangeError
    ) -> Order | None:
        # Ask the exchange whether an order with this clientOid exists; if even that fails
        # the outcome is unknown and the caller must hear so.
        try:
            return await self._find_order(symbol, client_oid, product)
        except ExchangeError as exc:
            raise OutcomeUnknown(
                f"order clientOid={client_oid} may or may not have been placed: the lookup "
                f"failed ({type(exc).__name__}: {exc}); look it up later by this clientOid",
                client_oid=client_oid,
            ) from cause

    async def cancel_order(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        client_oid: str | None = None,
        product: Product | None = None,
    ) -> OrderAck:
        """Cancel an order by ``order_id`` or ``client_oid`` (retried; idempotent).

        Returns an :class:`~chimera_lab.exchange.base.OrderAck` with ``status`` ``CANCELLED``.
        An "order not found / nothing to cancel" answer raises
        :class:`~chimera_lab.errors.OrderNotFound` — unless an earlier attempt of this call
        was ambiguous (sent, no answer; or a 5xx): then that attempt may have cancelled it,
        and the order is looked up to report what really happened.

        Raises
        ------
        OrderNotFound
            The exchange knows no such open order; in particular one that is already filled
            (the message says so when the follow-up lookup saw it).
        OutcomeUnknown
            The follow-up lookup failed, or still shows the order open.
        """
        if (order_id is None) == (client_oid is None):
            raise ConfigError("pass exactly one of order_id or client_oid")
        prod = self._product(product)
        body: dict[str, object] = {"symbol": symbol}
        if prod.is_futures:
            body["productType"] = prod.product_type
            body["marginCoin"] = "USDT"
        if order_id is not None:
            body["orderId"] = order_id
        else:
            body["clientOid"] = client_oid
        ep = endpoint("cancel_order", prod)
        maybe_cancelled = False  # an earlier attempt may have cancelled it

        async def attempt_fn(attempt: int) -> OrderAck | None:
            nonlocal maybe_cancelled
            try:
                data, _ = await self._send(ep, None, body, Priority.TRADING, attempt)
            except OrderNotFound:
                if not maybe_cancelled:
                    raise
                return None  # gone after an ambiguous attempt: find out how
            except ExchangeError as exc:
                maybe_cancelled = maybe_cancelled or _is_ambiguous(exc)
                raise
            ack = parse_ack(data, client_oid)
            return OrderAck(ack.order_id, ack.client_oid, status=OrderStatus.CANCELLED)

        ack = await self._policies[ep.group].call(attempt_fn)
        if ack is not None:
            return ack
        what = f"order {order_id or client_oid!r} of {symbol}"
        try:
            order = await self.get_order(
                symbol, order_id=order_id, client_oid=client_oid, product=prod,
                priority=Priority.TRADING,
            )  # fmt: skip
        except OrderNotFound:
            raise
        except ExchangeError as exc:
            raise OutcomeUnknown(
                f"{what}: a cancel attempt got no answer and the follow-up lookup failed "
                f"({type(exc).__name__}: {exc}); check the order later",
                client_oid=client_oid,
            ) from exc
        if order.status is OrderStatus.CANCELLED:
            log.info(
                "exchange.cancel_recovered", order_id=order.order_id, client_oid=order.client_oid
            )
            return OrderAck(order.order_id, order.client_oid, recovered=True, status=order.status)
        if order.status.is_final:
            raise OrderNotFound(
                f"{what} was not cancelled: it is {order.status.value} "
                f"(filled {order.filled_size} of {order.size})",
                code=None,
            )
        raise OutcomeUnknown(
            f"{what}: the exchange answered 'no such order' to a cancel but still shows it "
            f"{order.status.value}; cancel it again",
            client_oid=order.client_oid,
        )

    async def get_order(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        client_oid: str | None = None,
        product: Product | None = None,
        priority: Priority | None = None,
    ) -> Order:
        """Return one order by ``order_id`` or ``client_oid``.

        Raises
        ------
        OrderNotFound
            The exchange does not know the order (spot: clientOid lookups cover 2 hours).
        """
        if (order_id is None) == (client_oid is None):
            raise ConfigError("pass exactly one of order_id or client_oid")
        prod = self._product(product)
        if prod.is_futures:
            params = self._mix_params(prod, symbol=symbol, orderId=order_id, clientOid=client_oid)
        else:
            params = {"orderId": order_id, "clientOid": client_oid}
        data, _ = await self._call("order_detail", product=prod, params=params, priority=priority)
        if data is None or data == [] or data == {}:
            raise OrderNotFound(
                f"Bitget knows no order {order_id or client_oid!r} for {symbol}",
                code=None,
            )
        return parse_order(data, prod)

    async def get_open_orders(
        self, symbol: str | None = None, *, product: Product | None = None
    ) -> list[Order]:
        """Return all open orders (of ``symbol``, or all), oldest first."""
        prod = self._product(product)
        orders: dict[str, Order] = {}
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            # limit defaults to 100 (the maximum); not sent, so the query stays minimal
            params = self._mix_params(prod, symbol=symbol, idLessThan=cursor)
            data, _ = await self._call("open_orders", product=prod, params=params)
            if prod.is_futures:
                page = (data or {}).get("entrustedList") or []
                next_cursor = (data or {}).get("endId")
            else:
                page = data or []
                next_cursor = str(page[-1]["orderId"]) if page else None
            for item in page:
                order = parse_order(item, prod)
                orders[order.order_id] = order
            if len(page) < 100 or not next_cursor or next_cursor == cursor:
                break
            cursor = str(next_cursor)
        return sorted(orders.values(), key=lambda o: (o.created or ms_to_datetime(0), o.order_id))

    async def get_fills(
        self,
        symbol: str | None = None,
        *,
        order_id: str | None = None,
        limit: int = 100,
        product: Product | None = None,
    ) -> list[Fill]:
        """Return up to ``limit`` (<= 100) recent fills, oldest first."""
        if not 1 <= limit <= 100:
            raise ConfigError(f"limit must be in 1..100 for fills, got {limit}")
        prod = self._product(product)
        params = self._mix_params(prod, symbol=symbol, orderId=order_id, limit=limit)
        data, _ = await self._call("fills", product=prod, params=params)
        items = ((data or {}).get("fillList") or []) if prod.is_futures else (data or [])
        fills = [parse_fill(item, prod) for item in items]
        return sorted(fills, key=lambda f: (f.timestamp, f.trade_id))


def _same_order(order: Order, request: OrderRequest) -> bool:
    # Does the order found under a reused clientOid look like the one we tried to place?
    return (
        order.symbol == request.symbol
        and order.side is request.side
        and order.order_type is request.order_type
        and order.size == request.size
        and (request.order_type is OrderType.MARKET or order.price == request.price)
    )
