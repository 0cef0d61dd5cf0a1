"""Vendor payloads (the examples of bitget-api.md section 3, verbatim) → our types."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chimera_lab.errors import ExchangeError
from chimera_lab.exchange.base import (
    Liquidity,
    MarginMode,
    OrderStatus,
    OrderType,
    PositionSide,
    Product,
    Side,
    candles_to_frame,
)
from chimera_lab.exchange.endpoints import ENDPOINTS, granularity, ws_candle_channel
from chimera_lab.exchange.parsing import (
    datetime_to_ms,
    ms_to_datetime,
    parse_ack,
    parse_balance,
    parse_candles,
    parse_fill,
    parse_funding_history,
    parse_funding_rate,
    parse_open_interest,
    parse_order,
    parse_order_book,
    parse_position,
    parse_ticker,
    parse_trade,
)
from chimera_lab.frames import validate_ohlcv


def loads(text: str) -> object:
    return json.loads(text, parse_float=Decimal)


def test_candles_spot_8_and_futures_7_columns_sorted_and_deduplicated() -> None:
    spot = [
        ["1695835860000", "26194.5", "26200", "26190", "26199", "1.5", "39291.5", "39291.6"],
        ["1695835800000", "26210.5", "26210.5", "26194.5", "26194.5", "26.26", "1", "687897.63"],
        ["1695835860000", "26194.5", "26201", "26190", "26200", "1.6", "41920", "41920.1"],
    ]
    candles = parse_candles(spot, "BTCUSDT", "1m", product=Product.SPOT)
    assert [c.timestamp.minute for c in candles] == [30, 31]
    assert candles[0].quote_volume == 687897.63  # spot: quoteVolume is column 7
    assert candles[1].close == 26200.0  # the later duplicate wins
    mix = loads('[["1695835800000","26210.5","26210.5","26194.5","26194.5","26.26","687897.63"]]')
    (c,) = parse_candles(mix, "BTCUSDT", "1m", product=Product.USDT_FUTURES)
    assert (c.open, c.high, c.low, c.close, c.volume, c.quote_volume) == (
        26210.5, 26210.5, 26194.5, 26194.5, 26.26, 687897.63,
    )  # fmt: skip
    assert parse_candles([], "BTCUSDT", "1m", product=Product.SPOT) == []
    assert parse_candles(None, "BTCUSDT", "1m", product=Product.SPOT) == []


def test_candle_closed_flag_uses_server_time() -> None:
    rows = [["60000", "1", "1", "1", "1", "0", "0"], ["120000", "1", "1", "1", "1", "0", "0"]]
    candles = parse_candles(rows, "X", "1m", product=Product.USDT_FUTURES, now_ms=150_000)
    assert [c.closed for c in candles] == [True, False]
    candles = parse_candles(rows, "X", "1m", product=Product.USDT_FUTURES, now_ms=180_000)
    assert [c.closed for c in candles] == [True, True]


@pytest.mark.parametrize(
    "row",
    [["1", "2"], "not a row", ["x", "1", "1", "1", "1", "1", "1"], ["1", "a", "1", "1", "1", "1"]],
)
def test_malformed_candle_rows_raise_exchange_error(row: object) -> None:
    with pytest.raises(ExchangeError, match="unexpected Bitget payload"):
        parse_candles([row], "X", "1m", product=Product.SPOT)


@pytest.mark.parametrize("row", [5, None, 1.5, {"ts": "1"}, b"1,2,3,4,5,6,7"])
@pytest.mark.parametrize("product", [Product.SPOT, Product.USDT_FUTURES])
def test_candle_rows_that_are_not_lists_raise_exchange_error(row: object, product: Product) -> None:
    # Not a TypeError from len(): the payload is the exchange's fault, say so.
    with pytest.raises(ExchangeError, match="a candle row of 7 or 8 columns"):
        parse_candles([row], "X", "1m", product=product, now_ms=0)


def test_candles_to_frame_follows_the_ohlcv_convention() -> None:
    rows = [[str(60_000 * i), "1", "2", "0.5", "1.5", "3", "4"] for i in range(5)]
    frame = candles_to_frame(parse_candles(rows, "X", "1m", product=Product.USDT_FUTURES))
    validate_ohlcv(frame, name="bitget")
    assert str(frame.index.dtype) == "datetime64[ns, UTC]" and frame.index.name == "timestamp"
    assert len(frame) == 5


def test_spot_ticker_example() -> None:
    data = loads(
        '[{"symbol":"BTCUSDT","high24h":"37775.65","open":"35134.2","low24h":"34413.1",'
        '"lastPr":"34413.1","quoteVolume":"0","baseVolume":"0","usdtVolume":"0","bidPr":"0",'
        '"askPr":"0","bidSz":"0.0663","askSz":"0.0119","openUtc":"23856.72",'
        '"ts":"1625125755277","changeUtc24h":"0.00301","change24h":"0.00069"}]'
    )
    t = parse_ticker(data, "BTCUSDT")
    assert t.last == Decimal("34413.1") and t.open_24h == Decimal("35134.2")
    assert t.bid is None and t.ask is None  # "0" means an empty side
    assert t.change_24h == Decimal("0.00069")
    assert t.timestamp == datetime(2021, 7, 1, 7, 49, 15, 277000, tzinfo=UTC)


def test_futures_ticker_has_mark_index_and_funding() -> None:
    data = [
        {"symbol": "BTCUSDT", "lastPr": "27000.5", "bidPr": "27000", "askPr": "27001",
         "open24h": "26000", "markPrice": "27000.1", "indexPrice": "26999.9",
         "fundingRate": "0.0001", "ts": "1695793390482"}
    ]  # fmt: skip
    t = parse_ticker(data, "BTCUSDT")
    assert (t.bid, t.ask, t.mark_price, t.funding_rate) == (
        Decimal("27000"), Decimal("27001"), Decimal("27000.1"), Decimal("0.0001"),
    )  # fmt: skip


def test_order_books_with_strings_and_numbers() -> None:
    spot = loads(
        '{"asks":[["34567.15","0.0131"],["34567.25","0.0144"]],'
        '"bids":[["34567","0.2917"],["34566.85","0.0145"]],"ts":"1698303884584"}'
    )
    book = parse_order_book(spot, "BTCUSDT")
    assert book.best_bid == Decimal("34567") and book.best_ask == Decimal("34567.15")
    mix = loads(
        '{"asks":[[26347.5,0.25],[26348.0,0.16]],"bids":[[26346.5,0.16],[26346.0,0.32]],'
        '"ts":"1695870968804","scale":"0.1","precision":"scale0","isMaxPrecision":"NO"}'
    )
    book = parse_order_book(mix, "BTCUSDT")
    assert book.asks[0] == (Decimal("26347.5"), Decimal("0.25"))
    assert [p for p, _ in book.bids] == [Decimal("26346.5"), Decimal("26346.0")]


def test_spot_order_detail_example() -> None:
    data = loads(
        '[{"userId":"1","symbol":"BTCUSDT","orderId":"2","clientOid":"c3","price":"0",'
        '"size":"10","orderType":"market","side":"buy","status":"filled","priceAvg":"13000",'
        '"baseVolume":"0.0007","quoteVolume":"9.1","enterPointSource":"API",'
        '"feeDetail":"{\\"newFees\\":{\\"c\\":0,\\"d\\":0,\\"deduction\\":false,\\"r\\":-0.0000007,'
        '\\"t\\":-0.0000007,\\"totalDeductionFee\\":0}}","orderSource":"market",'
        '"cancelReason":"","cTime":"1695865232127","uTime":"1695865233051"}]'
    )
    o = parse_order(data, Product.SPOT)
    assert (o.order_id, o.client_oid, o.side, o.order_type) == (
        "2",
        "c3",
        Side.BUY,
        OrderType.MARKET,
    )
    assert o.status is OrderStatus.FILLED and o.status.is_final
    assert o.price is None and o.filled_size == Decimal("0.0007")
    assert o.average_price == Decimal("13000") and o.fee == Decimal("0.0000007")


def test_futures_order_detail_reads_state_or_status() -> None:
    item = {
        "symbol": "BTCUSDT", "size": "0.01", "orderId": "7", "clientOid": "x", "baseVolume": "0",
        "priceAvg": "", "fee": "0", "price": "25000", "state": "live", "side": "sell",
        "force": "post_only", "orderType": "limit", "reduceOnly": "YES", "cTime": "1",
        "uTime": "2",
    }  # fmt: skip
    o = parse_order(item, Product.USDT_FUTURES)
    assert o.status is OrderStatus.OPEN and o.reduce_only and o.average_price is None
    item["state"] = "canceled"
    assert parse_order(item, Product.USDT_FUTURES).status is OrderStatus.CANCELLED
    item["state"] = "weird"
    odd = parse_order(item, Product.USDT_FUTURES)
    assert odd.status is OrderStatus.UNKNOWN and odd.raw_status == "weird"


def test_fills_spot_object_fee_and_futures_list_fee() -> None:
    spot = {
        "userId": "1", "symbol": "BTCUSDT", "orderId": "2", "tradeId": "3", "orderType": "limit",
        "side": "buy", "priceAvg": "13000", "size": "0.0007", "amount": "9.1",
        "feeDetail": {"deduction": "no", "feeCoin": "BTC", "totalDeductionFee": "",
                      "totalFee": "-0.0000007"},
        "tradeScope": "taker", "cTime": "1695865232127", "uTime": "1695865233051",
    }  # fmt: skip
    f = parse_fill(spot, Product.SPOT)
    assert (f.price, f.size, f.fee, f.fee_coin) == (
        Decimal("13000"), Decimal("0.0007"), Decimal("0.0000007"), "BTC",
    )  # fmt: skip
    assert f.liquidity is Liquidity.TAKER
    mix = {
        "tradeId": "9", "symbol": "BTCUSDT", "orderId": "8", "price": "26000",
        "baseVolume": "0.01", "side": "sell", "quoteVolume": "260", "profit": "0",
        "feeDetail": [{"deduction": "no", "feeCoin": "USDT", "totalDeductionFee": "0",
                       "totalFee": "-0.156"}],
        "tradeSide": "open", "posMode": "one_way_mode", "tradeScope": "maker", "cTime": "1",
    }  # fmt: skip
    f = parse_fill(mix, Product.USDT_FUTURES)
    assert (f.price, f.size, f.fee, f.liquidity) == (
        Decimal("26000"), Decimal("0.01"), Decimal("0.156"), Liquidity.MAKER,
    )  # fmt: skip


def test_balances_and_positions() -> None:
    spot = parse_balance(
        {"coin": "USDT", "available": "0", "frozen": "0", "locked": "0", "limitAvailable": "0",
         "uTime": "1622697148"},
        Product.SPOT,
    )  # fmt: skip
    assert spot.total == 0
    fut = parse_balance(
        {"marginCoin": "USDT", "locked": "1", "available": "99", "accountEquity": "101.5",
         "unrealizedPL": "1.5"},
        Product.USDT_FUTURES,
    )  # fmt: skip
    assert fut.total == Decimal("101.5") and fut.unrealized_pnl == Decimal("1.5")
    pos = parse_position(
        {"marginCoin": "USDT", "symbol": "BTCUSDT", "holdSide": "long", "openDelegateSize": "0.01",
         "marginSize": "9.67", "available": "0.01", "locked": "0.09", "total": "0.01",
         "leverage": "20", "achievedProfits": "0", "openPriceAvg": "25000",
         "marginMode": "isolated", "posMode": "hedge_mode", "unrealizedPL": "1",
         "liquidationPrice": "24144.11", "markPrice": "25100", "cTime": "1691382137448",
         "uTime": "1691382137999"}
    )  # fmt: skip
    assert pos.side is PositionSide.LONG and pos.margin_mode is MarginMode.ISOLATED
    assert pos.liquidation_price == Decimal("24144.11") and pos.leverage == 20
    no_liq = parse_position(
        {"symbol": "X", "holdSide": "short", "total": "1", "liquidationPrice": "-1"}
    )
    assert no_liq.liquidation_price is None


def test_funding_open_interest_ack_trade() -> None:
    rate = parse_funding_rate(
        [{"symbol": "BTCUSDT", "fundingRate": "0.000068", "fundingRateInterval": "8",
          "nextUpdate": "1743062400000", "minFundingRate": "-0.003", "maxFundingRate": "0.003"}],
        "BTCUSDT",
    )  # fmt: skip
    assert rate.rate == Decimal("0.000068") and rate.interval_hours == 8
    assert rate.next_funding_time == datetime(2025, 3, 27, 8, tzinfo=UTC)
    history = parse_funding_history(
        [{"symbol": "BTCUSDT", "fundingRate": "0.0005", "fundingTime": "1695776400000"},
         {"symbol": "BTCUSDT", "fundingRate": "0.0004", "fundingTime": "1695747600000"}],
        "BTCUSDT",
    )  # fmt: skip
    assert [r.rate for r in history] == [Decimal("0.0004"), Decimal("0.0005")]  # oldest first
    oi = parse_open_interest(
        {"openInterestList": [{"symbol": "BTCUSDT", "size": "34278.06"}], "ts": "1695796781616"},
        "BTCUSDT",
    )
    assert oi.size == Decimal("34278.06")
    assert parse_ack({"orderId": "1001", "clientOid": "121211212122"}).order_id == "1001"
    with pytest.raises(ExchangeError):
        parse_ack({"orderId": "", "clientOid": "x"})
    trade = parse_trade(
        {"ts": "1695709835822", "price": "26293.4", "size": "0.0013", "side": "buy",
         "tradeId": "1111"},
        "BTCUSDT",
    )  # fmt: skip
    assert trade.side is Side.BUY and trade.price == Decimal("26293.4")


@settings(max_examples=50)
@given(st.integers(min_value=0, max_value=4_102_444_800_000))
def test_millisecond_round_trip(ms: int) -> None:
    assert datetime_to_ms(ms_to_datetime(ms)) == ms
    assert datetime_to_ms(ms_to_datetime(str(ms))) == ms


def test_granularities_and_channels_per_product() -> None:
    assert granularity("1m", Product.SPOT) == "1min"
    assert granularity("1m", Product.USDT_FUTURES) == "1m"
    assert granularity("4h", Product.SPOT) == "4h"
    assert granularity("4h", Product.USDT_FUTURES) == "4H"
    assert granularity("1hour", Product.USDT_FUTURES) == "1H"  # aliases accepted
    assert granularity("1d", Product.USDT_FUTURES) == "1Dutc"
    assert ws_candle_channel("1m") == "candle1m" and ws_candle_channel("1d") == "candle1Dutc"


def test_endpoint_table_matches_the_reference() -> None:
    spot = {name: ep for (name, product), ep in ENDPOINTS.items() if product is Product.SPOT}
    mix = {name: ep for (name, product), ep in ENDPOINTS.items() if product is not Product.SPOT}
    assert spot["place_order"].path == "/api/v2/spot/trade/place-order"
    assert mix["place_order"].path == "/api/v2/mix/order/place-order"
    assert mix["orderbook"].path == "/api/v2/mix/market/merge-depth"
    assert mix["positions"].limit_per_s == 5 and mix["order_detail"].limit_per_s == 10
    assert spot["order_detail"].limit_per_s == 20
    assert {ep.group for ep in ENDPOINTS.values()} == {"market", "trade", "account"}
    assert all(ep.signed == (ep.group != "market") for ep in ENDPOINTS.values())
