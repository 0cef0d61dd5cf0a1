"""REST handlers of the simulator: orders, fills, balances and positions (spot and futures).

Payload shapes follow bitget-api.md §3.5-3.11; every number travels as a string.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any, TypeVar

from chimera_lab.exchange.simulator.api import ApiError, invalid, missing
from chimera_lab.exchange.simulator.engine import SimFill, SimOrder
from chimera_lab.exchange.simulator.models import Market
from chimera_lab.exchange.simulator.rest import USER_ID, RequestContext, dfmt

__all__ = ["mix_order_json", "spot_order_json"]

_T = TypeVar("_T")


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
        "status": order.status,
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
    status = order.api_status
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
    items: Iterable[_T], ctx: RequestContext, key: Callable[[_T], int], time_of: Callable[[_T], int]
) -> list[_T]:
    # ``items`` come newest first (largest id first): the page is the first ``limit`` that
    # pass the cursor and time filters, so the walk stops as soon as the page is full.
    id_less = ctx.int_param("idLessThan")
    start, end = ctx.int_param("startTime"), ctx.int_param("endTime")
    limit = ctx.int_param("limit", 100, lo=1, hi=100)
    assert limit is not None
    out = []
    for item in items:
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
            "status": o.status,
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


def _fills(ctx: RequestContext, market: Market) -> Iterator[SimFill]:
    # Not a generator function: ``symbol`` is checked now, before ``_page`` reads its params.
    symbol = ctx.get("symbol")
    if symbol is not None:
        ctx.market()
        symbol = str(symbol).upper()
    order_id = ctx.get("orderId")
    order_id = None if order_id is None else str(order_id)
    # engine.fills is appended as each fill is made, with trade ids from one counter, so it
    # is in trade-id order: walking it backwards is newest first without copying or sorting
    # (it holds up to a million fills).
    return (
        f
        for f in reversed(ctx.engine.fills)
        if f.market == market
        and (symbol is None or f.symbol == symbol)
        and (order_id is None or f.order_id == order_id)
    )


def _spot_fills(ctx: RequestContext) -> Any:
    page = _page(_fills(ctx, "spot"), ctx, lambda f: int(f.trade_id), lambda f: f.time_ms)
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
    page = _page(_fills(ctx, "mix"), ctx, lambda f: int(f.trade_id), lambda f: f.time_ms)
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
