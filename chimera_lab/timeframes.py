"""Timeframe strings, bar spacing and the annualisation convention (one place for all of it).

Timeframes are strings such as ``1m 3m 5m 15m 30m 1h 2h 4h 6h 12h 1d``. Crypto trades 24/7, so
a year is **365 days** of bars: ``periods_per_year("1m") == 525_600``,
``periods_per_year("1h") == 8_760``, ``periods_per_year("1d") == 365``. Metrics infer the
timeframe of a series from the median spacing of its index.

Examples
--------
>>> timeframe_to_timedelta("4h")
Timedelta('0 days 04:00:00')
>>> periods_per_year("1m")
525600.0
"""

from __future__ import annotations

import difflib
import re

import numpy as np
import pandas as pd

from chimera_lab.errors import ConfigError, DataError

__all__ = [
    "DAYS_PER_YEAR",
    "TIMEFRAMES",
    "canonical_timeframe",
    "ceil_to_bar",
    "infer_timeframe",
    "infer_bar_spacing",
    "periods_per_year",
    "timeframe_ms",
    "timeframe_to_timedelta",
]

DAYS_PER_YEAR = 365.0
"""Calendar days in a trading year for 24/7 crypto markets."""

TIMEFRAMES: dict[str, pd.Timedelta] = {
    "1m": pd.Timedelta(minutes=1),
    "3m": pd.Timedelta(minutes=3),
    "5m": pd.Timedelta(minutes=5),
    "15m": pd.Timedelta(minutes=15),
    "30m": pd.Timedelta(minutes=30),
    "1h": pd.Timedelta(hours=1),
    "2h": pd.Timedelta(hours=2),
    "4h": pd.Timedelta(hours=4),
    "6h": pd.Timedelta(hours=6),
    "12h": pd.Timedelta(hours=12),
    "1d": pd.Timedelta(days=1),
}
"""Supported timeframes and their bar spacing. Buckets align to the Unix epoch (UTC)."""

_ALIASES = re.compile(r"^(\d+)\s*(min|minute|minutes|t|m|h|hour|hours|d|day|days)$", re.IGNORECASE)
_UNIT = {"min": "m", "minute": "m", "minutes": "m", "t": "m", "m": "m", "h": "h", "hour": "h"}
_UNIT |= {"hours": "h", "d": "d", "day": "d", "days": "d"}


def _canonical(timeframe: str) -> str:
    match = _ALIASES.match(timeframe.strip())
    if match is None:
        return timeframe
    unit = _UNIT[match.group(2).lower()]
    return f"{int(match.group(1))}{unit}"


def timeframe_to_timedelta(timeframe: str) -> pd.Timedelta:
    """Return the bar spacing of ``timeframe``; raise ``ConfigError`` naming close matches.

    Aliases such as ``"60min"``, ``"1 hour"`` or ``"1day"`` are accepted when they equal a
    supported timeframe. ``"1M"`` is refused: exchanges use it for one month, not one minute.
    """
    text = str(timeframe).strip()
    if re.fullmatch(r"\d+\s*M", text):
        raise ConfigError(
            f"timeframe {timeframe!r} is ambiguous: exchanges write 1M for one month; "
            "write 1m for one minute (monthly bars are not supported)"
        )
    key = _canonical(text)
    if key not in TIMEFRAMES:
        match = _ALIASES.match(text)
        if match is not None:  # "60min" -> the supported timeframe of the same length
            unit = _UNIT[match.group(2).lower()]
            minutes = int(match.group(1)) * {"m": 1, "h": 60, "d": 1440}[unit]
            delta = pd.Timedelta(minutes=minutes)
            key = next((k for k, v in TIMEFRAMES.items() if v == delta), key)
    try:
        return TIMEFRAMES[key]
    except KeyError:
        close = difflib.get_close_matches(str(timeframe), TIMEFRAMES, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"unknown timeframe {timeframe!r}; expected one of {', '.join(TIMEFRAMES)}{hint}"
        ) from None


def infer_bar_spacing(index: pd.DatetimeIndex) -> pd.Timedelta:
    """Return the median spacing between consecutive timestamps (robust to gaps)."""
    if len(index) < 2:
        raise DataError(
            f"need at least 2 timestamps to infer the bar spacing, got {len(index)}; "
            "pass the timeframe explicitly"
        )
    # asi8 counts in the index's own unit (pandas >= 2 indexes may be s/ms/us/ns).
    diffs = np.diff(index.asi8)
    return pd.Timedelta(int(np.median(diffs)), unit=index.unit)


def infer_timeframe(index: pd.DatetimeIndex) -> str | None:
    """Return the timeframe string whose spacing equals the median spacing, else ``None``."""
    spacing = infer_bar_spacing(index)
    for name, delta in TIMEFRAMES.items():
        if delta == spacing:
            return name
    return None


def periods_per_year(spacing: str | pd.Timedelta | pd.DatetimeIndex) -> float:
    """Return bars per 365-day year for a timeframe, a spacing, or an index's median spacing."""
    if isinstance(spacing, str):
        delta = timeframe_to_timedelta(spacing)
    elif isinstance(spacing, pd.DatetimeIndex):
        delta = infer_bar_spacing(spacing)
    else:
        delta = pd.Timedelta(spacing)
    if delta <= pd.Timedelta(0):
        raise DataError(f"bar spacing must be positive, got {delta}")
    return float(pd.Timedelta(days=DAYS_PER_YEAR) / delta)


def canonical_timeframe(timeframe: str) -> tuple[str, int]:
    """Return ``(name, step_ns)``: the canonical name of a timeframe and its length in ns.

    Accepts whatever :func:`timeframe_to_timedelta` accepts (the canonical names such as
    ``"1h"`` and aliases such as ``"1day"`` or ``"1min"``) and names it as
    :data:`TIMEFRAMES` does.

    Raises
    ------
    ConfigError
        For a value that is not a string or names no known timeframe.

    Examples
    --------
    >>> canonical_timeframe("1day")
    ('1d', 86400000000000)
    >>> canonical_timeframe("1min")[0]
    '1m'
    """
    if not isinstance(timeframe, str):
        raise ConfigError(f"timeframe must be a string such as '1m', got {timeframe!r}")
    delta = timeframe_to_timedelta(timeframe)
    for name, value in TIMEFRAMES.items():
        if value == delta:
            return name, int(delta.value)
    raise ConfigError(f"unknown timeframe {timeframe!r}")  # pragma: no cover


def timeframe_ms(timeframe: str) -> int:
    """Return the bar length of ``timeframe`` in milliseconds (exchange timestamps are ms).

    Examples
    --------
    >>> timeframe_ms("1m"), timeframe_ms("1d")
    (60000, 86400000)
    """
    return int(timeframe_to_timedelta(timeframe).value) // 1_000_000


def ceil_to_bar(ms: int, bar_ms: int) -> int:
    """Return ``ms`` rounded up to a bar boundary (bars are aligned to the Unix epoch, UTC).

    Exact integer arithmetic (no float rounding); a value on a boundary is returned as is.

    Examples
    --------
    >>> ceil_to_bar(90_000, 60_000), ceil_to_bar(120_000, 60_000), ceil_to_bar(-1, 60_000)
    (120000, 120000, 0)
    """
    if bar_ms <= 0:
        raise ConfigError(f"bar_ms must be > 0, got {bar_ms}")
    return -(-ms // bar_ms) * bar_ms
