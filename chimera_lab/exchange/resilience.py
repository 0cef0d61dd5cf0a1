"""Retries with exponential backoff and jitter, and circuit breakers, as one composable policy.

- :class:`RetryPolicy` says which failures are worth another attempt (by default transport
  failures, timeouts, 5xx and busy codes — :class:`~chimera_lab.errors.ExchangeUnavailable` —
  and 429s — :class:`~chimera_lab.errors.RateLimited`) and how long to wait: "full jitter",
  ``uniform(0, min(max_delay_s, base_delay_s * 2**(attempt - 1)))``, never less than a 429's
  ``retry_after_s``.
- :class:`CircuitBreaker` guards one endpoint group: **closed** (calls pass) → **open** after
  ``failure_threshold`` consecutive failures (calls fail fast with
  :class:`~chimera_lab.errors.CircuitOpenError`) → **half-open** after ``recovery_s`` (one
  trial call passes; success closes the circuit, failure opens it again). Only
  ``ExchangeUnavailable`` counts as a failure; an **answer from the service** — a business
  error (bad order, unknown order, refused credentials) or a 429, i.e. an
  :class:`~chimera_lab.errors.ExchangeError` carrying the exchange's ``code`` or HTTP
  ``status`` — proves it is up and counts as a success. Errors raised locally before anything
  was sent (the client's own limiter refusing to queue, missing credentials, a closed client,
  a bug) say nothing about the service and are neutral.
- :class:`Resilience` combines both; :func:`resilient` applies one to an async function.

Orders are **not** retried by this generic policy: resending an order is only safe with the
same ``clientOid`` after asking the exchange whether the first attempt landed — the Bitget
client does that itself (:meth:`~chimera_lab.exchange.bitget.BitgetClient.place_order`).

Examples
--------
>>> import asyncio
>>> from chimera_lab.errors import ExchangeUnavailable
>>> calls = []
>>> @resilient(retry=RetryPolicy(max_attempts=3, base_delay_s=0.0))
... async def flaky():
...     calls.append(1)
...     if len(calls) < 3:
...         raise ExchangeUnavailable("busy")
...     return "ok"
>>> asyncio.run(flaky()), len(calls)
('ok', 3)
"""

from __future__ import annotations

import functools
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import ParamSpec, TypeVar

from chimera_lab.errors import (
    CircuitOpenError,
    ConfigError,
    ExchangeError,
    ExchangeUnavailable,
    RateLimited,
)
from chimera_lab.exchange.limiter import Clock, SystemClock
from chimera_lab.logging import get_logger

__all__ = [
    "CircuitBreaker",
    "CircuitState",
    "Resilience",
    "RetryPolicy",
    "resilient",
]

log = get_logger(__name__)

T = TypeVar("T")
P = ParamSpec("P")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how long to wait before another attempt.

    Parameters
    ----------
    max_attempts : int
        Attempts in total (1 = no retry).
    base_delay_s, max_delay_s : float
        Backoff of attempt ``n`` is drawn from ``[0, min(max_delay_s, base_delay_s * 2**(n-1))]``.
    retry_on : tuple of exception types
        Failures worth retrying. :class:`~chimera_lab.errors.CircuitOpenError` never is.
    """

    max_attempts: int = 5
    base_delay_s: float = 0.2
    max_delay_s: float = 10.0
    retry_on: tuple[type[BaseException], ...] = (ExchangeUnavailable, RateLimited)

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ConfigError(
                "RetryPolicy needs max_attempts >= 1 and non-negative delays, got "
                f"{self.max_attempts}, {self.base_delay_s}, {self.max_delay_s}"
            )

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        """Whether ``exc`` on attempt ``attempt`` (1-based) deserves another attempt."""
        if attempt >= self.max_attempts or isinstance(exc, CircuitOpenError):
            return False
        return isinstance(exc, self.retry_on)

    def delay_s(self, attempt: int, rng: random.Random, exc: BaseException | None = None) -> float:
        """Backoff before attempt ``attempt + 1``: full jitter, at least a 429's retry-after.

        Examples
        --------
        >>> policy = RetryPolicy(base_delay_s=1.0, max_delay_s=4.0)
        >>> all(0 <= policy.delay_s(n, random.Random(n)) <= min(4.0, 2 ** (n - 1))
        ...     for n in range(1, 8))
        True
        """
        cap = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        delay = rng.uniform(0.0, cap)
        if isinstance(exc, RateLimited) and exc.retry_after_s is not None:
            delay = max(delay, exc.retry_after_s)
        return delay


class CircuitState(StrEnum):
    """State of a :class:`CircuitBreaker`."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


def _is_failure(exc: BaseException) -> bool:
    return isinstance(exc, ExchangeUnavailable) and not isinstance(exc, CircuitOpenError)


def _is_answer(exc: BaseException) -> bool:
    # The service answered (with an error code or an HTTP status): it is up.
    return isinstance(exc, ExchangeError) and (exc.code is not None or exc.status is not None)


class CircuitBreaker:
    """Fail fast while an endpoint group is down.

    Parameters
    ----------
    name : str
        The endpoint group (``"market"``, ``"trade"``, ``"account"``), shown in errors and logs.
    failure_threshold : int
        Consecutive failures that open the circuit.
    recovery_s : float
        Time the circuit stays open before one trial call is let through (half-open).
    clock : Clock, optional
        Monotonic time source (tests pass a fake one).

    Examples
    --------
    >>> cb = CircuitBreaker("market", failure_threshold=2, recovery_s=60.0)
    >>> for _ in range(2):
    ...     cb.before_call(); cb.record_failure()
    >>> cb.state
    <CircuitState.OPEN: 'open'>
    >>> cb.before_call()
    Traceback (most recent call last):
    ...
    chimera_lab.errors.CircuitOpenError: circuit 'market' is open after 2 consecutive failures; ...
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        recovery_s: float = 60.0,
        clock: Clock | None = None,
    ) -> None:
        if failure_threshold < 1 or not recovery_s > 0:
            raise ConfigError(
                "CircuitBreaker needs failure_threshold >= 1 and recovery_s > 0, got "
                f"{failure_threshold}, {recovery_s}"
            )
        self.name = name
        self.failure_threshold = failure_threshold
        self.recovery_s = recovery_s
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False
        self.rejected = 0

    @property
    def state(self) -> CircuitState:
        """Current state (an open circuit past its recovery time reports ``HALF_OPEN``)."""
        if self._state is CircuitState.OPEN and self._recovered():
            return CircuitState.HALF_OPEN
        return self._state

    @property
    def consecutive_failures(self) -> int:
        """Failures since the last success."""
        return self._failures

    def _recovered(self) -> bool:
        return self._clock.monotonic() - self._opened_at >= self.recovery_s

    def before_call(self) -> None:
        """Let a call through or raise :class:`~chimera_lab.errors.CircuitOpenError`."""
        if self._state is CircuitState.OPEN and self._recovered():
            self._transition(CircuitState.HALF_OPEN)
        if self._state is CircuitState.CLOSED:
            return
        if self._state is CircuitState.HALF_OPEN and not self._trial_in_flight:
            self._trial_in_flight = True
            return
        self.rejected += 1
        if self._state is CircuitState.HALF_OPEN:
            why = "is half-open and its trial call is still running"
        else:
            left = max(0.0, self.recovery_s - (self._clock.monotonic() - self._opened_at))
            why = (
                f"is open after {self._failures} consecutive failures; "
                f"a trial call is allowed in {left:.1f} s"
            )
        raise CircuitOpenError(f"circuit {self.name!r} {why}")

    def record_success(self) -> None:
        """Record a call that reached a working service: close the circuit."""
        self._trial_in_flight = False
        self._failures = 0
        if self._state is not CircuitState.CLOSED:
            self._transition(CircuitState.CLOSED)

    def record_failure(self) -> None:
        """Record a failed call: open the circuit at the threshold or after a failed trial."""
        self._failures += 1
        trial = self._trial_in_flight
        self._trial_in_flight = False
        if (
            trial
            or self._state is CircuitState.HALF_OPEN
            or (self._state is CircuitState.CLOSED and self._failures >= self.failure_threshold)
        ):
            self._opened_at = self._clock.monotonic()
            self._transition(CircuitState.OPEN)

    def record_neutral(self) -> None:
        """Release a half-open trial without a verdict (the call was cancelled)."""
        self._trial_in_flight = False

    def record(self, exc: BaseException | None) -> None:
        """Record an outcome.

        ``None`` or an error answered by the service (an ``ExchangeError`` with a ``code`` or
        ``status``: a business error, a 429) is a success; ``ExchangeUnavailable`` (transport
        failure, timeout, 5xx) a failure; anything else — an error raised locally before
        anything was sent, a cancellation — is neutral (it releases a half-open trial).
        """
        if exc is None:
            self.record_success()
        elif isinstance(exc, CircuitOpenError):
            pass
        elif _is_failure(exc):
            self.record_failure()
        elif _is_answer(exc):
            self.record_success()
        else:
            self.record_neutral()

    def _transition(self, state: CircuitState) -> None:
        if state is not self._state:
            log.warning(
                "exchange.circuit",
                circuit=self.name,
                old=self._state.value,
                new=state.value,
                failures=self._failures,
            )
        self._state = state


class Resilience:
    """A retry policy and a circuit breaker applied together (both optional).

    Each attempt first asks the breaker (an open circuit raises ``CircuitOpenError`` at once,
    never retried), then runs; the outcome is recorded; a retryable failure sleeps the backoff
    and tries again.

    Parameters
    ----------
    retry : RetryPolicy, optional
        ``None`` means a single attempt.
    circuit : CircuitBreaker, optional
    clock : Clock, optional
        Used to sleep between attempts.
    rng : random.Random, optional
        Jitter source (seed it for reproducible delays).
    name : str
        Shown in log events.
    """

    def __init__(
        self,
        retry: RetryPolicy | None = None,
        circuit: CircuitBreaker | None = None,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        name: str = "call",
    ) -> None:
        self.retry = retry if retry is not None else RetryPolicy(max_attempts=1)
        self.circuit = circuit
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._rng = rng if rng is not None else random.Random()
        self.name = name

    async def call(self, attempt_fn: Callable[[int], Awaitable[T]]) -> T:
        """Run ``attempt_fn(attempt)`` (1-based attempt) under the policy; return its value."""
        attempt = 1
        while True:
            if self.circuit is not None:
                self.circuit.before_call()
            try:
                result = await attempt_fn(attempt)
            except BaseException as exc:
                if self.circuit is not None:
                    self.circuit.record(exc)
                if not isinstance(exc, Exception) or not self.retry.should_retry(exc, attempt):
                    raise
                delay = self.retry.delay_s(attempt, self._rng, exc)
                log.info(
                    "exchange.retry",
                    call=self.name,
                    attempt=attempt,
                    delay_s=round(delay, 3),
                    error=type(exc).__name__,
                    code=getattr(exc, "code", None),
                )
                await self._clock.sleep(delay)
                attempt += 1
                continue
            if self.circuit is not None:
                self.circuit.record_success()
            return result


def resilient(
    retry: RetryPolicy | None = None,
    circuit: CircuitBreaker | None = None,
    *,
    clock: Clock | None = None,
    rng: random.Random | None = None,
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    """Decorate an async function with a :class:`Resilience` policy.

    The function is called again, with the same arguments, for each attempt — use it only
    for calls that are safe to repeat (reads, or writes made idempotent by a key).
    """

    def decorate(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        policy = Resilience(retry, circuit, clock=clock, rng=rng, name=fn.__qualname__)

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return await policy.call(lambda _attempt: fn(*args, **kwargs))

        return wrapper

    return decorate
