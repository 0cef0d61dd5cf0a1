"""A priority rate limiter with several sliding windows (one per client).

Every request waits here before it is sent. A request may go when every **global** window
(for example 500 per 60 s and 10 per second) and every window of its **endpoint** (Bitget's
per-endpoint limits, bitget-api.md section 3) has room. Windows are exact sliding logs: a
window of ``limit`` per ``period_s`` holds the grant times of its last ``limit`` requests (a
bounded ``deque``) and has room when the oldest is at least ``period_s + margin_s`` old.

Waiting requests are served by :class:`~chimera_lab.exchange.base.Priority` (TRADING, then
MONITORING, then ANALYSIS) and first-come-first-served within a priority. A request held back
only by its own endpoint's window does not block others on other endpoints. A window may keep
a few of its slots for TRADING (``Window(500, 60.0, reserve=10)``): other priorities see it
full ``reserve`` requests early, so however long a low-priority flood runs, it cannot use up
the minute's budget, and an order finds a slot at once (or, once orders have used the reserve
too, takes the **next** free slot). The number of waiting requests is bounded
(``max_waiters``).

Time comes from a :class:`Clock` (monotonic seconds and an async sleep), so tests can drive the
limiter deterministically with a fake clock.

Examples
--------
>>> import asyncio
>>> async def demo():
...     limiter = RateLimiter([Window(2, 1.0)])
...     await limiter.acquire(Priority.TRADING)
...     await limiter.acquire(Priority.ANALYSIS)
...     return limiter.stats.granted
>>> asyncio.run(demo())
{<Priority.TRADING: 0>: 1, <Priority.MONITORING: 1>: 0, <Priority.ANALYSIS: 2>: 1}
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from chimera_lab.errors import ConfigError, RateLimited
from chimera_lab.exchange.base import Priority
from chimera_lab.logging import get_logger

__all__ = ["Clock", "LimiterStats", "RateLimiter", "SystemClock", "Window"]

log = get_logger(__name__)


class Clock(Protocol):
    """Monotonic time and sleeping; :class:`SystemClock` is the real one."""

    def monotonic(self) -> float:
        """Return monotonic seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock: :func:`time.monotonic` and :func:`asyncio.sleep`."""

    def monotonic(self) -> float:
        """Return :func:`time.monotonic`."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Sleep with :func:`asyncio.sleep`."""
        await asyncio.sleep(seconds)


@dataclass(frozen=True, slots=True)
class Window:
    """At most ``limit`` requests in any ``period_s`` seconds.

    The last ``reserve`` of them are kept for TRADING: other priorities see the window full
    at ``limit - reserve``, so a flood of reads can never use up the budget an order needs.

    Examples
    --------
    >>> Window(500, 60.0, reserve=10)
    Window(limit=500, period_s=60.0, reserve=10)
    """

    limit: int
    period_s: float
    reserve: int = 0

    def __post_init__(self) -> None:
        if self.limit < 1 or not self.period_s > 0:
            raise ConfigError(
                f"a rate window needs limit >= 1 and period_s > 0, got {self.limit}/{self.period_s}"
            )
        if not 0 <= self.reserve < self.limit:
            raise ConfigError(
                f"a rate window's TRADING reserve must be in 0..limit-1, got {self.reserve} "
                f"for a limit of {self.limit}"
            )


class _Log:
    # Sliding-window log of the last `limit` requests. Each entry is a one-element list so a
    # request can move its own stamp later (to when it really started, see _Grant.restamp).
    # Entries may then be out of order; reading the first one (never earlier than the
    # smallest) keeps every decision on the safe side.
    __slots__ = ("limit", "period", "reserve", "times")

    def __init__(self, window: Window, margin_s: float) -> None:
        self.limit = window.limit
        self.reserve = window.reserve
        self.period = window.period_s + margin_s
        self.times: deque[list[float]] = deque(maxlen=window.limit)

    def ready_at(self, now: float, trading: bool = True) -> float:
        # Room for one more when fewer than `need - 1` of the logged stamps are younger than
        # the period: the (n - need)-th oldest must have expired. Stamps can be out of order
        # (restamp), so take the newest of the first n - need + 1 entries: never earlier
        # than the true order statistic, hence never too early.
        need = self.limit if trading else self.limit - self.reserve
        n = len(self.times)
        if n < need:
            return now
        oldest = max(self.times[i][0] for i in range(n - need + 1))
        return max(now, oldest + self.period)

    def record(self, now: float) -> list[float]:
        cell = [now]
        self.times.append(cell)
        return cell


class _Grant:
    # The window entries of one granted request.
    __slots__ = ("cells",)

    def __init__(self, cells: list[list[float]]) -> None:
        self.cells = cells

    def restamp(self, now: float) -> None:
        for cell in self.cells:
            if now > cell[0]:
                cell[0] = now


@dataclass(slots=True)
class _Waiter:
    seq: int
    priority: Priority
    key: str | None
    future: asyncio.Future[_Grant]


@dataclass
class LimiterStats:
    """Counters of a :class:`RateLimiter` (for logs, tests and benchmarks)."""

    granted: dict[Priority, int] = field(default_factory=lambda: dict.fromkeys(Priority, 0))
    max_queue_depth: int = 0
    waited: int = 0


class RateLimiter:
    """Priority queue in front of several sliding windows.

    Parameters
    ----------
    windows : sequence of Window
        Global windows every request counts against.
    endpoint_windows : mapping of str to sequence of Window, optional
        Extra windows per key (an endpoint path); a request passes ``key`` to count there too.
    clock : Clock, optional
        Defaults to :class:`SystemClock`.
    margin_s : float
        Added to every window's period: a guard against the exchange seeing two requests
        closer together than they were sent (network jitter).
    max_waiters : int
        Most requests allowed to wait; one more raises :class:`~chimera_lab.errors.RateLimited`.
    max_concurrent : int, optional
        Most requests in flight at once (granted by :meth:`slot` and not yet finished). Set it
        to the connection-pool size: a granted request then never queues for a connection,
        so it reaches the exchange when the windows say, not in a later burst.
    trading_reserve : int
        With ``max_concurrent``, this many in-flight slots are kept for TRADING requests.
    name : str
        Used in task names and log events.
    """

    def __init__(
        self,
        windows: Sequence[Window],
        endpoint_windows: Mapping[str, Sequence[Window]] | None = None,
        *,
        clock: Clock | None = None,
        margin_s: float = 0.0,
        max_waiters: int = 10_000,
        max_concurrent: int | None = None,
        trading_reserve: int = 1,
        name: str = "limiter",
    ) -> None:
        if margin_s < 0 or max_waiters < 1:
            raise ConfigError(
                f"need margin_s >= 0 and max_waiters >= 1, got {margin_s}, {max_waiters}"
            )
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._global = [_Log(w, margin_s) for w in windows]
        self._by_key = {
            key: [_Log(w, margin_s) for w in ws] for key, ws in (endpoint_windows or {}).items()
        }
        self._queues: tuple[dict[str | None, deque[_Waiter]], ...] = tuple({} for _ in Priority)
        self._seq = itertools.count()
        self._waiting = 0
        self._max_waiters = max_waiters
        if max_concurrent is not None and max_concurrent < 1:
            raise ConfigError(f"max_concurrent must be >= 1 or None, got {max_concurrent}")
        self._max_concurrent = max_concurrent
        # Slots only TRADING may take, so a flood of slow reads cannot hold every connection.
        self._reserve = (
            min(max(trading_reserve, 0), max_concurrent - 1) if max_concurrent is not None else 0
        )
        self._in_flight = 0
        self._timer: asyncio.Task[None] | None = None
        self._timer_at = math.inf
        self._name = name
        self.stats = LimiterStats()

    @property
    def waiting(self) -> int:
        """Number of requests waiting for a slot."""
        return self._waiting

    async def acquire(
        self, priority: Priority = Priority.ANALYSIS, key: str | None = None
    ) -> _Grant:
        """Wait for a slot for one request of ``priority`` to endpoint ``key``.

        With ``max_concurrent`` set, pair every ``acquire`` with :meth:`release` (or use
        :meth:`slot`, which also moves the request's window stamps to the moment it really
        starts, in case the event loop was slow to resume it).

        Raises
        ------
        RateLimited
            When ``max_waiters`` requests are already waiting.
        """
        if self._waiting >= self._max_waiters:
            raise RateLimited(
                f"{self._name}: {self._waiting} requests already wait for a rate-limit slot "
                f"(max_waiters={self._max_waiters}); slow down the caller"
            )
        priority = Priority(priority)
        if not self._waiting:  # fast path: nobody queued, so nobody can rank ahead of us
            now = self._clock.monotonic()
            if self._can_start(priority, key, now):
                return self._record(priority, key, now)
        future: asyncio.Future[_Grant] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(next(self._seq), priority, key, future)
        queue = self._queues[priority].get(key)
        if queue is None:
            queue = self._queues[priority][key] = deque()
        queue.append(waiter)
        self._waiting += 1
        self.stats.max_queue_depth = max(self.stats.max_queue_depth, self._waiting)
        try:
            self._pump()
            if not future.done():
                self.stats.waited += 1
            return await future
        except BaseException:
            if future.done() and not future.cancelled() and future.exception() is None:
                self.release()  # granted, but the caller is gone: give the slot back
            else:
                future.cancel()  # still waiting: the pump drops done futures
            raise
        finally:
            self._waiting -= 1

    def release(self) -> None:
        """Mark one granted request as finished (frees an in-flight slot)."""
        self._in_flight = max(0, self._in_flight - 1)
        if self._waiting:
            self._pump()

    @contextlib.asynccontextmanager
    async def slot(
        self, priority: Priority = Priority.ANALYSIS, key: str | None = None
    ) -> AsyncIterator[None]:
        """``async with limiter.slot(priority, key):`` — acquire, run the request, release."""
        grant = await self.acquire(priority, key)
        grant.restamp(self._clock.monotonic())
        try:
            yield
        finally:
            self.release()

    @property
    def in_flight(self) -> int:
        """Granted requests not yet released."""
        return self._in_flight

    def _key_ready(self, key: str | None, now: float) -> float:
        logs = self._by_key.get(key) if key is not None else None
        return max((lg.ready_at(now) for lg in logs), default=now) if logs else now

    def _global_ready(self, now: float, trading: bool) -> float:
        return max((lg.ready_at(now, trading) for lg in self._global), default=now)

    def _pump(self) -> None:
        # Grant as many waiters as the windows allow, best first; then arm a timer for the
        # earliest moment something could change.
        now = self._clock.monotonic()
        while True:
            free = None if self._max_concurrent is None else self._max_concurrent - self._in_flight
            if free is not None and free <= 0:
                return  # release() pumps again
            ready = {True: self._global_ready(now, True), False: self._global_ready(now, False)}
            best: _Waiter | None = None
            wake = math.inf
            for priority, queues in zip(Priority, self._queues, strict=True):
                for key in list(queues):
                    dq = queues[key]
                    while dq and dq[0].future.done():
                        dq.popleft()
                    if not dq:
                        del queues[key]
                if not queues:
                    continue
                trading = priority is Priority.TRADING
                if not trading and free is not None and free <= self._reserve:
                    break  # the remaining connections are kept for orders; release() pumps
                global_ready = ready[trading]
                if global_ready > now:
                    # Lower priorities wait at least as long (they cannot use the reserve).
                    wake = min(wake, global_ready)
                    if trading:
                        continue
                    break
                for key, dq in queues.items():
                    key_ready = self._key_ready(key, now)
                    if key_ready > now:
                        wake = min(wake, key_ready)
                    elif best is None or dq[0].seq < best.seq:
                        best = dq[0]
                if best is not None:
                    break
            if best is None:
                if wake < math.inf:
                    self._arm(wake)
                return
            self._queues[best.priority][best.key].popleft()
            best.future.set_result(self._record(best.priority, best.key, now))

    def _can_start(self, priority: Priority, key: str | None, now: float) -> bool:
        trading = priority is Priority.TRADING
        if self._max_concurrent is not None:
            free = self._max_concurrent - self._in_flight
            if free <= 0 or (not trading and free <= self._reserve):
                return False
        if any(lg.ready_at(now, trading) > now for lg in self._global):
            return False
        return self._key_ready(key, now) <= now

    def _record(self, priority: Priority, key: str | None, now: float) -> _Grant:
        cells = [lg.record(now) for lg in self._global]
        if key is not None:
            for lg in self._by_key.get(key, ()):
                cells.append(lg.record(now))
        self.stats.granted[priority] += 1
        if self._max_concurrent is not None:
            self._in_flight += 1
        return _Grant(cells)

    def _arm(self, at: float) -> None:
        if self._timer is not None and not self._timer.done():
            if self._timer_at <= at:
                return
            self._timer.cancel()
        self._timer_at = at
        delay = max(0.0, at - self._clock.monotonic())
        self._timer = asyncio.get_running_loop().create_task(
            self._wake(delay), name=f"{self._name}-timer"
        )
        self._timer.add_done_callback(self._timer_done)

    async def _wake(self, delay: float) -> None:
        await self._clock.sleep(delay)
        self._timer_at = math.inf
        self._pump()

    def _timer_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:  # a bug: fail every waiter loudly rather than hang them
            log.error("limiter.timer_failed", limiter=self._name, error=repr(exc))
            for queues in self._queues:
                for dq in queues.values():
                    for waiter in dq:
                        if not waiter.future.done():
                            waiter.future.set_exception(exc)

    def close(self) -> None:
        """Cancel the internal timer (waiters still queued are cancelled too)."""
        if self._timer is not None and not self._timer.done():
            self._timer.cancel()
        for queues in self._queues:
            for dq in queues.values():
                for waiter in dq:
                    waiter.future.cancel()
            queues.clear()
