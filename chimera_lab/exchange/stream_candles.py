"""Closed candles exactly once, in order: the candle bookkeeping of ``BitgetStream``.

A candle is closed once a newer one appears; each closed candle is emitted once, oldest
first. A gap — after a reconnect, or a push that skips bars — is filled from the reconnect
snapshot and, where that does not reach, from REST history candles; but only once REST
covers the whole gap (history may lag the stream). An incomplete answer is retried on the
next push; after ``backfill_attempts`` tries the hole is reported (``_gap_notice``) and
skipped.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from chimera_lab.errors import ChimeraError
from chimera_lab.exchange.base import Candle, Exchange, Priority, Product
from chimera_lab.exchange.fetch import _fetch_chunk
from chimera_lab.exchange.parsing import datetime_to_ms, parse_candle_row
from chimera_lab.logging import get_logger

if TYPE_CHECKING:
    from chimera_lab.exchange.stream import StreamEvent, StreamStats

__all__ = ["CandleSyncMixin"]

log = get_logger("chimera_lab.exchange.stream")  # one logger for the whole stream


@dataclass
class _CandleSub:
    symbol: str
    timeframe: str
    product: Product
    bar_ms: int
    last_emitted_ms: int | None  # None until the first snapshot sets the baseline
    forming: Candle | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    backfill_tries: int = 0  # consecutive backfills that could not close the gap


class CandleSyncMixin:
    """Turns candle pushes into closed candles, exactly once and in order (with backfill)."""

    if TYPE_CHECKING:  # provided by BitgetStream
        _rest: Exchange | None
        backfill_attempts: int
        include_forming: bool
        stats: StreamStats

        def _offer(self, item: object, *, force: bool = False) -> bool: ...

        async def _deliver(self, item: StreamEvent) -> None: ...

        async def _gap_notice(self, sub: _CandleSub, holes: list[int]) -> None: ...

    async def _on_candles(self, sub: _CandleSub, data: list[Any]) -> None:
        rows: dict[int, Candle] = {}
        for row in data:
            candle = parse_candle_row(row, sub.symbol, sub.timeframe, quote_index=6)
            rows[datetime_to_ms(candle.timestamp)] = candle
        if not rows:
            return
        newest = max(rows)
        closed: dict[int, Candle] = {}
        if sub.forming is not None:
            forming_ms = datetime_to_ms(sub.forming.timestamp)
            if forming_ms < newest:
                closed[forming_ms] = sub.forming
        for ts, candle in rows.items():
            if ts < newest:
                closed[ts] = candle  # a newer bar exists: this one is final
        if sub.forming is None or datetime_to_ms(sub.forming.timestamp) <= newest:
            sub.forming = replace(rows[newest], closed=False)
        if sub.last_emitted_ms is None:
            # First snapshot without `since`: start after the newest closed bar seen.
            sub.last_emitted_ms = max(closed) if closed else newest - sub.bar_ms
            closed = {}
        sub.ready.set()
        for ts in sorted(closed):
            if ts <= sub.last_emitted_ms:
                continue
            if ts > sub.last_emitted_ms + sub.bar_ms and not await self._backfill(sub, ts):
                return  # REST failed: the next push retries the whole gap
            if ts > sub.last_emitted_ms:
                await self._emit(sub, replace(closed[ts], closed=True))
        if self.include_forming and sub.forming is not None:
            self._offer(sub.forming)

    async def _backfill(self, sub: _CandleSub, before_ms: int) -> bool:
        # Fetch closed bars in (last_emitted, before_ms) over REST and emit them in order —
        # only when they cover that range completely. REST history may lag the stream: an
        # incomplete answer returns False and the next push tries again; after
        # `backfill_attempts` tries the hole is reported as a "gap" and skipped.
        assert sub.last_emitted_ms is not None and self._rest is not None
        try:
            page = await _fetch_chunk(
                self._rest, sub.symbol, sub.timeframe, sub.last_emitted_ms + sub.bar_ms,
                before_ms, sub.product, priority=Priority.MONITORING,
            )  # fmt: skip
        except ChimeraError as exc:
            log.warning(
                "exchange.ws.backfill_failed", symbol=sub.symbol, timeframe=sub.timeframe,
                error=f"{type(exc).__name__}: {exc}",
            )  # fmt: skip
            return False
        missing = {datetime_to_ms(c.timestamp): c for c in page}
        wanted = range(sub.last_emitted_ms + sub.bar_ms, before_ms, sub.bar_ms)
        holes = [ts for ts in wanted if ts not in missing]
        if holes:
            sub.backfill_tries += 1
            if sub.backfill_tries < self.backfill_attempts:
                log.info(
                    "exchange.ws.backfill_incomplete", symbol=sub.symbol,
                    timeframe=sub.timeframe, missing=len(holes), attempt=sub.backfill_tries,
                )  # fmt: skip
                return False
            await self._gap_notice(sub, holes)
        sub.backfill_tries = 0
        for candle in page:  # oldest first, all inside (last_emitted, before_ms)
            self.stats.backfilled += 1
            await self._emit(sub, replace(candle, closed=True))
        log.info(
            "exchange.ws.backfill", symbol=sub.symbol, timeframe=sub.timeframe, bars=len(missing)
        )
        return True

    async def _emit(self, sub: _CandleSub, candle: Candle) -> None:
        sub.last_emitted_ms = datetime_to_ms(candle.timestamp)
        self.stats.candles_emitted += 1
        await self._deliver(candle)
