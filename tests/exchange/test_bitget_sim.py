"""Every Exchange method of BitgetClient against the simulator, spot and USDT-M futures.

The simulator mirrors Bitget's paths, parameters and payloads (bitget-api.md), so this checks
that the client's requests are accepted and its parsers read the answers.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from chimera_lab.config import Settings
from chimera_lab.exchange import (
    BitgetClient,
    OrderRequest,
    OrderStatus,
    OrderType,
    PositionSide,
    Product,
    Side,
    TimeInForce,
)
from chimera_lab.exchange.parsing import datetime_to_ms
from chimera_lab.exchange.simulator import BitgetSimulator, FaultSpec

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

KEY, SECRET, PHRASE = "tour-key", "tour-secret-0123456789", "tour-passphrase"


def settings_for(sim: BitgetSimulator, product: str) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        bitget={
            "base_url": sim.base_url, "api_key": KEY, "api_secret": SECRET, "passphrase": PHRASE,
            "product": product, "rate_limit_margin_s": 0.0, "endpoint_limit_scale": 100.0,
            "rate_limit_per_second": 10_000,
        },
    )  # fmt: skip


def simulator() -> BitgetSimulator:
    return BitgetSimulator(
        history_bars=2_000, rate_limits=False, api_key=KEY, api_secret=SECRET, passphrase=PHRASE
    )


async def test_spot_tour() -> None:
    async with simulator() as sim, BitgetClient(settings_for(sim, "spot")) as ex:
        now = await ex.server_time()
        assert abs((now - now.now(now.tzinfo)).total_seconds()) < 5
        candles = await ex.get_candles("BTCUSDT", "5m", limit=10)
        assert len(candles) == 10 and candles[-1].timestamp > candles[0].timestamp
        end = candles[0].timestamp
        history = await ex.get_history_candles("BTCUSDT", "1m", end=end, limit=50)
        assert len(history) == 50 and history[-1].timestamp == end - timedelta(minutes=1)
        hourly = await ex.get_candles("BTCUSDT", "1h", limit=5)
        assert all(c.timestamp.minute == 0 for c in hourly)
        ticker = await ex.get_ticker("BTCUSDT")
        book = await ex.get_order_book("BTCUSDT", limit=5)
        assert len(book.bids) == len(book.asks) == 5
        assert book.best_bid is not None and book.best_ask is not None
        assert book.best_bid < book.best_ask and ticker.bid == book.best_bid

        price = (ticker.last * Decimal("0.9")).quantize(Decimal("0.01"))
        limit = await ex.place_order(
            OrderRequest("BTCUSDT", Side.BUY, OrderType.LIMIT, Decimal("0.01"), price=price,
                         force=TimeInForce.POST_ONLY)
        )  # fmt: skip
        order = await ex.get_order("BTCUSDT", order_id=limit.order_id)
        assert order.status is OrderStatus.OPEN and order.price == price
        assert [o.order_id for o in await ex.get_open_orders("BTCUSDT")] == [limit.order_id]
        usdt = {b.coin: b for b in await ex.get_balances()}["USDT"]
        assert usdt.frozen == price * Decimal("0.01")
        await ex.cancel_order("BTCUSDT", order_id=limit.order_id)
        assert (await ex.get_order("BTCUSDT", client_oid=limit.client_oid)).status.is_final

        market = await ex.place_order(
            OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, Decimal("1000"))
        )
        filled = await ex.get_order("BTCUSDT", order_id=market.order_id)
        assert filled.status is OrderStatus.FILLED and filled.average_price is not None
        fills = await ex.get_fills("BTCUSDT", order_id=market.order_id)
        assert fills and sum(f.size for f in fills) == filled.filled_size
        assert all(f.fee > 0 and f.fee_coin == "BTC" for f in fills)  # fees cost, paid in BTC
        btc = {b.coin: b for b in await ex.get_balances()}["BTC"]
        assert btc.available == filled.filled_size - sum(f.fee for f in fills)


async def test_futures_tour() -> None:
    async with simulator() as sim, BitgetClient(settings_for(sim, "usdt-futures")) as ex:
        candles = await ex.get_candles("BTCUSDT", "1m", limit=20)
        assert len(candles) == 20
        ticker = await ex.get_ticker("BTCUSDT")
        assert ticker.mark_price is not None and ticker.funding_rate is not None
        book = await ex.get_order_book("BTCUSDT", limit=5)
        assert len(book.bids) == 5 and book.best_bid is not None
        funding = await ex.get_funding_rate("BTCUSDT")
        assert funding.next_funding_time is not None and funding.interval_hours == 8
        history = await ex.get_funding_history("BTCUSDT", limit=5)
        stamps = [r.timestamp for r in history]
        assert 1 <= len(history) <= 5 and stamps == sorted(stamps)  # oldest first
        assert (await ex.get_open_interest("BTCUSDT")).size >= 0

        ack = await ex.place_order(
            OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, Decimal("0.05"))
        )
        order = await ex.get_order("BTCUSDT", order_id=ack.order_id)
        assert order.status is OrderStatus.FILLED and order.product is Product.USDT_FUTURES
        (position,) = await ex.get_positions("BTCUSDT")
        assert position.size == Decimal("0.05") and position.side in (
            PositionSide.LONG, PositionSide.NET,
        )  # fmt: skip
        fills = await ex.get_fills("BTCUSDT")
        assert fills and fills[-1].order_id == ack.order_id
        (account,) = await ex.get_balances()
        assert account.coin == "USDT" and account.equity is not None
        rest = OrderRequest(
            "BTCUSDT", Side.SELL, OrderType.LIMIT, Decimal("0.05"),
            price=(ticker.last * Decimal("1.2")).quantize(Decimal("0.1")), reduce_only=True,
        )  # fmt: skip
        resting = await ex.place_order(rest)
        assert [o.order_id for o in await ex.get_open_orders()] == [resting.order_id]
        await ex.cancel_order("BTCUSDT", client_oid=resting.client_oid)
        assert await ex.get_open_orders() == []


@pytest.mark.parametrize("product", ["spot", "usdt-futures"])
async def test_client_oid_with_hash_and_plus_places_finds_and_cancels(product: str) -> None:
    # '#' and '+' are allowed in a clientOid (bitget-api.md section 6); a GET by clientOid is
    # signed over the raw query while the URL carries it percent-encoded.
    async with simulator() as sim, BitgetClient(settings_for(sim, product)) as ex:
        oid = "a+b#c-1_2"
        ticker = await ex.get_ticker("BTCUSDT")
        price = (ticker.last * Decimal("0.8")).quantize(Decimal("0.1"))
        ack = await ex.place_order(
            OrderRequest("BTCUSDT", Side.BUY, OrderType.LIMIT, Decimal("0.01"), price=price,
                         force=TimeInForce.POST_ONLY, client_oid=oid)
        )  # fmt: skip
        assert ack.client_oid == oid and not ack.recovered
        found = await ex.get_order("BTCUSDT", client_oid=oid)
        assert found.order_id == ack.order_id and found.client_oid == oid
        assert [o.client_oid for o in await ex.get_open_orders("BTCUSDT")] == [oid]
        await ex.cancel_order("BTCUSDT", client_oid=oid)
        assert (await ex.get_order("BTCUSDT", client_oid=oid)).status is OrderStatus.CANCELLED
    assert [o.client_oid for o in sim.orders] == [oid]


@pytest.mark.parametrize("product", ["spot", "usdt-futures"])
async def test_newest_recent_candle_is_forming_while_replaying_old_data(product: str) -> None:
    # The simulator replays 2024 (stepped clock) while its wall clock says today: the
    # envelope's requestTime is market time, so the open bar is not reported closed.
    async with simulator() as sim, BitgetClient(settings_for(sim, product)) as ex:
        assert sim.clock.now.year == 2024
        candles = await ex.get_candles("BTCUSDT", "1m", limit=3)
        assert [c.closed for c in candles] == [True, True, False]
        assert datetime_to_ms(candles[-1].timestamp) == sim.clock.now_ms  # the open bar
        sim.clock.advance(seconds=90)
        candles = await ex.get_candles("BTCUSDT", "1m", limit=3)
        assert [c.closed for c in candles] == [True, True, False]
        assert datetime_to_ms(candles[-1].timestamp) == sim.clock.now_ms - 30_000


async def test_5xx_after_the_order_was_accepted_is_reconciled_not_resent() -> None:
    place = "/api/v2/spot/trade/place-order"
    async with simulator() as sim, BitgetClient(settings_for(sim, "spot")) as ex:
        sim.faults = FaultSpec(error_after_accept_rate=1.0, paths=(place,))
        ticker = await ex.get_ticker("BTCUSDT")
        ack = await ex.place_order(
            OrderRequest("BTCUSDT", Side.BUY, OrderType.LIMIT, Decimal("0.01"),
                         price=(ticker.last * Decimal("0.8")).quantize(Decimal("0.1")))
        )  # fmt: skip
        assert ack.recovered  # learned from the lookup, not from the (failed) answer
        assert sim.stats.faults["error_after_accept"] == 1 and sim.stats.requests[place] == 1
    assert sim.orders_accepted == 1 and [o.order_id for o in sim.orders] == [ack.order_id]
