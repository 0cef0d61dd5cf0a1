"""Fault injection for the simulator: latency, 5xx, 429 storms, drops, faults after acceptance.

A :class:`FaultSpec` is an immutable description; assign a new one to ``sim.faults`` to change
faults while the simulator runs. The compact string form (``chimera sim serve --faults``) is
``name=value`` pairs separated by commas, for example
``latency=0.05,error_rate=0.1,timeout_after_accept_rate=0.05,seed=7``.

Examples
--------
>>> spec = FaultSpec.parse("latency=0.05,error_rate=0.1,seed=7")
>>> spec.latency_s, spec.error_rate, spec.seed
(0.05, 0.1, 7)
>>> FaultSpec.parse("paths=/api/v2/spot/trade/*|/api/v2/mix/order/*").paths
('/api/v2/spot/trade/*', '/api/v2/mix/order/*')
>>> FaultSpec().enabled
False
"""

from __future__ import annotations

import dataclasses
import fnmatch
import random
from dataclasses import dataclass, field
from typing import Literal

from chimera_lab.errors import ConfigError

__all__ = ["FaultDecision", "FaultInjector", "FaultSpec"]

_ALIASES = {"latency": "latency_s", "timeout_rate": "timeout_after_accept_rate"}


@dataclass(frozen=True)
class FaultSpec:
    """What goes wrong, and how often. Rates are probabilities per request in ``[0, 1]``.

    Parameters
    ----------
    latency_s : float
        Added delay before every REST response (seconds).
    latency_jitter_s : float
        Extra uniform random delay in ``[0, latency_jitter_s]``.
    error_rate : float
        Answer with a server error (HTTP 500/503 with Bitget's system-busy codes ``40015`` /
        ``45001``, or a plain-text HTTP 502 as a gateway would send) *before* handling the
        request: nothing was done.
    error_statuses : tuple of int
        The HTTP statuses ``error_rate`` picks from.
    rate_limit_storm : float
        Chance that a request starts a 429 storm: it and every request in the next
        ``storm_duration_s`` seconds get HTTP 429 / code ``429``.
    storm_duration_s : float
        Length of a 429 storm (0 makes each injected 429 independent).
    drop_rate : float
        Close the connection without a response before handling the request.
    drop_after_accept_rate : float
        Order endpoints (place/cancel): handle the request (the order **is** placed or
        cancelled), then close the connection without a response.
    timeout_after_accept_rate : float
        Order endpoints: handle the request, then withhold the response for
        ``withhold_s`` seconds (past any sane client timeout) and close the connection.
    error_after_accept_rate : float
        Order endpoints: handle the request (the order **is** placed or cancelled), then
        answer with a server error as ``error_rate`` does (a gateway or the exchange failing
        after it acted).
    withhold_s : float
        How long a withheld response is held back.
    ws_disconnect_every_s : float or None
        Close every WebSocket connection this often (wall seconds).
    seed : int
        Seed of the fault random generator (faults are reproducible for a given request order).
    paths : tuple of str
        Only requests whose path matches one of these ``fnmatch`` patterns get REST faults;
        empty means every path. ``/api/v2/public/time`` and the ``/_sim/`` control endpoints
        are never faulted unless named explicitly.
    """

    latency_s: float = 0.0
    latency_jitter_s: float = 0.0
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500, 502, 503)
    rate_limit_storm: float = 0.0
    storm_duration_s: float = 0.5
    drop_rate: float = 0.0
    drop_after_accept_rate: float = 0.0
    timeout_after_accept_rate: float = 0.0
    error_after_accept_rate: float = 0.0
    withhold_s: float = 30.0
    ws_disconnect_every_s: float | None = None
    seed: int = 0
    paths: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        for name in (
            "error_rate",
            "rate_limit_storm",
            "drop_rate",
            "drop_after_accept_rate",
            "timeout_after_accept_rate",
            "error_after_accept_rate",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"fault {name} must be a probability in [0, 1], got {value}")
        for name in ("latency_s", "latency_jitter_s", "storm_duration_s", "withhold_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"fault {name} must be >= 0, got {getattr(self, name)}")
        if self.ws_disconnect_every_s is not None and self.ws_disconnect_every_s <= 0:
            raise ConfigError(
                f"ws_disconnect_every_s must be > 0 or None, got {self.ws_disconnect_every_s}"
            )
        bad = [s for s in self.error_statuses if not 500 <= s <= 599]
        if bad or not self.error_statuses:
            raise ConfigError(f"error_statuses must be 5xx statuses, got {self.error_statuses}")

    @property
    def enabled(self) -> bool:
        """Whether any REST or WebSocket fault is switched on."""
        return bool(
            self.latency_s
            or self.latency_jitter_s
            or self.error_rate
            or self.rate_limit_storm
            or self.drop_rate
            or self.drop_after_accept_rate
            or self.timeout_after_accept_rate
            or self.error_after_accept_rate
            or self.ws_disconnect_every_s
        )

    def applies_to(self, path: str) -> bool:
        """Whether REST faults apply to ``path``."""
        if self.paths:
            return any(fnmatch.fnmatchcase(path, pattern) for pattern in self.paths)
        return not (path == "/api/v2/public/time" or path.startswith("/_sim/"))

    @classmethod
    def parse(cls, spec: str | None) -> FaultSpec:
        """Build a spec from ``"name=value,name=value"`` (see the module docstring).

        Names are the field names (``latency`` is short for ``latency_s``); ``paths`` and
        ``error_statuses`` take ``|``-separated lists. Unknown names raise ``ConfigError``
        naming the known ones.
        """
        if spec is None or not spec.strip():
            return cls()
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, object] = {}
        for item in spec.split(","):
            item = item.strip()
            if not item:
                continue
            key, sep, raw = item.partition("=")
            key = _ALIASES.get(key.strip(), key.strip())
            if not sep or key not in fields:
                raise ConfigError(
                    f"bad fault {item!r}; expected name=value with name one of "
                    f"{', '.join(sorted([*fields, *_ALIASES]))}"
                )
            raw = raw.strip()
            try:
                if key == "paths":
                    values[key] = tuple(p for p in raw.split("|") if p)
                elif key == "error_statuses":
                    values[key] = tuple(int(p) for p in raw.split("|") if p)
                elif key == "seed":
                    values[key] = int(raw)
                elif key == "ws_disconnect_every_s":
                    values[key] = None if raw.lower() in ("", "none", "off") else float(raw)
                else:
                    values[key] = float(raw)
            except ValueError:
                raise ConfigError(f"fault {key} needs a number, got {raw!r}") from None
        return cls(**values)  # type: ignore[arg-type]

    def to_string(self) -> str:
        """Return the compact form of the non-default fields (inverse of :meth:`parse`)."""
        default = FaultSpec()
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value == getattr(default, f.name):
                continue
            if isinstance(value, tuple):
                value = "|".join(str(v) for v in value)
            parts.append(f"{f.name}={value}")
        return ",".join(parts)


FaultKind = Literal[
    "storm_429",
    "error_5xx",
    "drop",
    "drop_after_accept",
    "timeout_after_accept",
    "error_after_accept",
]


@dataclass(frozen=True)
class FaultDecision:
    """The faults drawn for one request (internal to the simulator, public for tests)."""

    delay_s: float = 0.0
    before: FaultKind | None = None  # "storm_429", "error_5xx" or "drop"
    after: FaultKind | None = None  # "drop_after_accept", "timeout_after_accept", ...
    status: int = 500


class FaultInjector:
    """Draws :class:`FaultDecision` values from a :class:`FaultSpec` with a seeded generator.

    Reassigning :attr:`spec` reseeds the generator, so a test that installs a spec gets the
    same sequence of faults for the same sequence of requests.
    """

    def __init__(self, spec: FaultSpec | None = None) -> None:
        self._spec = spec or FaultSpec()
        self._rng = random.Random(self._spec.seed)
        self._storm_until = float("-inf")

    @property
    def spec(self) -> FaultSpec:
        """The active spec."""
        return self._spec

    @spec.setter
    def spec(self, value: FaultSpec) -> None:
        if not isinstance(value, FaultSpec):
            raise ConfigError(f"faults must be a FaultSpec, got {type(value).__name__}")
        self._spec = value
        self._rng = random.Random(value.seed)
        self._storm_until = float("-inf")

    def draw(self, path: str, *, is_order: bool, now_s: float) -> FaultDecision:
        """Decide the faults of one request to ``path`` at monotonic time ``now_s``."""
        spec = self._spec
        if not spec.enabled or not spec.applies_to(path):
            return FaultDecision()
        rng = self._rng
        delay = spec.latency_s + (
            rng.uniform(0, spec.latency_jitter_s) if spec.latency_jitter_s else 0
        )
        if now_s < self._storm_until:
            return FaultDecision(delay_s=delay, before="storm_429", status=429)
        if spec.rate_limit_storm and rng.random() < spec.rate_limit_storm:
            self._storm_until = now_s + spec.storm_duration_s
            return FaultDecision(delay_s=delay, before="storm_429", status=429)
        if spec.drop_rate and rng.random() < spec.drop_rate:
            return FaultDecision(delay_s=delay, before="drop")
        if spec.error_rate and rng.random() < spec.error_rate:
            status = spec.error_statuses[rng.randrange(len(spec.error_statuses))]
            return FaultDecision(delay_s=delay, before="error_5xx", status=status)
        if is_order:
            if spec.timeout_after_accept_rate and rng.random() < spec.timeout_after_accept_rate:
                return FaultDecision(delay_s=delay, after="timeout_after_accept")
            if spec.drop_after_accept_rate and rng.random() < spec.drop_after_accept_rate:
                return FaultDecision(delay_s=delay, after="drop_after_accept")
            if spec.error_after_accept_rate and rng.random() < spec.error_after_accept_rate:
                status = spec.error_statuses[rng.randrange(len(spec.error_statuses))]
                return FaultDecision(delay_s=delay, after="error_after_accept", status=status)
        return FaultDecision(delay_s=delay)
