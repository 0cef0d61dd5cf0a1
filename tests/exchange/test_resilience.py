"""Retry policy, circuit breaker and their composition (fake clock: no real waiting)."""

from __future__ import annotations

import asyncio
import random

import pytest
from exchange_fakes import FakeClock, settle

from chimera_lab.errors import (
    AuthenticationError,
    CircuitOpenError,
    ConfigError,
    ExchangeUnavailable,
    InvalidOrder,
    OutcomeUnknown,
    RateLimited,
)
from chimera_lab.exchange.resilience import (
    CircuitBreaker,
    CircuitState,
    Resilience,
    RetryPolicy,
    resilient,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay_s=0.5, max_delay_s=3.0)
    rng = random.Random(42)
    for attempt in range(1, 9):
        cap = min(3.0, 0.5 * 2 ** (attempt - 1))
        draws = [policy.delay_s(attempt, rng) for _ in range(200)]
        assert all(0.0 <= d <= cap for d in draws)
        assert max(draws) > 0.8 * cap  # jitter spreads over the whole range
        assert min(draws) < 0.2 * cap


def test_backoff_respects_retry_after() -> None:
    policy = RetryPolicy(base_delay_s=0.01, max_delay_s=0.01)
    exc = RateLimited("slow down", retry_after_s=2.5)
    assert policy.delay_s(1, random.Random(0), exc) == 2.5


def test_retry_classification() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.should_retry(ExchangeUnavailable("x"), 1)
    assert policy.should_retry(OutcomeUnknown("x"), 2)
    assert policy.should_retry(RateLimited("x"), 1)
    assert not policy.should_retry(ExchangeUnavailable("x"), 3)  # attempts exhausted
    assert not policy.should_retry(InvalidOrder("x"), 1)  # a business error
    assert not policy.should_retry(CircuitOpenError("x"), 1)  # fail fast
    with pytest.raises(ConfigError):
        RetryPolicy(max_attempts=0)


async def test_reads_are_retried_with_backoff_on_the_clock(clock: FakeClock) -> None:
    outcomes: list[BaseException | str] = [ExchangeUnavailable("5xx"), RateLimited("429"), "ok"]
    attempts: list[int] = []

    async def call(attempt: int) -> str:
        attempts.append(attempt)
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    policy = Resilience(
        RetryPolicy(max_attempts=5, base_delay_s=1.0, max_delay_s=8.0),
        clock=clock,
        rng=random.Random(1),
    )
    task = asyncio.get_running_loop().create_task(policy.call(call))
    await settle()
    assert attempts == [1] and clock.sleeping == 1  # backing off, not spinning
    for _ in range(10):
        clock.advance(1.0)
        await settle()
    assert await task == "ok"
    assert attempts == [1, 2, 3]


async def test_business_errors_are_not_retried(clock: FakeClock) -> None:
    calls = 0

    async def call(attempt: int) -> None:
        nonlocal calls
        calls += 1
        raise InvalidOrder("size too small")

    with pytest.raises(InvalidOrder):
        await Resilience(RetryPolicy(max_attempts=5), clock=clock).call(call)
    assert calls == 1


async def test_circuit_opens_fails_fast_and_recovers_through_half_open(clock: FakeClock) -> None:
    breaker = CircuitBreaker("market", failure_threshold=3, recovery_s=60.0, clock=clock)
    policy = Resilience(None, breaker, clock=clock)
    calls = 0
    healthy = False

    async def call(attempt: int) -> str:
        nonlocal calls
        calls += 1
        if not healthy:
            raise ExchangeUnavailable("down")
        return "up"

    for _ in range(3):
        with pytest.raises(ExchangeUnavailable):
            await policy.call(call)
    assert breaker.state is CircuitState.OPEN and calls == 3
    # Open: fails fast without calling.
    with pytest.raises(CircuitOpenError, match="'market' is open after 3"):
        await policy.call(call)
    assert calls == 3 and breaker.rejected == 1
    clock.advance(59.0)
    with pytest.raises(CircuitOpenError):
        await policy.call(call)
    # Recovery time passed: half-open; a failing trial re-opens it.
    clock.advance(1.0)
    assert breaker.state is CircuitState.HALF_OPEN
    with pytest.raises(ExchangeUnavailable):
        await policy.call(call)
    assert calls == 4 and breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        await policy.call(call)
    # Next trial succeeds: closed again, calls flow.
    clock.advance(60.0)
    healthy = True
    assert await policy.call(call) == "up"
    assert breaker.state is CircuitState.CLOSED and breaker.consecutive_failures == 0
    assert await policy.call(call) == "up"


async def test_half_open_lets_exactly_one_trial_through(clock: FakeClock) -> None:
    breaker = CircuitBreaker("trade", failure_threshold=1, recovery_s=5.0, clock=clock)
    breaker.before_call()
    breaker.record_failure()
    clock.advance(5.0)
    release = asyncio.Event()
    started = 0

    async def slow(attempt: int) -> str:
        nonlocal started
        started += 1
        await release.wait()
        return "ok"

    policy = Resilience(None, breaker, clock=clock)
    trial = asyncio.get_running_loop().create_task(policy.call(slow))
    await settle()
    with pytest.raises(CircuitOpenError, match="half-open"):
        await policy.call(slow)
    release.set()
    assert await trial == "ok"
    assert started == 1 and breaker.state is CircuitState.CLOSED


async def test_business_errors_and_429_do_not_trip_the_circuit(clock: FakeClock) -> None:
    breaker = CircuitBreaker("trade", failure_threshold=2, recovery_s=5.0, clock=clock)
    answers = [
        InvalidOrder("x", code="40020", status=400),
        RateLimited("y", code="429", status=429),
        InvalidOrder("z", code="43006", status=400),
    ]
    for exc in answers:
        breaker.before_call()
        breaker.record(exc)
    assert breaker.state is CircuitState.CLOSED
    breaker.record(ExchangeUnavailable("a"))
    breaker.record(InvalidOrder("b", code="40020", status=400))  # an answer: resets the count
    breaker.record(ExchangeUnavailable("c"))
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize(
    "local",
    [
        RateLimited("limiter: 10000 requests already wait"),  # the client's own limiter
        AuthenticationError("this endpoint needs API credentials"),  # nothing was sent
        RuntimeError("BitgetClient is closed"),
        ValueError("a bug"),
    ],
)
async def test_local_errors_are_neutral(clock: FakeClock, local: Exception) -> None:
    breaker = CircuitBreaker("market", failure_threshold=2, recovery_s=5.0, clock=clock)
    breaker.record(ExchangeUnavailable("down"))
    breaker.record(local)  # says nothing about the service: the count stays
    assert breaker.consecutive_failures == 1
    breaker.record(ExchangeUnavailable("down"))
    assert breaker.state is CircuitState.OPEN
    clock.advance(5.0)
    breaker.before_call()  # the half-open trial...
    breaker.record(local)  # ...fails locally: no verdict, the circuit stays half-open
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.before_call()  # and the next call is the trial
    breaker.record(None)
    assert breaker.state is CircuitState.CLOSED


async def test_a_local_error_through_the_policy_does_not_close_a_half_open_circuit(
    clock: FakeClock,
) -> None:
    breaker = CircuitBreaker("market", failure_threshold=1, recovery_s=5.0, clock=clock)
    policy = Resilience(RetryPolicy(max_attempts=3, base_delay_s=0.0), breaker, clock=clock)
    breaker.record_failure()
    clock.advance(5.0)

    async def limiter_full(attempt: int) -> None:
        raise RateLimited("limiter: too many waiters")  # local: no code, no status

    with pytest.raises(RateLimited):
        await policy.call(limiter_full)
    assert breaker.state is CircuitState.HALF_OPEN


async def test_resilient_decorator_composes_retry_and_circuit(clock: FakeClock) -> None:
    breaker = CircuitBreaker("market", failure_threshold=2, recovery_s=10.0, clock=clock)
    calls = 0

    @resilient(retry=RetryPolicy(max_attempts=5, base_delay_s=0.0), circuit=breaker, clock=clock)
    async def always_down(x: int) -> int:
        nonlocal calls
        calls += 1
        raise ExchangeUnavailable("down")

    # Two failures open the circuit; the third attempt fails fast instead of calling.
    with pytest.raises(CircuitOpenError):
        await always_down(1)
    assert calls == 2
    assert always_down.__name__ == "always_down"
