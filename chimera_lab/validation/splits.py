"""Walk-forward splits: rolling or anchored train windows, an embargo, then a test window.

Windows are given as **durations** (``"30D"``, ``"7D"``, ``"60min"``, a ``Timedelta``) or as
**bar counts** (``int``, or a string of digits such as ``"2000"``). Train and test must use the
same kind; ``step`` (default: ``test``) uses it too, and ``embargo`` is converted when it is the
other kind (a bar count becomes that many bar spacings; a duration becomes the number of bars it
spans, rounded up).

Fold ``k`` (0-based) of a duration split, with ``t0`` the first timestamp::

    test  = [t0 + train + embargo + k * step,  ... + test)          half-open, in time
    train = [test_start - embargo - train,  test_start - embargo)     rolling
    train = [t0,                            test_start - embargo)     anchored (expanding)

so every test bar is later than every train bar plus the embargo (an embargo of ``n`` bars skips
exactly ``n`` bars). Bar-count splits use the same formulas on positions. Only complete test
windows are produced unless ``partial=True`` keeps a shorter last one; windows that hold no bar
(a gap in the data) are skipped. ``step`` must be at least ``test``: overlapping test windows
would count out-of-sample bars twice when the folds are stitched.

Examples
--------
>>> import pandas as pd
>>> idx = pd.date_range("2024-01-01", periods=10 * 24, freq="1h", tz="UTC")
>>> folds = list(walk_forward_splits(idx, train="4D", test="2D"))
>>> [(f.train_start.day, f.train_end.day, f.test_start.day, f.test_end.day) for f in folds]
[(1, 4, 5, 6), (3, 6, 7, 8), (5, 8, 9, 10)]
>>> [f.n_test for f in walk_forward_splits(idx, train=96, test=48, anchored=True, embargo=2)]
[48, 48]
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from chimera_lab.errors import ConfigError, DataError
from chimera_lab.frames import to_utc  # re-exported: validation.to_utc is the documented name
from chimera_lab.timeframes import infer_bar_spacing

__all__ = [
    "Fold",
    "WindowLike",
    "as_time_index",
    "parse_window",
    "to_utc",
    "walk_forward_splits",
]

WindowLike = str | int | pd.Timedelta | timedelta
"""A window length: a duration (``"7D"``, ``Timedelta``) or a bar count (``int``, ``"500"``)."""


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold: a train window, an embargo gap and a test window.

    Timestamps are those of the first and last bar of each window (both inclusive); positions
    are ``[start, stop)`` offsets into the index the split was made from.
    """

    number: int
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp
    train_positions: tuple[int, int]
    test_positions: tuple[int, int]
    embargo: pd.Timedelta

    @property
    def n_train(self) -> int:
        """Number of train bars."""
        return self.train_positions[1] - self.train_positions[0]

    @property
    def n_test(self) -> int:
        """Number of test bars."""
        return self.test_positions[1] - self.test_positions[0]

    @property
    def train_slice(self) -> slice:
        """Positional slice of the train bars (``data.iloc[fold.train_slice]``)."""
        return slice(*self.train_positions)

    @property
    def test_slice(self) -> slice:
        """Positional slice of the test bars (``data.iloc[fold.test_slice]``)."""
        return slice(*self.test_positions)

    def train(self, data: pd.DataFrame) -> pd.DataFrame:
        """Return the rows of ``data`` inside the train window (by timestamp, inclusive)."""
        return data.loc[(data.index >= self.train_start) & (data.index <= self.train_end)]

    def test(self, data: pd.DataFrame) -> pd.DataFrame:
        """Return the rows of ``data`` inside the test window (by timestamp, inclusive)."""
        return data.loc[(data.index >= self.test_start) & (data.index <= self.test_end)]

    def to_dict(self) -> dict[str, Any]:
        """Return the fold as JSON-ready values (ISO-8601 UTC timestamps)."""
        return {
            "number": self.number,
            "train_start": _iso(self.train_start),
            "train_end": _iso(self.train_end),
            "test_start": _iso(self.test_start),
            "test_end": _iso(self.test_end),
            "n_train": self.n_train,
            "n_test": self.n_test,
            "embargo": self.embargo.isoformat(),
        }


def _iso(ts: pd.Timestamp) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def as_time_index(data: Any, *, name: str = "index") -> pd.DatetimeIndex:
    """Return the UTC ``DatetimeIndex`` of ``data`` (an index, Series or DataFrame), checked.

    Raises
    ------
    DataError
        If it is not a tz-aware, strictly increasing ``DatetimeIndex``.
    """
    index = data if isinstance(data, pd.Index) else getattr(data, "index", None)
    if not isinstance(index, pd.DatetimeIndex):
        got = type(index).__name__ if index is not None else type(data).__name__
        raise DataError(
            f"{name} must be (or carry) a DatetimeIndex of bar times, got {got}; "
            "set the timestamps as the index first"
        )
    if index.tz is None:
        raise DataError(
            f"{name} has naive timestamps; they must be tz-aware UTC (tz_localize('UTC'))"
        )
    index = index.tz_convert("UTC").as_unit("ns")
    if len(index) > 1:
        steps = np.diff(index.asi8)
        bad = np.flatnonzero(steps <= 0)
        if bad.size:
            pos = int(bad[0])
            raise DataError(
                f"{name} must be strictly increasing; {index[pos + 1]} follows {index[pos]} "
                "(sort and drop duplicates first)",
                row=pos + 2,
                column="timestamp",
            )
    return index


def parse_window(value: WindowLike, *, name: str, allow_zero: bool = False) -> int | pd.Timedelta:
    """Return a window as a bar count (``int``) or a duration (``Timedelta``), validated.

    >>> parse_window("7D", name="train")
    Timedelta('7 days 00:00:00')
    >>> parse_window("500", name="test")
    500
    """
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a duration like '7D' or a bar count, got {value!r}")
    parsed: int | pd.Timedelta
    if isinstance(value, int | np.integer):
        parsed = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        parsed = int(value.strip())
    elif isinstance(value, str | pd.Timedelta | timedelta):
        try:
            parsed = pd.Timedelta(value)
        except (ValueError, TypeError):
            raise ConfigError(
                f"{name}={value!r} is neither a duration ('30D', '7D', '12h', '60min') "
                "nor a number of bars"
            ) from None
        if pd.isna(parsed):
            raise ConfigError(f"{name} must be a duration or a bar count, got NaT")
    else:
        raise ConfigError(
            f"{name} must be a duration like '7D' or a bar count, got {type(value).__name__}"
        )
    zero = parsed == 0 if isinstance(parsed, int) else parsed == pd.Timedelta(0)
    negative = parsed < 0 if isinstance(parsed, int) else parsed < pd.Timedelta(0)
    if negative or (zero and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be {bound}, got {value!r}")
    return parsed


def walk_forward_splits(
    index: pd.DatetimeIndex | pd.DataFrame | pd.Series,
    *,
    train: WindowLike,
    test: WindowLike,
    step: WindowLike | None = None,
    anchored: bool = False,
    embargo: WindowLike = "0min",
    partial: bool = False,
) -> Iterator[Fold]:
    """Generate walk-forward folds over a time index.

    Parameters
    ----------
    index : DatetimeIndex, DataFrame or Series
        Bar timestamps (tz-aware UTC, strictly increasing), or data carrying them.
    train, test : str, int or Timedelta
        Window lengths: durations (``"30D"``) or bar counts (``2000``); both of one kind.
    step : str, int or Timedelta, optional
        Distance between consecutive test windows (default ``test``; must be >= ``test``).
    anchored : bool
        Expanding train windows that all start at the first bar (default: rolling).
    embargo : str, int or Timedelta
        Gap between the last train bar and the first test bar (default none).
    partial : bool
        Also yield a last test window shorter than ``test`` (default: complete windows only).

    Yields
    ------
    Fold
        Folds in time order, numbered from 0.

    Raises
    ------
    ConfigError
        Bad window values, or data too short for a single fold (the message gives both spans).
    DataError
        The index is not a strictly increasing tz-aware ``DatetimeIndex``.
    """
    idx = as_time_index(index)
    train_w = parse_window(train, name="train")
    test_w = parse_window(test, name="test")
    if type(train_w) is not type(test_w):
        raise ConfigError(
            f"train ({train!r}) and test ({test!r}) must both be durations or both bar counts"
        )
    step_w = test_w if step is None else parse_window(step, name="step")
    if type(step_w) is not type(test_w):
        raise ConfigError(f"step ({step!r}) must be the same kind as test ({test!r})")
    if step_w < test_w:  # type: ignore[operator]  # same kind, checked above
        raise ConfigError(
            f"step ({step!r}) must be >= test ({test!r}): overlapping test windows would count "
            "out-of-sample bars twice"
        )
    embargo_w = parse_window(embargo, name="embargo", allow_zero=True)
    if len(idx) < 2:
        raise DataError(f"need at least 2 bars to split, got {len(idx)}")
    spacing = infer_bar_spacing(idx)
    if isinstance(test_w, int):
        assert isinstance(train_w, int) and isinstance(step_w, int)
        embargo_bars = embargo_w if isinstance(embargo_w, int) else math.ceil(embargo_w / spacing)
        folds = _bar_folds(idx, train_w, test_w, step_w, embargo_bars, anchored, partial)
        embargo_td = spacing * embargo_bars
    else:
        assert isinstance(train_w, pd.Timedelta) and isinstance(step_w, pd.Timedelta)
        embargo_td = spacing * embargo_w if isinstance(embargo_w, int) else embargo_w
        folds = _time_folds(idx, spacing, train_w, test_w, step_w, embargo_td, anchored, partial)
    if not folds:
        span = idx[-1] + spacing - idx[0]
        raise ConfigError(
            f"the data ({len(idx)} bars, {span}) is too short for one fold of train={train!r}, "
            f"embargo={embargo!r}, test={test!r}; shorten the windows or load more bars"
        )
    return iter(
        Fold(
            number=i,
            train_start=idx[a],
            train_end=idx[b - 1],
            test_start=idx[c],
            test_end=idx[d - 1],
            train_positions=(a, b),
            test_positions=(c, d),
            embargo=embargo_td,
        )
        for i, (a, b, c, d) in enumerate(folds)
    )


def _bar_folds(
    idx: pd.DatetimeIndex,
    train: int,
    test: int,
    step: int,
    embargo: int,
    anchored: bool,
    partial: bool,
) -> list[tuple[int, int, int, int]]:
    n = len(idx)
    out: list[tuple[int, int, int, int]] = []
    c = train + embargo
    while c < n:
        d = c + test
        if d > n:
            if not partial:
                break
            d = n
        b = c - embargo
        a = 0 if anchored else b - train
        out.append((a, b, c, d))
        c += step
    return out


def _time_folds(
    idx: pd.DatetimeIndex,
    spacing: pd.Timedelta,
    train: pd.Timedelta,
    test: pd.Timedelta,
    step: pd.Timedelta,
    embargo: pd.Timedelta,
    anchored: bool,
    partial: bool,
) -> list[tuple[int, int, int, int]]:
    # Each bar covers [t, t + spacing); a window is complete when the data reaches its end.
    t0, data_end = idx[0], idx[-1] + spacing
    out: list[tuple[int, int, int, int]] = []
    k = 0
    while True:
        test_start = t0 + train + embargo + k * step
        test_end = test_start + test
        k += 1
        if test_start > idx[-1]:
            break
        if test_end > data_end and not partial:
            break
        train_stop = test_start - embargo
        train_start = t0 if anchored else train_stop - train
        a, b, c, d = (
            int(p) for p in idx.searchsorted([train_start, train_stop, test_start, test_end])
        )
        if b > a and d > c:  # windows that fall in a data gap hold no bar: skip them
            out.append((a, b, c, d))
    return out
