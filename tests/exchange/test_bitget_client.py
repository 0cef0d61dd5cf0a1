"""BitgetClient against an in-process fake Bitget (httpx.MockTransport): wire format, signing,
error mapping, retries, circuit breaking, exactly-once orders, logging and life cycle."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from datetime import UTC, datetime
from decimal import Decimal

import ccxt
import pytest
from exchange_fakes import (
    KEY,
    PASSPHRASE,
    SECRET,
    FakeBitget,
    FakeClock,
    FakeOrder,
    make_settings,
    settle,
)

from chimera_lab.errors import (
    AuthenticationError,
    CircuitOpenError,
    ConfigError,
    DuplicateOrder,
    ExchangeError,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
    OutcomeUnknown,
    RateLimited,
)
from chimera_lab.exchange.base import (
    Exchange,
    OrderRequest,
    OrderStatus,
    OrderType,
    Priority,
    Product,
    Side,
)
from chimera_lab.exchange.bitget import BitgetClient, ClientState, map_bitget_error
from chimera_lab.exchange.endpoints import endpoint
from chimera_lab.exchange.parsing import datetime_to_ms
from chimera_lab.exchange.resilience import CircuitState
from chimera_lab.logging import configure_logging

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

WORKED_TS = 1_700_000_000.0  # bitget-api.md section 2 worked example, in seconds
PLACE = "/api/v2/spot/trade/place-order"
INFO = "/api/v2/spot/trade/orderInfo"


def worked_order() -> OrderRequest:
    return OrderRequest(
        "BTCUSDT", Side.BUY, OrderType.LIMIT, Decimal("0.001"), price=Decimal("30000"),
        client_oid="demo-order-0001",
    )  # fmt: skip


def client(fake: FakeBitget, clock: FakeClock | None = None, **bitget: object) -> BitgetClient:
    return BitgetClient(
        make_settings(**bitget), transport=fake.transport(), clock=clock,
        wall_clock=lambda: fake.now_ms() / 1000,
    )  # fmt: skip


def test_bitget_client_satisfies_the_exchange_protocol() -> None:
    assert isinstance(BitgetClient(make_settings()), Exchange)


# -- signing and wire format ----------------------------------------------------------------


async def test_post_is_signed_exactly_like_the_worked_example() -> None:
    fake = FakeBitget(now_ms=lambda: int(WORKED_TS * 1000))
    async with client(fake) as ex:
        ack = await ex.place_order(worked_order())
    request, body = fake.requests[0], fake.bodies[0]
    assert request.method == "POST" and request.url.raw_path == PLACE.encode()
    assert body == (
        b'{"symbol":"BTCUSDT","side":"buy","orderType":"limit","force":"gtc",'
        b'"price":"30000","size":"0.001","clientOid":"demo-order-0001"}'
    )
    assert request.headers["ACCESS-SIGN"] == "FedbgNYfvVL0y65jTX41YhmvZo8wKm0XdFNo/VuLC6k="
    assert request.headers["ACCESS-KEY"] == KEY
    assert request.headers["ACCESS-TIMESTAMP"] == "1700000000000"
    assert request.headers["ACCESS-PASSPHRASE"] == PASSPHRASE
    assert request.headers["Content-Type"] == "application/json"
    assert "paptrading" not in request.headers
    assert ack.client_oid == "demo-order-0001" and not ack.recovered


async def test_get_with_query_is_signed_over_the_sorted_query_it_sends() -> None:
    fake = FakeBitget(now_ms=lambda: int(WORKED_TS * 1000))
    async with client(fake, product="usdt-futures") as ex:
        assert await ex.get_open_orders("BTCUSDT") == []
    request = fake.requests[0]
    assert request.url.raw_path == (
        b"/api/v2/mix/order/orders-pending?productType=USDT-FUTURES&symbol=BTCUSDT"
    )
    assert request.headers["ACCESS-SIGN"] == "5qlpFLwF63bbVQuOr9h7T1oD8yTRvFwbxguwtXGfc14="


@pytest.mark.parametrize(
    ("product", "ccxt_path", "ccxt_api", "params"),
    [
        ("spot", "v2/spot/trade/orderInfo", ["private", "spot"], {"clientOid": "a+b#c"}),
        (
            "usdt-futures", "v2/mix/order/detail", ["private", "mix"],
            {"clientOid": "a+b#c", "symbol": "BTCUSDT", "productType": "USDT-FUTURES"},
        ),
    ],
)  # fmt: skip
async def test_query_with_hash_and_plus_is_signed_raw_and_sent_encoded_like_ccxt(
    product: str, ccxt_path: str, ccxt_api: list[str], params: dict[str, str]
) -> None:
    # bitget-api.md section 2: Bitget signs the un-escaped k=v&... string; the URL is
    # percent-encoded. ccxt (an independent implementation) must produce the same request.
    fake = FakeBitget(now_ms=lambda: int(WORKED_TS * 1000))
    fake.orders["a+b#c"] = FakeOrder("1001", "a+b#c", "BTCUSDT", "buy", "limit", "1000", "0.01")
    async with client(fake, product=product) as ex:
        order = await ex.get_order("BTCUSDT", client_oid="a+b#c")
    assert order.client_oid == "a+b#c"  # the fake verified the signature (no 40009)
    ours = fake.requests[0]
    reference = ccxt.bitget({"apiKey": KEY, "secret": SECRET, "password": PASSPHRASE})
    reference.nonce = lambda: int(WORKED_TS * 1000)
    theirs = reference.sign(ccxt_path, ccxt_api, "GET", dict(params))
    assert ours.headers["ACCESS-SIGN"] == theirs["headers"]["ACCESS-SIGN"]
    assert str(ours.url).split("?", 1)[1] == theirs["url"].split("?", 1)[1]
    assert b"%23" in ours.url.raw_path and b"%2B" in ours.url.raw_path


async def test_get_without_query_matches_worked_example_c() -> None:
    fake = FakeBitget(now_ms=lambda: int(WORKED_TS * 1000))
    async with client(fake) as ex:
        balances = await ex.get_balances()
    assert fake.requests[0].url.raw_path == b"/api/v2/spot/account/assets"
    assert fake.requests[0].headers["ACCESS-SIGN"] == (
        "CSUmjaK+QxCXGyA8evN2z9JqEa+kXoNYl3jl7eOWxK4="
    )
    assert balances[0].coin == "USDT" and balances[0].available == Decimal("1000.5")
    assert balances[0].total == Decimal("1010.5")


async def test_public_calls_send_no_credentials_and_demo_sends_paptrading() -> None:
    fake = FakeBitget()
    async with client(fake, demo=True) as ex:
        await ex.server_time()
    headers = fake.requests[0].headers
    assert "ACCESS-KEY" not in headers and "ACCESS-SIGN" not in headers
    assert headers["paptrading"] == "1"


async def test_futures_candles_use_mix_path_upper_case_product_type_and_granularity() -> None:
    t0 = 1_704_067_200_000  # 2024-01-01T00:00Z
    fake = FakeBitget(now_ms=lambda: t0 + 150_000)
    fake.candles = [
        [str(t0), "100", "101", "99", "100.5", "2", "201"],  # 7 columns (futures doc)
        [str(t0 + 60_000), "100.5", "102", "100", "101", "3", "303", "303"],  # 8 columns
        [str(t0 + 120_000), 101, 101.5, 100.5, 101.2, 1, 101.2],  # numbers, still forming
    ]
    async with client(fake, product="usdt-futures") as ex:
        candles = await ex.get_candles(
            "BTCUSDT", "1m", start=datetime(2023, 12, 31, tzinfo=UTC), limit=5
        )
    url = fake.requests[0].url
    assert url.path == "/api/v2/mix/market/candles"
    params = dict(url.params)
    assert params == {
        "granularity": "1m", "limit": "5", "productType": "USDT-FUTURES",
        "startTime": "1703980800000", "symbol": "BTCUSDT",
    }  # fmt: skip
    assert [c.closed for c in candles] == [True, True, False]
    assert candles[0].timestamp == datetime(2024, 1, 1, tzinfo=UTC)
    assert candles[1].quote_volume == 303.0 and candles[2].close == 101.2


async def test_spot_hourly_granularity_and_history_filtering() -> None:
    t0 = 1_704_067_200_000
    fake = FakeBitget(now_ms=lambda: t0 + 10 * 3_600_000)
    fake.candles = [
        [str(t0 + h * 3_600_000), "1", "2", "0.5", "1.5", "10", "15", "15"] for h in range(10)
    ]
    async with client(fake) as ex:
        end = datetime(2024, 1, 1, 5, tzinfo=UTC)
        candles = await ex.get_history_candles("BTCUSDT", "1h", end=end, limit=3)
    assert fake.requests[0].url.path == "/api/v2/spot/market/history-candles"
    assert dict(fake.requests[0].url.params)["granularity"] == "1h"
    assert [c.timestamp.hour for c in candles] == [2, 3, 4]


@pytest.mark.parametrize("semantics", ["exclusive", "inclusive", "floored", "floored_inclusive"])
@pytest.mark.parametrize("offset_s", [0, 30])  # end on a bar boundary, and mid-bar
async def test_history_page_is_the_same_whatever_endtime_means(
    semantics: str, offset_s: int
) -> None:
    # bitget-api.md section 3.2: whether endTime is inclusive, exclusive or floored to the
    # bar is unverified. The client sends endTime = end rounded up to the bar and keeps the
    # bars opening before `end`: the same bars under every reading, none lost.
    t0 = 1_704_067_200_000
    fake = FakeBitget(now_ms=lambda: t0 + 500 * 60_000, end_semantics=semantics)
    fake.candles = [
        [str(t0 + i * 60_000), "1", "2", "0.5", "1.5", "10", "15", "15"] for i in range(400)
    ]
    end_ms = t0 + 100 * 60_000 + offset_s * 1_000
    async with client(fake) as ex:
        end = datetime.fromtimestamp(end_ms / 1000, UTC)
        candles = await ex.get_history_candles("BTCUSDT", "1m", end=end, limit=5)
    sent = int(dict(fake.requests[0].url.params)["endTime"])
    assert sent % 60_000 == 0 and sent >= end_ms  # aligned, never before `end`
    newest = 99 if offset_s == 0 else 100  # the last bar opening before `end`
    stamps = [datetime_to_ms(c.timestamp) for c in candles]
    assert stamps[-1] == t0 + newest * 60_000
    assert stamps == [t0 + i * 60_000 for i in range(newest - len(stamps) + 1, newest + 1)]
    assert len(stamps) >= 4  # at most the one bar an inclusive endTime adds is filtered


async def test_limits_out_of_range_raise_config_errors() -> None:
    async with client(FakeBitget()) as ex:
        with pytest.raises(ConfigError, match="1..200"):
            await ex.get_history_candles("BTCUSDT", "1m", end=datetime.now(UTC), limit=500)
        with pytest.raises(ConfigError, match="spot has no 2h"):
            await ex.get_candles("BTCUSDT", "2h")
        with pytest.raises(ConfigError, match="usdt-futures"):
            endpoint("positions", Product.SPOT)


# -- error mapping --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "cls"),
    [
        ("40009", 400, AuthenticationError),
        ("40008", 400, AuthenticationError),
        ("40012", 400, AuthenticationError),
        ("429", 429, RateLimited),
        ("43012", 400, InsufficientFunds),
        ("40762", 400, InsufficientFunds),
        ("43001", 400, OrderNotFound),
        ("40109", 400, OrderNotFound),
        ("43118", 400, DuplicateOrder),
        ("45034", 400, DuplicateOrder),
        ("40304", 400, InvalidOrder),
        ("43006", 400, InvalidOrder),
        ("40015", 200, ExchangeUnavailable),
        ("99999", 500, ExchangeUnavailable),
        ("99999", 400, ExchangeError),
    ],
)
def test_bitget_codes_map_to_the_hierarchy(code: str, status: int, cls: type) -> None:
    err = map_bitget_error(code, "msg", status=status, where="POST /x", trading=True)
    assert type(err) is cls
    assert err.code == code and err.status == status and code in str(err)


async def test_business_error_raises_mapped_exception_from_the_wire() -> None:
    fake = FakeBitget()
    fake.secret = "another-secret"  # the server expects a different secret
    async with client(fake) as ex:
        with pytest.raises(AuthenticationError, match="40009") as info:
            await ex.get_balances()
    assert info.value.status == 400
    assert len(fake.requests) == 1  # never retried


async def test_missing_credentials_fail_before_sending() -> None:
    fake = FakeBitget()
    async with client(fake, api_key=None) as ex:
        with pytest.raises(AuthenticationError, match="CHIMERA_BITGET__API_KEY"):
            await ex.get_balances()
    assert fake.requests == []


async def test_stale_timestamp_is_refused_then_resynced(clock: FakeClock) -> None:
    fake = FakeBitget()
    skewed = BitgetClient(
        make_settings(auto_time_sync=False), transport=fake.transport(),
        wall_clock=lambda: fake.now_ms() / 1000 - 120,
    )  # fmt: skip
    async with skewed as ex:
        with pytest.raises(AuthenticationError, match="40008.*sync_time") as info:
            await ex.get_balances()
        assert info.value.code == "40008"
        offset = await ex.sync_time()
        assert 119_000 < offset < 121_000
        assert (await ex.get_balances())[0].coin == "USDT"
    auto = BitgetClient(
        make_settings(), transport=fake.transport(), wall_clock=lambda: fake.now_ms() / 1000 - 120
    )
    async with auto as ex:
        assert (await ex.get_balances())[0].coin == "USDT"  # resynced by itself
        ack = await ex.place_order(worked_order())
    assert ack.order_id and len(fake.orders) == 1


def skewed_client(fake: FakeBitget, **bitget: object) -> BitgetClient:
    # A fresh client whose wall clock is 120 s behind the exchange's (past the 30 s window).
    return BitgetClient(
        make_settings(**bitget), transport=fake.transport(),
        wall_clock=lambda: fake.now_ms() / 1000 - 120,
    )  # fmt: skip


async def test_cancel_with_a_skewed_clock_resyncs_and_succeeds() -> None:
    fake = FakeBitget()
    fake.orders["demo-order-0001"] = FakeOrder(
        "1001", "demo-order-0001", "BTCUSDT", "buy", "limit", "30000", "0.001"
    )
    cancel = "/api/v2/spot/trade/cancel-order"
    async with skewed_client(fake) as ex:
        done = await ex.cancel_order("BTCUSDT", order_id="1001")
        assert 119_000 < ex.time_offset_ms < 121_000
    assert done.status is OrderStatus.CANCELLED and done.order_id == "1001"
    assert fake.orders["demo-order-0001"].status == "cancelled"
    # Refused for its timestamp, clock measured, the same cancel sent once more.
    assert [r.url.path for r in fake.requests] == [cancel, "/api/v2/public/time", cancel]


async def test_place_order_with_a_skewed_clock_resyncs_on_a_fresh_client() -> None:
    fake = FakeBitget()
    async with skewed_client(fake) as ex:
        ack = await ex.place_order(worked_order())
    assert not ack.recovered and len(fake.orders) == 1
    assert [r.url.path for r in fake.requests] == [PLACE, "/api/v2/public/time", PLACE]


async def test_a_failed_resync_raises_the_stale_timestamp_refusal_not_an_unknown_outcome() -> None:
    fake = FakeBitget()
    fake.fault("/api/v2/public/time", *["timeout"] * 3)  # the sync gets no answer
    async with skewed_client(fake, retry_max_attempts=3) as ex:
        with pytest.raises(AuthenticationError, match="40008") as info:
            await ex.place_order(worked_order())
    # Refused for its timestamp: nothing was placed, whatever became of the clock sync.
    assert info.value.code == "40008"
    assert isinstance(info.value.__cause__, OutcomeUnknown)
    assert fake.orders == {}
    assert [r.url.path for r in fake.requests] == [PLACE] + ["/api/v2/public/time"] * 3


# -- retries and circuit --------------------------------------------------------------------


async def test_reads_retry_on_5xx_429_busy_and_transport_errors() -> None:
    fake = FakeBitget()
    fake.fault("/api/v2/public/time", "500", "429", "busy", "connect", "timeout")
    async with client(fake, retry_max_attempts=6) as ex:
        assert (await ex.server_time()).tzinfo is UTC
    assert len(fake.requests) == 6


async def test_reads_give_up_after_max_attempts_with_the_last_error() -> None:
    fake = FakeBitget()
    fake.fault("/api/v2/public/time", *["500"] * 3)
    async with client(fake, retry_max_attempts=3) as ex:
        with pytest.raises(ExchangeUnavailable, match="500"):
            await ex.server_time()
    assert len(fake.requests) == 3


async def test_circuit_opens_per_group_and_recovers(clock: FakeClock) -> None:
    fake = FakeBitget()
    fake.fault("/api/v2/public/time", *["500"] * 4)
    ex = client(
        fake, clock, retry_max_attempts=1, circuit_failure_threshold=4, circuit_recovery_s=60.0
    )
    async with ex:
        for _ in range(4):
            with pytest.raises(ExchangeUnavailable):
                await ex.server_time()
        with pytest.raises(CircuitOpenError):
            await ex.server_time()
        with pytest.raises(CircuitOpenError):
            await ex.get_candles("BTCUSDT", "1m")  # same group: market
        assert len(fake.requests) == 4
        assert (await ex.get_balances())[0].coin == "USDT"  # other group unaffected
        clock.advance(60.0)
        await ex.server_time()  # half-open trial succeeds
        assert ex.circuits["market"].state.value == "closed"


# -- exactly-once orders --------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["accept_timeout", "reset", "accept_500"])
async def test_ambiguous_failure_is_reconciled_by_client_oid(fault: str) -> None:
    fake = FakeBitget()
    fake.fault(PLACE, fault)
    async with client(fake) as ex:
        ack = await ex.place_order(worked_order())
    assert ack.recovered and ack.order_id == fake.orders["demo-order-0001"].order_id
    assert len(fake.orders) == 1
    assert fake.executed[PLACE] == 1  # never resent: the lookup found it
    paths = [r.url.path for r in fake.requests]
    assert paths == [PLACE, INFO]


async def test_ambiguous_failure_before_acceptance_resends_once() -> None:
    fake = FakeBitget()
    fake.fault(PLACE, "timeout")  # lost before the server acted
    async with client(fake) as ex:
        ack = await ex.place_order(worked_order())
    assert not ack.recovered and len(fake.orders) == 1
    assert [r.url.path for r in fake.requests] == [PLACE, INFO, PLACE]
    assert {json.loads(b)["clientOid"] for b in fake.bodies if b} == {"demo-order-0001"}


async def test_unambiguous_failures_resend_without_lookup() -> None:
    fake = FakeBitget()
    fake.fault(PLACE, "connect", "429")
    async with client(fake) as ex:
        ack = await ex.place_order(worked_order())
    assert [r.url.path for r in fake.requests] == [PLACE, PLACE, PLACE]
    assert len(fake.orders) == 1 and ack.order_id == fake.orders["demo-order-0001"].order_id


async def test_generated_client_oid_is_reused_on_every_attempt() -> None:
    fake = FakeBitget()
    fake.fault(PLACE, "connect", "timeout")
    request = OrderRequest("BTCUSDT", Side.SELL, OrderType.MARKET, Decimal("0.5"))
    async with client(fake) as ex:
        ack = await ex.place_order(request)
    oids = {json.loads(b)["clientOid"] for b in fake.bodies if b}
    assert oids == {ack.client_oid} and len(fake.orders) == 1


async def test_duplicate_client_oid_of_the_same_order_is_recovered() -> None:
    fake = FakeBitget()
    async with client(fake) as ex:
        first = await ex.place_order(worked_order())
        again = await ex.place_order(worked_order())  # e.g. a restarted runner resending
        assert (again.order_id, again.client_oid, again.recovered) == (
            first.order_id, first.client_oid, True,
        )  # fmt: skip
        assert again.status is OrderStatus.OPEN  # what the lookup saw
        different = OrderRequest(
            "BTCUSDT", Side.SELL, OrderType.LIMIT, Decimal("1"), price=Decimal("1"),
            client_oid="demo-order-0001",
        )  # fmt: skip
        with pytest.raises(DuplicateOrder, match="43118"):
            await ex.place_order(different)
    assert len(fake.orders) == 1


async def test_lookup_failure_after_ambiguity_raises_outcome_unknown() -> None:
    fake = FakeBitget()
    fake.fault(PLACE, "accept_timeout")
    fake.fault(INFO, *["500"] * 10)
    async with client(fake, retry_max_attempts=3) as ex:
        with pytest.raises(OutcomeUnknown, match="demo-order-0001") as info:
            await ex.place_order(worked_order())
    assert info.value.client_oid == "demo-order-0001"
    assert fake.executed[PLACE] == 1


async def test_duplicate_answer_to_a_retry_with_a_lagging_lookup_is_outcome_unknown() -> None:
    # The first attempt was accepted but its answer lost; the lookup does not show the order
    # yet, so the client resends and hears "duplicate clientOid": its own first attempt.
    fake = FakeBitget()
    fake.fault(PLACE, "accept_timeout")
    fake.fault(INFO, "lagging", "lagging")
    async with client(fake) as ex:
        with pytest.raises(OutcomeUnknown, match="demo-order-0001") as info:
            await ex.place_order(worked_order())
    assert info.value.client_oid == "demo-order-0001"
    assert isinstance(info.value.__cause__, DuplicateOrder)
    assert [r.url.path for r in fake.requests] == [PLACE, INFO, PLACE, INFO]
    assert len(fake.orders) == 1  # placed exactly once: the caller must reconcile, not resend


async def test_duplicate_on_a_first_attempt_names_the_client_oid() -> None:
    fake = FakeBitget()
    fake.orders["demo-order-0001"] = FakeOrder(
        "77", "demo-order-0001", "ETHUSDT", "sell", "market", "0", "3"
    )  # someone else's order under this clientOid
    async with client(fake) as ex:
        with pytest.raises(DuplicateOrder, match="43118") as info:
            await ex.place_order(worked_order())
    assert info.value.client_oid == "demo-order-0001"
    fake.fault(INFO, "lagging")  # and when the lookup shows nothing either
    async with client(fake) as ex:
        with pytest.raises(DuplicateOrder) as info:
            await ex.place_order(worked_order())
    assert info.value.client_oid == "demo-order-0001"


async def test_retries_running_out_after_an_ambiguous_attempt_is_outcome_unknown() -> None:
    fake = FakeBitget()
    fake.fault(PLACE, "accept_timeout", "429", "429")
    fake.fault(INFO, "lagging", "lagging")
    async with client(fake, retry_max_attempts=3) as ex:
        with pytest.raises(OutcomeUnknown) as info:
            await ex.place_order(worked_order())
    assert info.value.client_oid == "demo-order-0001"
    assert isinstance(info.value.__cause__, RateLimited)  # not "no order was placed"
    assert len(fake.orders) == 1


async def test_transport_failure_on_the_last_attempt_carries_the_client_oid() -> None:
    fake = FakeBitget()
    fake.fault(PLACE, "timeout", "timeout")
    fake.fault(INFO, "lagging", "lagging")
    async with client(fake, retry_max_attempts=2) as ex:
        with pytest.raises(OutcomeUnknown) as info:
            await ex.place_order(worked_order())
    assert info.value.client_oid == "demo-order-0001"


async def test_cancelled_place_order_logs_its_client_oid() -> None:
    fake = FakeBitget()
    fake.fault(PLACE, "hang")
    stream = io.StringIO()
    handler = configure_logging(make_settings(), stream=stream)
    try:
        async with client(fake) as ex:
            task = asyncio.get_running_loop().create_task(ex.place_order(worked_order()))
            await settle(50)
            assert fake.requests  # sent, and hanging: no answer will come
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    finally:
        logging.getLogger().removeHandler(handler)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    (event,) = [e for e in events if e["event"] == "exchange.order_interrupted"]
    assert event["client_oid"] == "demo-order-0001" and event["error"] == "CancelledError"


async def test_order_rejections_are_not_retried() -> None:
    fake = FakeBitget()
    original = fake.dispatch
    fake.dispatch = lambda req, path, body: (  # type: ignore[method-assign]
        fake.error(400, "43012", "Insufficient balance")
        if path == PLACE
        else original(req, path, body)
    )
    async with client(fake) as ex:
        with pytest.raises(InsufficientFunds):
            await ex.place_order(worked_order())
    assert len(fake.requests) == 1


async def test_cancel_is_idempotent_across_retries() -> None:
    fake = FakeBitget()
    cancel = "/api/v2/spot/trade/cancel-order"
    async with client(fake) as ex:
        ack = await ex.place_order(worked_order())
        fake.fault(cancel, "accept_timeout")  # cancelled, reply lost
        done = await ex.cancel_order("BTCUSDT", order_id=ack.order_id)
        assert done.recovered  # the retry saw "no such live order": the first one worked
        assert fake.orders["demo-order-0001"].status == "cancelled"
        with pytest.raises(OrderNotFound):
            await ex.cancel_order("BTCUSDT", order_id="nope")
        order = await ex.get_order("BTCUSDT", client_oid="demo-order-0001")
        assert order.status is OrderStatus.CANCELLED
        with pytest.raises(OrderNotFound):
            await ex.get_order("BTCUSDT", client_oid="unknown-oid")
        with pytest.raises(ConfigError, match="exactly one"):
            await ex.get_order("BTCUSDT")


async def test_real_money_needs_live_mode_and_confirmation() -> None:
    fake = FakeBitget()
    ex = client(fake, base_url="https://api.bitget.com")
    async with ex:
        with pytest.raises(ConfigError, match="CONFIRM_LIVE"):
            await ex.place_order(worked_order())
    assert fake.requests == []
    live = client(fake, base_url="https://api.bitget.com", mode="live", confirm_live=True)
    async with live:
        await live.place_order(worked_order())
    assert len(fake.orders) == 1


# -- logging and life cycle -----------------------------------------------------------------


async def test_every_request_is_logged_without_credentials() -> None:
    fake = FakeBitget()
    fake.fault(PLACE, "accept_timeout")
    settings = make_settings()
    stream = io.StringIO()
    handler = configure_logging(settings, stream=stream)
    try:
        async with client(fake) as ex:
            await ex.place_order(worked_order())
            await ex.get_balances()
            fake.secret = "rotated"
            with pytest.raises(AuthenticationError):
                await ex.get_balances()
    finally:
        logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    events = [json.loads(line) for line in text.splitlines()]
    requests = [e for e in events if e["event"] == "exchange.request"]
    assert len(requests) == len(fake.requests) == 4
    for event in requests:
        assert {"method", "path", "status", "latency_ms", "attempt", "request_id"} <= set(event)
    assert requests[0]["status"] is None and requests[0]["error"] == "OutcomeUnknown"
    assert requests[1]["path"] == INFO and requests[1]["status"] == 200
    assert requests[-1]["code"] == "40009"
    assert len({e["request_id"] for e in requests}) == 4
    signatures = [r.headers["ACCESS-SIGN"] for r in fake.requests]
    for secret in [SECRET, PASSPHRASE, KEY, *signatures]:
        assert secret not in text


async def test_not_found_on_a_cancel_retry_after_a_connect_failure_is_not_success() -> None:
    # Nothing reached the exchange on the first attempt; meanwhile the order filled, and
    # Bitget refuses to cancel it. That is not a successful cancel.
    fake = FakeBitget()
    cancel = "/api/v2/spot/trade/cancel-order"
    async with client(fake) as ex:
        ack = await ex.place_order(worked_order())
        fake.orders["demo-order-0001"].status = "filled"
        fake.fault(cancel, "connect")
        with pytest.raises(OrderNotFound):
            await ex.cancel_order("BTCUSDT", order_id=ack.order_id)
    assert [r.url.path for r in fake.requests] == [PLACE, cancel, cancel]


async def test_cancel_after_an_ambiguous_attempt_reports_the_real_final_status() -> None:
    fake = FakeBitget()
    cancel = "/api/v2/spot/trade/cancel-order"
    async with client(fake) as ex:
        ack = await ex.place_order(worked_order())
        # The first cancel attempt times out before the server acts; the order then fills.
        fake.orders["demo-order-0001"].status = "filled"
        fake.fault(cancel, "timeout")
        with pytest.raises(OrderNotFound, match="not cancelled: it is filled"):
            await ex.cancel_order("BTCUSDT", order_id=ack.order_id)
        assert [r.url.path for r in fake.requests][-3:] == [cancel, cancel, INFO]
        # The same ambiguity, but the first attempt did cancel it: a recovered success.
        fake.orders["demo-order-0001"].status = "live"
        fake.fault(cancel, "accept_timeout")
        done = await ex.cancel_order("BTCUSDT", client_oid="demo-order-0001")
    assert done.recovered and done.status is OrderStatus.CANCELLED
    assert done.order_id == ack.order_id


async def test_cancel_reports_cancelled_status() -> None:
    fake = FakeBitget()
    async with client(fake) as ex:
        ack = await ex.place_order(worked_order())
        done = await ex.cancel_order("BTCUSDT", order_id=ack.order_id)
    assert done.status is OrderStatus.CANCELLED and not done.recovered


async def test_local_failure_does_not_close_a_half_open_circuit(clock: FakeClock) -> None:
    fake = FakeBitget()
    ex = client(fake, clock, circuit_failure_threshold=1, circuit_recovery_s=5.0)
    ex.circuits["market"].record_failure()  # opened by a failure earlier
    clock.advance(5.0)
    assert ex.circuits["market"].state is CircuitState.HALF_OPEN
    with pytest.raises(RuntimeError, match="async with"):  # never opened: nothing was sent
        await ex.get_ticker("BTCUSDT")
    assert ex.circuits["market"].state is CircuitState.HALF_OPEN
    assert fake.requests == []


async def test_analysis_flood_cannot_delay_an_order_past_the_minute_budget(
    clock: FakeClock,
) -> None:
    # Default client windows (500 / 60 s, 10 / s): a minute-long flood of candle reads
    # uses what it may of the minute's budget; an order then still goes at once, because
    # rate_limit_trading_reserve keeps a few slots of both windows for orders.
    t0 = 1_704_067_200_000
    fake = FakeBitget(now_ms=lambda: t0 + 10 * 60_000)
    fake.candles = [[str(t0), "1", "2", "0.5", "1.5", "10", "15", "15"]]
    async with client(fake, clock, rate_limit_per_minute=500, rate_limit_per_second=10) as ex:
        loop = asyncio.get_running_loop()
        flood = [loop.create_task(ex.get_candles("BTCUSDT", "1m", limit=5)) for _ in range(600)]
        for _ in range(60):
            clock.advance(1.0)
            await settle(100)
        assert 480 <= sum(f.done() for f in flood) < 600  # the flood is still running
        before = clock.now
        order = loop.create_task(ex.place_order(worked_order()))
        await settle(100)
        assert order.done() and clock.now == before  # no wait at all
        assert (await order).order_id == fake.orders["demo-order-0001"].order_id
        for task in flood:
            task.cancel()
        await asyncio.gather(*flood, return_exceptions=True)


async def test_client_life_cycle() -> None:
    fake = FakeBitget()
    ex = client(fake)
    assert ex.state is ClientState.UNOPENED
    with pytest.raises(RuntimeError, match="async with"):
        await ex.server_time()
    async with ex:
        assert ex.state is ClientState.OPENED
        await ex.server_time()
    assert ex.state is ClientState.CLOSED
    await ex.aclose()  # idempotent
    with pytest.raises(RuntimeError, match="cannot be reopened"):
        async with ex:
            pass
    with pytest.raises(RuntimeError):
        await ex.server_time()


def test_http_client_has_explicit_timeouts_and_a_bounded_pool() -> None:
    ex = BitgetClient(make_settings(timeout_s=3.0, connect_timeout_s=1.5, max_connections=7))
    timeout = ex._http.timeout
    assert (timeout.read, timeout.connect) == (3.0, 1.5)
    pool = ex._http._transport._pool  # type: ignore[attr-defined]
    assert pool._max_connections == 7


async def test_default_priorities_per_endpoint() -> None:
    fake = FakeBitget()
    async with client(fake) as ex:
        await ex.place_order(worked_order())
        await ex.get_candles("BTCUSDT", "1m")
        await ex.get_balances()
        granted = ex.limiter.stats.granted
    assert granted == {Priority.TRADING: 1, Priority.MONITORING: 1, Priority.ANALYSIS: 1}
