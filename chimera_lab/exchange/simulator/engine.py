"""The matching engine: orders against the replayed prices, balances, positions, fills.

Spot
    Balances per coin (``available`` / ``frozen``). A limit buy freezes ``price × size`` quote,
    a sell freezes ``size`` base; a market buy's ``size`` is the **quote** amount to spend
    (bitget-api.md §3.5). Fees are charged in the coin received (base on a buy, quote on a
    sell), as Bitget's spot fills show.
USDT-M futures (one-way position mode only)
    One USDT account; one net position per symbol (``posMode = one_way_mode``,
    ``posSide = net``; ``tradeSide`` is ignored as Bitget does in one-way mode). Margin is
    ``notional / leverage`` per position; a fill against the position realises PnL; funding is
    settled at every funding time (8 h, 00/08/16 UTC) as ``-size × price × rate``. Liquidation is
    **not** modelled (the reported ``liquidationPrice`` is the usual isolated estimate).
Matching
    Marketable orders take liquidity from the synthetic book of :meth:`MarketData.book`
    (so large orders walk several levels, IOC fills what the limit allows and FOK all or
    nothing); ``post_only`` orders that would take are cancelled. Resting limit orders fill
    completely, at their price, as maker, as soon as the replayed intrabar path trades
    strictly **through** the price (touching is not enough).

Times are market-clock milliseconds (see :mod:`.clock`).

Examples
--------
>>> from decimal import Decimal
>>> from chimera_lab.data.synthetic import make_ohlcv
>>> md = MarketData("BTCUSDT", make_ohlcv(500, seed=3), price_decimals=2)
>>> eng = MatchingEngine({"BTCUSDT": md}, balances={"USDT": Decimal(10_000)})
>>> now = int(md.ts[10])
>>> o = eng.place_spot({"symbol": "BTCUSDT", "side": "buy", "orderType": "market",
...                     "force": "gtc", "size": "1000", "clientOid": "x1"}, now_ms=now)
>>> o.status, o.filled_quote <= Decimal(1000)
('filled', True)
"""

from __future__ import annotations

import itertools
import re
from collections import deque
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from chimera_lab.exchange.simulator.api import ApiError, invalid, missing
from chimera_lab.exchange.simulator.market import MarketData
from chimera_lab.exchange.simulator.models import (
    _Q8,
    _ZERO,
    Account,
    FeeSchedule,
    Market,
    Position,
    SimFill,
    SimOrder,
    _q,
    dec,
)

__all__ = [
    "Account",
    "FeeSchedule",
    "MatchingEngine",
    "Position",
    "SimFill",
    "SimOrder",
]

# FAQ Q13: 0-9 a-z A-Z - + _ # ; length < 50 (codes 40304 too long / 40305 bad characters,
# which code covers which case is unverified).
_OID = re.compile(r"^[0-9A-Za-z\-+_#]+$")


EventSink = Callable[[str, dict[str, Any]], None]


class MatchingEngine:
    """Accept, match and account orders for every symbol of the simulator.

    Parameters
    ----------
    markets : mapping of str to MarketData
        The replayed markets, by symbol.
    balances : mapping
        Initial spot balances, e.g. ``{"USDT": 100_000}``.
    futures_balance : Decimal, optional
        Initial USDT of the futures account (default: the spot USDT balance).
    fees : FeeSchedule
        Fee rates.
    leverage : int
        Futures leverage.
    client_oid_window_ms : int or None
        A clientOid stays reserved this long after its order's creation (market time);
        ``None`` reserves it forever. Bitget does not document the window (**unverified**;
        bitget-api.md §6 suggests 2 h). It is also the retention of finished orders: an
        order that is filled or cancelled is forgotten (with its clientOid) once it has been
        final for this long, so a long run's memory stays bounded; ``None`` keeps every
        order. :attr:`accepted` counts every order ever accepted.
    funding_interval_h : int
        Hours between funding settlements.
    on_event : callable, optional
        Called as ``on_event("order" | "fill" | "account" | "position", payload)``.
    """

    def __init__(
        self,
        markets: Mapping[str, MarketData],
        *,
        balances: Mapping[str, Decimal | float | int | str] | None = None,
        futures_balance: Decimal | float | int | str | None = None,
        fees: FeeSchedule | None = None,
        leverage: int = 10,
        client_oid_window_ms: int | None = 2 * 3_600_000,
        funding_interval_h: int = 8,
        on_event: EventSink | None = None,
    ) -> None:
        self.markets = dict(markets)
        self.fees = fees or FeeSchedule()
        self.leverage = int(leverage)
        self.client_oid_window_ms = client_oid_window_ms
        self.funding_interval_ms = int(funding_interval_h) * 3_600_000
        self.on_event = on_event
        self.account = Account()
        for coin, amount in (balances or {"USDT": 100_000}).items():
            self.account.coin(coin.upper())[0] = Decimal(str(amount))
        usdt = self.account.coin("USDT")[0]
        self.account.mix_available = (
            Decimal(str(futures_balance)) if futures_balance is not None else usdt
        )
        self.orders: dict[str, SimOrder] = {}  # open + recently finished, by orderId
        self.accepted = 0  # every order ever accepted
        self._by_oid: dict[tuple[Market, str], str] = {}
        self._finished: deque[tuple[int, str]] = deque()  # (final at ms, orderId), in order
        self._open: dict[str, SimOrder] = {}
        # In trade-id order (_fill numbers and appends each fill at once): the REST fill
        # listings walk it backwards instead of sorting.
        self.fills: deque[SimFill] = deque(maxlen=1_000_000)
        self._order_ids = itertools.count(1_200_000_000_000_000_001)
        self._trade_ids = itertools.count(1_300_000_000_000_000_001)
        self._now_ms = 0
        self._funding_checked_ms: int | None = None

    # -- helpers ---------------------------------------------------------------------------
    def _market(self, symbol: Any) -> MarketData:
        if not symbol:
            raise missing("symbol")
        md = self.markets.get(str(symbol).upper())
        if md is None:
            raise ApiError("40034", f"Parameter {symbol} does not exist")
        return md

    def _emit(self, kind: str, payload: dict[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(kind, payload)

    def _check_oid(self, market: Market, raw: Any, now_ms: int) -> str:
        if raw is None or raw == "":
            # Bitget fills in a clientOid when none is sent; the simulator makes one up.
            return f"sim{next(self._order_ids)}"
        oid = str(raw)
        if len(oid) >= 50:
            raise ApiError("40304", "clientOid length must be less than 50")
        if not _OID.match(oid):
            raise ApiError("40305", "clientOid only supports 0-9 a-z A-Z - + _ #")
        prior = self._by_oid.get((market, oid))
        if prior is not None:
            order = self.orders[prior]
            window = self.client_oid_window_ms
            if order.is_open or window is None or now_ms - order.c_time < window:
                # Modelling choice of bitget-api.md §6: spot 43118, futures 45034.
                if market == "spot":
                    raise ApiError("43118", "clientOrderId duplicate")
                raise ApiError("45034", "clientOid duplicate")
        return oid

    def find(self, market: Market, *, order_id: Any = None, client_oid: Any = None) -> SimOrder:
        """Return an order by ``orderId`` (wins) or ``clientOid``; raise the not-found error."""
        order: SimOrder | None = None
        if order_id:
            order = self.orders.get(str(order_id))
            if order is not None and order.market != market:
                order = None
        elif client_oid:
            oid = self._by_oid.get((market, str(client_oid)))
            order = self.orders.get(oid) if oid else None
        else:
            raise missing("orderId")
        if order is None:
            if market == "spot":
                raise ApiError("43001", "The order does not exist")
            raise ApiError("40109", "The data of the order cannot be found")
        return order

    # -- placing ---------------------------------------------------------------------------
    def _common(self, body: Mapping[str, Any], market: Market, now_ms: int) -> dict[str, Any]:
        md = self._market(body.get("symbol"))
        side = str(body.get("side") or "").lower()
        if side not in ("buy", "sell"):
            raise missing("side") if not side else invalid("side", side)
        otype = str(body.get("orderType") or "").lower()
        if otype not in ("limit", "market"):
            raise missing("orderType") if not otype else invalid("orderType", otype)
        force = str(body.get("force") or "").lower()
        if not force:
            if market == "spot" and otype == "limit":
                raise missing("force")
            force = "gtc"
        if force not in ("gtc", "post_only", "ioc", "fok"):
            raise invalid("force", force)
        if body.get("size") in (None, ""):
            raise missing("size")
        size = dec(body["size"], "size")
        if size <= 0:
            raise invalid("size", "must be > 0")
        price: Decimal | None = None
        if otype == "limit":
            if body.get("price") in (None, ""):
                raise missing("price")
            price = dec(body["price"], "price")
            if price <= 0:
                raise invalid("price", "must be > 0")
        oid = self._check_oid(market, body.get("clientOid"), now_ms)
        return {
            "md": md,
            "side": side,
            "otype": otype,
            "force": force,
            "size": size,
            "price": price,
            "oid": oid,
        }

    def _new_order(self, market: Market, p: dict[str, Any], now_ms: int, **extra: Any) -> SimOrder:
        order = SimOrder(
            order_id=str(next(self._order_ids)),
            client_oid=p["oid"],
            symbol=p["md"].symbol,
            market=market,
            side=p["side"],
            order_type=p["otype"],
            force=p["force"] if p["otype"] == "limit" else "gtc",
            price=p["price"],
            size=p["size"],
            c_time=now_ms,
            u_time=now_ms,
            checked_ms=now_ms,
            **extra,
        )
        self.orders[order.order_id] = order
        self._by_oid[(market, order.client_oid)] = order.order_id
        self.accepted += 1
        return order

    def place_spot(self, body: Mapping[str, Any], *, now_ms: int) -> SimOrder:
        """Place a spot order (body of ``POST /api/v2/spot/trade/place-order``)."""
        self.catch_up(now_ms)
        p = self._common(body, "spot", now_ms)
        md: MarketData = p["md"]
        size: Decimal = p["size"]
        price: Decimal | None = p["price"]
        last = Decimal(str(md.price_at(now_ms)))
        # Bitget spot minimum order value is 1 USDT for majors (code unverified).
        notional = (
            size
            if (p["otype"] == "market" and p["side"] == "buy")
            else size * (price if price is not None else last)
        )
        if notional < 1:
            raise ApiError("43006", "The order amount is less than the minimum trade amount 1 USDT")
        base, quote = self.account.coin(md.base_coin), self.account.coin(md.quote_coin)
        if p["side"] == "buy":
            need = size if p["otype"] == "market" else _q(size * price)  # type: ignore[operator]
            wallet = quote
        else:
            need = size
            wallet = base
        if wallet[0] < need:
            raise ApiError("43012", "Insufficient balance")
        wallet[0] -= need
        wallet[1] += need
        order = self._new_order(
            "spot",
            p,
            now_ms,
            frozen=need,
            fee_coin=(md.base_coin if p["side"] == "buy" else md.quote_coin),
        )
        self._execute_new(order, md, now_ms)
        return order

    def place_mix(self, body: Mapping[str, Any], *, now_ms: int) -> SimOrder:
        """Place a USDT-M futures order (body of ``POST /api/v2/mix/order/place-order``)."""
        self.catch_up(now_ms)
        product = str(body.get("productType") or "")
        if not product:
            raise missing("productType")
        if product.upper() != "USDT-FUTURES":
            raise invalid("productType", "the simulator trades USDT-FUTURES only")
        margin_coin = str(body.get("marginCoin") or "")
        if not margin_coin:
            raise missing("marginCoin")
        if margin_coin.upper() != "USDT":
            raise invalid("marginCoin", margin_coin)
        margin_mode = str(body.get("marginMode") or "")
        if not margin_mode:
            raise missing("marginMode")
        if margin_mode not in ("isolated", "crossed"):
            raise invalid("marginMode", margin_mode)
        p = self._common(body, "mix", now_ms)
        md: MarketData = p["md"]
        size: Decimal = p["size"]
        reduce_only = str(body.get("reduceOnly") or "NO").upper() == "YES"
        last = Decimal(str(md.price_at(now_ms)))
        px = p["price"] if p["price"] is not None else last
        if size * px < 5:  # Bitget USDT-M minimum order value 5 USDT (code unverified)
            raise ApiError("45110", "less than the minimum order quantity 5 USDT")
        pos = self.account.positions.get(md.symbol)
        signed = size if p["side"] == "buy" else -size
        if reduce_only:
            if (
                pos is None
                or pos.size == 0
                or (pos.size > 0) == (signed > 0)
                or size > abs(pos.size)
            ):
                raise ApiError("22002", "No position to close")  # code unverified
            frozen = _ZERO
        else:
            opening = size
            if pos is not None and pos.size != 0 and (pos.size > 0) != (signed > 0):
                opening = max(size - abs(pos.size), _ZERO)
            rate = self.fees.mix_taker
            frozen = _q(opening * px / self.leverage + size * px * rate)
            if frozen > self.account.mix_available:
                raise ApiError("40762", "The order amount exceeds the balance")
        self.account.mix_available -= frozen
        self.account.mix_locked += frozen
        order = self._new_order(
            "mix",
            p,
            now_ms,
            frozen=frozen,
            reduce_only=reduce_only,
            fee_coin="USDT",
            margin_mode=margin_mode,
            margin_coin="USDT",
            trade_side=str(body.get("tradeSide") or ""),
        )
        self._execute_new(order, md, now_ms)
        return order

    # -- execution -------------------------------------------------------------------------
    def _execute_new(self, order: SimOrder, md: MarketData, now_ms: int) -> None:
        bids, asks = md.book(now_ms, 150)
        levels = asks if order.side == "buy" else bids
        best = levels[0][0]
        limit = order.price
        marketable = order.order_type == "market" or (
            limit is not None
            and (
                limit >= Decimal(str(best)) if order.side == "buy" else limit <= Decimal(str(best))
            )
        )
        if order.force == "post_only" and order.order_type == "limit" and marketable:
            self._cancel(order, now_ms, reason="post_only")  # would take liquidity
            return
        if marketable:
            takes = self._walk(order, levels, limit)
            if order.force == "fok" and order.order_type == "limit":
                want = order.size
                if sum((q for _, q in takes), _ZERO) < want:
                    self._cancel(order, now_ms, reason="fok")
                    return
            for px, qty in takes:
                self._fill(order, md, px, qty, "taker", now_ms)
            if order.is_open and (order.order_type == "market" or order.force in ("ioc", "fok")):
                self._cancel(order, now_ms, reason="ioc" if order.force == "ioc" else "market")
                return
        elif order.force in ("ioc", "fok"):
            self._cancel(order, now_ms, reason=order.force)
            return
        if order.is_open:
            self._open[order.order_id] = order
            self._emit("order", {"order": order})

    def _walk(
        self, order: SimOrder, levels: list[tuple[float, float]], limit: Decimal | None
    ) -> list[tuple[Decimal, Decimal]]:
        # Spot market buys spend a quote amount; everything else is a base quantity.
        by_quote = order.market == "spot" and order.order_type == "market" and order.side == "buy"
        remaining = order.size
        out: list[tuple[Decimal, Decimal]] = []
        for p_f, q_f in levels:
            px, avail = Decimal(str(p_f)), Decimal(str(q_f))
            if limit is not None and (px > limit if order.side == "buy" else px < limit):
                break
            if by_quote:
                qty = min(avail, _q(remaining / px))
                remaining -= _q(qty * px)
            else:
                qty = min(avail, remaining)
                remaining -= qty
            if qty > 0:
                out.append((px, qty))
            if remaining <= 0 or (by_quote and remaining < px * _Q8):
                break
        return out

    def _fill(
        self, order: SimOrder, md: MarketData, px: Decimal, qty: Decimal, scope: str, now_ms: int
    ) -> None:
        quote_amt = _q(px * qty)
        rate = self.fees.rate(order.market, scope)
        fill = SimFill(
            trade_id=str(next(self._trade_ids)),
            order_id=order.order_id,
            symbol=order.symbol,
            market=order.market,
            side=order.side,
            price=px,
            size=qty,
            quote=quote_amt,
            fee=_ZERO,
            fee_coin=order.fee_coin,
            scope=scope,
            time_ms=now_ms,
            trade_side=order.trade_side,
            order_type=order.order_type,
        )
        if order.market == "spot":
            base, quote = self.account.coin(md.base_coin), self.account.coin(md.quote_coin)
            if order.side == "buy":
                fee = _q(qty * rate)
                spend = quote_amt
                quote[1] -= spend
                order.frozen -= spend
                base[0] += qty - fee
            else:
                fee = _q(quote_amt * rate)
                base[1] -= qty
                order.frozen -= qty
                quote[0] += quote_amt - fee
        else:
            fee = _q(quote_amt * rate)
            fill.profit = self._apply_position(order, md, px, qty, fee, now_ms)
            order.profit += fill.profit
        fill.fee = fee
        order.fee += fee
        order.filled_size += qty
        order.filled_quote += quote_amt
        order.u_time = now_ms
        full = (
            order.filled_quote >= order.size - px * _Q8
            if order.market == "spot" and order.order_type == "market" and order.side == "buy"
            else order.filled_size >= order.size
        )
        order.status = "filled" if full else "partially_filled"
        order.fills.append(fill)
        self.fills.append(fill)
        if not order.is_open:
            self._release(order, md)
            self._open.pop(order.order_id, None)
            self._finished.append((now_ms, order.order_id))
        self._emit("fill", {"fill": fill, "order": order})
        self._emit("order", {"order": order})

    def _apply_position(
        self, order: SimOrder, md: MarketData, px: Decimal, qty: Decimal, fee: Decimal, now_ms: int
    ) -> Decimal:
        acct = self.account
        pos = acct.positions.setdefault(md.symbol, Position(md.symbol, c_time=now_ms))
        signed = qty if order.side == "buy" else -qty
        # Release the margin this fill's share of the order froze; the position takes its own.
        share = _q(order.frozen * qty / max(order.size - order.filled_size, qty))
        order.frozen -= share
        acct.mix_locked -= share
        acct.mix_available += share
        profit = _ZERO
        if pos.size != 0 and (pos.size > 0) != (signed > 0):
            closed = min(qty, abs(pos.size))
            direction = Decimal(1) if pos.size > 0 else Decimal(-1)
            profit = _q(closed * (px - pos.entry) * direction)
            released = _q(pos.margin * closed / abs(pos.size))
            pos.margin -= released
            pos.size += closed if pos.size < 0 else -closed
            acct.mix_available += released + profit
            pos.achieved += profit
            rest = qty - closed
            if pos.size == 0:
                pos.entry = _ZERO
                pos.margin = _ZERO
            if rest > 0:
                pos.size = rest if signed > 0 else -rest
                pos.entry = px
                pos.margin = _q(rest * px / self.leverage)
                acct.mix_available -= pos.margin
        else:
            new_abs = abs(pos.size) + qty
            pos.entry = _q((abs(pos.size) * pos.entry + qty * px) / new_abs)
            margin = _q(qty * px / self.leverage)
            pos.margin += margin
            pos.size += signed
            acct.mix_available -= margin
        acct.mix_available -= fee
        pos.total_fee += fee
        pos.u_time = now_ms
        self._emit("position", {"position": pos})
        return profit

    def _release(self, order: SimOrder, md: MarketData) -> None:
        if order.frozen <= 0:
            order.frozen = _ZERO
            return
        if order.market == "spot":
            coin = md.quote_coin if order.side == "buy" else md.base_coin
            wallet = self.account.coin(coin)
            wallet[1] -= order.frozen
            wallet[0] += order.frozen
        else:
            self.account.mix_locked -= order.frozen
            self.account.mix_available += order.frozen
        order.frozen = _ZERO

    def _cancel(self, order: SimOrder, now_ms: int, *, reason: str = "") -> None:
        order.status = "cancelled"
        order.cancel_reason = reason
        order.u_time = now_ms
        self._release(order, self.markets[order.symbol])
        self._open.pop(order.order_id, None)
        self._finished.append((now_ms, order.order_id))
        self._emit("order", {"order": order})

    def cancel(self, market: Market, body: Mapping[str, Any], *, now_ms: int) -> SimOrder:
        """Cancel by ``orderId`` or ``clientOid``; raise Bitget's error if nothing to cancel."""
        self.catch_up(now_ms)
        self._market(body.get("symbol"))
        if market == "mix" and not body.get("productType"):
            raise missing("productType")
        if not body.get("orderId") and not body.get("clientOid"):
            raise missing("orderId")
        try:
            order = self.find(
                market, order_id=body.get("orderId"), client_oid=body.get("clientOid")
            )
        except ApiError:
            if market == "mix":
                raise ApiError("40768", "Order does not exist") from None  # unverified code
            raise
        if not order.is_open:
            # "no order to cancel": 43004 (spot) / 22001 (futures); mapping unverified.
            if market == "spot":
                raise ApiError("43004", "There is no order to cancel")
            raise ApiError("22001", "No order to cancel")
        self._cancel(order, now_ms, reason="user")
        return order

    # -- time ------------------------------------------------------------------------------
    def catch_up(self, now_ms: int) -> None:
        """Fill resting orders the path traded through, and settle funding, up to ``now_ms``."""
        if now_ms <= self._now_ms:
            return
        if self._funding_checked_ms is None:
            self._funding_checked_ms = now_ms
        events: list[tuple[int, int, SimOrder | None]] = []
        for order in list(self._open.values()):
            md = self.markets[order.symbol]
            assert order.price is not None
            hit = md.first_cross(
                order.checked_ms, now_ms, float(order.price), below=order.side == "buy"
            )
            if hit is not None:
                events.append((hit, int(order.order_id), order))
            else:
                order.checked_ms = now_ms
        interval = self.funding_interval_ms
        t = self.next_funding_ms(self._funding_checked_ms)
        while t <= now_ms:
            events.append((t, 0, None))
            t += interval
        for when, _, maybe_order in sorted(events, key=lambda e: (e[0], e[1])):
            if maybe_order is None:
                self._settle_funding(when)
            elif maybe_order.is_open:
                md = self.markets[maybe_order.symbol]
                assert maybe_order.price is not None
                remaining = maybe_order.size - maybe_order.filled_size
                self._fill(maybe_order, md, maybe_order.price, remaining, "maker", when)
                maybe_order.checked_ms = when
        self._funding_checked_ms = now_ms
        self._now_ms = now_ms
        self._prune(now_ms)

    def _prune(self, now_ms: int) -> None:
        # Forget orders final for a whole clientOid window: their clientOid is free again
        # (see _check_oid: reserved for `window` after creation, and creation <= final).
        window = self.client_oid_window_ms
        if window is None:
            return
        while self._finished and self._finished[0][0] + window <= now_ms:
            _, order_id = self._finished.popleft()
            order = self.orders.pop(order_id, None)
            if order is None:
                continue
            key = (order.market, order.client_oid)
            if self._by_oid.get(key) == order_id:
                del self._by_oid[key]

    def _settle_funding(self, when_ms: int) -> None:
        for symbol, pos in self.account.positions.items():
            if pos.size == 0:
                continue
            md = self.markets[symbol]
            rate = Decimal(str(md.funding_rate(when_ms, self.funding_interval_ms)))
            mark = Decimal(str(md.price_at(when_ms)))
            payment = _q(-pos.size * mark * rate)
            self.account.mix_available += payment
            self.account.funding_paid -= payment
            pos.u_time = when_ms

    # -- views -----------------------------------------------------------------------------
    def next_funding_ms(self, now_ms: int) -> int:
        """Return the first funding time strictly after ``now_ms`` (Unix ms)."""
        interval = self.funding_interval_ms
        return (now_ms // interval + 1) * interval

    def open_orders(self, market: Market, symbol: str | None = None) -> list[SimOrder]:
        """Open orders, newest first."""
        out = [o for o in self._open.values() if o.market == market]
        if symbol:
            out = [o for o in out if o.symbol == symbol.upper()]
        return sorted(out, key=lambda o: int(o.order_id), reverse=True)

    def unrealized(self, symbol: str, now_ms: int) -> Decimal:
        """Unrealised PnL of the futures position in ``symbol`` at the current price."""
        pos = self.account.positions.get(symbol)
        if pos is None or pos.size == 0:
            return _ZERO
        mark = Decimal(str(self.markets[symbol].price_at(now_ms)))
        return _q(pos.size * (mark - pos.entry))
