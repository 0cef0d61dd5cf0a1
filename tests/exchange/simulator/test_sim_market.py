"""Market data: candles (paging, anchoring, open bar), tickers, books, funding, open interest."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chimera_lab.data import load_ohlcv
from chimera_lab.data.synthetic import make_ohlcv
from chimera_lab.errors import ChimeraError
from chimera_lab.exchange.simulator import BitgetSimulator
from chimera_lab.exchange.simulator.market import MarketData

SAMPLE = "data/samples/btcusdt_1m_binance_20240726_20240825.csv.gz"  # real Binance 1m bars


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def _frame(rows: list[list[str]]) -> pd.DataFrame:
    df = pd.DataFrame(
        [[int(r[0]), *map(float, r[1:6])] for r in rows],
        columns=["ts", "open", "high", "low", "close", "volume"],
    )
    df.index = pd.DatetimeIndex(
        pd.to_datetime(df.pop("ts"), unit="ms", utc=True), name="timestamp"
    ).as_unit("ns")
    return df


@pytest.fixture(scope="module")
def real_bars() -> pd.DataFrame:
    return load_ohlcv(SAMPLE).iloc[:3000]


def test_history_candles_page_backwards_through_a_whole_replay(real_bars: pd.DataFrame) -> None:
    async def scenario() -> None:
        sim = BitgetSimulator(real_bars, rate_limits=False)  # start: end of the data
        async with sim, httpx.AsyncClient(base_url=sim.base_url) as http:
            end = int(sim.clock.now_ms)
            seen: dict[int, list[str]] = {}
            for _ in range(40):  # bounded: 3000 bars / 200 per page = 15 pages
                r = await http.get(
                    "/api/v2/mix/market/history-candles",
                    params={
                        "symbol": "BTCUSDT",
                        "productType": "usdt-futures",
                        "granularity": "1m",
                        "endTime": str(end),
                        "limit": "200",
                    },
                )
                rows = r.json()["data"]
                assert all(len(row) == 7 for row in rows)
                ts = [int(row[0]) for row in rows]
                assert ts == sorted(ts)  # ascending
                new = [row for row in rows if int(row[0]) not in seen]
                if not new:
                    break
                seen.update({int(row[0]): row for row in rows})
                end = ts[0]  # endTime is exclusive: the next page ends just before this one
            got = _frame([seen[k] for k in sorted(seen)])
            want = real_bars.round({"open": 2, "high": 2, "low": 2, "close": 2, "volume": 6})
            pd.testing.assert_index_equal(got.index, want.index)
            np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=0, atol=1e-9)

    run(scenario())


def test_candles_limits_required_params_and_anchoring() -> None:
    async def scenario() -> None:
        sim = BitgetSimulator(make_ohlcv(2000, seed=2), rate_limits=False)
        async with sim, httpx.AsyncClient(base_url=sim.base_url) as http:

            async def get(path: str, **params: str) -> Any:
                return (await http.get(path, params=params)).json()

            spot = "/api/v2/spot/market/candles"
            body = await get(spot, symbol="BTCUSDT", granularity="1min")
            assert len(body["data"]) == 100 and all(len(r) == 8 for r in body["data"])
            assert (await get(spot, symbol="BTCUSDT", granularity="1min", limit="1001"))[
                "code"
            ] == "40020"
            assert (await get(spot, symbol="BTCUSDT", granularity="1m"))["code"] == "40020"
            assert (await get(spot, symbol="BTCUSDT"))["code"] == "40019"
            assert (await get(spot, symbol="NOPEUSDT", granularity="1min"))["code"] == "40034"
            hist = "/api/v2/spot/market/history-candles"
            assert (await get(hist, symbol="BTCUSDT", granularity="1min"))["code"] == "40019"
            assert (
                await get(hist, symbol="BTCUSDT", granularity="1min", endTime="1", limit="201")
            )["code"] == "40020"
            # More bars in [start, end) than limit: the newest `limit`, anchored on endTime.
            t0 = int(sim.markets["BTCUSDT"].ts[0])
            rows = (
                await get(
                    spot,
                    symbol="BTCUSDT",
                    granularity="1min",
                    startTime=str(t0),
                    endTime=str(t0 + 500 * 60_000),
                    limit="10",
                )
            )["data"]
            assert [int(r[0]) for r in rows] == [t0 + k * 60_000 for k in range(490, 500)]
            # Futures: at most 90 days between startTime and endTime.
            far = await get(
                "/api/v2/mix/market/candles",
                symbol="BTCUSDT",
                productType="USDT-FUTURES",
                granularity="1m",
                startTime="0",
                endTime=str(91 * 86_400_000),
            )
            assert far["code"] == "40020"

    run(scenario())


def test_recent_candles_include_the_evolving_open_bar_history_does_not() -> None:
    bars = make_ohlcv(300, seed=5)

    async def scenario() -> None:
        sim = BitgetSimulator(bars, start=200, rate_limits=False)
        md = sim.markets["BTCUSDT"]
        async with sim, httpx.AsyncClient(base_url=sim.base_url) as http:
            params = {"symbol": "BTCUSDT", "productType": "USDT-FUTURES", "granularity": "1m"}

            async def last(path: str) -> list[str]:
                extra = {"endTime": str(sim.clock.now_ms)} if "history" in path else {}
                return (await http.get(path, params={**params, **extra})).json()["data"][-1]

            open_ts = str(int(md.ts[200]))
            seen = []
            for _ in range(3):
                row = await last("/api/v2/mix/market/candles")
                assert row[0] == open_ts
                seen.append(row)
                closed = await last("/api/v2/mix/market/history-candles")
                assert int(closed[0]) == int(md.ts[199])  # only closed bars
                await sim.clock.advance_async(seconds=20)
            # The open bar moved: volume grew, and after the bar ends it has the file's values.
            assert float(seen[0][5]) < float(seen[1][5]) < float(seen[2][5])
            await sim.clock.advance_async(seconds=1)
            row = await last("/api/v2/mix/market/history-candles")
            assert row[0] == open_ts
            assert [float(x) for x in row[1:5]] == pytest.approx(
                bars.iloc[200][["open", "high", "low", "close"]].round(2).tolist()
            )

    run(scenario())


def test_coarser_candles_match_a_pandas_resample() -> None:
    bars = make_ohlcv(24 * 60 * 3, seed=9)

    async def scenario() -> None:
        sim = BitgetSimulator(bars, rate_limits=False)
        async with sim, httpx.AsyncClient(base_url=sim.base_url) as http:
            r = await http.get(
                "/api/v2/spot/market/history-candles",
                params={
                    "symbol": "BTCUSDT",
                    "granularity": "1h",
                    "limit": "200",
                    "endTime": str(sim.clock.now_ms),
                },
            )
            got = _frame(r.json()["data"])
            src = bars.round({"open": 2, "high": 2, "low": 2, "close": 2, "volume": 6})
            want = src.resample("1h").agg(
                {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
            )
            assert len(got) == 72
            np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=0, atol=1e-6)

    run(scenario())


def test_tickers_books_funding_and_open_interest_shapes() -> None:
    async def scenario() -> None:
        sim = BitgetSimulator(make_ohlcv(3000, seed=4), rate_limits=False)
        async with sim, httpx.AsyncClient(base_url=sim.base_url) as http:

            async def data(path: str, **params: str) -> Any:
                body = (await http.get(path, params=params)).json()
                assert body["code"] == "00000", body
                return body["data"]

            spot = await data("/api/v2/spot/market/tickers", symbol="BTCUSDT")
            assert isinstance(spot, list) and spot[0]["symbol"] == "BTCUSDT"
            assert float(spot[0]["bidPr"]) < float(spot[0]["askPr"])
            assert all(isinstance(v, str) for k, v in spot[0].items())
            fut = await data(
                "/api/v2/mix/market/ticker", symbol="BTCUSDT", productType="USDT-FUTURES"
            )
            assert len(fut) == 1 and "fundingRate" in fut[0] and "open" not in fut[0]
            book = await data("/api/v2/spot/market/orderbook", symbol="BTCUSDT", limit="5")
            asks = [float(p) for p, _ in book["asks"]]
            bids = [float(p) for p, _ in book["bids"]]
            assert asks == sorted(asks) and bids == sorted(bids, reverse=True)
            assert len(asks) == 5 and bids[0] < asks[0]
            depth = await data(
                "/api/v2/mix/market/merge-depth",
                symbol="BTCUSDT",
                productType="USDT-FUTURES",
                limit="15",
            )
            assert len(depth["bids"]) == 15 and depth["precision"] == "scale0"
            rates = await data(
                "/api/v2/mix/market/current-fund-rate", productType="USDT-FUTURES", symbol="BTCUSDT"
            )
            assert rates[0]["fundingRateInterval"] == "8"
            assert int(rates[0]["nextUpdate"]) % (8 * 3_600_000) == 0
            assert -0.003 <= float(rates[0]["fundingRate"]) <= 0.003
            hist = await data(
                "/api/v2/mix/market/history-fund-rate",
                symbol="BTCUSDT",
                productType="USDT-FUTURES",
                pageSize="3",
            )
            times = [int(h["fundingTime"]) for h in hist]
            assert times == sorted(times, reverse=True) and len(times) == 3  # newest first
            ft = await data(
                "/api/v2/mix/market/funding-time", symbol="BTCUSDT", productType="USDT-FUTURES"
            )
            assert ft[0]["nextFundingTime"] == rates[0]["nextUpdate"]
            oi = await data(
                "/api/v2/mix/market/open-interest", symbol="BTCUSDT", productType="USDT-FUTURES"
            )
            assert float(oi["openInterestList"][0]["size"]) > 0

    run(scenario())


def test_replay_starts_at_the_file_end_and_continues_synthetically(
    real_bars: pd.DataFrame,
) -> None:
    sim = BitgetSimulator(real_bars, clock="stepped")
    md = sim.markets["BTCUSDT"]
    last = real_bars.index[-1] + pd.Timedelta(minutes=1)
    assert sim.clock.now == last
    assert md.closed_count(sim.clock.now_ms) == len(real_bars)
    sim.clock.advance(bars=5000)
    md.ensure(sim.clock.now_ms)
    assert md.closed_count(sim.clock.now_ms) == len(real_bars) + 5000
    assert float(md.open[len(real_bars)]) == pytest.approx(float(md.close[len(real_bars) - 1]))


def test_store_source_reads_the_symbol_and_timeframe(monkeypatch: pytest.MonkeyPatch) -> None:
    import chimera_lab.data as data_pkg

    calls: list[tuple[str, str, str]] = []
    bars = make_ohlcv(50, seed=1, timeframe="5m")

    class FakeStore:  # the documented Store interface: Store(url).bars(symbol, timeframe)
        def __init__(self, url: str) -> None:
            self.url = url

        def bars(self, symbol: str, timeframe: str) -> pd.DataFrame:
            calls.append((self.url, symbol, timeframe))
            return bars

    monkeypatch.setattr(data_pkg, "Store", FakeStore, raising=False)
    sim = BitgetSimulator(store="duckdb:///x.duckdb", symbol="ethusdt", timeframe="5m")
    assert calls == [("duckdb:///x.duckdb", "ETHUSDT", "5m")]
    md = sim.markets["ETHUSDT"]
    assert md.tf_ms == 300_000 and md.closed_count(sim.clock.now_ms) == 50


def test_store_source_serves_a_coarser_timeframe_from_stored_1m_bars(tmp_path: Path) -> None:
    # As every CLI command does: a 1m-only store serves 5m bars, aggregated from the 1m ones.
    from chimera_lab.data import Store
    from chimera_lab.data.resample import resample_ohlcv

    url = f"duckdb:///{tmp_path / 'bars.duckdb'}"
    one_minute = make_ohlcv(600, seed=6, start="2024-03-01")
    Store(url).write_bars("BTCUSDT", "1m", one_minute)
    sim = BitgetSimulator(store=url, symbol="BTCUSDT", timeframe="5m")
    md = sim.markets["BTCUSDT"]
    want = resample_ohlcv(one_minute, "5m")
    assert md.tf_ms == 300_000 and md.closed_count(sim.clock.now_ms) == len(want) == 120
    np.testing.assert_array_equal(md.ts, want.index.as_unit("ms").asi8)
    np.testing.assert_allclose(md.close, want["close"].round(md.price_decimals), rtol=0, atol=0)
    np.testing.assert_allclose(md.volume, want["volume"].round(6), rtol=0, atol=1e-9)
    with pytest.raises(ChimeraError, match="ETHUSDT"):  # nothing stored: a clear error
        BitgetSimulator(store=url, symbol="ETHUSDT", timeframe="5m")


@settings(max_examples=60, deadline=None)
@given(
    drop=st.sets(st.integers(1, 39), max_size=12),
    tf_min=st.sampled_from([1, 5, 60]),
    offsets=st.lists(st.integers(-(10**7), 10**9), min_size=1, max_size=20),
)
def test_closed_count_matches_the_shifted_array_reference(
    drop: set[int], tf_min: int, offsets: list[int]
) -> None:
    # closed_count shifts now instead of the whole ts array; the reference is the obvious
    # "count bars with open + timeframe <= now", evaluated on gappy data at random times.
    bars = make_ohlcv(40, seed=3, timeframe=f"{tf_min}m", start="2024-01-01")
    # at most 12 of 40 bars dropped: the median spacing (the inferred timeframe) is unchanged
    md = MarketData("BTCUSDT", bars.drop(bars.index[sorted(drop)]), price_decimals=2)
    for off in offsets:
        now = int(md.ts[0]) + off
        want = int(np.searchsorted(md.ts + md.tf_ms, now, side="right"))
        assert md.closed_count(now) == want
    for t in md.ts:  # the exact bar boundaries, where an off-by-one would show
        for now in (int(t) + md.tf_ms - 1, int(t) + md.tf_ms, int(t) + md.tf_ms + 1):
            assert md.closed_count(now) == int(np.searchsorted(md.ts + md.tf_ms, now, side="right"))
