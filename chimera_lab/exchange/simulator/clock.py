"""The simulator's market clock: stepped by a test, real time, or real time sped up.

The market clock says which replayed bars are closed and where the open bar stands; the
envelope's ``requestTime`` and the WebSocket push ``ts`` report it too (on Bitget they are the
server clock, which is market time, and clients compare bar times with them). It is separate
from the *server* clock (``GET /api/v2/public/time``, the ``ACCESS-TIMESTAMP`` and WebSocket
login checks), which is wall time as on the real exchange: a replay of 2024 data signs and
authenticates in today's time while its candles carry 2024 timestamps.

Examples
--------
>>> clock = SimClock("stepped", start="2024-01-01", bar_ms=60_000)
>>> clock.now
Timestamp('2024-01-01 00:00:00+0000', tz='UTC')
>>> clock.advance(bars=2)
Timestamp('2024-01-01 00:02:00+0000', tz='UTC')
>>> clock.advance(seconds=30).isoformat()
'2024-01-01T00:02:30+00:00'
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import pandas as pd

from chimera_lab.errors import ConfigError

__all__ = ["ClockMode", "SimClock"]

ClockMode = Literal["stepped", "realtime"]

# Called with the new market time (ms) after every stepped advance; the simulator uses it to
# run the matching engine and to wake the WebSocket pushers.
_Listener = Callable[[int], None]


def _to_ms(value: str | pd.Timestamp | int | float, *, name: str = "start") -> int:
    # Numbers are Unix ms. Anything else follows the store's one time rule (naive means UTC;
    # "garbage", "" or NaT is a ConfigError naming ``name``, not a bare pandas ValueError).
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a date/time or Unix ms, got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite Unix time in ms, got {value!r}")
        return int(value)
    # Lazy: the simulator does not load chimera_lab.data (and its store backends) at import.
    from chimera_lab.data.store import to_utc_ns

    ns = to_utc_ns(value, name=name)
    assert ns is not None  # only None maps to None
    return ns // 1_000_000


def _parse_mode(mode: ClockMode | float | str) -> tuple[ClockMode, float]:
    if isinstance(mode, str) and mode in ("stepped", "realtime"):
        return ("stepped" if mode == "stepped" else "realtime"), 1.0
    try:
        speed = float(mode)
    except ValueError:
        speed = float("nan")
    if not speed > 0:  # also rejects NaN
        raise ConfigError(
            f"clock must be 'stepped', 'realtime' or a speed-up factor > 0, got {mode!r}"
        )
    return "realtime", speed


class SimClock:
    """Market time of the simulator.

    Parameters
    ----------
    mode : {"stepped", "realtime"} or float
        ``"stepped"``: time moves only through :meth:`advance` / :meth:`advance_async`.
        ``"realtime"``: time flows with the wall clock. A positive float: real time sped up by
        that factor (``60.0`` replays one hour per minute).
    start : str, Timestamp or int
        Market time at creation (an int is Unix milliseconds).
    bar_ms : int
        Length of one replayed bar, used by ``advance(bars=...)``.

    Attributes
    ----------
    mode : str
        ``"stepped"`` or ``"realtime"``.
    speed : float
        Market seconds per wall second (1.0 when stepped).
    """

    def __init__(
        self,
        mode: ClockMode | float | str = "stepped",
        *,
        start: str | pd.Timestamp | int,
        bar_ms: int = 60_000,
    ) -> None:
        self.mode, self.speed = _parse_mode(mode)
        if bar_ms <= 0:
            raise ConfigError(f"bar_ms must be > 0, got {bar_ms}")
        self.bar_ms = int(bar_ms)
        self._start_ms = _to_ms(start)
        self._offset_ms = 0  # stepped time added by advance()
        self._mono0 = time.monotonic()
        self._listeners: list[_Listener] = []
        self._waiters: list[Callable[[], Awaitable[None]]] = []

    # -- reading ---------------------------------------------------------------------------
    @property
    def now_ms(self) -> int:
        """Market time in Unix milliseconds."""
        if self.mode == "stepped":
            return self._start_ms + self._offset_ms
        elapsed_s = (time.monotonic() - self._mono0) * self.speed
        return self._start_ms + self._offset_ms + int(elapsed_s * 1000)

    @property
    def now(self) -> pd.Timestamp:
        """Market time as a UTC timestamp."""
        return pd.Timestamp(self.now_ms, unit="ms", tz="UTC")

    # -- moving ----------------------------------------------------------------------------
    def advance(self, *, bars: int = 0, seconds: float = 0.0) -> pd.Timestamp:
        """Move market time forward by ``bars`` bars plus ``seconds`` seconds; return it.

        Fills resting orders the replayed prices trade through. WebSocket pushes are only
        scheduled; use :meth:`advance_async` to wait until they were sent. In real-time mode
        this jumps ahead (time keeps flowing afterwards).
        """
        step = int(bars) * self.bar_ms + round(float(seconds) * 1000)
        if step < 0:
            raise ConfigError(f"the clock only moves forward; got bars={bars}, seconds={seconds}")
        self._offset_ms += step
        now = self.now_ms
        for listener in list(self._listeners):
            listener(now)
        return self.now

    async def advance_async(self, *, bars: int = 0, seconds: float = 0.0) -> pd.Timestamp:
        """Advance like :meth:`advance`, then wait until WebSocket updates were sent."""
        now = self.advance(bars=bars, seconds=seconds)
        for waiter in list(self._waiters):
            await waiter()
        return now

    # -- wiring (used by the simulator) -----------------------------------------------------
    def add_listener(self, listener: _Listener) -> None:
        """Call ``listener(now_ms)`` after every :meth:`advance`."""
        self._listeners.append(listener)

    def add_waiter(self, waiter: Callable[[], Awaitable[None]]) -> None:
        """Await ``waiter()`` at the end of every :meth:`advance_async`."""
        self._waiters.append(waiter)

    def remove_wiring(self) -> None:
        """Forget listeners and waiters (the simulator calls this when it stops)."""
        self._listeners.clear()
        self._waiters.clear()

    def __repr__(self) -> str:
        speed = "" if self.mode == "stepped" else f", speed={self.speed:g}"
        return f"SimClock(mode={self.mode!r}{speed}, now={self.now.isoformat()})"
