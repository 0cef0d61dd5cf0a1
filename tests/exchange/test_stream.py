"""BitgetStream behaviour beyond the proofs: keep-alive, errors, back-pressure, life cycle."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from websockets.asyncio.server import ServerConnection, serve

from chimera_lab.config import Settings
from chimera_lab.errors import AuthenticationError, ExchangeError
from chimera_lab.exchange import BitgetClient, Candle, Ticker
from chimera_lab.exchange.parsing import datetime_to_ms
from chimera_lab.exchange.simulator import BitgetSimulator
from chimera_lab.exchange.stream import BitgetStream, StreamState

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
