"""Sliding-window rate limits as Bitget documents them, and the counters proof tests read.

Bitget's limits (bitget-api.md §3, §5): each endpoint has its own budget per second, counted
per IP for public market data and per account (UID; here: per API key) for private calls,
independently of the other endpoints; on top, at most 6000 requests per IP per minute, and an
IP that trips that cap is refused for 5 minutes. Over a limit the answer is HTTP 429 with
``{"code":"429","msg":"Too Many Requests",...}``.

Modelling choices (the exchange does not document them; **unverified**): windows slide
(a client that passes a sliding window passes a fixed one too); a refused request does not use
budget; the UID of a private request is its ``ACCESS-KEY``.

Examples
--------
>>> limiter = SimRateLimiter([RateLimitRule("demo", limit=2, window_s=1.0)])
>>> [limiter.check("demo", "127.0.0.1", now_s=t) is None for t in (0.0, 0.1, 0.2, 1.05)]
[True, True, False, True]
>>> limiter.stats.max_in_window["demo"]
3
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["OVERALL_RULE", "RateLimitRule", "SimRateLimiter", "SimStats"]

Scope = Literal["ip", "uid"]


@dataclass(frozen=True)
class RateLimitRule:
    """At most ``limit`` requests per ``window_s`` seconds, per IP or per account.

    ``ban_s`` > 0 refuses the key for that long once the limit was exceeded (Bitget's overall
    cap: 5 minutes).
    """

    name: str
    limit: int
    window_s: float = 1.0
    scope: Scope = "ip"
    ban_s: float = 0.0


OVERALL_RULE = RateLimitRule("overall", limit=6000, window_s=60.0, scope="ip", ban_s=300.0)
"""Bitget's cap over all endpoints: 6000 requests / IP / minute, 5-minute recovery."""


@dataclass
class SimStats:
    """What the simulator saw; proof tests assert on these.

    Attributes
    ----------
    requests : Counter
        REST requests received per path (every request, also refused and faulted ones).
    statuses : Counter
        HTTP statuses sent.
    rate_limited : Counter
        429 answers sent by the limiter, per rule name (injected 429 storms count in
        ``faults["storm_429"]`` instead).
    faults : Counter
        Injected faults per kind (``latency``, ``storm_429``, ``error_5xx``, ``drop``,
        ``drop_after_accept``, ``timeout_after_accept``, ``ws_disconnect``).
    max_in_window : dict
        Per rule name, the largest number of requests *received* from one key within any
        window of that rule (a client that respects the limit keeps this ``<=`` the limit).
    ws_connections : int
        WebSocket connections accepted so far.
    """

    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    rate_limited: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    max_in_window: dict[str, int] = field(default_factory=dict)
    ws_connections: int = 0
    _log: deque[tuple[float, str]] = field(
        default_factory=lambda: deque(maxlen=500_000), repr=False
    )

    @property
    def total_requests(self) -> int:
        """All REST requests received."""
        return sum(self.requests.values())

    def record(self, now_s: float, path: str) -> None:
        """Count one received request (the simulator calls this)."""
        self.requests[path] += 1
        self._log.append((now_s, path))

    def max_requests_in_window(self, window_s: float, *, path_prefix: str = "") -> int:
        """Return the most requests received within any ``window_s``-second sliding window.

        Counts only paths starting with ``path_prefix``. Looks at the last 500,000 requests.
        Use it to check a client's own limits (e.g. 10/s, 500/60 s) after a load test.
        """
        times = [t for t, p in self._log if p.startswith(path_prefix)]
        best = 0
        lo = 0
        for hi, t in enumerate(times):
            while times[lo] <= t - window_s:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    def reset(self) -> None:
        """Forget every count."""
        self.requests.clear()
        self.statuses.clear()
        self.rate_limited.clear()
        self.faults.clear()
        self.max_in_window.clear()
        self.ws_connections = 0
        self._log.clear()


class SimRateLimiter:
    """Enforce :class:`RateLimitRule` windows per key and keep :class:`SimStats` current."""

    def __init__(self, rules: list[RateLimitRule], *, stats: SimStats | None = None) -> None:
        self.rules = {r.name: r for r in rules}
        self.stats = stats if stats is not None else SimStats()
        self.enforce = True
        self._accepted: dict[tuple[str, str], deque[float]] = {}
        self._received: dict[tuple[str, str], deque[float]] = {}
        self._banned_until: dict[tuple[str, str], float] = {}

    def check(self, rule_name: str, key: str, *, now_s: float) -> RateLimitRule | None:
        """Count a request under ``rule_name`` for ``key``; return the rule it breaks, if any."""
        return self.check_all([(rule_name, key)], now_s=now_s)

    def check_all(self, slots: Sequence[tuple[str, str]], *, now_s: float) -> RateLimitRule | None:
        """Count one request under several ``(rule name, key)`` pairs at once.

        Every window is checked before any budget is used: the request is recorded as
        accepted in all of them only when none refuses it, so a request refused by one rule
        (say its endpoint's) uses no budget of the others (say the overall cap). Unknown rule
        names are ignored.

        Parameters
        ----------
        slots : sequence of (str, str)
            ``(rule name, key)`` pairs, checked in this order.
        now_s : float
            Monotonic time of the request, in seconds.

        Returns
        -------
        RateLimitRule or None
            The first rule (in ``slots`` order) that refuses the request, else ``None``.

        Examples
        --------
        >>> limiter = SimRateLimiter(
        ...     [RateLimitRule("all", limit=3, window_s=60.0), RateLimitRule("ep", limit=1)]
        ... )
        >>> [getattr(limiter.check_all([("all", "ip"), ("ep", "ip")], now_s=t), "name", None)
        ...  for t in (0.0, 0.5)]
        [None, 'ep']
        >>> limiter.remaining("all", "ip")  # the refused request used none of "all"
        2
        """
        rules: list[tuple[RateLimitRule, tuple[str, str], float]] = []
        for rule_name, key in slots:
            rule = self.rules.get(rule_name)
            if rule is None:
                continue
            slot = (rule.name, key)
            horizon = now_s - rule.window_s
            received = self._received.setdefault(slot, deque())
            received.append(now_s)
            while received and received[0] <= horizon:
                received.popleft()
            if len(received) > self.stats.max_in_window.get(rule.name, 0):
                self.stats.max_in_window[rule.name] = len(received)
            rules.append((rule, slot, horizon))
        if not self.enforce:
            return None
        for rule, slot, horizon in rules:
            if self._banned_until.get(slot, float("-inf")) > now_s:
                self.stats.rate_limited[rule.name] += 1
                return rule
            accepted = self._accepted.setdefault(slot, deque())
            while accepted and accepted[0] <= horizon:
                accepted.popleft()
            if len(accepted) >= rule.limit:
                if rule.ban_s > 0:
                    self._banned_until[slot] = now_s + rule.ban_s
                self.stats.rate_limited[rule.name] += 1
                return rule
        for _, slot, _ in rules:
            self._accepted[slot].append(now_s)
        return None

    def remaining(self, rule_name: str, key: str) -> int:
        """Return what is left of ``rule_name``'s budget for ``key`` in the current window."""
        rule = self.rules.get(rule_name)
        if rule is None:
            return 0
        window = self._accepted.get((rule_name, key))
        return max(rule.limit - (len(window) if window else 0), 0)

    def reset(self) -> None:
        """Empty every window and lift bans (counters in :attr:`stats` stay)."""
        self._accepted.clear()
        self._received.clear()
        self._banned_until.clear()
