"""Bitget API v2 endpoints, their per-endpoint rate limits and candle granularities.

One table (bitget-api.md section 3) so the client, the limiter and the docs agree. Spot paths
live under ``/api/v2/spot``, USDT-M futures under ``/api/v2/mix`` with ``productType``.

Examples
--------
>>> ep = endpoint("candles", Product.USDT_FUTURES)
>>> ep.method, ep.path, ep.limit_per_s
('GET', '/api/v2/mix/market/candles', 20)
>>> granularity("1d", Product.SPOT), granularity("1h", Product.USDT_FUTURES)
('1Dutc', '1H')
>>> ws_candle_channel("4h")
'candle4H'
"""

from __future__ import annotations

from dataclasses import dataclass

from chimera_lab.errors import ConfigError
from chimera_lab.exchange.base import Priority, Product
from chimera_lab.timeframes import canonical_timeframe

__all__ = [
    "ENDPOINTS",
    "Endpoint",
    "endpoint",
    "granularity",
    "ws_candle_channel",
]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One REST endpoint.

    ``group`` names its circuit breaker (``market``, ``trade``, ``account``); ``limit_per_s``
    is Bitget's own per-endpoint limit; ``priority`` is the limiter priority used by default.
    """

    name: str
    method: str
    path: str
    limit_per_s: int
    group: str
    signed: bool
    priority: Priority


_M, _T, _A = Priority.MONITORING, Priority.TRADING, Priority.ANALYSIS

# name: (method, spot path, spot limit, mix path, mix limit, group, signed, priority)
_TABLE: dict[str, tuple[str, str | None, int, str | None, int, str, bool, Priority]] = {
    "time": ("GET", "/api/v2/public/time", 20, "/api/v2/public/time", 20, "market", False, _M),
    "candles": (
        "GET", "/api/v2/spot/market/candles", 20, "/api/v2/mix/market/candles", 20,
        "market", False, _A,
    ),
    "history_candles": (
        "GET", "/api/v2/spot/market/history-candles", 20, "/api/v2/mix/market/history-candles",
        20, "market", False, _A,
    ),
    "ticker": (
        "GET", "/api/v2/spot/market/tickers", 20, "/api/v2/mix/market/ticker", 20,
        "market", False, _M,
    ),
    "orderbook": (
        "GET", "/api/v2/spot/market/orderbook", 20, "/api/v2/mix/market/merge-depth", 20,
        "market", False, _M,
    ),
    "funding_rate": (
        "GET", None, 0, "/api/v2/mix/market/current-fund-rate", 20, "market", False, _A,
    ),
    "funding_history": (
        "GET", None, 0, "/api/v2/mix/market/history-fund-rate", 20, "market", False, _A,
    ),
    "open_interest": (
        "GET", None, 0, "/api/v2/mix/market/open-interest", 20, "market", False, _A,
    ),
    "place_order": (
        "POST", "/api/v2/spot/trade/place-order", 10, "/api/v2/mix/order/place-order", 10,
        "trade", True, _T,
    ),
    "cancel_order": (
        "POST", "/api/v2/spot/trade/cancel-order", 10, "/api/v2/mix/order/cancel-order", 10,
        "trade", True, _T,
    ),
    "order_detail": (
        "GET", "/api/v2/spot/trade/orderInfo", 20, "/api/v2/mix/order/detail", 10,
        "trade", True, _M,
    ),
    "open_orders": (
        "GET", "/api/v2/spot/trade/unfilled-orders", 20, "/api/v2/mix/order/orders-pending", 10,
        "trade", True, _M,
    ),
    "fills": (
        "GET", "/api/v2/spot/trade/fills", 10, "/api/v2/mix/order/fills", 10, "trade", True, _M,
    ),
    "balances": (
        "GET", "/api/v2/spot/account/assets", 10, "/api/v2/mix/account/accounts", 10,
        "account", True, _M,
    ),
    "positions": (
        "GET", None, 0, "/api/v2/mix/position/all-position", 5, "account", True, _M,
    ),
}  # fmt: skip


def _build_endpoints() -> dict[tuple[str, Product], Endpoint]:
    table: dict[tuple[str, Product], Endpoint] = {}
    for name, (method, sp, sl, mp, ml, group, signed, prio) in _TABLE.items():
        for product, path, limit in ((Product.SPOT, sp, sl), (Product.USDT_FUTURES, mp, ml)):
            if path is not None:
                table[(name, product)] = Endpoint(name, method, path, limit, group, signed, prio)
    return table


ENDPOINTS: dict[tuple[str, Product], Endpoint] = _build_endpoints()
"""Every ``(name, product)`` the client calls, with its method, path and limit."""


def endpoint(name: str, product: Product) -> Endpoint:
    """Return the endpoint ``name`` for ``product``; futures-only names raise for spot."""
    try:
        return ENDPOINTS[(name, product)]
    except KeyError:
        raise ConfigError(
            f"Bitget has no {name!r} endpoint for product {product.value!r}; "
            "funding, open interest and positions need product='usdt-futures'"
        ) from None


# Our timeframe -> Bitget REST granularity (spot, futures). Daily and longer, 6h and 12h use
# the UTC-aligned variants (as ccxt does) so bars open at 00:00 UTC like our frames.
_GRANULARITY: dict[str, tuple[str | None, str]] = {
    "1m": ("1min", "1m"),
    "3m": ("3min", "3m"),
    "5m": ("5min", "5m"),
    "15m": ("15min", "15m"),
    "30m": ("30min", "30m"),
    "1h": ("1h", "1H"),
    "2h": (None, "2H"),
    "4h": ("4h", "4H"),
    "6h": ("6Hutc", "6Hutc"),
    "12h": ("12Hutc", "12Hutc"),
    "1d": ("1Dutc", "1Dutc"),
}

_WS_CHANNEL: dict[str, str] = {
    "1m": "candle1m",
    "5m": "candle5m",
    "15m": "candle15m",
    "30m": "candle30m",
    "1h": "candle1H",
    "4h": "candle4H",
    "6h": "candle6Hutc",
    "12h": "candle12Hutc",
    "1d": "candle1Dutc",
}


def granularity(timeframe: str, product: Product) -> str:
    """Return Bitget's REST ``granularity`` for our ``timeframe`` and ``product``."""
    tf = canonical_timeframe(timeframe)[0]  # raises ConfigError with suggestions
    spot, mix = _GRANULARITY[tf]  # every timeframe we support has a row
    value = spot if product is Product.SPOT else mix
    if value is None:
        raise ConfigError(
            f"Bitget spot has no {tf} candles; use one of "
            f"{', '.join(k for k, v in _GRANULARITY.items() if v[0])}"
        )
    return value


def ws_candle_channel(timeframe: str) -> str:
    """Return the WebSocket candle channel for our ``timeframe`` (no 3m or 2h channel)."""
    tf = canonical_timeframe(timeframe)[0]
    try:
        return _WS_CHANNEL[tf]
    except KeyError:
        raise ConfigError(
            f"Bitget has no WebSocket candle channel for {tf}; use one of {', '.join(_WS_CHANNEL)}"
        ) from None
