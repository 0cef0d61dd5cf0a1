"""BitgetStream behaviour beyond the proofs: keep-alive, errors, back-pressure, life cycle."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from decimal import Decimal
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from chimera_lab.config import Settings
from chimera_lab.data.synthetic import make_ohlcv
from chimera_lab.errors import AuthenticationError, ExchangeError, ExchangeUnavailable
from chimera_lab.exchange import BitgetClient, Candle, Ticker
from chimera_lab.exchange.parsing import datetime_to_ms
from chimera_lab.exchange.simulator import BitgetSimulator
from chimera_lab.exchange.stream import BitgetStream, StreamState, StreamStatus
from chimera_lab.logging import configure_logging

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

KEY, SECRET, PHRASE = "stream-key", "stream-secret-0123456789", "stream-passphrase"


def settings_for(base_url: str, ws_url: str, **bitget: object) -> Settings:
    values: dict[str, object] = {
        "base_url": base_url, "ws_public_url": ws_url, "ws_private_url": ws_url,
        "api_key": KEY, "api_secret": SECRET, "passphrase": PHRASE,
        "ws_reconnect_base_delay_s": 0.02, "ws_reconnect_max_delay_s": 0.05,
        "rate_limit_per_second": 10_000, "endpoint_limit_scale": 100.0,
    }  # fmt: skip
    values.update(bitget)
    return Settings(_env_file=None, bitget=values)  # type: ignore[call-arg]


def sim() -> BitgetSimulator:
    return BitgetSimulator(
        history_bars=400, rate_limits=False, api_key=KEY, api_secret=SECRET, passphrase=PHRASE
    )


async def poll(condition: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_missing_pong_drops_and_rebuilds_the_connection() -> None:
    connections = 0
    pings = 0

    async def silent(ws: ServerConnection) -> None:  # acks subscriptions, never pongs
        nonlocal connections, pings
        connections += 1
        async for message in ws:
            if message == "ping":
                pings += 1
            else:
                for arg in json.loads(message)["args"]:
                    await ws.send(json.dumps({"event": "subscribe", "arg": arg}))

    async with serve(silent, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        settings = settings_for(
            "http://127.0.0.1:9", f"ws://127.0.0.1:{port}", ws_ping_interval_s=0.05,
            ws_pong_timeout_s=0.1,
        )  # fmt: skip
        async with BitgetStream(settings, rest=BitgetClient(settings)) as stream:
            await stream.subscribe_ticker("BTCUSDT")
            await poll(lambda: connections >= 3)
            assert stream.stats.reconnects >= 2 and pings >= 2


async def test_unknown_channel_is_a_fatal_stream_error() -> None:
    async with sim() as server:
        settings = settings_for(server.base_url, server.ws_public_url)
        async with BitgetClient(settings) as rest, BitgetStream(settings, rest=rest) as stream:
            await stream.subscribe_ticker("NOSUCHCOIN")
            with pytest.raises(ExchangeError, match="30001"):
                async with asyncio.timeout(10):
                    async for _ in stream:
                        pass
            with pytest.raises(ExchangeError):  # and it stays failed
                await stream.next_event(1)


async def test_private_channels_need_credentials() -> None:
    settings = settings_for("http://127.0.0.1:9", "ws://127.0.0.1:9", api_key=None)
    async with BitgetStream(settings, rest=BitgetClient(settings)) as stream:
        with pytest.raises(AuthenticationError, match="CHIMERA_BITGET__API_KEY"):
            await stream.subscribe_orders()


async def test_slow_consumer_loses_tickers_never_closed_candles() -> None:
    async with sim() as server:
        settings = settings_for(server.base_url, server.ws_public_url, ws_queue_size=4)
        async with BitgetClient(settings) as rest, BitgetStream(settings, rest=rest) as stream:
            await stream.subscribe_candles("BTCUSDT", "1m")
            await stream.subscribe_ticker("BTCUSDT")
            await stream.wait_ready(10)
            first_open = server.clock.now_ms
            for _ in range(30):  # nobody reads meanwhile
                await server.clock.advance_async(bars=1)
            candles: list[Candle] = []
            tickers = 0
            async with asyncio.timeout(15):
                while len(candles) < 30:
                    await asyncio.sleep(0.002)  # a slow consumer: the stream refills meanwhile
                    event = await stream.next_event()
                    if isinstance(event, Candle):
                        candles.append(event)
                    elif isinstance(event, Ticker):
                        tickers += 1
            assert stream.stats.dropped > 0  # tickers were shed under back-pressure...
            assert stream._queue is not None and stream._queue.maxsize == 4  # bounded
    stamps = [datetime_to_ms(c.timestamp) for c in candles]  # ...closed candles never were
    assert stamps == [first_open + i * 60_000 for i in range(30)]
    assert tickers < 31


async def test_include_forming_yields_updates_of_the_open_candle() -> None:
    async with sim() as server:
        settings = settings_for(server.base_url, server.ws_public_url)
        stream = BitgetStream(settings, include_forming=True)  # opens its own REST client
        async with stream:
            await stream.subscribe_candles("BTCUSDT", "1m")
            await stream.wait_ready(10)
            await server.clock.advance_async(seconds=20)
            await server.clock.advance_async(seconds=50)
            seen: list[Candle] = []
            async with asyncio.timeout(10):
                while not any(c.closed for c in seen):
                    event = await stream.next_event()
                    if isinstance(event, Candle):
                        seen.append(event)
        assert any(not c.closed for c in seen) and seen[-1].closed


async def test_stream_life_cycle() -> None:
    settings = settings_for("http://127.0.0.1:9", "ws://127.0.0.1:9")
    stream = BitgetStream(settings, rest=BitgetClient(settings))
    assert stream.state is StreamState.UNOPENED
    with pytest.raises(RuntimeError, match="open the stream"):
        await stream.subscribe_ticker("BTCUSDT")
    async with stream:
        assert stream.state is StreamState.OPENED
    assert stream.state is StreamState.CLOSED
    await stream.aclose()  # idempotent
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()
    with pytest.raises(RuntimeError, match="cannot be reopened"):
        await stream.open()


def test_demo_trading_streams_from_the_demo_host() -> None:
    demo = BitgetStream(Settings(_env_file=None, bitget={"demo": True}))  # type: ignore[call-arg]
    assert demo._sockets["public"].url == "wss://wspap.bitget.com/v2/ws/public"
    assert demo._sockets["private"].url == "wss://wspap.bitget.com/v2/ws/private"
    live = BitgetStream(Settings(_env_file=None))  # type: ignore[call-arg]
    assert live._sockets["public"].url == "wss://ws.bitget.com/v2/ws/public"


@pytest.mark.slow
async def test_long_stream_keeps_memory_flat() -> None:
    # A 24/7 process must not grow: after a warm-up, 900 more bars (candles, tickers and
    # trades, one reconnect) leave no growth in memory allocated by the adapter's modules.
    import tracemalloc

    ours = [
        tracemalloc.Filter(True, f"*chimera_lab/exchange/{name}.py")
        for name in ("stream", "parsing", "limiter", "bitget", "resilience", "base")
    ]

    def allocated() -> int:
        snapshot = tracemalloc.take_snapshot().filter_traces(ours)
        return sum(stat.size for stat in snapshot.statistics("filename"))

    async with sim() as server:
        settings = settings_for(server.base_url, server.ws_public_url, ws_queue_size=100)
        async with BitgetClient(settings) as rest, BitgetStream(settings, rest=rest) as stream:
            await stream.subscribe_candles("BTCUSDT", "1m")
            await stream.subscribe_ticker("BTCUSDT")
            await stream.subscribe_trades("BTCUSDT")
            await stream.wait_ready(10)
            received = 0

            async def consume() -> None:
                nonlocal received
                async for event in stream:
                    received += isinstance(event, Candle)

            consumer = asyncio.create_task(consume(), name="soak-consumer")
            tracemalloc.start()
            try:
                for step in range(1_200):
                    await server.clock.advance_async(bars=1)
                    if step == 300:
                        await poll(lambda: received == 301)
                        baseline = allocated()
                    if step == 700:
                        await server.disconnect_websockets()
                await poll(lambda: received == 1_200)
                grown = allocated() - baseline
            finally:
                tracemalloc.stop()
                consumer.cancel()
                await asyncio.gather(consumer, return_exceptions=True)
    assert grown < 64 * 1024, f"adapter memory grew by {grown} bytes over 900 bars"


# -- gaps that REST history cannot fill (yet) ------------------------------------------------


async def _gap_scenario(
    *, lag_calls: int | None, backfill_attempts: int
) -> tuple[list[int], list[StreamStatus], int, int]:
    # Stream 1m candles, lose the connection for 250 bars (beyond the 200-bar snapshot), and
    # let REST history lack one of the bars the backfill needs: for the first `lag_calls`
    # calls (it lags), or for ever (None: a real hole). Returns the streamed bar times, the
    # gap notices, the missing bar and the number of history calls.
    bars = make_ohlcv(1_000, seed=11, start="2024-03-01")
    server = BitgetSimulator(
        bars, start=300, rate_limits=False, api_key=KEY, api_secret=SECRET, passphrase=PHRASE
    )
    async with server:
        settings = settings_for(server.base_url, server.ws_public_url)
        got: list[int] = []
        gaps: list[StreamStatus] = []
        async with (
            BitgetClient(settings) as rest,
            BitgetStream(settings, rest=rest, backfill_attempts=backfill_attempts) as stream,
        ):
            original = rest.get_history_candles
            drop = 0
            calls = 0

            async def lagging(*args: object, **kwargs: object) -> list[Candle]:
                nonlocal calls
                calls += 1
                page = await original(*args, **kwargs)  # type: ignore[arg-type]
                if lag_calls is None or calls <= lag_calls:
                    page = [c for c in page if datetime_to_ms(c.timestamp) != drop]
                return page

            rest.get_history_candles = lagging  # type: ignore[method-assign]
            await stream.subscribe_candles("BTCUSDT", "1m")
            await stream.wait_ready(10)

            async def consume() -> None:
                async for event in stream:
                    if isinstance(event, Candle):
                        got.append(datetime_to_ms(event.timestamp))
                    elif isinstance(event, StreamStatus) and event.kind == "gap":
                        gaps.append(event)

            consumer = asyncio.create_task(consume(), name="gap-consumer")
            await server.clock.advance_async(bars=2)
            await poll(lambda: len(got) >= 1)
            await server.disconnect_websockets()
            server.clock.advance(bars=250)
            drop = server.clock.now_ms - 240 * 60_000  # needed by the backfill, not snapshot

            def caught_up() -> bool:  # the newest closed bar has arrived
                return bool(got) and got[-1] == server.clock.now_ms - 60_000

            for push in range(backfill_attempts + 2):  # each push retries an open gap
                await poll(lambda n=push: calls > n or caught_up(), 15.0)  # type: ignore[misc]
                if caught_up():
                    break
                await server.clock.advance_async(bars=1)
            await poll(caught_up, 15.0)
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
    return got, gaps, drop, calls


async def test_backfill_waits_for_lagging_rest_history_instead_of_skipping_a_bar() -> None:
    got, gaps, drop, calls = await _gap_scenario(lag_calls=2, backfill_attempts=5)
    assert drop in got and gaps == []
    assert got == sorted(set(got)), "a bar twice or out of order"
    assert all(b - a == 60_000 for a, b in zip(got, got[1:], strict=False)), "a gap"
    assert calls >= 3  # retried on later pushes until history had the bar


async def test_a_bar_missing_for_good_is_reported_as_a_gap_and_the_stream_moves_on() -> None:
    got, gaps, drop, _ = await _gap_scenario(lag_calls=None, backfill_attempts=3)
    assert drop not in got
    assert got == sorted(set(got))
    holes = [(a, b) for a, b in zip(got, got[1:], strict=False) if b - a != 60_000]
    assert holes == [(drop - 60_000, drop + 60_000)]  # exactly that bar, nothing else
    (gap,) = gaps
    assert gap.attempt == 3 and gap.gap is not None
    assert [datetime_to_ms(t) for t in gap.gap] == [drop, drop]
    assert "BTCUSDT 1m: 1 closed bars" in gap.reason


# -- reconnect backoff, login clock, keep-alive failures --------------------------------------


async def _disconnect_attempts(hold_s: float, stable_after_s: float, n: int) -> list[int]:
    # A server that accepts, acknowledges the subscription, keeps the connection `hold_s`
    # and closes it. Returns the `attempt` of the first `n` disconnect notices.
    async def flaky(ws: ServerConnection) -> None:
        async for message in ws:
            for arg in json.loads(message)["args"]:
                await ws.send(json.dumps({"event": "subscribe", "arg": arg}))
            await asyncio.sleep(hold_s)
            await ws.close()
            return

    async with serve(flaky, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        settings = settings_for(
            "http://127.0.0.1:9", f"ws://127.0.0.1:{port}", ws_reconnect_base_delay_s=0.005,
            ws_reconnect_max_delay_s=0.04,
        )  # fmt: skip
        stream = BitgetStream(settings, rest=BitgetClient(settings), stable_after_s=stable_after_s)
        attempts: list[int] = []
        async with stream:
            await stream.subscribe_ticker("BTCUSDT")
            async with asyncio.timeout(30):
                while len(attempts) < n:
                    event = await stream.next_event()
                    if isinstance(event, StreamStatus) and event.kind == "disconnected":
                        attempts.append(event.attempt)
    return attempts


async def test_reconnect_backoff_keeps_growing_while_connections_drop_at_once() -> None:
    # Connecting succeeds every time, but the connection never becomes stable: the backoff
    # must not reset (a reset on every connect makes a reconnect storm).
    assert await _disconnect_attempts(hold_s=0.0, stable_after_s=30.0, n=5) == [1, 2, 3, 4, 5]


async def test_reconnect_backoff_resets_after_a_stable_connection() -> None:
    assert await _disconnect_attempts(hold_s=1.0, stable_after_s=0.2, n=3) == [1, 1, 1]


async def test_ws_login_uses_the_rest_clients_measured_clock_offset() -> None:
    server = BitgetSimulator(
        history_bars=100, rate_limits=False, server_time_offset_ms=45_000,
        api_key=KEY, api_secret=SECRET, passphrase=PHRASE,
    )  # fmt: skip
    async with server:
        settings = settings_for(server.base_url, server.ws_private_url)
        async with BitgetClient(settings) as rest, BitgetStream(settings, rest=rest) as stream:
            await rest.sync_time()  # the local clock is 45 s behind the server's
            assert 44_000 < rest.time_offset_ms < 46_000
            await stream.subscribe_orders()
            await stream.wait_ready(10)  # logged in with the corrected timestamp
            assert stream.stats.connects == 1 and stream.stats.reconnects == 0


async def test_ws_login_refused_for_its_timestamp_resyncs_once_and_retries() -> None:
    server = BitgetSimulator(
        history_bars=100, rate_limits=False, server_time_offset_ms=45_000,
        api_key=KEY, api_secret=SECRET, passphrase=PHRASE,
    )  # fmt: skip
    async with server:
        settings = settings_for(server.base_url, server.ws_private_url)
        async with BitgetClient(settings) as rest, BitgetStream(settings, rest=rest) as stream:
            await stream.subscribe_orders()  # no sync yet: the first login is refused (30014)
            await stream.wait_ready(10)
            assert 44_000 < rest.time_offset_ms < 46_000
        strict = settings_for(server.base_url, server.ws_private_url, auto_time_sync=False)
        async with BitgetClient(strict) as rest, BitgetStream(strict, rest=rest) as stream:
            await stream.subscribe_orders()
            with pytest.raises(AuthenticationError, match="30014"):
                await stream.wait_ready(10)


async def test_a_failing_keepalive_is_logged_and_the_connection_rebuilt() -> None:
    async with sim() as server:
        settings = settings_for(server.base_url, server.ws_public_url, ws_ping_interval_s=0.05)
        lines = io.StringIO()
        handler = configure_logging(settings, stream=lines)
        try:
            async with BitgetClient(settings) as rest, BitgetStream(settings, rest=rest) as stream:
                await stream.subscribe_ticker("BTCUSDT")
                await stream.wait_ready(10)
                original = stream._send
                broken = True

                async def send(sock: Any, ws: Any, text: str) -> None:
                    nonlocal broken
                    if text == "ping" and broken:
                        broken = False
                        raise RuntimeError("a bug in the keep-alive")
                    await original(sock, ws, text)

                stream._send = send  # type: ignore[method-assign]
                await poll(lambda: stream.stats.reconnects >= 1)
                await stream.wait_ready(10)  # and it is back
        finally:
            logging.getLogger().removeHandler(handler)
    events = [json.loads(line) for line in lines.getvalue().splitlines()]
    failed = [e for e in events if e["event"] == "exchange.ws.pinger_failed"]
    assert len(failed) == 1 and "a bug in the keep-alive" in failed[0]["error"]


# -- failures that must not end the stream ---------------------------------------------------


def _login_server(login_replies: list[str], pushes: list[dict[str, Any]] | None = None) -> Any:
    # A WebSocket handler: answers the n-th login with login_replies[n] (then "ok" for the
    # rest), acknowledges subscriptions and then sends `pushes`. Counts the logins.
    logins: list[int] = []

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            if message == "ping":
                await ws.send("pong")
                continue
            request = json.loads(message)
            if request["op"] == "login":
                n = len(logins)
                logins.append(n)
                reply = login_replies[n] if n < len(login_replies) else "ok"
                if reply == "ok":
                    await ws.send(json.dumps({"event": "login", "code": "0", "msg": ""}))
                elif reply == "expired":
                    await ws.send(json.dumps({"event": "error", "code": "30014", "msg": "expired"}))
                else:
                    await ws.send(reply)
                continue
            for arg in request["args"]:
                await ws.send(json.dumps({"event": "subscribe", "arg": arg}))
            for push in pushes or []:
                await ws.send(json.dumps(push))

    handler.logins = logins  # type: ignore[attr-defined]
    return handler


class _FlakyClockSync:
    """A REST stand-in whose first clock sync fails (exchange busy), later ones succeed."""

    def __init__(self) -> None:
        self.syncs = 0

    def timestamp_ms(self) -> int:
        return int(time.time() * 1000)

    async def sync_time(self) -> int:
        self.syncs += 1
        if self.syncs == 1:
            raise ExchangeUnavailable("Bitget 40015: System busy (GET /api/v2/public/time)")
        return 0


async def test_a_failed_clock_resync_after_a_login_refusal_reconnects_instead_of_failing() -> None:
    handler = _login_server(["expired", "expired"])
    rest = _FlakyClockSync()
    async with serve(handler, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        settings = settings_for("http://127.0.0.1:9", url)
        async with BitgetStream(settings, rest=rest) as stream:  # type: ignore[arg-type]
            await stream.subscribe_orders()
            notices: list[object] = []
            async with asyncio.timeout(10):
                while not (isinstance(e := await stream.next_event(), StreamStatus)
                           and e.kind == "connected"):  # fmt: skip
                    notices.append(e)
    # login refused -> sync fails (busy) -> backoff, login refused -> sync ok -> logged in
    assert handler.logins == [0, 1, 2] and rest.syncs == 2
    reasons = [e.reason for e in notices if isinstance(e, StreamStatus)]
    assert len(reasons) == 2
    assert "clock resync failed (ExchangeUnavailable" in reasons[0]
    assert "clock resynced" in reasons[1]


async def test_a_non_json_login_reply_reconnects_instead_of_failing() -> None:
    handler = _login_server(["<html>502 Bad Gateway</html>", '["not", "an", "object"]'])
    async with serve(handler, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        settings = settings_for("http://127.0.0.1:9", url)
        async with BitgetStream(settings, rest=BitgetClient(settings)) as stream:
            await stream.subscribe_orders()
            await stream.wait_ready(10)
            assert stream.state is StreamState.OPENED
    assert handler.logins == [0, 1, 2]


async def test_malformed_pushes_are_dropped_counted_and_the_stream_goes_on() -> None:
    ticker = {"instType": "SPOT", "channel": "ticker", "instId": "BTCUSDT"}
    trade = {"instType": "SPOT", "channel": "trade", "instId": "BTCUSDT"}
    pushes: list[dict[str, Any]] = [
        {"arg": {"channel": "ticker", "instId": "BTCUSDT"}, "data": [{}]},  # no instType
        {"arg": trade, "data": [{"ts": "soon"}, {"ts": "1"}]},  # unparsable sort key
        {"arg": trade, "data": ["not-a-trade", "nor-this"]},  # items are not objects
        {"arg": ticker, "data": [{"instId": "BTCUSDT", "lastPr": "42000.5", "ts": "1"}]},
    ]
    handler = _login_server([], pushes)
    async with serve(handler, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        settings = settings_for("http://127.0.0.1:9", url)
        lines = io.StringIO()
        log_handler = configure_logging(settings, stream=lines)
        try:
            async with BitgetStream(settings, rest=BitgetClient(settings)) as stream:
                await stream.subscribe_ticker("BTCUSDT")
                async with asyncio.timeout(10):
                    event = await stream.next_event()
                    while not isinstance(event, Ticker):
                        event = await stream.next_event()
                assert event.last == Decimal("42000.5")
                assert stream.stats.bad_pushes == 3 and stream.state is StreamState.OPENED
        finally:
            logging.getLogger().removeHandler(log_handler)
    events = [json.loads(line) for line in lines.getvalue().splitlines()]
    bad = [e for e in events if e["event"] == "exchange.ws.bad_push"]
    assert [e["channel"] for e in bad] == ["ticker", "trade", "trade"]
    assert [e["error"].split(":")[0] for e in bad] == ["KeyError", "ValueError", "AttributeError"]
