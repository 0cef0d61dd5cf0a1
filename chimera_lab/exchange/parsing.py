"""Bitget v2 payloads → chimera_lab types, parsed once at the edge.

Numbers may arrive as JSON strings (the norm) or JSON numbers (merge-depth levels, WS ``ts``);
both are accepted. The client decodes JSON with ``parse_float=Decimal`` so no float ever
touches a price. Timestamps are Unix milliseconds → tz-aware UTC datetimes. Malformed payloads
raise :class:`~chimera_lab.errors.ExchangeError` naming the field.

Examples
--------
>>> c = parse_candle_row(["1695835800000", "26210.5", "26210.5", "26194.5", "26194.5",
...                       "26.26", "687897.63"], "BTCUSDT", "1m")
>>> c.timestamp.isoformat(), c.close, c.quote_volume
('2023-09-27T17:30:00+00:00', 26194.5, 687897.63)
>>> ms_to_datetime("1700000000123").isoformat()
'2023-11-14T22:13:20.123000+00:00'
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from chimera_lab.errors import ExchangeError
from chimera_lab.exchange.base import (
    Balance,
    Candle,
    Fill,
    FundingRate,
    Liquidity,
    MarginMode,
    OpenInterest,
    Order,
    OrderAck,
    OrderBook,
    OrderStatus,
    OrderType,
    Position,
    PositionSide,
    Product,
    Side,
    Ticker,
    TimeInForce,
    Trade,
)
from chimera_lab.timeframes import timeframe_ms

__all__ = [
    "datetime_to_ms",
    "ms_to_datetime",
    "parse_ack",
    "parse_balance",
    "parse_candle_row",
    "parse_candles",
    "parse_fill",
    "parse_funding_history",
    "parse_funding_rate",
    "parse_open_interest",
    "parse_order",
    "parse_order_book",
    "parse_position",
    "parse_ticker",
    "parse_trade",
    "parse_ws_order",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_STATUS = {
    "live": OrderStatus.OPEN,
    "new": OrderStatus.OPEN,
    "init": OrderStatus.OPEN,
    "not_trigger": OrderStatus.OPEN,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "partial-fill": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "full-fill": OrderStatus.FILLED,
    "cancelled": OrderStatus.CANCELLED,
    "canceled": OrderStatus.CANCELLED,
}


def _bad(what: str, value: object) -> ExchangeError:
    text = repr(value)
    if len(text) > 200:
        text = text[:200] + "..."
    return ExchangeError(f"unexpected Bitget payload: {what} (got {text})")


def _ms(value: object) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        raise _bad("a millisecond timestamp", value) from None


def ms_to_datetime(value: object) -> datetime:
    """Return a UTC datetime from Unix milliseconds given as str, int or Decimal."""
    return _EPOCH + timedelta(milliseconds=_ms(value))


def datetime_to_ms(value: datetime) -> int:
    """Return Unix milliseconds of a tz-aware datetime (naive datetimes are refused)."""
    if value.tzinfo is None:
        raise ExchangeError(f"naive datetime {value!r}; pass a tz-aware UTC datetime")
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _dec(item: Mapping[str, Any], key: str) -> Decimal:
    value = _dec_opt(item, key)
    if value is None:
        raise _bad(f"missing number {key!r}", dict(item))
    return value


def _dec_opt(item: Mapping[str, Any], key: str) -> Decimal | None:
    return _to_dec(item.get(key), key)


def _to_dec(value: object, key: str) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise _bad(f"number {key!r}", value)
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise _bad(f"number {key!r}", value) from None


def _nonzero(value: Decimal | None) -> Decimal | None:
    return None if value is None or value == 0 else value


def _str(item: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = item.get(key, default)
    if value is None:
        raise _bad(f"missing field {key!r}", dict(item))
    return str(value)


def _time_opt(item: Mapping[str, Any], key: str) -> datetime | None:
    value = item.get(key)
    return None if value in (None, "", "0", 0) else ms_to_datetime(value)


def _enum_side(value: object) -> Side:
    try:
        return Side(str(value).lower())
    except ValueError:
        raise _bad("side buy/sell", value) from None


def _candle_row(row: object) -> Sequence[Any]:
    # Checked before any len()/index: a payload may hold anything where a row should be.
    if not isinstance(row, Sequence) or isinstance(row, str | bytes) or len(row) < 6:
        raise _bad("a candle row of 7 or 8 columns", row)
    return row


def parse_candle_row(
    row: Sequence[Any],
    symbol: str,
    timeframe: str,
    *,
    quote_index: int = 6,
    closed: bool = True,
) -> Candle:
    """Parse ``[ts, open, high, low, close, baseVolume, quote..., ...]`` (7 or 8 columns).

    ``quote_index`` picks the quote-volume column: 7 for spot REST rows of 8 columns
    (``usdtVolume`` sits at 6), 6 for futures REST and WebSocket rows.
    """
    row = _candle_row(row)
    try:
        o, h, lo, c, v = (float(row[i]) for i in range(1, 6))
        q = float(row[quote_index]) if len(row) > quote_index else None
    except (TypeError, ValueError):
        raise _bad("numeric candle columns", row) from None
    return Candle(symbol, timeframe, ms_to_datetime(row[0]), o, h, lo, c, v, q, closed)


def parse_candles(
    rows: object,
    symbol: str,
    timeframe: str,
    *,
    product: Product,
    now_ms: int | None = None,
) -> list[Candle]:
    """Parse REST candle rows: sorted oldest first, one per timestamp, ``closed`` set.

    A candle is closed when ``ts + timeframe <= now_ms`` (the server's clock, from the
    response envelope); without ``now_ms`` every row counts as closed.
    """
    if rows is None:
        return []
    if not isinstance(rows, list):
        raise _bad("a list of candle rows", rows)
    bar_ms = timeframe_ms(timeframe)
    by_ts: dict[int, Candle] = {}
    for raw in rows:
        row = _candle_row(raw)
        ts = _ms(row[0])
        quote_index = 7 if product is Product.SPOT and len(row) >= 8 else 6
        closed = now_ms is None or ts + bar_ms <= now_ms
        by_ts[ts] = parse_candle_row(row, symbol, timeframe, quote_index=quote_index, closed=closed)
    return [by_ts[ts] for ts in sorted(by_ts)]


def _first(data: object, what: str) -> Mapping[str, Any]:
    if isinstance(data, list):
        if not data:
            raise _bad(f"a non-empty {what} list", data)
        data = data[0]
    if not isinstance(data, Mapping):
        raise _bad(f"a {what} object", data)
    return data


def parse_ticker(data: object, symbol: str) -> Ticker:
    """Parse a spot ``tickers`` or futures ``ticker`` answer (a list; the first item)."""
    item = _first(data, "ticker")
    return Ticker(
        symbol=str(item.get("symbol") or item.get("instId") or symbol),
        timestamp=ms_to_datetime(item.get("ts")),
        last=_dec(item, "lastPr"),
        bid=_nonzero(_dec_opt(item, "bidPr")),
        ask=_nonzero(_dec_opt(item, "askPr")),
        bid_size=_dec_opt(item, "bidSz"),
        ask_size=_dec_opt(item, "askSz"),
        high_24h=_dec_opt(item, "high24h"),
        low_24h=_dec_opt(item, "low24h"),
        open_24h=_dec_opt(item, "open24h") or _dec_opt(item, "open"),
        base_volume=_dec_opt(item, "baseVolume"),
        quote_volume=_dec_opt(item, "quoteVolume"),
        change_24h=_dec_opt(item, "change24h"),
        mark_price=_dec_opt(item, "markPrice"),
        index_price=_dec_opt(item, "indexPrice"),
        funding_rate=_dec_opt(item, "fundingRate"),
    )


def _levels(raw: object, side: str) -> tuple[tuple[Decimal, Decimal], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _bad(f"{side} levels", raw)
    out = []
    for level in raw:
        if not isinstance(level, list | tuple) or len(level) < 2:
            raise _bad(f"a [price, size] {side} level", level)
        price, size = _to_dec(level[0], side), _to_dec(level[1], side)
        if price is None or size is None:
            raise _bad(f"a [price, size] {side} level", level)
        out.append((price, size))
    return tuple(out)


def parse_order_book(data: object, symbol: str) -> OrderBook:
    """Parse spot ``orderbook`` / futures ``merge-depth`` (levels as strings or numbers)."""
    item = _first(data, "order book")
    bids = tuple(sorted(_levels(item.get("bids"), "bid"), key=lambda lv: lv[0], reverse=True))
    asks = tuple(sorted(_levels(item.get("asks"), "ask"), key=lambda lv: lv[0]))
    return OrderBook(symbol, ms_to_datetime(item.get("ts")), bids, asks)


def parse_trade(item: Mapping[str, Any], symbol: str) -> Trade:
    """Parse a WebSocket ``trade`` item."""
    return Trade(
        symbol=symbol,
        timestamp=ms_to_datetime(item.get("ts")),
        price=_dec(item, "price"),
        size=_dec(item, "size"),
        side=_enum_side(item.get("side")),
        trade_id=_str(item, "tradeId"),
    )


def parse_funding_rate(data: object, symbol: str) -> FundingRate:
    """Parse ``current-fund-rate`` (a list; the item for ``symbol``)."""
    items = data if isinstance(data, list) else [data]
    item = next(
        (i for i in items if isinstance(i, Mapping) and i.get("symbol") == symbol),
        _first(data, "funding rate"),
    )
    interval = item.get("fundingRateInterval")
    return FundingRate(
        symbol=symbol,
        rate=_dec(item, "fundingRate"),
        timestamp=_time_opt(item, "fundingTime"),
        next_funding_time=_time_opt(item, "nextUpdate") or _time_opt(item, "nextFundingTime"),
        interval_hours=int(str(interval)) if interval not in (None, "") else None,
    )


def parse_funding_history(data: object, symbol: str) -> list[FundingRate]:
    """Parse ``history-fund-rate`` (newest first on the wire) → oldest first."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise _bad("a list of funding rates", data)
    rates = [
        FundingRate(symbol, _dec(i, "fundingRate"), timestamp=_time_opt(i, "fundingTime"))
        for i in data
    ]
    return sorted(rates, key=lambda r: r.timestamp or _EPOCH)


def parse_open_interest(data: object, symbol: str) -> OpenInterest:
    """Parse ``open-interest``: ``{"openInterestList": [{"symbol", "size"}], "ts"}``."""
    item = _first(data, "open interest")
    entries = item.get("openInterestList") or []
    entry = next((e for e in entries if e.get("symbol") == symbol), None)
    if entry is None:
        entry = _first(entries, "openInterestList")
    return OpenInterest(symbol, _dec(entry, "size"), ms_to_datetime(item.get("ts")))


def parse_ack(data: object, client_oid: str | None = None) -> OrderAck:
    """Parse a place/cancel answer ``{"orderId", "clientOid"}``."""
    item = _first(data, "order acknowledgement")
    order_id = item.get("orderId")
    if order_id in (None, ""):
        raise _bad("an orderId in the acknowledgement", dict(item))
    return OrderAck(str(order_id), str(item.get("clientOid") or client_oid or ""))


def _spot_fee(detail: object) -> Decimal | None:
    # Spot order detail: feeDetail is a JSON *string* {"newFees": {"t": -0.1, ...}, ...}.
    if detail in (None, ""):
        return None
    try:
        parsed = json.loads(detail, parse_float=Decimal) if isinstance(detail, str) else detail
    except ValueError:
        return None
    if not isinstance(parsed, Mapping):
        return None
    new = parsed.get("newFees")
    if isinstance(new, Mapping) and new.get("t") is not None:
        total = _to_dec(new.get("t"), "feeDetail.newFees.t")
        return None if total is None else -total
    totals = [
        _to_dec(v.get("totalFee"), "feeDetail.totalFee")
        for v in parsed.values()
        if isinstance(v, Mapping) and v.get("totalFee") not in (None, "")
    ]
    return -sum((t for t in totals if t is not None), Decimal(0)) if totals else None


def parse_order(data: object, product: Product) -> Order:
    """Parse a spot ``orderInfo`` item or a futures ``detail``/``orders-pending`` item."""
    item = _first(data, "order")
    raw_status = str(item.get("status") or item.get("state") or "")
    force = item.get("force")
    try:
        tif = TimeInForce(str(force).lower()) if force else None
    except ValueError:
        tif = None
    try:
        order_type = OrderType(str(item.get("orderType")).lower())
    except ValueError:
        raise _bad("orderType limit/market", item.get("orderType")) from None
    fee_raw = _dec_opt(item, "fee")
    fee = -fee_raw if fee_raw is not None else _spot_fee(item.get("feeDetail"))
    price = _nonzero(_dec_opt(item, "price"))
    filled = _dec_opt(item, "baseVolume") or Decimal(0)
    return Order(
        symbol=_str(item, "symbol"),
        order_id=_str(item, "orderId"),
        client_oid=str(item.get("clientOid") or ""),
        side=_enum_side(item.get("side")),
        order_type=order_type,
        status=_STATUS.get(raw_status.lower(), OrderStatus.UNKNOWN),
        size=_dec(item, "size"),
        price=price,
        filled_size=filled,
        # spot unfilled-orders reports the order price as priceAvg: only a fill gives it meaning
        average_price=_nonzero(_dec_opt(item, "priceAvg")) if filled else None,
        fee=fee,
        force=tif,
        created=_time_opt(item, "cTime"),
        updated=_time_opt(item, "uTime"),
        product=product,
        reduce_only=str(item.get("reduceOnly", "NO")).upper() in {"YES", "TRUE"},
        raw_status=raw_status,
    )


def parse_fill(item: Mapping[str, Any], product: Product) -> Fill:
    """Parse a spot or futures ``fills`` item (fee made positive for a cost)."""
    detail = item.get("feeDetail")
    entries = (
        detail if isinstance(detail, list) else [detail] if isinstance(detail, Mapping) else []
    )
    fee = Decimal(0)
    fee_coin = ""
    for entry in entries:
        fee -= _to_dec(entry.get("totalFee"), "feeDetail.totalFee") or Decimal(0)
        fee_coin = fee_coin or str(entry.get("feeCoin") or "")
    scope = str(item.get("tradeScope") or "").lower()
    price = _dec_opt(item, "price") if product.is_futures else None
    size = _dec_opt(item, "baseVolume") if product.is_futures else None
    return Fill(
        symbol=_str(item, "symbol"),
        trade_id=_str(item, "tradeId"),
        order_id=_str(item, "orderId"),
        side=_enum_side(item.get("side")),
        price=price if price is not None else _dec(item, "priceAvg"),
        size=size if size is not None else _dec(item, "size"),
        fee=fee,
        fee_coin=fee_coin,
        liquidity=Liquidity(scope) if scope in ("maker", "taker") else None,
        timestamp=ms_to_datetime(item.get("cTime")),
    )


def parse_balance(item: Mapping[str, Any], product: Product) -> Balance:
    """Parse a spot ``assets`` item or a futures ``accounts`` item."""
    if product.is_futures:
        return Balance(
            coin=_str(item, "marginCoin"),
            available=_dec(item, "available"),
            locked=_dec_opt(item, "locked") or Decimal(0),
            equity=_dec_opt(item, "accountEquity"),
            unrealized_pnl=_dec_opt(item, "unrealizedPL"),
        )
    return Balance(
        coin=_str(item, "coin"),
        available=_dec(item, "available"),
        frozen=_dec_opt(item, "frozen") or Decimal(0),
        locked=_dec_opt(item, "locked") or Decimal(0),
    )


def parse_position(item: Mapping[str, Any]) -> Position:
    """Parse an ``all-position`` / ``single-position`` item."""
    try:
        side = PositionSide(str(item.get("holdSide")).lower())
    except ValueError:
        raise _bad("holdSide long/short/net", item.get("holdSide")) from None
    mode = str(item.get("marginMode") or "").lower()
    liq = _dec_opt(item, "liquidationPrice")
    return Position(
        symbol=_str(item, "symbol"),
        side=side,
        size=_dec(item, "total"),
        available=_dec_opt(item, "available") or Decimal(0),
        entry_price=_nonzero(_dec_opt(item, "openPriceAvg")),
        mark_price=_nonzero(_dec_opt(item, "markPrice")),
        unrealized_pnl=_dec_opt(item, "unrealizedPL") or Decimal(0),
        leverage=_dec_opt(item, "leverage"),
        margin_mode=MarginMode(mode) if mode in ("isolated", "crossed") else None,
        liquidation_price=liq if liq is not None and liq > 0 else None,
        margin=_dec_opt(item, "marginSize"),
        margin_coin=str(item.get("marginCoin") or "USDT"),
        updated=_time_opt(item, "uTime"),
    )


def parse_ws_order(item: Mapping[str, Any], product: Product) -> Order:
    """Parse a private WebSocket ``orders`` push item (``instId``, ``accBaseVolume``, ...)."""
    fees = item.get("feeDetail")
    fee: Decimal | None = None
    if isinstance(fees, list) and fees:
        fee = -sum(
            (
                _to_dec(f.get("fee"), "feeDetail.fee") or Decimal(0)
                for f in fees
                if isinstance(f, Mapping)
            ),
            Decimal(0),
        )
    flat = dict(item)
    flat.setdefault("symbol", item.get("instId"))
    flat["baseVolume"] = item.get("accBaseVolume", item.get("baseVolume"))
    flat.pop("fee", None)
    flat.pop("feeDetail", None)
    return dataclasses.replace(parse_order(flat, product), fee=fee)
