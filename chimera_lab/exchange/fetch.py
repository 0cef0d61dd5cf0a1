"""Page Bitget history candles into the bar store: resumable, idempotent, rate-limited.

:func:`fetch_to_store` first reads which bars of ``[start, end)`` the store already holds and
fetches only the **missing runs** — a rerun after an interruption continues where it stopped,
a range extended backwards fetches the new start, bars imported from a file are not fetched
again. Each missing run is cut into chunks of ``page_bars`` (200, Bitget's maximum for
``history-candles``) bars; each chunk is read by paging **backwards** from its end
(``endTime`` = the oldest timestamp seen so far, de-duplicated by timestamp, bitget-api.md
section 3.2) and written to the store, chunks **in ascending order**; writes are upserts, so
repeating a chunk changes nothing. A few chunks are fetched concurrently (``concurrency``);
every request still passes the client's rate limiter (ANALYSIS priority, so a live strategy
sharing the client keeps precedence).

Every chunk's bar count is checked against what it should hold. Bars the exchange does not
return are not fetched again within the run: those older than the newest bar it has are
**gaps** on the exchange (maintenance, delisting, before the listing), reported in
:attr:`FetchResult.gaps`; those after it are **pending** (not closed yet, or not in its
history yet). A rerun asks for both again — cheaply, one chunk per hole.

Examples
--------
>>> chunk_bounds(0, 500 * 60_000, bar_ms=60_000, page_bars=200)[:2]
[(0, 12000000), (12000000, 24000000)]
>>> missing_runs([0, 60_000, 180_000], 0, 300_000, bar_ms=60_000)
[(120000, 180000), (240000, 300000)]
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from chimera_lab.errors import ConfigError
from chimera_lab.exchange.base import Candle, Exchange, Priority, Product, candles_to_frame
from chimera_lab.exchange.parsing import datetime_to_ms, ms_to_datetime
from chimera_lab.logging import get_logger
from chimera_lab.timeframes import ceil_to_bar, timeframe_ms

__all__ = [
    "BarStore",
    "FetchResult",
    "chunk_bounds",
    "fetch_history",
    "fetch_to_store",
    "missing_runs",
]

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


@dataclass(frozen=True)
class FetchResult:
    """What :func:`fetch_to_store` did.

    Attributes
    ----------
    resumed_from : Timestamp or None
        The last bar of the complete stored prefix the run continued after (``None`` when
        the range's first bar was missing).
    bars_fetched, bars_new : int
        Bars received (in the range) and bars the store did not have before.
    bars_stored : int
        Bars of the range already in the store (not requested).
    gaps : tuple of (Timestamp, Timestamp)
        First and last open time of each run of bars the exchange did not return although
        it has newer ones (a hole in its history).
    bars_missing : int
        Bars in ``gaps``.
    bars_pending : int
        Bars at the end of the range after the newest one the exchange returned (not closed
        yet, or not in its history yet); a rerun fetches them.
    """

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
    bars_stored: int = 0
    gaps: tuple[tuple[pd.Timestamp, pd.Timestamp], ...] = ()
    bars_missing: int = 0
    bars_pending: int = 0

    def describe(self) -> str:
        """One line for humans."""
        if self.up_to_date:
            return f"{self.symbol} {self.timeframe} {self.start} .. {self.end}: already complete"
        resumed = f", resumed after {self.resumed_from}" if self.resumed_from is not None else ""
        stored = f", {self.bars_stored} already stored" if self.bars_stored else ""
        text = (
            f"{self.symbol} {self.timeframe} {self.start} .. {self.end}: fetched "
            f"{self.bars_fetched} bars ({self.bars_new} new) in {self.requests} requests, "
            f"{self.elapsed_s:.1f} s{resumed}{stored}"
        )
        if self.gaps:
            first = self.gaps[0]
            text += (
                f"; {self.bars_missing} bars missing on the exchange in {len(self.gaps)} "
                f"gap(s), the first {first[0]} .. {first[1]}"
            )
        if self.bars_pending:
            text += f"; {self.bars_pending} bars at the end not available yet"
        return text


def chunk_bounds(
    start_ms: int, end_ms: int, *, bar_ms: int, page_bars: int
) -> list[tuple[int, int]]:
    """Split ``[start_ms, end_ms)`` into ascending ``[lo, hi)`` chunks of ``page_bars`` bars."""
    step = bar_ms * page_bars
    return [(lo, min(lo + step, end_ms)) for lo in range(start_ms, end_ms, step)]


def missing_runs(
    stored_ms: Sequence[int] | np.ndarray, start_ms: int, end_ms: int, *, bar_ms: int
) -> list[tuple[int, int]]:
    """Return the ``[lo, hi)`` runs of bar open times in ``[start_ms, end_ms)`` not stored.

    ``stored_ms`` holds the open times present (Unix ms; any order, off-grid or out-of-range
    values are ignored).
    """
    n = (end_ms - start_ms) // bar_ms
    if n <= 0:
        return []
    have = np.zeros(n, dtype=bool)
    stamps = np.asarray(stored_ms, dtype=np.int64)
    offsets = stamps - start_ms
    on_grid = (offsets >= 0) & (offsets < n * bar_ms) & (offsets % bar_ms == 0)
    have[offsets[on_grid] // bar_ms] = True
    padded = np.zeros(n + 2, dtype=np.int8)
    padded[1:-1] = ~have
    steps = np.diff(padded)
    starts, stops = np.flatnonzero(steps == 1), np.flatnonzero(steps == -1)
    return [
        (start_ms + int(a) * bar_ms, start_ms + int(b) * bar_ms)
        for a, b in zip(starts, stops, strict=True)
    ]


def _align(ts: datetime | pd.Timestamp | str, bar_ms: int, *, up: bool) -> int:
    stamp = pd.Timestamp(ts)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    ms = datetime_to_ms(stamp.tz_convert("UTC").to_pydatetime())
    return ceil_to_bar(ms, bar_ms) if up else (ms // bar_ms) * bar_ms


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
    counter: _Counter | None = None,
    *,
    priority: Priority = Priority.ANALYSIS,
) -> list[Candle]:
    # The closed bars in [lo, hi) the exchange has, oldest first: page backwards from `hi`
    # until `lo` is reached or the exchange has nothing older. Also the stream's backfill.
    found: dict[int, Candle] = {}
    cursor = hi
    while cursor > lo:
        if counter is not None:
            counter.requests += 1
        page = await client.get_history_candles(
            symbol, timeframe, end=ms_to_datetime(cursor), limit=200,
            product=product, priority=priority,
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


async def _fetch_chunks(
    client: Exchange,
    symbol: str,
    timeframe: str,
    chunks: Sequence[tuple[int, int]],
    product: Product | None,
    concurrency: int,
    counter: _Counter,
) -> AsyncIterator[tuple[tuple[int, int], list[Candle]]]:
    # Fetch `chunks` with up to `concurrency` in flight; yield them in the given order.
    pending: list[tuple[tuple[int, int], asyncio.Task[list[Candle]]]] = []
    loop = asyncio.get_running_loop()
    try:
        for index, (lo, hi) in enumerate(chunks):
            task = loop.create_task(
                _fetch_chunk(client, symbol, timeframe, lo, hi, product, counter),
                name=f"fetch-{symbol}-{timeframe}-{index}",
            )
            pending.append(((lo, hi), task))
            while len(pending) >= concurrency or (pending and index == len(chunks) - 1):
                bounds, first = pending.pop(0)
                yield bounds, await first
    finally:
        for _, task in pending:
            task.cancel()
        await asyncio.gather(*(task for _, task in pending), return_exceptions=True)


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
    _check(page_bars, concurrency)
    bar_ms = timeframe_ms(timeframe)
    lo_ms = _align(start, bar_ms, up=True)
    hi_ms = _align(end, bar_ms, up=True)
    if hi_ms <= lo_ms:
        raise ConfigError(f"end ({end}) must be after start ({start})")
    chunks = chunk_bounds(lo_ms, hi_ms, bar_ms=bar_ms, page_bars=page_bars)
    async for _, candles in _fetch_chunks(
        client, symbol, timeframe, chunks, product, concurrency, _Counter()
    ):
        yield candles_to_frame(candles)


def _check(page_bars: int, concurrency: int) -> None:
    if not 1 <= page_bars <= 200 or concurrency < 1:
        raise ConfigError(
            f"need 1 <= page_bars <= 200 and concurrency >= 1, got {page_bars}, {concurrency}"
        )


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
    page_bars: int = 200,
) -> FetchResult:
    """Fetch the closed bars of ``[start, end)`` the store lacks into ``store``.

    Only missing runs of bars are requested (see the module docstring), so a rerun resumes
    and a complete range costs no request. ``progress(n)`` is called with the number of
    bars already stored, then after each chunk with the number of bars it covered (they
    add up to the range's bar count, ``(end - start) / timeframe``).

    Returns
    -------
    FetchResult
        Counts, plus the gaps the exchange has and the bars it does not have yet.
    """
    _check(page_bars, concurrency)
    started = time.perf_counter()
    bar_ms = timeframe_ms(timeframe)
    lo_ms, hi_ms = _align(start, bar_ms, up=True), _align(end, bar_ms, up=True)
    lo, hi = _ts(lo_ms), _ts(hi_ms)
    if hi_ms <= lo_ms:
        raise ConfigError(f"end ({end}) must be after start ({start})")
    stored_ms = await asyncio.to_thread(
        _stored_ms, store, symbol, timeframe, lo, _ts(hi_ms - bar_ms)
    )
    runs = missing_runs(stored_ms, lo_ms, hi_ms, bar_ms=bar_ms)
    total = (hi_ms - lo_ms) // bar_ms
    stored = total - sum((b - a) // bar_ms for a, b in runs)
    if not runs:
        log.info("exchange.fetch.up_to_date", symbol=symbol, timeframe=timeframe)
        return FetchResult(
            symbol, timeframe, lo, hi, None, 0, 0, 0, 0.0, up_to_date=True, bars_stored=stored
        )
    resumed = _ts(runs[0][0] - bar_ms) if runs[0][0] > lo_ms else None
    if progress is not None and stored:
        progress(stored)
    chunks = [c for a, b in runs for c in chunk_bounds(a, b, bar_ms=bar_ms, page_bars=page_bars)]
    counter = _Counter()
    fetched = new = 0
    newest = int(stored_ms.max()) if stored_ms.size else None
    holes: list[tuple[int, int]] = []
    async for (chunk_lo, chunk_hi), candles in _fetch_chunks(
        client, symbol, timeframe, chunks, product, concurrency, counter
    ):
        frame = candles_to_frame(candles)
        if not frame.empty:
            new += await asyncio.to_thread(store.write_bars, symbol, timeframe, frame)
            fetched += len(frame)
        got = [datetime_to_ms(c.timestamp) for c in candles]
        if got:
            newest = max(got) if newest is None else max(newest, max(got))
        for a, b in missing_runs(got, chunk_lo, chunk_hi, bar_ms=bar_ms):
            if holes and holes[-1][1] == a:
                holes[-1] = (holes[-1][0], b)  # one hole across a chunk boundary
            else:
                holes.append((a, b))
        if progress is not None:
            progress((chunk_hi - chunk_lo) // bar_ms)
    gaps, pending = _classify(holes, newest, bar_ms)
    result = FetchResult(
        symbol, timeframe, lo, hi, resumed, fetched, new, counter.requests,
        time.perf_counter() - started, bars_stored=stored,
        gaps=tuple((_ts(a), _ts(b - bar_ms)) for a, b in gaps),
        bars_missing=sum((b - a) // bar_ms for a, b in gaps), bars_pending=pending,
    )  # fmt: skip
    if gaps:
        log.warning(
            "exchange.fetch.gaps", symbol=symbol, timeframe=timeframe, gaps=len(gaps),
            bars=result.bars_missing, first=str(result.gaps[0][0]),
        )  # fmt: skip
    log.info(
        "exchange.fetch.done", symbol=symbol, timeframe=timeframe, bars=fetched, new=new,
        requests=counter.requests, stored=stored, pending=pending,
        elapsed_s=round(result.elapsed_s, 3),
    )  # fmt: skip
    return result


def _classify(
    holes: list[tuple[int, int]], newest: int | None, bar_ms: int
) -> tuple[list[tuple[int, int]], int]:
    # Holes before the newest bar known are gaps on the exchange; after it, pending bars.
    gaps: list[tuple[int, int]] = []
    pending = 0
    for a, b in holes:
        cut = a if newest is None else min(max(a, newest + bar_ms), b)
        if cut > a:
            gaps.append((a, cut))
        pending += (b - cut) // bar_ms
    return gaps, pending


def _ts(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz="UTC")


def _stored_ms(
    store: BarStore, symbol: str, timeframe: str, first: pd.Timestamp, last: pd.Timestamp
) -> npt.NDArray[np.int64]:
    # The open times (Unix ms) stored in [first, last]. Only a missing series reads as empty:
    # any other StoreError (locked, broken file) must stop the run, not trigger a re-download.
    # The BarStore protocol has no index-only read, so the whole frame is read for its index.
    from chimera_lab.errors import UnknownSeriesError

    try:
        frame = store.read_bars(symbol, timeframe, first, last)
    except UnknownSeriesError:
        return np.empty(0, dtype=np.int64)
    index = pd.DatetimeIndex(frame.index)
    if index.tz is None:
        index = index.tz_localize("UTC")
    return np.asarray(index.tz_convert("UTC").as_unit("ms").asi8, dtype=np.int64)
