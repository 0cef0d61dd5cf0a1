"""REST handlers of the simulator: what a handler sees, and the public market-data ones.

Handlers are plain functions ``handler(ctx) -> data`` that raise :class:`ApiError`; the
server (:mod:`.server`) wraps them with faults, rate limits, authentication and the envelope.
Paths, parameters and payload shapes follow bitget-api.md §3; every number travels as a
string. Order, account and position handlers live in :mod:`.rest_trade`, the endpoint table
(path, privacy, rate limit, handler) in :mod:`.routes`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from chimera_lab.exchange.simulator.api import ApiError, invalid, missing
from chimera_lab.exchange.simulator.engine import MatchingEngine
from chimera_lab.exchange.simulator.market import (
    MarketData,
    fmt,
    parse_granularity,
)

if TYPE_CHECKING:
    from chimera_lab.exchange.simulator.market import Granularity

__all__ = ["USER_ID", "Handler", "RequestContext", "dfmt"]

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
        nxt = engine.next_funding_ms(now_ms)
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
    nxt = ctx.engine.next_funding_ms(ctx.now_ms)
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
