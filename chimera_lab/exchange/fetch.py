"""Page Bitget history candles into the bar store: resumable, idempotent, rate-limited.

The range ``[start, end)`` is cut into chunks of ``page_bars`` (200, Bitget's maximum for
``history-candles``) bars. Each chunk is read by paging **backwards** from its end
(``endTime`` = the oldest timestamp seen so far, de-duplicated by timestamp, bitget-api.md
section 3.2), and chunks are written to the store **in ascending order**. So the store always
holds a gap-free prefix of the range, and a rerun resumes after
:meth:`Store.last_timestamp <chimera_lab.data.Store.last_timestamp>`; writes are upserts, so
repeating a chunk changes nothing. A few chunks are fetched concurrently (``concurrency``);
every request still passes the client's rate limiter (ANALYSIS priority, so a live strategy
sharing the client keeps precedence).

Examples
--------
>>> chunk_bounds(0, 500 * 60_000, bar_ms=60_000, page_bars=200)[:2]
[(0, 12000000), (12000000, 24000000)]
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import pandas as pd

from chimera_lab.errors import ConfigError
from chimera_lab.exchange.base import Candle, Exchange, Priority, Product, candles_to_frame
from chimera_lab.exchange.parsing import datetime_to_ms, ms_to_datetime
from chimera_lab.logging import get_logger
from chimera_lab.timeframes import timeframe_to_timedelta

__all__ = ["BarStore", "FetchResult", "chunk_bounds", "fetch_history", "fetch_to_store"]

log = get_logger(__name__)


class BarStore(Protocol):
    """The part of :class:`chimera_lab.data.Store` that fetching uses."""

    def write_bars(self, symbol: str, timeframe: str, df: pd.DataFrame) -> int:
        """Upsert bars; return how many were new."""
        ...

    def read_bars(
        self, symbol: str, timeframe: str, start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
    ) -> pd.DataFrame:  # fmt: skip
        """Return stored bars with ``start <= timestamp <= end``."""
        ...

    def last_timestamp(self, symbol: str, timeframe: str) -> pd.Timestamp | None:
        """Return the open time of the newest stored bar."""
        ...


@dataclass(frozen=True)
class FetchResult:
    """What :func:`fetch_to_store` did."""

    symbol: str
    timeframe: str
    start: pd.Timestamp
    end: pd.Timestamp
    resumed_from: pd.Timestamp | None
    bars_fetched: int
    bars_new: int
    requests: int
    elapsed_s: float
    up_to_date: bool = False

    def describe(self) -> str:
        """One line for humans."""
        if self.up_to_date:
            return f"{self.symbol} {self.timeframe} {self.start} .. {self.end}: already complete"
        resumed = f", resumed after {self.resumed_from}" if self.resumed_from is not None else ""
        return (
            f"{self.symbol} {self.timeframe} {self.start} .. {self.end}: fetched "
            f"{self.bars_fetched} bars ({self.bars_new} new) in {self.requests} requests, "
            f"{self.elapsed_s:.1f} s{resumed}"
        )


def chunk_bounds(
    start_ms: int, end_ms: int, *, bar_ms: int, page_bars: int
) -> list[tuple[int, int]]:
    """Split ``[start_ms, end_ms)`` into ascending ``[lo, hi)`` chunks of ``page_bars`` bars."""
    step = bar_ms * page_bars
    return [(lo, min(lo + step, end_ms)) for lo in range(start_ms, end_ms, step)]


def _align(ts: datetime | pd.Timestamp | str, bar_ms: int, *, up: bool) -> int:
    stamp = pd.Timestamp(ts)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    ms = datetime_to_ms(stamp.tz_convert("UTC").to_pydatetime())
    return -(-ms // bar_ms) * bar_ms if up else (ms // bar_ms) * bar_ms


@dataclass
class _Counter:
    requests: int = 0


async def _fetch_chunk(
    client: Exchange,
    symbol: str,
    timeframe: str,
    lo: int,
    hi: int,
    product: Product | None,
    counter: _Counter,
) -> list[Candle]:
    # Page backwards from `hi` until `lo` is reached or the exchange has nothing older.
    found: dict[int, Candle] = {}
    cursor = hi
    while cursor > lo:
        counter.requests += 1
        page = await client.get_history_candles(
            symbol, timeframe, end=ms_to_datetime(cursor), limit=200,
            product=product, **_analysis(client),
        )  # fmt: skip
        stamps = [datetime_to_ms(c.timestamp) for c in page]
        for ts, candle in zip(stamps, page, strict=True):
            if lo <= ts < hi:
                found[ts] = candle  # de-duplicated by timestamp
        older = [ts for ts in stamps if ts < cursor]
        if not older or min(older) <= lo:
            break
        cursor = min(older)
    return [found[ts] for ts in sorted(found)]


def _analysis(client: Exchange) -> dict[str, Priority]:
    # BitgetClient takes a priority; other Exchange implementations may not.
    from chimera_lab.exchange.bitget import BitgetClient

    return {"priority": Priority.ANALYSIS} if isinstance(client, BitgetClient) else {}


def _bar_ms(timeframe: str) -> int:
    return int(timeframe_to_timedelta(timeframe).total_seconds() * 1000)


async def fetch_history(
    client: Exchange,
    symbol: str,
    timeframe: str,
    start: datetime | pd.Timestamp | str,
    end: datetime | pd.Timestamp | str,
    *,
    product: Product | None = None,
    concurrency: int = 4,
    page_bars: int = 200,
    _counter: _Counter | None = None,
) -> AsyncIterator[pd.DataFrame]:
    """Yield closed bars of ``[start, end)`` as OHLCV frames, one chunk at a time, in order.

    Parameters
    ----------
    client : Exchange
        An open client (its limiter paces the requests).
    symbol, timeframe : str
        What to fetch.
    start, end : datetime, Timestamp or str
        Bar open times; ``end`` is exclusive (``2024-01-01 .. 2024-02-01`` is January).
    product : Product, optional
        Spot or USDT-M futures (default: the client's).
    concurrency : int
        Chunks in flight at once.
    page_bars : int
        Bars per chunk (at most 200).
    """
    if not 1 <= page_bars <= 200 or concurrency < 1:
        raise ConfigError(f"need 1 <= page_bars <= 200 and concurrency >= 1, got {page_bars}")
    bar_ms = _bar_ms(timeframe)
    lo_ms = _align(start, bar_ms, up=True)
    hi_ms = _align(end, bar_ms, up=True)
    if hi_ms <= lo_ms:
        raise ConfigError(f"end ({end}) must be after start ({start})")
    counter = _counter if _counter is not None else _Counter()
    chunks = chunk_bounds(lo_ms, hi_ms, bar_ms=bar_ms, page_bars=page_bars)
    pending: list[asyncio.Task[list[Candle]]] = []
    loop = asyncio.get_running_loop()
    try:
        for index, (lo, hi) in enumerate(chunks):
            pending.append(
                loop.create_task(
                    _fetch_chunk(client, symbol, timeframe, lo, hi, product, counter),
                    name=f"fetch-{symbol}-{timeframe}-{index}",
                )
            )
            while len(pending) >= concurrency or (pending and index == len(chunks) - 1):
                candles = await pending.pop(0)
                yield candles_to_frame(candles)
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def fetch_to_store(
    client: Exchange,
    store: BarStore,
    symbol: str,
    timeframe: str,
    start: datetime | pd.Timestamp | str,
    end: datetime | pd.Timestamp | str,
    *,
    product: Product | None = None,
    progress: Callable[[int], None] | None = None,
    concurrency: int = 4,
) -> FetchResult:
    """Fetch closed bars of ``[start, end)`` into ``store``, resuming where it stopped.

    ``progress(n)`` is called after each chunk with the number of bars it covered (the range's
    bar count is ``(end - start) / timeframe``; a resumed run starts counting after the
    stored prefix).

    Returns
    -------
    FetchResult
    """
    started = time.perf_counter()
    bar_ms = _bar_ms(timeframe)
    bar = pd.Timedelta(milliseconds=bar_ms)
    lo = pd.Timestamp(_align(start, bar_ms, up=True), unit="ms", tz="UTC")
    hi = pd.Timestamp(_align(end, bar_ms, up=True), unit="ms", tz="UTC")
    if hi <= lo:
        raise ConfigError(f"end ({end}) must be after start ({start})")
    last = await asyncio.to_thread(_last_timestamp, store, symbol, timeframe)
    begin, resumed = lo, None
    if last is not None and lo <= last < hi - bar:
        begin, resumed = last + bar, last
    elif last is not None and last >= hi - bar:
        stored = await asyncio.to_thread(store.read_bars, symbol, timeframe, lo, hi - bar)
        if len(stored) == (hi - lo) // bar:
            log.info("exchange.fetch.up_to_date", symbol=symbol, timeframe=timeframe)
            return FetchResult(symbol, timeframe, lo, hi, None, 0, 0, 0, 0.0, up_to_date=True)
    if progress is not None and begin > lo:
        progress(int((begin - lo) // bar))
    counter = _Counter()
    fetched = new = 0
    cursor = begin
    async for frame in fetch_history(
        client, symbol, timeframe, begin, hi, product=product, concurrency=concurrency,
        _counter=counter,
    ):  # fmt: skip
        if not frame.empty:
            new += await asyncio.to_thread(store.write_bars, symbol, timeframe, frame)
            fetched += len(frame)
        chunk_end = min(cursor + 200 * bar, hi)
        if progress is not None:
            progress(int((chunk_end - cursor) // bar))
        cursor = chunk_end
    result = FetchResult(
        symbol, timeframe, lo, hi, resumed, fetched, new, counter.requests,
        time.perf_counter() - started,
    )  # fmt: skip
    log.info(
        "exchange.fetch.done", symbol=symbol, timeframe=timeframe, bars=fetched, new=new,
        requests=counter.requests, elapsed_s=round(result.elapsed_s, 3),
    )  # fmt: skip
    return result


def _last_timestamp(store: BarStore, symbol: str, timeframe: str) -> pd.Timestamp | None:
    from chimera_lab.errors import StoreError

    try:
        return store.last_timestamp(symbol, timeframe)
    except StoreError:
        return None  # no such series yet
