"""Exchange connectivity: the :class:`Exchange` protocol and the async Bitget adapter.

- :mod:`~chimera_lab.exchange.base` — enums, typed results, the ``Exchange`` protocol.
- :mod:`~chimera_lab.exchange.bitget` — :class:`BitgetClient` (REST v2).
- :mod:`~chimera_lab.exchange.limiter` — the priority rate limiter.
- :mod:`~chimera_lab.exchange.resilience` — retries, backoff, circuit breakers.
- :mod:`~chimera_lab.exchange.stream` — :class:`BitgetStream` (WebSocket v2).
- :mod:`~chimera_lab.exchange.fetch` — paging history candles into the store.
- :mod:`~chimera_lab.exchange.simulator` — the loopback Bitget-compatible simulator.
"""

from __future__ import annotations

from chimera_lab.exchange.base import (
    Balance,
    Candle,
    Exchange,
    Fill,
    FundingRate,
    Liquidity,
    MarginMode,
    OpenInterest,
    Order,
    OrderAck,
    OrderBook,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    PositionSide,
    Priority,
    Product,
    Side,
    Ticker,
    TimeInForce,
    Trade,
    TradeSide,
    candles_to_frame,
)
from chimera_lab.exchange.bitget import BitgetClient, ClientState, new_client_oid
from chimera_lab.exchange.fetch import FetchResult, fetch_history, fetch_to_store
from chimera_lab.exchange.limiter import RateLimiter, Window
from chimera_lab.exchange.resilience import (
    CircuitBreaker,
    CircuitState,
    Resilience,
    RetryPolicy,
    resilient,
)
from chimera_lab.exchange.stream import BitgetStream, StreamEvent, StreamStatus

__all__ = [
    "Balance",
    "BitgetClient",
    "BitgetStream",
    "Candle",
    "CircuitBreaker",
    "CircuitState",
    "ClientState",
    "Exchange",
    "FetchResult",
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
    "RateLimiter",
    "Resilience",
    "RetryPolicy",
    "Side",
    "StreamEvent",
    "StreamStatus",
    "Ticker",
    "TimeInForce",
    "Trade",
    "TradeSide",
    "Window",
    "candles_to_frame",
    "fetch_history",
    "fetch_to_store",
    "new_client_oid",
    "resilient",
]
