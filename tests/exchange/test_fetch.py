"""Paging history candles into a store: order, de-duplication, resume, idempotence, limiter."""

from __future__ import annotations

import asyncio
from datetime import datetime

import httpx
import pandas as pd
import pytest
from exchange_fakes import FakeBitget, make_settings
from hypothesis import given, settings
from hypothesis import strategies as st

import chimera_lab.data
from chimera_lab.config import Settings
from chimera_lab.data.synthetic import make_ohlcv
from chimera_lab.errors import ConfigError, ExchangeError, StoreError, UnknownSeriesError
from chimera_lab.exchange import BitgetClient, Priority
from chimera_lab.exchange.fetch import chunk_bounds, fetch_history, fetch_to_store, missing_runs
from chimera_lab.exchange.simulator import BitgetSimulator
from chimera_lab.frames import validate_ohlcv

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

KEY, SECRET, PHRASE = "fetch-key", "fetch-secret-0123456789", "fetch-passphrase"


class MemoryStore:
    """An in-memory stand-in for chimera_lab.data.Store (the calls fetching uses)."""

    def __init__(self) -> None:
        self.frames: dict[tuple[str, str], pd.DataFrame] = {}
        self.writes = 0

    def write_bars(self, symbol: str, timeframe: str, df: pd.DataFrame) -> int:
        validate_ohlcv(df, name="fetched")
        self.writes += 1
        old = self.frames.get((symbol, timeframe))
        if old is None:
            self.frames[(symbol, timeframe)] = df.copy()
            return len(df)
        new = len(df.index.difference(old.index))
        merged = pd.concat([old[~old.index.isin(df.index)], df]).sort_index()
        self.frames[(symbol, timeframe)] = merged
        return new

    def read_bars(
        self, symbol: str, timeframe: str, start: object = None, end: object = None
    ) -> pd.DataFrame:
        if (symbol, timeframe) not in self.frames:
            raise UnknownSeriesError(f"no series {symbol} {timeframe}")
        df = self.frames[(symbol, timeframe)]
        if start is not None:
            df = df[df.index >= pd.Timestamp(start)]
        if end is not None:
            df = df[df.index <= pd.Timestamp(end)]
        return df

    def last_timestamp(self, symbol: str, timeframe: str) -> pd.Timestamp | None:
        df = self.frames.get((symbol, timeframe))
        return None if df is None or df.empty else df.index[-1]


def sim_settings(sim: BitgetSimulator, **bitget: object) -> Settings:
    values: dict[str, object] = {
        "base_url": sim.base_url, "api_key": KEY, "api_secret": SECRET, "passphrase": PHRASE,
        "rate_limit_per_second": 10_000, "rate_limit_per_minute": 1_000_000,
        "endpoint_limit_scale": 1_000.0, "rate_limit_margin_s": 0.0,
    }  # fmt: skip
    values.update(bitget)
    return Settings(_env_file=None, bitget=values)  # type: ignore[call-arg]


BARS = make_ohlcv(3_000, seed=5, start="2024-01-01")  # 1m bars, 2024-01-01 00:00 .. 01-03 01:59


def replay_sim() -> BitgetSimulator:
    return BitgetSimulator(
        BARS, rate_limits=False, api_key=KEY, api_secret=SECRET, passphrase=PHRASE
    )


def test_chunks_cover_the_range_without_overlap() -> None:
    chunks = chunk_bounds(0, 1_001 * 60_000, bar_ms=60_000, page_bars=200)
    assert chunks[0][0] == 0 and chunks[-1][1] == 1_001 * 60_000
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:], strict=False))
    assert len(chunks) == 6


async def test_fetch_fills_the_store_with_exactly_the_range() -> None:
    store = MemoryStore()
    async with replay_sim() as sim, BitgetClient(sim_settings(sim)) as ex:
        result = await fetch_to_store(
            ex, store, "BTCUSDT", "1m", "2024-01-01 05:00", "2024-01-02 11:30"
        )
        granted = ex.limiter.stats.granted
    got = store.frames[("BTCUSDT", "1m")]
    expected = BARS.loc["2024-01-01 05:00":"2024-01-02 11:29"]
    assert len(got) == len(expected) == 1_830 == result.bars_fetched == result.bars_new
    assert got.index.equals(expected.index)
    # the simulator rounds prices to its tick (0.01 here)
    pd.testing.assert_frame_equal(
        got, expected, check_exact=False, atol=0.006, rtol=0, check_freq=False
    )
    assert result.requests == 10  # ceil(1830 / 200) pages
    assert granted[Priority.ANALYSIS] == result.requests  # low priority: orders go first
    assert granted[Priority.TRADING] == granted[Priority.MONITORING] == 0


async def test_fetch_resumes_after_an_interruption_and_is_idempotent() -> None:
    store = MemoryStore()
    async with replay_sim() as sim:
        settings = sim_settings(sim)
        async with BitgetClient(settings) as ex:
            progress: list[int] = []
            original = ex.get_history_candles
            calls = 0

            async def flaky(*args: object, **kwargs: object) -> object:
                nonlocal calls
                calls += 1
                if calls == 4:
                    raise ExchangeError("connection lost for good")
                return await original(*args, **kwargs)  # type: ignore[arg-type]

            ex.get_history_candles = flaky  # type: ignore[method-assign]
            with pytest.raises(ExchangeError, match="for good"):
                await fetch_to_store(
                    ex, store, "BTCUSDT", "1m", "2024-01-01", "2024-01-02", concurrency=1,
                    progress=progress.append,
                )  # fmt: skip
            partial = store.frames[("BTCUSDT", "1m")]
            assert len(partial) == 600 and partial.index[0] == pd.Timestamp("2024-01-01", tz="UTC")
            assert sum(progress) == 600
        async with BitgetClient(settings) as ex:
            resumed = await fetch_to_store(ex, store, "BTCUSDT", "1m", "2024-01-01", "2024-01-02")
            assert resumed.resumed_from == pd.Timestamp("2024-01-01 09:59", tz="UTC")
            assert resumed.requests == 5 and resumed.bars_new == 840  # 1440 - 600
            again = await fetch_to_store(ex, store, "BTCUSDT", "1m", "2024-01-01", "2024-01-02")
            assert again.up_to_date and again.requests == 0
    full = store.frames[("BTCUSDT", "1m")]
    assert len(full) == 1_440 and full.index.is_unique and full.index.is_monotonic_increasing


async def test_fetch_extending_a_range_backwards_fetches_the_new_start() -> None:
    store = MemoryStore()
    async with replay_sim() as sim, BitgetClient(sim_settings(sim)) as ex:
        first = await fetch_to_store(ex, store, "BTCUSDT", "1m", "2024-01-02", "2024-01-02 12:00")
        assert first.bars_new == 720
        wider = await fetch_to_store(ex, store, "BTCUSDT", "1m", "2024-01-01", "2024-01-03")
    got = store.frames[("BTCUSDT", "1m")]
    assert got.index.equals(BARS.loc["2024-01-01":"2024-01-02 23:59"].index)  # all 2,880
    assert wider.bars_stored == 720 and wider.bars_new == wider.bars_fetched == 2_160
    assert wider.resumed_from is None  # the first bar was missing
    assert wider.requests == 8 + 4  # 1,440 bars before the stored part, 720 after
    assert wider.gaps == () and wider.bars_pending == 0


async def test_fetch_fills_only_the_holes_of_imported_bars() -> None:
    store = MemoryStore()
    imported = BARS.loc["2024-01-01":"2024-01-01 23:59"]
    imported = imported.drop(imported.loc["2024-01-01 10:00":"2024-01-01 10:29"].index)
    store.write_bars("BTCUSDT", "1m", imported)  # e.g. from a file, with a 30-bar hole
    progress: list[int] = []
    async with replay_sim() as sim, BitgetClient(sim_settings(sim)) as ex:
        result = await fetch_to_store(
            ex, store, "BTCUSDT", "1m", "2024-01-01", "2024-01-02", progress=progress.append
        )
        again = await fetch_to_store(ex, store, "BTCUSDT", "1m", "2024-01-01", "2024-01-02")
    assert result.requests == 1 and result.bars_new == result.bars_fetched == 30
    assert result.resumed_from == pd.Timestamp("2024-01-01 09:59", tz="UTC")
    assert result.bars_stored == 1_410 and sum(progress) == 1_440
    assert again.up_to_date and again.requests == 0
    got = store.frames[("BTCUSDT", "1m")]
    assert len(got) == 1_440 and got.index.is_unique


async def test_exchange_gaps_are_reported_and_not_fetched_in_a_loop() -> None:
    t0 = 1_704_067_200_000
    fake = FakeBitget(now_ms=lambda: t0 + 10_000 * 60_000)
    hole = range(100, 130)  # the exchange has no bars here (maintenance)
    fake.candles = [
        [str(t0 + i * 60_000), "1", "2", "0.5", "1.5", "1", "1.5", "1.5"]
        for i in range(450)
        if i not in hole
    ]
    store = MemoryStore()
    start = pd.Timestamp(t0, unit="ms", tz="UTC")
    end = start + pd.Timedelta(minutes=500)  # 50 bars past the newest the exchange has
    async with BitgetClient(make_settings(), transport=fake.transport()) as ex:
        first = await fetch_to_store(ex, store, "BTCUSDT", "1m", start, end)
        rerun = await fetch_to_store(ex, store, "BTCUSDT", "1m", start, end)
    gap = (start + pd.Timedelta(minutes=100), start + pd.Timedelta(minutes=129))
    assert first.gaps == (gap,) and first.bars_missing == 30 and first.bars_pending == 50
    assert first.bars_new == 420 and "30 bars missing on the exchange" in first.describe()
    assert len(store.frames[("BTCUSDT", "1m")]) == 420
    # The rerun asks only for what is still missing (the hole and the tail), once each.
    assert rerun.gaps == (gap,) and rerun.bars_pending == 50 and rerun.bars_new == 0
    assert rerun.requests <= 3 and rerun.bars_stored == 420


@settings(max_examples=60, deadline=None)
@given(
    present=st.sets(st.integers(0, 39), max_size=40),
    noise=st.lists(st.integers(-5_000_000, 5_000_000), max_size=5),
)
def test_missing_runs_match_a_slow_reference(present: set[int], noise: list[int]) -> None:
    bar, lo, n = 60_000, 1_000 * 60_000, 40
    stamps = [lo + i * bar for i in present] + [lo + x for x in noise if x % bar]  # off-grid
    runs = missing_runs(stamps, lo, lo + n * bar, bar_ms=bar)
    expected: list[tuple[int, int]] = []
    for i in range(n):
        if i in present:
            continue
        a = lo + i * bar
        if expected and expected[-1][1] == a:
            expected[-1] = (expected[-1][0], a + bar)
        else:
            expected.append((a, a + bar))
    assert runs == expected


async def test_fetch_history_pages_backwards_and_deduplicates_overlapping_pages() -> None:
    # A server that answers with overlapping pages (and more than asked for): every bar once.
    t0 = 1_704_067_200_000
    fake = FakeBitget(now_ms=lambda: t0 + 10_000 * 60_000)
    fake.candles = [
        [str(t0 + i * 60_000), "1", "2", "0.5", "1.5", "1", "1.5", "1.5"] for i in range(1_000)
    ]
    original = fake.dispatch
    pages: list[int] = []

    def overlapping(request: httpx.Request, path: str, body: bytes) -> httpx.Response:
        if path.endswith("history-candles"):
            params = dict(request.url.params)
            end = int(params["endTime"]) + 5 * 60_000  # overlap the previous page by 5 bars
            rows = [r for r in fake.candles if int(r[0]) < end][-150:]  # and fewer than asked
            pages.append(len(rows))
            return fake.ok(rows)
        return original(request, path, body)

    fake.dispatch = overlapping  # type: ignore[method-assign]
    async with BitgetClient(make_settings(), transport=fake.transport()) as ex:
        frames = [
            f
            async for f in fetch_history(
                ex, "BTCUSDT", "1m", pd.Timestamp(t0, unit="ms", tz="UTC"),
                pd.Timestamp(t0 + 450 * 60_000, unit="ms", tz="UTC"), concurrency=2,
            )
        ]  # fmt: skip
    got = pd.concat(frames)
    assert len(got) == 450 and got.index.is_unique and got.index.is_monotonic_increasing
    assert len(pages) >= 4


async def test_fetch_rejects_bad_ranges() -> None:
    store = MemoryStore()
    async with BitgetClient(make_settings(), transport=FakeBitget().transport()) as ex:
        with pytest.raises(ConfigError, match="after start"):
            await fetch_to_store(ex, store, "BTCUSDT", "1m", "2024-02-01", "2024-01-01")
        with pytest.raises(ConfigError, match="unknown timeframe"):
            await fetch_to_store(ex, store, "BTCUSDT", "7m", "2024-01-01", "2024-01-02")


class LockedStore(MemoryStore):
    """A store another process holds locked: every read fails (not "no such series")."""

    def read_bars(
        self, symbol: str, timeframe: str, start: object = None, end: object = None
    ) -> pd.DataFrame:
        raise StoreError("store is locked by another process (PID 4242)")


async def test_a_store_error_other_than_unknown_series_stops_the_fetch() -> None:
    # A locked or broken store must not read as empty: that would re-download the range.
    fake = FakeBitget()
    store = LockedStore()
    async with BitgetClient(make_settings(), transport=fake.transport()) as ex:
        with pytest.raises(StoreError, match="locked") as info:
            await fetch_to_store(ex, store, "BTCUSDT", "1m", "2024-01-01", "2024-01-02")
    assert not isinstance(info.value, UnknownSeriesError)
    assert fake.requests == [] and store.writes == 0


class UrlMemoryStore(MemoryStore):
    """MemoryStore opened by URL, as the CLI opens ``chimera_lab.data.Store(url, settings=)``."""

    opened: dict[str, UrlMemoryStore] = {}

    def __new__(cls, url: str, *, settings: object = None) -> UrlMemoryStore:
        if url not in cls.opened:
            store = super().__new__(cls)
            MemoryStore.__init__(store)
            store.url = url
            cls.opened[url] = store
        return cls.opened[url]

    def __init__(self, url: str, *, settings: object = None) -> None:
        pass


def test_cli_fetch_pages_into_the_store_and_resumes(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from chimera_lab.cli.exchange import fetch

    monkeypatch.setattr(chimera_lab.data, "Store", UrlMemoryStore, raising=False)
    UrlMemoryStore.opened.clear()

    async def serve_and_fetch() -> list[object]:
        results = []
        async with replay_sim() as sim:
            base = [
                "--symbol", "BTCUSDT", "--timeframe", "5m", "--base-url", sim.base_url,
                "--store", "mem://cli", "--no-progress",
            ]  # fmt: skip
            runner = CliRunner()
            for end in ("2024-01-01T12:00", "2024-01-02"):  # the second run resumes
                args = [*base, "--start", "2024-01-01", "--end", end]
                results.append(await asyncio.to_thread(runner.invoke, fetch, args))
            bad = [*base, "--start", "2024-01-02", "--end", "2024-01-01"]
            results.append(await asyncio.to_thread(runner.invoke, fetch, bad))
        return results

    first, second, bad = asyncio.run(serve_and_fetch())
    assert first.exit_code == 0, first.output  # type: ignore[attr-defined]
    assert "fetched 144 bars (144 new)" in first.output  # type: ignore[attr-defined]
    assert second.exit_code == 0, second.output  # type: ignore[attr-defined]
    assert "resumed after 2024-01-01 11:55" in second.output  # type: ignore[attr-defined]
    assert "fetched 144 bars (144 new)" in second.output  # type: ignore[attr-defined]
    assert bad.exit_code == 2 and "must be after" in bad.output  # type: ignore[attr-defined]
    stored = UrlMemoryStore.opened["mem://cli"].frames[("BTCUSDT", "5m")]
    assert len(stored) == 288 and stored.index.is_unique
    agg = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    expected = BARS.resample("5min").agg(agg).loc["2024-01-01":"2024-01-01 23:55"]
    assert (stored["close"] - expected["close"]).abs().max() < 0.01


def test_cli_data_fetch_fills_a_real_store_from_the_simulator(tmp_path: object) -> None:
    from click.testing import CliRunner

    from chimera_lab.cli.exchange import fetch

    store_path = f"{tmp_path}/fetch.duckdb"

    async def serve_and_fetch() -> list[str]:
        outputs = []
        async with replay_sim() as sim:
            args = [
                "--symbol", "BTCUSDT", "--timeframe", "1m", "--start", "2024-01-01",
                "--end", "2024-01-01T12:00", "--base-url", sim.base_url, "--store", store_path,
                "--json",
            ]  # fmt: skip
            runner = CliRunner()
            for _ in range(2):  # the second run finds everything in place
                result = await asyncio.to_thread(runner.invoke, fetch, args)
                assert result.exit_code == 0, result.output
                outputs.append(result.output)
        return outputs

    first, second = asyncio.run(serve_and_fetch())
    assert '"bars_new": 720' in first and '"up_to_date": true' in second
    stored = chimera_lab.data.Store(store_path).read_bars("BTCUSDT", "1m")
    assert len(stored) == 720
    assert stored.index[0] == pd.Timestamp("2024-01-01", tz="UTC")
    _ = datetime
