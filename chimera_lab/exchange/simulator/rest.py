"""The REST endpoints: one table (path, privacy, rate limit) and one handler per endpoint.

Handlers are plain functions ``handler(ctx) -> data`` that raise :class:`ApiError`; the
server (:mod:`.server`) wraps them with faults, rate limits, authentication and the envelope.
Paths, parameters and payload shapes follow bitget-api.md §3; every number travels as a
string.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from chimera_lab.exchange.simulator.api import ApiError, invalid, missing
from chimera_lab.exchange.simulator.engine import MatchingEngine, SimFill, SimOrder
from chimera_lab.exchange.simulator.market import (
    MarketData,
    fmt,
    parse_granularity,
)
from chimera_lab.exchange.simulator.ratelimit import RateLimitRule

if TYPE_CHECKING:
    from chimera_lab.exchange.simulator.market import Granularity

__all__ = ["ENDPOINTS", "Endpoint", "RequestContext", "dfmt"]

USER_ID = "1000000001"
_DAY = 86_400_000


def dfmt(value: Decimal) -> str:
    """Format a Decimal as a plain string without exponent or trailing zeros.

    >>> dfmt(Decimal("1.2300")), dfmt(Decimal("1E+3")), dfmt(Decimal("-0.0"))
    ('1.23', '1000', '0')
    """
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@dataclass
class RequestContext:
    """What a handler sees of one request."""

    params: Mapping[str, Any]  # query parameters (GET) or the JSON body (POST)
    now_ms: int  # market clock
    server_ms: int  # server (wall) clock
    markets: Mapping[str, MarketData]
    engine: MatchingEngine

    def get(self, name: str) -> Any:
        """Return a parameter or ``None`` (empty strings count as absent)."""
        value = self.params.get(name)
        return None if value == "" else value

    def require(self, name: str) -> Any:
        """Return a parameter or raise 40019."""
        value = self.get(name)
        if value is None:
            raise missing(name)
        return value

    def market(self) -> MarketData:
        """Return the market named by ``symbol`` (required)."""
        symbol = str(self.require("symbol")).upper()
        md = self.markets.get(symbol)
        if md is None:
            raise ApiError("40034", f"Parameter {symbol} does not exist")
        return md

    def int_param(
        self, name: str, default: int | None = None, *, lo: int = 0, hi: int | None = None
    ) -> int | None:
        """Parse an integer parameter with bounds (400 ``40020`` when out of range)."""
        raw = self.get(name)
        if raw is None:
            return default
        try:
            value = int(str(raw))
        except ValueError:
            raise invalid(name, f"{raw!r} is not an integer") from None
        if value < lo or (hi is not None and value > hi):
            raise invalid(name, f"must be between {lo} and {hi}, got {value}")
        return value

    def product(self) -> str:
        """Check ``productType`` (case-insensitive; only USDT-FUTURES has markets here)."""
        raw = self.require("productType")
        product = str(raw).upper()
        if product not in (
            "USDT-FUTURES",
            "COIN-FUTURES",
            "USDC-FUTURES",
            "SUSDT-FUTURES",
            "SCOIN-FUTURES",
            "SUSDC-FUTURES",
        ):
            raise invalid("productType", str(raw))
        return product


Handler = Callable[[RequestContext], Any]


@dataclass(frozen=True)
class Endpoint:
    """One REST endpoint of the simulator."""

    method: str
    path: str
    handler: Handler
    rule: RateLimitRule
    private: bool = False
    is_order: bool = False  # place/cancel: subject to the after-accept faults


# -- public market data ---------------------------------------------------------------------
def _server_time(ctx: RequestContext) -> Any:
    return {"serverTime": str(ctx.server_ms)}


# Reach of the recent-candles endpoint per bar size (bitget-api.md §3.2); longer sizes are
# not limited here. Applying it to spot as well is unverified.
_REACH_DAYS = {
    60_000: 30,
    180_000: 30,
    300_000: 30,
    900_000: 52,
    1_800_000: 62,
    3_600_000: 83,
    7_200_000: 120,
    14_400_000: 240,
    21_600_000: 360,
}


def _candles(ctx: RequestContext, *, family: str, history: bool) -> Any:
    md = ctx.market()
    if family == "mix":
        ctx.product()
        kline = str(ctx.get("kLineType") or "MARKET").upper()
        if kline not in ("MARKET", "MARK", "INDEX"):
            raise invalid("kLineType", kline)
    gname = str(ctx.require("granularity"))
    gran: Granularity | None = parse_granularity(family, gname)
    if gran is None:
        raise invalid("granularity", gname)
    if gran.ms < md.tf_ms and not gran.months:
        raise invalid("granularity", f"{gname} is finer than the simulator's replayed bars")
    start = ctx.int_param("startTime")
    end = ctx.int_param("endTime")
    if history and family == "spot" and end is None:
        raise missing("endTime")
    limit = ctx.int_param("limit", 100, lo=1, hi=200 if history else 1000)
    assert limit is not None
    if family == "mix" and start is not None and end is not None and end - start > 90 * _DAY:
        # Futures: start-end at most 90 days (code for the violation unverified).
        raise invalid("startTime", "startTime and endTime interval cannot exceed 90 days")
    if start is not None and end is not None and end < start:
        raise invalid("endTime", "endTime must be >= startTime")
    reach = None if history else _REACH_DAYS.get(gran.ms)
    rows = md.candles(
        gran,
        now_ms=ctx.now_ms,
        start_ms=start,
        end_ms=end,
        limit=limit,
        include_open=not history,
        min_ms=None if reach is None else ctx.now_ms - reach * _DAY,
    )
    d = md.price_decimals
    out = []
    for ts, o, h, lo, c, v, qv in rows:
        row = [str(ts), fmt(o, d), fmt(h, d), fmt(lo, d), fmt(c, d), fmt(v, 6), fmt(qv, 4)]
        if family == "spot":  # [ts,o,h,l,c,baseVolume,usdtVolume,quoteVolume]
            row.append(row[-1])
        out.append(row)
    return out


def _ticker_row(md: MarketData, now_ms: int, *, futures: bool, engine: MatchingEngine) -> Any:
    s = md.stats_24h(now_ms)
    bids, asks = md.book(now_ms, 1)
    d = md.price_decimals
    row: dict[str, Any] = {
        "symbol": md.symbol,
        "high24h": fmt(s["high24h"], d),
        "open": fmt(s["open24h"], d),
        "low24h": fmt(s["low24h"], d),
        "lastPr": fmt(s["last"], d),
        "quoteVolume": fmt(s["quoteVolume"], 4),
        "baseVolume": fmt(s["baseVolume"], 6),
        "usdtVolume": fmt(s["quoteVolume"], 4),
        "bidPr": fmt(bids[0][0], d),
        "askPr": fmt(asks[0][0], d),
        "bidSz": fmt(bids[0][1], 6),
        "askSz": fmt(asks[0][1], 6),
        "openUtc": fmt(s["openUtc"], d),
        "ts": str(now_ms),
        "changeUtc24h": fmt(s["changeUtc24h"], 5),
        "change24h": fmt(s["change24h"], 5),
    }
    if futures:
        del row["open"]
        interval = engine.funding_interval_ms
        nxt = (now_ms // interval + 1) * interval
        row.update(
            {
                "indexPrice": row["lastPr"],
                "markPrice": row["lastPr"],
                "fundingRate": fmt(md.funding_rate(nxt, interval), 6),
                "holdingAmount": fmt(_open_interest(md, now_ms, engine), 4),
                "open24h": fmt(s["open24h"], d),
                "deliveryStartTime": None,
                "deliveryTime": None,
                "deliveryStatus": "",
            }
        )
    return row


def _spot_tickers(ctx: RequestContext) -> Any:
    symbol = ctx.get("symbol")
    mds = [ctx.market()] if symbol else list(ctx.markets.values())
    return [_ticker_row(md, ctx.now_ms, futures=False, engine=ctx.engine) for md in mds]


def _mix_ticker(ctx: RequestContext) -> Any:
    ctx.product()
    return [_ticker_row(ctx.market(), ctx.now_ms, futures=True, engine=ctx.engine)]


def _mix_tickers(ctx: RequestContext) -> Any:
    product = ctx.product()
    if product != "USDT-FUTURES":
        return []
    return [
        _ticker_row(md, ctx.now_ms, futures=True, engine=ctx.engine) for md in ctx.markets.values()
    ]


def _spot_orderbook(ctx: RequestContext) -> Any:
    md = ctx.market()
    step = str(ctx.get("type") or "step0")
    if step not in {f"step{i}" for i in range(6)}:
        raise invalid("type", step)
    limit = ctx.int_param("limit", 150, lo=1, hi=150)
    assert limit is not None
    bids, asks = md.book(ctx.now_ms, limit)
    d = md.price_decimals
    return {
        "asks": [[fmt(p, d), fmt(q, 6)] for p, q in asks],
        "bids": [[fmt(p, d), fmt(q, 6)] for p, q in bids],
        "ts": str(ctx.now_ms),
    }


def _mix_merge_depth(ctx: RequestContext) -> Any:
    ctx.product()
    md = ctx.market()
    precision = str(ctx.get("precision") or "scale0")
    if precision not in ("scale0", "scale1", "scale2", "scale3"):
        raise invalid("precision", precision)
    raw_limit = str(ctx.get("limit") or "100")
    sizes = {"1": 1, "5": 5, "15": 15, "50": 50, "100": 100, "max": 150}
    if raw_limit not in sizes:
        raise invalid("limit", raw_limit)
    bids, asks = md.book(ctx.now_ms, sizes[raw_limit])
    # The doc shows JSON numbers inside asks/bids here (not strings); the simulator does too.
    return {
        "asks": [[p, q] for p, q in asks],
        "bids": [[p, q] for p, q in bids],
        "ts": str(ctx.now_ms),
        "scale": fmt(md.tick, md.price_decimals),
        "precision": precision,
        "isMaxPrecision": "YES" if precision == "scale0" else "NO",
    }


def _funding_rows(ctx: RequestContext, md: MarketData) -> dict[str, str]:
    interval = ctx.engine.funding_interval_ms
    nxt = (ctx.now_ms // interval + 1) * interval
    return {
        "symbol": md.symbol,
        "fundingRate": fmt(md.funding_rate(nxt, interval), 6),
        "fundingRateInterval": str(interval // 3_600_000),
        "nextUpdate": str(nxt),
        "minFundingRate": "-0.003",
        "maxFundingRate": "0.003",
    }


def _current_fund_rate(ctx: RequestContext) -> Any:
    if ctx.product() != "USDT-FUTURES":
        return []
    mds = [ctx.market()] if ctx.get("symbol") else list(ctx.markets.values())
    return [_funding_rows(ctx, md) for md in mds]


def _funding_time(ctx: RequestContext) -> Any:
    ctx.product()
    md = ctx.market()
    row = _funding_rows(ctx, md)
    return [
        {
            "symbol": md.symbol,
            "nextFundingTime": row["nextUpdate"],
            "ratePeriod": row["fundingRateInterval"],
        }
    ]


def _history_fund_rate(ctx: RequestContext) -> Any:
    ctx.product()
    md = ctx.market()
    size = ctx.int_param("pageSize", 20, lo=1, hi=100)
    page = ctx.int_param("pageNo", 1, lo=1)
    assert size is not None and page is not None
    interval = ctx.engine.funding_interval_ms
    last = (ctx.now_ms // interval) * interval
    first_bar = int(md.ts[0])
    out = []
    for k in range((page - 1) * size, page * size):  # newest first, like the doc's example
        t = last - k * interval
        if t <= first_bar:
            break
        out.append(
            {
                "symbol": md.symbol,
                "fundingRate": fmt(md.funding_rate(t, interval), 6),
                "fundingTime": str(t),
            }
        )
    return out


def _open_interest(md: MarketData, now_ms: int, engine: MatchingEngine) -> float:
    # Synthetic: 50 average bars' volume, plus the simulator account's own position.
    n = md.closed_count(now_ms)
    recent = md.volume[max(0, n - 1440) : n]
    base = float(recent.mean()) * 50 if len(recent) else 0.0
    pos = engine.account.positions.get(md.symbol)
    return base + (abs(float(pos.size)) if pos is not None else 0.0)


def _open_interest_h(ctx: RequestContext) -> Any:
    ctx.product()
    md = ctx.market()
    return {
        "openInterestList": [
            {"symbol": md.symbol, "size": fmt(_open_interest(md, ctx.now_ms, ctx.engine), 4)}
        ],
        "ts": str(ctx.now_ms),
    }


def _spot_symbols(ctx: RequestContext) -> Any:
    symbol = ctx.get("symbol")
    mds = [ctx.market()] if symbol else list(ctx.markets.values())
    return [
        {
            "symbol": md.symbol,
            "baseCoin": md.base_coin,
            "quoteCoin": md.quote_coin,
            "minTradeAmount": "0",
            "maxTradeAmount": "10000000000",
            "takerFeeRate": dfmt(ctx.engine.fees.spot_taker),
            "makerFeeRate": dfmt(ctx.engine.fees.spot_maker),
            "pricePrecision": str(md.price_decimals),
            "quantityPrecision": "6",
            "quotePrecision": "8",
            "status": "online",
            "minTradeUSDT": "1",
            "buyLimitPriceRatio": "0.05",
            "sellLimitPriceRatio": "0.05",
            "areaSymbol": "no",
            "orderQuantity": "200",
        }
        for md in mds
    ]


def _mix_contracts(ctx: RequestContext) -> Any:
    if ctx.product() != "USDT-FUTURES":
        return []
    symbol = ctx.get("symbol")
    mds = [ctx.market()] if symbol else list(ctx.markets.values())
    return [
        {
            "symbol": md.symbol,
            "baseCoin": md.base_coin,
            "quoteCoin": md.quote_coin,
            "buyLimitPriceRatio": "0.05",
            "sellLimitPriceRatio": "0.05",
            "feeRateUpRatio": "0.005",
            "makerFeeRate": dfmt(ctx.engine.fees.mix_maker),
            "takerFeeRate": dfmt(ctx.engine.fees.mix_taker),
            "openCostUpRatio": "0.01",
            "supportMarginCoins": ["USDT"],
            "minTradeNum": "0.0001",
            "priceEndStep": "1",
            "volumePlace": "4",
            "pricePlace": str(md.price_decimals),
            "sizeMultiplier": "0.0001",
            "symbolType": "perpetual",
            "minTradeUSDT": "5",
            "maxSymbolOrderNum": "200",
            "maxProductOrderNum": "400",
            "maxPositionNum": "150",
            "symbolStatus": "normal",
            "offTime": "-1",
            "limitOpenTime": "-1",
            "deliveryTime": "",
            "deliveryStartTime": "",
            "launchTime": "",
            "fundInterval": str(ctx.engine.funding_interval_ms // 3_600_000),
            "minLever": "1",
            "maxLever": "125",
            "posLimit": "0.05",
            "maintainTime": "",
        }
        for md in mds
    ]


def _margin_currencies(ctx: RequestContext) -> Any:
    # The simulator has no margin trading; ccxt's load_markets asks for the pairs anyway.
    return []


# -- orders ----------------------------------------------------------------------------------
def _fee_detail_spot_order(order: SimOrder) -> str:
    # Spot order detail carries feeDetail as a JSON-encoded string (bitget-api.md §3.7).
    fee = -order.fee
    detail: dict[str, dict[str, Any]] = {
        "newFees": {
            "c": 0,
            "d": 0,
            "deduction": False,
            "r": float(fee),
            "t": float(fee),
            "totalDeductionFee": 0,
        },
    }
    if order.fee_coin:
        detail[order.fee_coin] = {
            "deduction": False,
            "feeCoinCode": order.fee_coin,
            "totalDeductionFee": 0,
            "totalFee": float(fee),
        }
    return json.dumps(detail, separators=(",", ":"))


def _spot_status(order: SimOrder) -> str:
    return order.status


def _mix_status(order: SimOrder) -> str:
    return "canceled" if order.status == "cancelled" else order.status


def spot_order_json(order: SimOrder) -> dict[str, Any]:
    """Render a spot order as ``orderInfo`` does."""
    return {
        "userId": USER_ID,
        "symbol": order.symbol,
        "orderId": order.order_id,
        "clientOid": order.client_oid,
        "price": dfmt(order.price) if order.price is not None else "0",
        "size": dfmt(order.size),
        "orderType": order.order_type,
        "side": order.side,
        "status": _spot_status(order),
        "priceAvg": dfmt(order.price_avg),
        "baseVolume": dfmt(order.filled_size),
        "quoteVolume": dfmt(order.filled_quote),
        "enterPointSource": "API",
        "feeDetail": _fee_detail_spot_order(order),
        "orderSource": f"{order.order_type}",
        "cancelReason": order.cancel_reason,
        "cTime": str(order.c_time),
        "uTime": str(order.u_time),
    }


def mix_order_json(order: SimOrder, leverage: int) -> dict[str, Any]:
    """Render a futures order as ``detail`` / ``orders-pending`` do."""
    status = _mix_status(order)
    return {
        "symbol": order.symbol,
        "size": dfmt(order.size),
        "orderId": order.order_id,
        "clientOid": order.client_oid,
        "baseVolume": dfmt(order.filled_size),
        "priceAvg": dfmt(order.price_avg),
        "fee": dfmt(-order.fee),
        "price": dfmt(order.price) if order.price is not None else "0",
        "state": status,
        "status": status,  # the doc's example says "state", its table "status": send both
        "side": order.side,
        "force": order.force,
        "totalProfits": dfmt(order.profit),
        "posSide": "net",
        "marginCoin": order.margin_coin,
        "quoteVolume": dfmt(order.filled_quote),
        "orderType": order.order_type,
        "leverage": str(leverage),
        "marginMode": order.margin_mode,
        "reduceOnly": "YES" if order.reduce_only else "NO",
        # One-way mode reports buy_single / sell_single here (unverified).
        "tradeSide": order.trade_side or f"{order.side}_single",
        "posMode": "one_way_mode",
        "orderSource": "normal",
        "cancelReason": order.cancel_reason,
        "presetStopSurplusPrice": "",
        "presetStopLossPrice": "",
        "cTime": str(order.c_time),
        "uTime": str(order.u_time),
    }


def _place_spot(ctx: RequestContext) -> Any:
    order = ctx.engine.place_spot(ctx.params, now_ms=ctx.now_ms)
    return {"orderId": order.order_id, "clientOid": order.client_oid}


def _place_mix(ctx: RequestContext) -> Any:
    order = ctx.engine.place_mix(ctx.params, now_ms=ctx.now_ms)
    return {"orderId": order.order_id, "clientOid": order.client_oid}


def _cancel_spot(ctx: RequestContext) -> Any:
    order = ctx.engine.cancel("spot", ctx.params, now_ms=ctx.now_ms)
    return {"orderId": order.order_id, "clientOid": order.client_oid}


def _cancel_mix(ctx: RequestContext) -> Any:
    ctx.product()
    order = ctx.engine.cancel("mix", ctx.params, now_ms=ctx.now_ms)
    return {"orderId": order.order_id, "clientOid": order.client_oid}


def _spot_order_info(ctx: RequestContext) -> Any:
    order_id, client_oid = ctx.get("orderId"), ctx.get("clientOid")
    if order_id is None and client_oid is None:
        raise missing("orderId")
    order = ctx.engine.find("spot", order_id=order_id, client_oid=client_oid)
    if order_id is None and ctx.now_ms - order.c_time > 2 * 3_600_000:
        # Spot lookup by clientOid covers the last 2 h only (changelog 2025-03-20).
        raise ApiError("43001", "The order does not exist")
    return [spot_order_json(order)]


def _mix_detail(ctx: RequestContext) -> Any:
    ctx.product()
    ctx.market()
    order_id, client_oid = ctx.get("orderId"), ctx.get("clientOid")
    if order_id is None and client_oid is None:
        raise missing("orderId")
    order = ctx.engine.find("mix", order_id=order_id, client_oid=client_oid)
    return mix_order_json(order, ctx.engine.leverage)


def _page(
    items: list[Any], ctx: RequestContext, key: Callable[[Any], int], time_of: Callable[[Any], int]
) -> list[Any]:
    id_less = ctx.int_param("idLessThan")
    start, end = ctx.int_param("startTime"), ctx.int_param("endTime")
    limit = ctx.int_param("limit", 100, lo=1, hi=100)
    assert limit is not None
    out = []
    for item in sorted(items, key=key, reverse=True):  # newest first
        if id_less is not None and key(item) >= id_less:
            continue
        if start is not None and time_of(item) < start:
            continue
        if end is not None and time_of(item) > end:
            continue
        out.append(item)
        if len(out) >= limit:
            break
    return out


def _spot_unfilled(ctx: RequestContext) -> Any:
    symbol = ctx.get("symbol")
    if symbol is not None:
        ctx.market()
    orders = _page(
        ctx.engine.open_orders("spot", symbol), ctx, lambda o: int(o.order_id), lambda o: o.c_time
    )
    return [
        {
            "userId": USER_ID,
            "symbol": o.symbol,
            "orderId": o.order_id,
            "clientOid": o.client_oid,
            "priceAvg": dfmt(o.price) if o.price is not None else "0",
            "size": dfmt(o.size),
            "orderType": o.order_type,
            "side": o.side,
            "status": _spot_status(o),
            "basePrice": dfmt(o.price_avg),
            "baseVolume": dfmt(o.filled_size),
            "quoteVolume": dfmt(o.filled_quote),
            "enterPointSource": "API",
            "orderSource": "normal",
            "cTime": str(o.c_time),
            "uTime": str(o.u_time),
            "tpslType": "normal",
            "triggerPrice": None,
        }
        for o in orders
    ]


def _mix_pending(ctx: RequestContext) -> Any:
    ctx.product()
    symbol = ctx.get("symbol")
    if symbol is not None:
        ctx.market()
    orders = ctx.engine.open_orders("mix", symbol)
    if ctx.get("orderId") is not None:
        orders = [o for o in orders if o.order_id == str(ctx.get("orderId"))]
    if ctx.get("clientOid") is not None:
        orders = [o for o in orders if o.client_oid == str(ctx.get("clientOid"))]
    status = ctx.get("status")
    if status is not None:
        if status not in ("live", "partially_filled"):
            raise invalid("status", str(status))
        orders = [o for o in orders if o.status == status]
    page = _page(orders, ctx, lambda o: int(o.order_id), lambda o: o.c_time)
    # Empty page: null list and endId (the [] vs null form is unverified; clients accept both).
    return {
        "entrustedList": [mix_order_json(o, ctx.engine.leverage) for o in page] or None,
        "endId": page[-1].order_id if page else None,
    }


def _spot_fee_detail(fill: SimFill) -> dict[str, str]:
    return {
        "deduction": "no",
        "feeCoin": fill.fee_coin,
        "totalDeductionFee": "",
        "totalFee": dfmt(-fill.fee),
    }


def _spot_fills(ctx: RequestContext) -> Any:
    symbol = ctx.get("symbol")
    if symbol is not None:
        ctx.market()
    fills = [f for f in ctx.engine.fills if f.market == "spot"]
    if symbol is not None:
        fills = [f for f in fills if f.symbol == str(symbol).upper()]
    if ctx.get("orderId") is not None:
        fills = [f for f in fills if f.order_id == str(ctx.get("orderId"))]
    page = _page(fills, ctx, lambda f: int(f.trade_id), lambda f: f.time_ms)
    return [
        {
            "userId": USER_ID,
            "symbol": f.symbol,
            "orderId": f.order_id,
            "tradeId": f.trade_id,
            "orderType": f.order_type,
            "side": f.side,
            "priceAvg": dfmt(f.price),
            "size": dfmt(f.size),
            "amount": dfmt(f.quote),
            "feeDetail": _spot_fee_detail(f),
            "tradeScope": f.scope,
            "cTime": str(f.time_ms),
            "uTime": str(f.time_ms),
        }
        for f in page
    ]


def _mix_fills(ctx: RequestContext) -> Any:
    ctx.product()
    symbol = ctx.get("symbol")
    if symbol is not None:
        ctx.market()
    fills = [f for f in ctx.engine.fills if f.market == "mix"]
    if symbol is not None:
        fills = [f for f in fills if f.symbol == str(symbol).upper()]
    if ctx.get("orderId") is not None:
        fills = [f for f in fills if f.order_id == str(ctx.get("orderId"))]
    page = _page(fills, ctx, lambda f: int(f.trade_id), lambda f: f.time_ms)
    return {
        "fillList": [
            {
                "tradeId": f.trade_id,
                "symbol": f.symbol,
                "orderId": f.order_id,
                "price": dfmt(f.price),
                "baseVolume": dfmt(f.size),
                # feeDetail is a list here (an object in spot), fees negative.
                "feeDetail": [
                    {
                        "deduction": "no",
                        "feeCoin": f.fee_coin,
                        "totalDeductionFee": "0",
                        "totalFee": dfmt(-f.fee),
                    }
                ],
                "side": f.side,
                "quoteVolume": dfmt(f.quote),
                "profit": dfmt(f.profit),
                "enterPointSource": "API",
                "tradeSide": f.trade_side or f"{f.side}_single",
                "posMode": "one_way_mode",
                "tradeScope": f.scope,
                "cTime": str(f.time_ms),
            }
            for f in page
        ]
        or None,
        "endId": page[-1].trade_id if page else None,
    }


# -- account ---------------------------------------------------------------------------------
def _spot_assets(ctx: RequestContext) -> Any:
    coin = ctx.get("coin")
    asset_type = str(ctx.get("assetType") or "hold_only")
    if asset_type not in ("hold_only", "all"):
        raise invalid("assetType", asset_type)
    rows = []
    for name, (available, frozen) in sorted(ctx.engine.account.spot.items()):
        if coin is not None and name != str(coin).upper():
            continue
        if asset_type == "hold_only" and coin is None and available == 0 and frozen == 0:
            continue
        rows.append(
            {
                "coin": name,
                "available": dfmt(available),
                "frozen": dfmt(frozen),
                "locked": "0",
                "limitAvailable": "0",
                "uTime": str(ctx.now_ms),
            }
        )
    return rows


def _mix_account_row(ctx: RequestContext) -> dict[str, Any]:
    acct = ctx.engine.account
    upl = sum((ctx.engine.unrealized(s, ctx.now_ms) for s in acct.positions), Decimal(0))
    margin = sum((p.margin for p in acct.positions.values()), Decimal(0))
    equity = acct.mix_available + acct.mix_locked + margin + upl
    last_btc = None
    for md in ctx.markets.values():
        if md.base_coin == "BTC":
            last_btc = Decimal(str(md.price_at(ctx.now_ms)))
    return {
        "marginCoin": "USDT",
        "locked": dfmt(acct.mix_locked),
        "available": dfmt(acct.mix_available),
        "crossedMaxAvailable": dfmt(acct.mix_available),
        "isolatedMaxAvailable": dfmt(acct.mix_available),
        "maxTransferOut": dfmt(acct.mix_available),
        "accountEquity": dfmt(equity),
        "usdtEquity": dfmt(equity),
        "btcEquity": dfmt((equity / last_btc).quantize(Decimal("0.00000001"))) if last_btc else "0",
        "crossedRiskRate": "0",
        "unrealizedPL": dfmt(upl),
        "coupon": "0",
        "isolatedMargin": "0",
        "crossedMargin": dfmt(margin),
        "crossedUnrealizedPL": dfmt(upl),
        "isolatedUnrealizedPL": "0",
        "assetMode": "single",
        "assetList": [],
    }


def _mix_accounts(ctx: RequestContext) -> Any:
    if ctx.product() != "USDT-FUTURES":
        return []
    return [_mix_account_row(ctx)]


def _mix_account(ctx: RequestContext) -> Any:
    ctx.product()
    ctx.market()
    if str(ctx.require("marginCoin")).upper() != "USDT":
        raise invalid("marginCoin", str(ctx.get("marginCoin")))
    row = _mix_account_row(ctx)
    lev = str(ctx.engine.leverage)
    row.update(
        {
            "crossedMarginLeverage": lev,
            "isolatedLongLever": lev,
            "isolatedShortLever": lev,
            "marginMode": "crossed",
            "posMode": "one_way_mode",
        }
    )
    return row


def _position_rows(ctx: RequestContext, symbol: str | None) -> list[dict[str, Any]]:
    engine = ctx.engine
    rows = []
    for name, pos in sorted(engine.account.positions.items()):
        if pos.size == 0 or (symbol is not None and name != symbol):
            continue
        md = ctx.markets[name]
        mark = Decimal(str(md.price_at(ctx.now_ms)))
        size = abs(pos.size)
        lev = Decimal(engine.leverage)
        mmr = Decimal("0.004")
        if pos.size > 0:
            liq = pos.entry * (1 - 1 / lev + mmr)
        else:
            liq = pos.entry * (1 + 1 / lev - mmr)
        upl = engine.unrealized(name, ctx.now_ms)
        locked = sum(
            (o.size - o.filled_size for o in engine.open_orders("mix", name) if o.reduce_only),
            Decimal(0),
        )
        rows.append(
            {
                "marginCoin": "USDT",
                "symbol": name,
                "holdSide": "long" if pos.size > 0 else "short",
                "openDelegateSize": dfmt(
                    sum(
                        (
                            o.size - o.filled_size
                            for o in engine.open_orders("mix", name)
                            if not o.reduce_only
                        ),
                        Decimal(0),
                    )
                ),
                "marginSize": dfmt(pos.margin),
                "available": dfmt(max(size - locked, Decimal(0))),
                "locked": dfmt(min(locked, size)),
                "total": dfmt(size),
                "leverage": str(lev),
                "achievedProfits": dfmt(pos.achieved),
                "openPriceAvg": dfmt(pos.entry),
                "marginMode": "crossed",
                "posMode": "one_way_mode",
                "unrealizedPL": dfmt(upl),
                "liquidationPrice": dfmt(liq.quantize(Decimal("0.01"))),
                "keepMarginRate": dfmt(mmr),
                "markPrice": dfmt(mark),
                "breakEvenPrice": dfmt(pos.entry),
                "totalFee": dfmt(-pos.total_fee),
                "deductedFee": dfmt(pos.total_fee),
                "marginRatio": dfmt(
                    (pos.margin * mmr / max(pos.margin, Decimal(1))).quantize(Decimal("0.0001"))
                ),
                "assetMode": "single",
                "cTime": str(pos.c_time),
                "uTime": str(pos.u_time),
            }
        )
    return rows


def _all_position(ctx: RequestContext) -> Any:
    if ctx.product() != "USDT-FUTURES":
        return []
    return _position_rows(ctx, None)


def _single_position(ctx: RequestContext) -> Any:
    ctx.product()
    md = ctx.market()
    ctx.require("marginCoin")
    return _position_rows(ctx, md.symbol)


# -- the table -------------------------------------------------------------------------------
def _rule(name: str, per_s: int, scope: str = "ip") -> RateLimitRule:
    return RateLimitRule(name, limit=per_s, window_s=1.0, scope=scope)  # type: ignore[arg-type]


def _spot(family: str, history: bool) -> Handler:
    return lambda ctx: _candles(ctx, family=family, history=history)


_P = "/api/v2"
_ROWS: list[tuple[str, str, Handler, int, bool, bool]] = [
    # method, path, handler, limit per second, private, is_order
    ("GET", f"{_P}/public/time", _server_time, 20, False, False),
    ("GET", f"{_P}/spot/public/symbols", _spot_symbols, 20, False, False),
    ("GET", f"{_P}/spot/market/candles", _spot("spot", False), 20, False, False),
    ("GET", f"{_P}/spot/market/history-candles", _spot("spot", True), 20, False, False),
    ("GET", f"{_P}/spot/market/tickers", _spot_tickers, 20, False, False),
    ("GET", f"{_P}/spot/market/orderbook", _spot_orderbook, 20, False, False),
    ("GET", f"{_P}/mix/market/contracts", _mix_contracts, 20, False, False),
    ("GET", f"{_P}/margin/currencies", _margin_currencies, 10, False, False),
    ("GET", f"{_P}/mix/market/candles", _spot("mix", False), 20, False, False),
    ("GET", f"{_P}/mix/market/history-candles", _spot("mix", True), 20, False, False),
    ("GET", f"{_P}/mix/market/ticker", _mix_ticker, 20, False, False),
    ("GET", f"{_P}/mix/market/tickers", _mix_tickers, 20, False, False),
    ("GET", f"{_P}/mix/market/merge-depth", _mix_merge_depth, 20, False, False),
    ("GET", f"{_P}/mix/market/current-fund-rate", _current_fund_rate, 20, False, False),
    ("GET", f"{_P}/mix/market/history-fund-rate", _history_fund_rate, 20, False, False),
    ("GET", f"{_P}/mix/market/funding-time", _funding_time, 20, False, False),
    ("GET", f"{_P}/mix/market/open-interest", _open_interest_h, 20, False, False),
    ("POST", f"{_P}/spot/trade/place-order", _place_spot, 10, True, True),
    ("POST", f"{_P}/spot/trade/cancel-order", _cancel_spot, 10, True, True),
    ("GET", f"{_P}/spot/trade/orderInfo", _spot_order_info, 20, True, False),
    ("GET", f"{_P}/spot/trade/unfilled-orders", _spot_unfilled, 20, True, False),
    ("GET", f"{_P}/spot/trade/fills", _spot_fills, 10, True, False),
    ("GET", f"{_P}/spot/account/assets", _spot_assets, 10, True, False),
    ("POST", f"{_P}/mix/order/place-order", _place_mix, 10, True, True),
    ("POST", f"{_P}/mix/order/cancel-order", _cancel_mix, 10, True, True),
    ("GET", f"{_P}/mix/order/detail", _mix_detail, 10, True, False),
    ("GET", f"{_P}/mix/order/orders-pending", _mix_pending, 10, True, False),
    ("GET", f"{_P}/mix/order/fills", _mix_fills, 10, True, False),
    ("GET", f"{_P}/mix/account/accounts", _mix_accounts, 10, True, False),
    ("GET", f"{_P}/mix/account/account", _mix_account, 10, True, False),
    ("GET", f"{_P}/mix/position/all-position", _all_position, 5, True, False),
    ("GET", f"{_P}/mix/position/single-position", _single_position, 10, True, False),
]

ENDPOINTS: dict[tuple[str, str], Endpoint] = {
    (method, path): Endpoint(
        method, path, handler, _rule(path, per_s, "uid" if private else "ip"), private, is_order
    )
    for method, path, handler, per_s, private, is_order in _ROWS
}
"""Every REST endpoint the simulator serves, keyed by ``(METHOD, path)``."""
