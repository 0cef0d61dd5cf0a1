"""The priority rate limiter, driven deterministically by a fake clock (no real time passes)."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from exchange_fakes import FakeClock, settle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chimera_lab.errors import ConfigError, RateLimited
from chimera_lab.exchange.base import Priority
from chimera_lab.exchange.limiter import RateLimiter, Window

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

A, M, T = Priority.ANALYSIS, Priority.MONITORING, Priority.TRADING


class Recorder:
    def __init__(self, limiter: RateLimiter, clock: FakeClock) -> None:
        self.limiter, self.clock = limiter, clock
        self.grants: list[tuple[str, float]] = []
        self.tasks: list[asyncio.Task[None]] = []

    def submit(self, label: str, priority: Priority, key: str | None = None) -> None:
        async def run() -> None:
            await self.limiter.acquire(priority, key)
            self.grants.append((label, self.clock.now))

        self.tasks.append(asyncio.get_running_loop().create_task(run(), name=f"req-{label}"))

    @property
    def labels(self) -> list[str]:
        return [label for label, _ in self.grants]

    async def close(self) -> None:
        self.limiter.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def test_low_priority_flood_delays_an_order_by_at_most_one_slot(clock: FakeClock) -> None:
    limiter = RateLimiter([Window(10, 1.0), Window(500, 60.0)], clock=clock)
    rec = Recorder(limiter, clock)
    for i in range(300):
        rec.submit(f"a{i}", A, "/candles")
    await settle()
    assert len(rec.grants) == 10  # the first burst fills the 1-second window
    clock.advance(1.0)
    await settle()
    assert len(rec.grants) == 20
    clock.advance(0.4)  # mid-window: nothing frees until t + 2.0
    await settle()
    before = len(rec.grants)
    rec.submit("order", T, "/place-order")
    await settle()
    assert len(rec.grants) == before  # no free slot yet: the order waits...
    clock.advance(0.6)
    await settle()
    assert rec.labels[before] == "order"  # ...and takes the very next slot
    # The flood continues behind it, still first-come-first-served.
    analysis = [label for label in rec.labels if label.startswith("a")]
    assert analysis == [f"a{i}" for i in range(len(analysis))]
    await rec.close()


async def test_reserved_slots_keep_orders_instant_through_a_minute_long_flood(
    clock: FakeClock,
) -> None:
    # 10/s and 500/60 s, a few slots of each kept for TRADING. A flood of reads runs for a
    # whole minute; an order arriving at any moment is granted at once (zero wait), even
    # when the reads have used up what they may of the minute's budget.
    limiter = RateLimiter([Window(10, 1.0, reserve=1), Window(500, 60.0, reserve=10)], clock=clock)
    rec = Recorder(limiter, clock)
    for i in range(700):
        rec.submit(f"a{i}", A, "/candles")
    await settle()
    assert len(rec.grants) == 9  # the burst stops one short of the 1-second window
    rec.submit("order-burst", T, "/place-order")
    await settle()
    assert rec.grants[-1] == ("order-burst", clock.now)  # mid-burst: no wait at all
    for second in range(1, 66):
        clock.advance(1.0)
        await settle()
        if second in (30, 55, 58, 60, 65):  # before, at and after the minute budget runs out
            label = f"order-{second}"
            rec.submit(label, T, "/place-order")
            await settle()
            assert rec.grants[-1] == (label, clock.now), f"{label} had to wait"
    reads = [t for label, t in rec.grants if label.startswith("a")]
    orders = [t for label, t in rec.grants if label.startswith("order")]
    # The reads never took more than their share of either window...
    for t in reads:
        assert sum(1 for u in reads if t - 60.0 < u <= t) <= 490
        assert sum(1 for u in reads if t - 1.0 < u <= t) <= 9
    # ...and everything together stayed inside both windows.
    every = sorted(reads + orders)
    for t in every:
        assert sum(1 for u in every if t - 60.0 < u <= t) <= 500
        assert sum(1 for u in every if t - 1.0 < u <= t) <= 10
    await rec.close()


def test_window_reserve_must_leave_room() -> None:
    with pytest.raises(ConfigError, match="reserve"):
        Window(10, 1.0, reserve=10)
    with pytest.raises(ConfigError, match="reserve"):
        Window(10, 1.0, reserve=-1)


async def test_order_arriving_during_spaced_slots_is_next(clock: FakeClock) -> None:
    # One request per 100 ms: every grant is one slot.
    limiter = RateLimiter([Window(1, 0.1)], clock=clock)
    rec = Recorder(limiter, clock)
    for i in range(50):
        rec.submit(f"a{i}", A)
    await settle()
    for step in range(20):
        if step == 7:
            rec.submit("order", T)
            rec.submit("monitor", M)
            await settle()
        clock.advance(0.1)
        await settle()
    position = rec.labels.index("order")
    assert position == 8  # a0..a7 granted before it arrived (a0 at once, then one per slot)
    assert rec.labels[position + 1] == "monitor"  # MONITORING next, before ANALYSIS
    await rec.close()


async def test_endpoint_window_blocks_only_its_endpoint(clock: FakeClock) -> None:
    limiter = RateLimiter([Window(100, 1.0)], {"/place-order": [Window(1, 1.0)]}, clock=clock)
    rec = Recorder(limiter, clock)
    rec.submit("o1", T, "/place-order")
    rec.submit("o2", T, "/place-order")  # blocked by the endpoint's 1/s
    rec.submit("c1", A, "/candles")  # another endpoint: must not wait behind o2
    rec.submit("c2", A, "/candles")
    await settle()
    assert rec.labels == ["o1", "c1", "c2"]
    clock.advance(1.0)
    await settle()
    assert rec.labels == ["o1", "c1", "c2", "o2"]
    await rec.close()


async def test_cancelled_waiter_is_skipped(clock: FakeClock) -> None:
    limiter = RateLimiter([Window(1, 1.0)], clock=clock)
    rec = Recorder(limiter, clock)
    rec.submit("first", A)
    rec.submit("cancel-me", A)
    rec.submit("third", A)
    await settle()
    rec.tasks[1].cancel()
    await settle()
    assert limiter.waiting == 1
    clock.advance(1.0)
    await settle()
    assert rec.labels == ["first", "third"]
    await rec.close()


async def test_waiters_are_bounded(clock: FakeClock) -> None:
    limiter = RateLimiter([Window(1, 1.0)], clock=clock, max_waiters=3)
    rec = Recorder(limiter, clock)
    for i in range(3):
        rec.submit(f"a{i}", A)
    await settle()  # a0 granted at once; a1, a2 wait
    rec.submit("a3", A)
    await settle()
    assert limiter.waiting == 3
    with pytest.raises(RateLimited, match="max_waiters=3"):
        await limiter.acquire(A)
    await rec.close()


async def test_margin_lengthens_every_window(clock: FakeClock) -> None:
    limiter = RateLimiter([Window(1, 1.0)], clock=clock, margin_s=0.25)
    rec = Recorder(limiter, clock)
    rec.submit("a", A)
    rec.submit("b", A)
    await settle()
    clock.advance(1.0)
    await settle()
    assert rec.labels == ["a"]
    clock.advance(0.25)
    await settle()
    assert rec.labels == ["a", "b"]
    await rec.close()


def test_window_validation() -> None:
    with pytest.raises(ConfigError, match="limit >= 1"):
        Window(0, 1.0)
    with pytest.raises(ConfigError, match="period_s > 0"):
        Window(1, 0.0)


def _arrivals() -> st.SearchStrategy[list[tuple[int, int, int]]]:
    # (arrival tick in 10 ms steps, priority, endpoint 0/1)
    return st.lists(
        st.tuples(st.integers(0, 200), st.integers(0, 2), st.integers(0, 1)),
        min_size=1,
        max_size=40,
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrivals=_arrivals())
def test_windows_never_exceeded_and_priorities_never_inverted(
    arrivals: list[tuple[int, int, int]],
) -> None:
    windows = [Window(5, 0.5), Window(12, 2.0)]
    per_key = {"e0": [Window(3, 0.3)], "e1": [Window(4, 0.5)]}

    async def scenario() -> tuple[list[tuple[int, float, int]], dict[int, tuple[int, int, int]]]:
        clock = FakeClock(start=0.0)
        limiter = RateLimiter(windows, per_key, clock=clock)
        events = itertools.count()
        grants: list[tuple[int, float, int]] = []  # (request, time, event number)
        meta: dict[int, tuple[int, int, int]] = {}  # request -> (priority, endpoint, event)
        tasks = []

        async def request(i: int, prio: int, key: str) -> None:
            await limiter.acquire(Priority(prio), key)
            grants.append((i, clock.now, next(events)))

        pending = sorted(enumerate(arrivals), key=lambda x: (x[1][0], x[0]))
        for _ in range(10_000):
            while pending and pending[0][1][0] * 0.01 <= clock.now + 1e-9:
                i, (_, prio, ep) = pending.pop(0)
                meta[i] = (prio, ep, next(events))
                tasks.append(asyncio.get_running_loop().create_task(request(i, prio, f"e{ep}")))
                await settle(3)
            await settle(3)
            if not pending and len(grants) == len(arrivals):
                break
            # jump to the next arrival or the limiter's next timer, whichever is first
            nxt = [clock.next_deadline()] + ([pending[0][1][0] * 0.01] if pending else [])
            clock.advance(max(0.0, min(t for t in nxt if t is not None) - clock.now))
        limiter.close()
        return grants, meta

    grants, meta = asyncio.run(scenario())
    arrived = {i: t * 0.01 for i, (t, _, _) in enumerate(arrivals)}
    assert sorted(i for i, _, _ in grants) == list(range(len(arrivals)))
    times = [t for _, t, _ in grants]
    # 1) no window ever exceeded: every span of `period` holds at most `limit` grants.
    for w in windows:
        for k, t0 in enumerate(times):
            assert sum(1 for t in times[k:] if t < t0 + w.period_s - 1e-9) <= w.limit
    for key, ws in per_key.items():
        kt = [t for i, t, _ in grants if f"e{meta[i][1]}" == key]
        for w in ws:
            for k, t0 in enumerate(kt):
                assert sum(1 for t in kt[k:] if t < t0 + w.period_s - 1e-9) <= w.limit
    # 2) never inverted: when j is granted, no request i to the same endpoint that ranks
    #    ahead of j (higher priority, or same priority and earlier) and was already waiting
    #    (arrived at an earlier clock time) is granted later. Same-instant races are covered
    #    by the deterministic tests above.
    granted = {i: t for i, t, _ in grants}
    for j, t_j in granted.items():
        pj, ej, aj = meta[j]
        for i, t_i in granted.items():
            pi, ei, ai = meta[i]
            ahead = pi < pj or (pi == pj and ai < aj)
            if ei == ej and ahead and arrived[i] < t_j - 1e-9 and t_i > t_j + 1e-9:
                raise AssertionError(f"request {i} ranked ahead of {j} but was granted after it")


async def test_in_flight_cap_with_a_slot_reserved_for_orders(clock: FakeClock) -> None:
    limiter = RateLimiter([Window(1_000, 1.0)], clock=clock, max_concurrent=3, trading_reserve=1)
    rec = Recorder(limiter, clock)
    for i in range(5):
        rec.submit(f"a{i}", A)
    await settle()
    assert rec.labels == ["a0", "a1"] and limiter.in_flight == 2  # the third slot is reserved
    rec.submit("order", T)
    await settle()
    assert rec.labels == ["a0", "a1", "order"] and limiter.in_flight == 3
    limiter.release()  # a request finished
    await settle()
    assert rec.labels == ["a0", "a1", "order"]  # 2 in flight + reserve: still no room for reads
    limiter.release()
    await settle()
    assert rec.labels == ["a0", "a1", "order", "a2"]
    await rec.close()


async def test_slot_releases_on_error_and_cancellation(clock: FakeClock) -> None:
    limiter = RateLimiter([Window(1_000, 1.0)], clock=clock, max_concurrent=1, trading_reserve=0)
    with pytest.raises(ZeroDivisionError):
        async with limiter.slot(A):
            assert limiter.in_flight == 1
            1 / 0  # noqa: B018
    assert limiter.in_flight == 0
    async with limiter.slot(A):
        waiter = asyncio.get_running_loop().create_task(limiter.acquire(A))
        await settle()
        waiter.cancel()
        await settle()
    assert limiter.in_flight == 0 and limiter.waiting == 0
    limiter.close()
