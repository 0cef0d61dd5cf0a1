"""The exchange-neutral vocabulary: enums, typed results and the :class:`Exchange` protocol.

Adapters (:class:`~chimera_lab.exchange.bitget.BitgetClient`) parse vendor payloads once, at
the edge, into these types: timestamps are tz-aware UTC :class:`~datetime.datetime`, prices
and sizes on the order path (orders, fills, balances, positions, tickers, books) are
:class:`~decimal.Decimal`, and vendor strings become our enums. Candles carry ``float`` values
because they feed float64 OHLCV frames (:mod:`chimera_lab.frames`).

Examples
--------
>>> from decimal import Decimal
>>> req = OrderRequest("BTCUSDT", Side.BUY, OrderType.LIMIT, Decimal("0.001"),
...                    price=Decimal("30000"), client_oid="demo-order-0001")
>>> req.notional
Decimal('30.000')
>>> Product("usdt-futures").product_type
'USDT-FUTURES'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import IntEnum, StrEnum
from typing import Protocol, runtime_checkable

import pandas as pd

from chimera_lab.errors import InvalidOrder

__all__ = [
    "Balance",
    "Candle",
    "Exchange",
    "Fill",
    "FundingRate",
    "Liquidity",
    "MarginMode",
    "OpenInterest",
    "Order",
    "OrderAck",
    "OrderBook",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "Position",
    "PositionSide",
    "Priority",
    "Product",
    "Side",
    "Ticker",
    "TimeInForce",
    "Trade",
    "TradeSide",
    "candles_to_frame",
]


class Product(StrEnum):
    """Which market: spot or USDT-margined perpetual futures."""

    SPOT = "spot"
    USDT_FUTURES = "usdt-futures"

    @property
    def product_type(self) -> str | None:
        """Bitget's ``productType`` (upper case), ``None`` for spot."""
        return None if self is Product.SPOT else self.value.upper()

    @property
    def inst_type(self) -> str:
        """Bitget's WebSocket ``instType``."""
        return "SPOT" if self is Product.SPOT else self.value.upper()

    @property
    def is_futures(self) -> bool:
        """Whether this is a futures (``mix``) product."""
        return self is not Product.SPOT


class Priority(IntEnum):
    """Rate-limiter priority: lower values go first (TRADING before MONITORING before ANALYSIS)."""

    TRADING = 0
    MONITORING = 1
    ANALYSIS = 2


class Side(StrEnum):
    """Order or trade side."""

    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    """Order type."""

    LIMIT = "limit"
    MARKET = "market"


class TimeInForce(StrEnum):
    """Bitget's ``force``: good-till-cancelled, post-only, fill-or-kill, immediate-or-cancel."""

    GTC = "gtc"
    POST_ONLY = "post_only"
    FOK = "fok"
    IOC = "ioc"


class OrderStatus(StrEnum):
    """Order life cycle; ``UNKNOWN`` marks a vendor status this version does not know."""

    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    @property
    def is_final(self) -> bool:
        """Whether the order can no longer change (filled or cancelled)."""
        return self in (OrderStatus.FILLED, OrderStatus.CANCELLED)


class MarginMode(StrEnum):
    """Futures margin mode."""

    ISOLATED = "isolated"
    CROSSED = "crossed"


class TradeSide(StrEnum):
    """Futures hedge-mode intent: open or close a position."""

    OPEN = "open"
    CLOSE = "close"


class PositionSide(StrEnum):
    """Futures position side (``NET`` in one-way mode)."""

    LONG = "long"
    SHORT = "short"
    NET = "net"


class Liquidity(StrEnum):
    """Whether a fill added (maker) or took (taker) liquidity."""

    MAKER = "maker"
    TAKER = "taker"


@dataclass(frozen=True, slots=True)
class Candle:
    """One OHLCV bar; ``timestamp`` is the bar's **open** time (UTC).

    ``closed`` is ``False`` for the bar still forming (its values may change).
    """

    symbol: str
    timeframe: str
    timestamp: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float | None = None
    closed: bool = True


@dataclass(frozen=True, slots=True)
class Ticker:
    """Best bid/ask, last price and 24-hour statistics."""

    symbol: str
    timestamp: datetime
    last: Decimal
    bid: Decimal | None
    ask: Decimal | None
    bid_size: Decimal | None = None
    ask_size: Decimal | None = None
    high_24h: Decimal | None = None
    low_24h: Decimal | None = None
    open_24h: Decimal | None = None
    base_volume: Decimal | None = None
    quote_volume: Decimal | None = None
    change_24h: Decimal | None = None
    mark_price: Decimal | None = None
    index_price: Decimal | None = None
    funding_rate: Decimal | None = None


@dataclass(frozen=True, slots=True)
class OrderBook:
    """An order-book snapshot: ``bids`` descending and ``asks`` ascending ``(price, size)``."""

    symbol: str
    timestamp: datetime
    bids: tuple[tuple[Decimal, Decimal], ...]
    asks: tuple[tuple[Decimal, Decimal], ...]

    @property
    def best_bid(self) -> Decimal | None:
        """Highest bid price, ``None`` on an empty side."""
        return self.bids[0][0] if self.bids else None

    @property
    def best_ask(self) -> Decimal | None:
        """Lowest ask price, ``None`` on an empty side."""
        return self.asks[0][0] if self.asks else None


@dataclass(frozen=True, slots=True)
class Trade:
    """A public trade print."""

    symbol: str
    timestamp: datetime
    price: Decimal
    size: Decimal
    side: Side
    trade_id: str


@dataclass(frozen=True, slots=True)
class FundingRate:
    """A futures funding rate (a fraction per funding interval)."""

    symbol: str
    rate: Decimal
    timestamp: datetime | None = None
    next_funding_time: datetime | None = None
    interval_hours: int | None = None


@dataclass(frozen=True, slots=True)
class OpenInterest:
    """Futures open interest in base coin."""

    symbol: str
    size: Decimal
    timestamp: datetime


# Bitget: characters 0-9 a-z A-Z - + _ #, length < 50 (bitget-api.md section 6).
_CLIENT_OID = re.compile(r"^[0-9A-Za-z+_#-]{1,49}$")


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order to place.

    Parameters
    ----------
    symbol : str
        Upper-case symbol, e.g. ``"BTCUSDT"``.
    side : Side
    order_type : OrderType
    size : Decimal
        Base quantity; for a spot **market buy**, Bitget reads it as the **quote** amount.
    price : Decimal, optional
        Required for limit orders.
    force : TimeInForce
        Time in force (ignored by Bitget for market orders).
    client_oid : str, optional
        Idempotency key: the adapter generates one when omitted and reuses it on retries.
    product : Product, optional
        Overrides the client's default product.
    margin_mode, margin_coin, trade_side, reduce_only
        Futures only.
    """

    symbol: str
    side: Side
    order_type: OrderType
    size: Decimal
    price: Decimal | None = None
    force: TimeInForce = TimeInForce.GTC
    client_oid: str | None = None
    product: Product | None = None
    margin_mode: MarginMode = MarginMode.CROSSED
    margin_coin: str = "USDT"
    trade_side: TradeSide | None = None
    reduce_only: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.size, Decimal) or (
            self.price is not None and not isinstance(self.price, Decimal)
        ):
            raise InvalidOrder(
                "size and price must be decimal.Decimal (floats lose precision); "
                f"got size={self.size!r}, price={self.price!r}"
            )
        if not self.size.is_finite() or self.size <= 0:
            raise InvalidOrder(f"size must be a positive finite Decimal, got {self.size}")
        if self.order_type is OrderType.LIMIT and self.price is None:
            raise InvalidOrder("a limit order needs a price; pass price=Decimal(...)")
        if self.price is not None and (not self.price.is_finite() or self.price <= 0):
            raise InvalidOrder(f"price must be a positive finite Decimal, got {self.price}")
        if self.client_oid is not None and not _CLIENT_OID.match(self.client_oid):
            raise InvalidOrder(
                f"client_oid {self.client_oid!r} must be 1-49 characters of 0-9 a-z A-Z - + _ #"
            )
        if not self.symbol or self.symbol != self.symbol.upper():
            raise InvalidOrder(f"symbol must be upper case like 'BTCUSDT', got {self.symbol!r}")

    @property
    def notional(self) -> Decimal | None:
        """``size * price`` for limit orders, ``None`` for market orders."""
        return None if self.price is None else self.size * self.price


@dataclass(frozen=True, slots=True)
class OrderAck:
    """The exchange's answer to a place or cancel request.

    ``recovered`` is ``True`` when the adapter learned the order id by querying the exchange
    after an ambiguous failure (timeout, reset, duplicate clientOid) instead of from the reply.
    ``status`` is the order's status when known: ``CANCELLED`` after a cancel; after a
    recovery, what the lookup saw (``None`` for a plain place acknowledgement).
    """

    order_id: str
    client_oid: str
    recovered: bool = False
    status: OrderStatus | None = None


@dataclass(frozen=True, slots=True)
class Order:
    """An order as the exchange reports it."""

    symbol: str
    order_id: str
    client_oid: str
    side: Side
    order_type: OrderType
    status: OrderStatus
    size: Decimal
    price: Decimal | None = None
    filled_size: Decimal = Decimal(0)
    average_price: Decimal | None = None
    fee: Decimal | None = None
    force: TimeInForce | None = None
    created: datetime | None = None
    updated: datetime | None = None
    product: Product = Product.SPOT
    reduce_only: bool = False
    raw_status: str = ""


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of an order. ``fee`` is the amount paid (positive = cost)."""

    symbol: str
    trade_id: str
    order_id: str
    side: Side
    price: Decimal
    size: Decimal
    fee: Decimal
    fee_coin: str
    liquidity: Liquidity | None
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class Balance:
    """One coin's balance. ``total = available + frozen + locked`` for spot."""

    coin: str
    available: Decimal
    frozen: Decimal = Decimal(0)
    locked: Decimal = Decimal(0)
    equity: Decimal | None = None
    unrealized_pnl: Decimal | None = None

    @property
    def total(self) -> Decimal:
        """Equity when the exchange reports it, else ``available + frozen + locked``."""
        return (
            self.equity if self.equity is not None else self.available + self.frozen + self.locked
        )


@dataclass(frozen=True, slots=True)
class Position:
    """A futures position (``size`` in base coin, always >= 0; the side says the direction)."""

    symbol: str
    side: PositionSide
    size: Decimal
    available: Decimal
    entry_price: Decimal | None
    mark_price: Decimal | None
    unrealized_pnl: Decimal
    leverage: Decimal | None
    margin_mode: MarginMode | None
    liquidation_price: Decimal | None
    margin: Decimal | None = None
    margin_coin: str = "USDT"
    updated: datetime | None = None


@runtime_checkable
class Exchange(Protocol):
    """What the rest of chimera_lab needs from an exchange (all methods are coroutines).

    ``product`` arguments default to the adapter's configured product. Futures-only calls
    (funding, open interest, positions) use USDT-M futures. Market-data calls take
    ``priority`` (:class:`Priority`, default: the endpoint's own) so that bulk work — history
    fetching, backfills — can yield to orders in the adapter's rate limiter.
    """

    async def server_time(self) -> datetime:
        """Return the exchange's clock (UTC)."""
        ...

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
        """Return recent candles, oldest first (the newest may still be forming)."""
        ...

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
        """Return up to ``limit`` closed candles opening before ``end``, oldest first."""
        ...

    async def get_ticker(
        self, symbol: str, *, product: Product | None = None, priority: Priority | None = None
    ) -> Ticker:
        """Return the ticker of ``symbol``."""
        ...

    async def get_order_book(
        self,
        symbol: str,
        *,
        limit: int = 50,
        product: Product | None = None,
        priority: Priority | None = None,
    ) -> OrderBook:
        """Return an order-book snapshot."""
        ...

    async def get_funding_rate(self, symbol: str) -> FundingRate:
        """Return the current funding rate of a USDT-M perpetual."""
        ...

    async def get_funding_history(self, symbol: str, *, limit: int = 100) -> list[FundingRate]:
        """Return past funding rates, oldest first."""
        ...

    async def get_open_interest(self, symbol: str) -> OpenInterest:
        """Return the open interest of a USDT-M perpetual."""
        ...

    async def place_order(self, request: OrderRequest) -> OrderAck:
        """Place an order exactly once (idempotent by ``client_oid``)."""
        ...

    async def cancel_order(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        client_oid: str | None = None,
        product: Product | None = None,
    ) -> OrderAck:
        """Cancel an order by order id or client order id."""
        ...

    async def get_order(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        client_oid: str | None = None,
        product: Product | None = None,
    ) -> Order:
        """Return one order; raise :class:`~chimera_lab.errors.OrderNotFound` if unknown."""
        ...

    async def get_open_orders(
        self, symbol: str | None = None, *, product: Product | None = None
    ) -> list[Order]:
        """Return the open orders (of ``symbol``, or all)."""
        ...

    async def get_fills(
        self,
        symbol: str | None = None,
        *,
        order_id: str | None = None,
        limit: int = 100,
        product: Product | None = None,
    ) -> list[Fill]:
        """Return recent fills, oldest first."""
        ...

    async def get_balances(self, *, product: Product | None = None) -> list[Balance]:
        """Return balances (spot assets, or futures accounts)."""
        ...

    async def get_positions(self, symbol: str | None = None) -> list[Position]:
        """Return open USDT-M futures positions."""
        ...


def candles_to_frame(candles: Sequence[Candle]) -> pd.DataFrame:
    """Return candles as an OHLCV frame (UTC ``timestamp`` index, float64 columns).

    Sorted by time; a timestamp seen twice keeps its last candle.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> c = Candle("BTCUSDT", "1m", datetime(2024, 1, 1, tzinfo=UTC), 1.0, 2.0, 0.5, 1.5, 10.0)
    >>> candles_to_frame([c]).iloc[0].tolist()
    [1.0, 2.0, 0.5, 1.5, 10.0]
    """
    index = pd.DatetimeIndex(
        [pd.Timestamp(c.timestamp) for c in candles], name="timestamp", dtype="datetime64[ns, UTC]"
    )
    frame = pd.DataFrame(
        {
            "open": [c.open for c in candles],
            "high": [c.high for c in candles],
            "low": [c.low for c in candles],
            "close": [c.close for c in candles],
            "volume": [c.volume for c in candles],
        },
        index=index,
        dtype="float64",
    )
    frame = frame[~frame.index.duplicated(keep="last")]
    return frame.sort_index()
