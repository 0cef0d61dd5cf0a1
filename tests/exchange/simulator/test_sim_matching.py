"""Matching engine: hand-computed fills, fees, balances, positions, forces and duplicates.

Bars are built by hand so every price is known: the intrabar path of an up bar is
open -> low -> high -> close, a third of the bar each.
"""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pandas as pd
import pytest

from chimera_lab.exchange.simulator.api import ApiError
from chimera_lab.exchange.simulator.engine import FeeSchedule, MatchingEngine
from chimera_lab.exchange.simulator.market import MarketData

T0 = pd.Timestamp("2024-01-01", tz="UTC")
MIN = 60_000


def _bars(rows: list[tuple[float, float, float, float]]) -> pd.DataFrame:
    idx = pd.date_range(T0, periods=len(rows), freq="1min", name="timestamp", unit="ns")
    df = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=idx)
    df["volume"] = 10.0
    return df


# Bar 0 flat at 100; bar 1 up: 100 -> low 95 -> high 110 -> close 105; bar 2 flat at 105.
BARS = _bars([(100, 100, 100, 100), (100, 110, 95, 105), (105, 105, 105, 105)] + [(105,) * 4] * 50)


def _engine(**kw: Any) -> tuple[MatchingEngine, int]:
    md = MarketData("BTCUSDT", BARS, price_decimals=2, level_notional=1_000_000.0)
    kw.setdefault("balances", {"USDT": D(10_000), "BTC": D(1)})
    kw.setdefault("fees", FeeSchedule(D("0.001"), D("0.002"), D("0.0002"), D("0.0006")))
    eng = MatchingEngine({"BTCUSDT": md}, **kw)
    t = int(md.ts[0]) + 30_000  # mid bar 0, price 100, book 100.00 / 100.01
    eng.catch_up(t)
    return eng, t


def _spot(**body: Any) -> dict[str, Any]:
    base = {"symbol": "BTCUSDT", "force": "gtc"}
    return {**base, **{k: str(v) for k, v in body.items()}}


def test_resting_limit_buy_fills_as_maker_when_the_path_trades_through() -> None:
    eng, t = _engine()
    order = eng.place_spot(
        _spot(side="buy", orderType="limit", price=96, size=2, clientOid="b1"), now_ms=t
    )
    assert order.status == "live"
    assert eng.account.coin("USDT") == [D(10_000) - D(192), D(192)]  # 96 * 2 frozen
    eng.catch_up(int(BARS.index[1].value // 1_000_000))  # bar 1 opens at 100: nothing yet
    assert order.status == "live"
    eng.catch_up(int(BARS.index[2].value // 1_000_000))  # bar 1 went down to 95 < 96
    assert order.status == "filled"
    fill = order.fills[0]
    assert (fill.price, fill.size, fill.scope) == (D(96), D(2), "maker")
    # Maker fee 0.1 % charged in BTC (the coin received).
    assert fill.fee == D("0.002") and fill.fee_coin == "BTC"
    assert eng.account.coin("USDT") == [D(9_808), D(0)]
    assert eng.account.coin("BTC") == [D(1) + D(2) - D("0.002"), D(0)]
    # The fill happened on the down leg of bar 1 (open 100 -> low 95 in the first third).
    assert (
        int(BARS.index[1].value // 1_000_000)
        < fill.time_ms
        < int(BARS.index[1].value // 1_000_000) + MIN // 3 + 1
    )


def test_touching_the_price_is_not_trading_through() -> None:
    eng, t = _engine()
    order = eng.place_spot(_spot(side="buy", orderType="limit", price=95, size=1), now_ms=t)
    eng.catch_up(int(BARS.index[5].value // 1_000_000))  # low was exactly 95
    assert order.status == "live"


def test_market_buy_size_is_quote_and_sell_pays_fee_in_quote() -> None:
    eng, t = _engine()
    buy = eng.place_spot(_spot(side="buy", orderType="market", size=1000.1), now_ms=t)
    # Best ask 100.01; 1000.1 USDT buys 10 BTC; taker fee 0.2 % in BTC.
    assert buy.status == "filled"
    assert buy.filled_size == D(10) and buy.filled_quote == D("1000.1")
    assert buy.fee == D("0.02")
    assert eng.account.coin("USDT")[0] == D(10_000) - D("1000.1")
    sell = eng.place_spot(_spot(side="sell", orderType="market", size=5), now_ms=t)
    # Best bid 100.00: 500 USDT less 0.2 % = 499.
    assert sell.filled_quote == D(500) and sell.fee == D(1) and sell.fee_coin == "USDT"
    assert eng.account.coin("USDT")[0] == D(10_000) - D("1000.1") + D(499)


def test_post_only_ioc_and_fok() -> None:
    eng, t = _engine(balances={"USDT": D(10**9)})
    po = eng.place_spot(
        _spot(side="buy", orderType="limit", force="post_only", price=101, size=1), now_ms=t
    )
    assert po.status == "cancelled" and not po.fills  # would have taken liquidity
    assert eng.account.coin("USDT") == [D(10**9), D(0)]  # funds released
    # Book: level k at 100.01 + k*0.01 (1 bp of 100 rounds to one tick), sizes
    # (1e6 / 100) * (1 + k/5) = 10000, 12000, 14000 ... BTC.
    ioc = eng.place_spot(
        _spot(side="buy", orderType="limit", force="ioc", price="100.02", size=30_000), now_ms=t
    )
    assert ioc.status == "cancelled" and ioc.filled_size == D(22_000)
    assert [f.price for f in ioc.fills] == [D("100.01"), D("100.02")]
    fok = eng.place_spot(
        _spot(side="buy", orderType="limit", force="fok", price="100.02", size=30_000), now_ms=t
    )
    assert fok.status == "cancelled" and not fok.fills
    fok2 = eng.place_spot(
        _spot(side="buy", orderType="limit", force="fok", price="100.02", size=20_000), now_ms=t
    )
    assert fok2.status == "filled" and fok2.filled_size == D(20_000)


def test_duplicate_client_oid_and_bitget_errors() -> None:
    eng, t = _engine()
    eng.place_spot(
        _spot(side="buy", orderType="limit", price=90, size=1, clientOid="dup"), now_ms=t
    )
    cases = [
        (_spot(side="buy", orderType="limit", price=90, size=1, clientOid="dup"), "43118"),
        (_spot(side="buy", orderType="limit", price=90, size=1000), "43012"),
        (_spot(side="buy", orderType="limit", price=90, size="0.001"), "43006"),
        (_spot(side="buy", orderType="limit", size=1), "40019"),
        (_spot(side="hold", orderType="limit", price=1, size=1), "40020"),
        (_spot(side="buy", orderType="limit", price=90, size=1, clientOid="x" * 50), "40304"),
        (_spot(side="buy", orderType="limit", price=90, size=1, clientOid="a b"), "40305"),
    ]
    for body, code in cases:
        with pytest.raises(ApiError) as info:
            eng.place_spot(body, now_ms=t)
        assert info.value.code == code, body
    mix = {
        "symbol": "BTCUSDT",
        "productType": "USDT-FUTURES",
        "marginMode": "crossed",
        "marginCoin": "USDT",
        "side": "buy",
        "orderType": "limit",
        "price": "90",
        "size": "1",
        "clientOid": "dup",
    }
    eng.place_mix(mix, now_ms=t)  # spot and futures keep separate clientOid spaces
    with pytest.raises(ApiError) as info:
        eng.place_mix(mix, now_ms=t)
    assert info.value.code == "45034"
    # Cancel: unknown order, then a finished one.
    with pytest.raises(ApiError) as info:
        eng.cancel("spot", {"symbol": "BTCUSDT", "orderId": "1"}, now_ms=t)
    assert info.value.code == "43001"
    order = eng.cancel("spot", {"symbol": "BTCUSDT", "clientOid": "dup"}, now_ms=t)
    assert order.status == "cancelled"
    with pytest.raises(ApiError) as info:
        eng.cancel("spot", {"symbol": "BTCUSDT", "clientOid": "dup"}, now_ms=t)
    assert info.value.code == "43004"
    with pytest.raises(ApiError) as info:
        eng.cancel(
            "mix", {"symbol": "BTCUSDT", "productType": "USDT-FUTURES", "orderId": "42"}, now_ms=t
        )
    assert info.value.code == "40768"


def test_client_oid_is_reserved_for_the_window_then_free() -> None:
    eng, t = _engine(client_oid_window_ms=10 * MIN)
    first = eng.place_spot(_spot(side="buy", orderType="market", size=10, clientOid="w"), now_ms=t)
    assert first.status == "filled"
    with pytest.raises(ApiError):
        eng.place_spot(
            _spot(side="buy", orderType="market", size=10, clientOid="w"), now_ms=t + 9 * MIN
        )
    again = eng.place_spot(
        _spot(side="buy", orderType="market", size=10, clientOid="w"), now_ms=t + 11 * MIN
    )
    assert again.order_id != first.order_id


def test_finished_orders_are_forgotten_after_the_window_open_ones_never() -> None:
    eng, t = _engine(client_oid_window_ms=10 * MIN)
    for i in range(50):  # filled at once
        eng.place_spot(_spot(side="buy", orderType="market", size=10, clientOid=f"m{i}"), now_ms=t)
    for i in range(30):  # rests far below the market: stays open
        eng.place_spot(
            _spot(side="buy", orderType="limit", price=50, size="0.1", clientOid=f"o{i}"),
            now_ms=t,
        )
    for i in range(20):  # cancelled
        eng.place_spot(
            _spot(side="buy", orderType="limit", price=50, size="0.1", clientOid=f"c{i}"),
            now_ms=t,
        )
        eng.cancel("spot", {"symbol": "BTCUSDT", "clientOid": f"c{i}"}, now_ms=t)
    eng.catch_up(t + 9 * MIN)
    assert len(eng.orders) == eng.accepted == 100  # within the window: all kept
    eng.catch_up(t + 11 * MIN)
    assert sorted(o.client_oid for o in eng.orders.values()) == sorted(f"o{i}" for i in range(30))
    assert eng.accepted == 100 and len(eng._by_oid) == 30  # bounded bookkeeping
    with pytest.raises(ApiError) as info:
        eng.find("spot", client_oid="m0")
    assert info.value.code == "43001"
    assert len(eng.fills) == 50 and {f.order_type for f in eng.fills} == {"market"}
    eng.catch_up(t + 1_000 * MIN)
    assert len(eng.orders) == 30  # open orders are never forgotten
    # A forgotten clientOid is free again.
    again = eng.place_spot(
        _spot(side="buy", orderType="market", size=10, clientOid="m0"), now_ms=t + 1_000 * MIN
    )
    assert again.status == "filled" and eng.accepted == 101


def test_window_none_keeps_every_order() -> None:
    eng, t = _engine(client_oid_window_ms=None)
    for i in range(5):
        eng.place_spot(_spot(side="buy", orderType="market", size=10, clientOid=f"k{i}"), now_ms=t)
    eng.catch_up(t + 10_000 * MIN)
    assert len(eng.orders) == eng.accepted == 5


def test_futures_one_way_position_pnl_fees_and_funding() -> None:
    eng, t = _engine(leverage=10, futures_balance=D(10_000))
    body = {
        "symbol": "BTCUSDT",
        "productType": "USDT-FUTURES",
        "marginMode": "isolated",
        "marginCoin": "USDT",
        "orderType": "market",
    }
    eng.place_mix({**body, "side": "buy", "size": "10"}, now_ms=t)  # long 10 @ 100.01
    pos = eng.account.positions["BTCUSDT"]
    assert pos.size == D(10) and pos.entry == D("100.01")
    assert pos.margin == D("100.01")  # 1000.1 / 10
    fee_open = D("1000.1") * D("0.0006")
    assert eng.account.mix_available == D(10_000) - D("100.01") - fee_open
    # Move to bar 2 (price 105): sell 4 at the bid 105.00 realises (105 - 100.01) * 4.
    t2 = int(BARS.index[2].value // 1_000_000) + 1000
    close = eng.place_mix({**body, "side": "sell", "size": "4"}, now_ms=t2)
    assert close.profit == D("19.96")
    assert pos.size == D(6) and pos.margin == D("60.006")
    # Reduce-only larger than the position is refused; reduce-only in the same direction too.
    with pytest.raises(ApiError) as info:
        eng.place_mix({**body, "side": "sell", "size": "7", "reduceOnly": "YES"}, now_ms=t2)
    assert info.value.code == "22002"
    # Not enough margin.
    with pytest.raises(ApiError) as info:
        eng.place_mix({**body, "side": "buy", "size": "100000"}, now_ms=t2)
    assert info.value.code == "40762"
    # Funding at 08:00 UTC: the long pays size * price * rate.
    before = eng.account.mix_available
    md = eng.markets["BTCUSDT"]
    funding_t = int(T0.value // 1_000_000) + 8 * 3_600_000
    rate = D(str(md.funding_rate(funding_t, 8 * 3_600_000)))
    eng.catch_up(funding_t + 1)
    mark = D(str(md.price_at(funding_t)))
    assert eng.account.mix_available - before == (-D(6) * mark * rate).quantize(
        D("0.00000001"), rounding="ROUND_DOWN"
    )


def test_futures_flip_from_long_to_short() -> None:
    eng, t = _engine(leverage=5, futures_balance=D(10_000))
    body = {
        "symbol": "BTCUSDT",
        "productType": "USDT-FUTURES",
        "marginMode": "crossed",
        "marginCoin": "USDT",
        "orderType": "market",
    }
    eng.place_mix({**body, "side": "buy", "size": "2"}, now_ms=t)
    eng.place_mix({**body, "side": "sell", "size": "5"}, now_ms=t)
    pos = eng.account.positions["BTCUSDT"]
    assert pos.size == D(-3) and pos.entry == D(100)
    # Closing 2 longs at 100.00 after buying at 100.01 lost 0.02.
    assert pos.achieved == D("-0.02")
