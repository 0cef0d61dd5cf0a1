"""The OHLCV frame convention and its validator.

An OHLCV frame is a :class:`pandas.DataFrame` with

- a tz-aware UTC :class:`~pandas.DatetimeIndex` named ``timestamp`` (the bar's **open** time),
  nanosecond resolution, sorted ascending, unique;
- float64 columns ``open, high, low, close, volume`` (other columns may follow);
- positive prices, ``low <= min(open, close)``, ``high >= max(open, close)``, volume >= 0.

:func:`validate_ohlcv` checks all of it and raises :class:`~chimera_lab.errors.DataError`
naming the first offending row and column; it never returns a silently wrong frame.

Examples
--------
>>> import pandas as pd
>>> idx = pd.date_range("2024-01-01", periods=2, freq="1min", tz="UTC", name="timestamp")
>>> df = pd.DataFrame({"open": [1.0, 2.0], "high": [2.0, 3.0], "low": [1.0, 2.0],
...                    "close": [2.0, 3.0], "volume": [5.0, 0.0]}, index=idx)
>>> validate_ohlcv(df).shape
(2, 5)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from chimera_lab.errors import ChimeraError, ConfigError, DataError

__all__ = [
    "OHLCV_COLUMNS",
    "PRICE_COLUMNS",
    "BarProblem",
    "exposure_values",
    "find_bar_problem",
    "to_utc",
    "validate_ohlcv",
]

OHLCV_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")


@dataclass(frozen=True)
class BarProblem:
    """The first problem found in a set of bars: 0-based position, column and message."""

    position: int
    column: str
    message: str


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def find_bar_problem(columns: Mapping[str, np.ndarray]) -> BarProblem | None:
    """Return the earliest (by position) invalid value in float64 OHLCV arrays, or ``None``.

    Checks, per row: missing (NaN) or infinite values, non-positive prices,
    ``low > min(open, close)``, ``high < max(open, close)``, ``low > high`` and negative
    volume. When one row has several problems the first check in that order is reported. All
    checks are vectorised.
    """
    o, h, lo, c, v = (columns[k] for k in OHLCV_COLUMNS)
    fix_prices = "fix or drop the row at the source"
    checks: list[tuple[np.ndarray, str, str]] = []
    for name in OHLCV_COLUMNS:
        arr = columns[name]
        checks.append((np.isnan(arr), name, f"missing value (NaN) in {name!r}; {fix_prices}"))
        checks.append((np.isinf(arr), name, f"infinite value in {name!r}; {fix_prices}"))
    for name in PRICE_COLUMNS:
        arr = columns[name]
        with np.errstate(invalid="ignore"):
            bad = arr <= 0
        checks.append((bad, name, f"{name} must be > 0; {fix_prices}"))
    with np.errstate(invalid="ignore"):
        checks.append(
            (lo > np.minimum(o, c), "low", f"low is above min(open, close); {fix_prices}")
        )
        checks.append(
            (h < np.maximum(o, c), "high", f"high is below max(open, close); {fix_prices}")
        )
        checks.append((lo > h, "low", f"low is above high; {fix_prices}"))
        checks.append((v < 0, "volume", f"volume must be >= 0; {fix_prices}"))
    best: BarProblem | None = None
    for mask, column, message in checks:
        pos = _first(mask)
        if pos is not None and (best is None or pos < best.position):
            best = BarProblem(pos, column, message)
    return best


def validate_ohlcv(df: pd.DataFrame, *, name: str = "data") -> pd.DataFrame:
    """Check that ``df`` follows the OHLCV convention and return it normalised.

    Normalisation is limited to what cannot change a value: integer columns become float64,
    the index is converted to nanosecond resolution and named ``timestamp``.

    Parameters
    ----------
    df : DataFrame
        Candidate OHLCV frame.
    name : str
        How to refer to the frame in error messages (a parameter name or a file).

    Returns
    -------
    DataFrame
        The same data, in the convention.

    Raises
    ------
    DataError
        With the row (1-based position) and column of the first problem.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(
            f"{name} must be an OHLCV DataFrame (pandas) of bars, got {type(df).__name__}"
        )
    missing = [c for c in OHLCV_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            f"{name} lacks column(s) {missing}; an OHLCV frame has {list(OHLCV_COLUMNS)} "
            f"(it has {list(map(str, df.columns))}); load files with chimera_lab.data.load_ohlcv"
        )
    index = df.index
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(
            f"{name} must have a DatetimeIndex of bar open times, got {type(index).__name__}; "
            "use df.set_index('timestamp')"
        )
    if index.tz is None:
        raise DataError(
            f"{name} has a naive DatetimeIndex; timestamps must be tz-aware UTC "
            "(use df.tz_localize('UTC') if they are UTC)"
        )
    out = df.copy()
    out.index = index.tz_convert("UTC").as_unit("ns").rename("timestamp")
    for col in OHLCV_COLUMNS:
        if out[col].dtype != np.float64:
            try:
                out[col] = out[col].astype(np.float64)
            except (TypeError, ValueError):
                raise DataError(
                    f"column {col!r} of {name} must be numeric, got dtype {out[col].dtype}",
                    column=col,
                ) from None
    asi8 = out.index.asi8
    if asi8.size > 1:
        steps = np.diff(asi8)
        pos = _first(steps <= 0)
        if pos is not None:
            kind = "duplicate" if steps[pos] == 0 else "out-of-order"
            raise DataError(
                f"{name} has a {kind} timestamp {out.index[pos + 1]} after {out.index[pos]}; "
                "sort with df.sort_index() and drop duplicates first",
                row=pos + 2,
                column="timestamp",
            )
    problem = find_bar_problem({c: out[c].to_numpy() for c in OHLCV_COLUMNS})
    if problem is not None:
        raise DataError(
            f"{name}: {problem.message} (bar {out.index[problem.position]})",
            row=problem.position + 1,
            column=problem.column,
        )
    return out


def exposure_values(
    raw: Any,
    index: pd.Index,
    *,
    name: str = "strategy",
    error: type[ChimeraError] = DataError,
    allow_array: bool = True,
) -> npt.NDArray[np.float64]:
    """Return a strategy's output as float64 values aligned to the bars of ``index``.

    The one place that reads the strategy contract (``f(data) -> Series`` of target exposure
    indexed like ``data``): a Series must have exactly ``index``; a one-column DataFrame
    counts as its column; with ``allow_array`` a 1-D array-like of ``len(index)`` values is
    taken positionally. Missing values (``pd.NA``, ``None``) become NaN; values are not
    otherwise checked.

    Parameters
    ----------
    raw : Series, one-column DataFrame or array-like
        What the strategy returned.
    index : Index
        The index of the data the strategy was called with.
    name : str
        How messages start, e.g. ``"strategy 'sma_cross'"``.
    error : type of ChimeraError
        The exception raised for output that breaks the contract.
    allow_array : bool
        Accept a plain array of the right length (positional, no index to check).

    Returns
    -------
    ndarray of float64
        One value per bar of ``index``.

    Raises
    ------
    ChimeraError
        ``error``, naming what was returned and what is expected.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC")
    >>> exposure_values(pd.DataFrame({"x": [0, 1, None]}, index=idx), idx).tolist()
    [0.0, 1.0, nan]
    >>> exposure_values(pd.Series(1.0, index=idx[1:]), idx)
    Traceback (most recent call last):
    ...
    chimera_lab.errors.DataError: strategy returned a series whose index differs ...
    """
    if isinstance(raw, pd.DataFrame):
        if raw.shape[1] != 1:
            raise error(
                f"{name} returned a DataFrame with {raw.shape[1]} columns; "
                "return one Series of target exposure"
            )
        raw = raw.iloc[:, 0]
    if isinstance(raw, pd.Series):
        if not raw.index.equals(index):
            raise error(
                f"{name} returned a series whose index differs from data's ({len(raw)} vs "
                f"{len(index)} bars); return one target exposure per input bar, on data's index"
            )
        try:
            return raw.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            raise error(f"{name} must return numeric exposures, got dtype {raw.dtype}") from None
    if not allow_array:
        raise error(
            f"{name} must return a pandas Series of target exposure indexed like its data, "
            f"got {type(raw).__name__}"
        )
    try:
        values: npt.NDArray[np.float64] = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise error(
            f"{name} must return numeric exposures (a Series of target exposure), "
            f"got {type(raw).__name__}"
        ) from None
    if values.shape != (len(index),):
        raise error(f"{name} returned shape {values.shape}, expected ({len(index)},)")
    return values


def to_utc(value: Any, *, name: str) -> pd.Timestamp:
    """Return a point in time as a UTC ``Timestamp``; a naive value **means UTC**.

    The one rule for scalar times across validation and pipelines (as for the CLI's
    ``--start``/``--end`` and the store): ``"2024-07-26"``, ``"2024-07-26T14:15:00Z"``, a
    ``datetime`` or a ``Timestamp`` in any zone are accepted; a naive value is taken as UTC,
    an aware one is converted. Data (an index, a datetime column) is different: naive
    timestamps there are refused (:func:`chimera_lab.validation.as_time_index`), because a
    frame's zone cannot be guessed.

    Parameters
    ----------
    value : str, datetime or Timestamp
        The point in time.
    name : str
        The parameter's name, for messages.

    Raises
    ------
    ConfigError
        Not a timestamp, or empty/NaT (the message names ``name``).

    Examples
    --------
    >>> to_utc("2024-07-26 14:15", name="start")
    Timestamp('2024-07-26 14:15:00+0000', tz='UTC')
    >>> to_utc("2024-07-26T16:15:00+02:00", name="start")
    Timestamp('2024-07-26 14:15:00+0000', tz='UTC')
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ConfigError(f"{name} is required (a UTC date/time)")
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{name}={value!r} is not a date/time; use ISO-8601 such as '2024-08-01' or "
            "'2024-08-01T12:00:00Z'"
        ) from None
    if pd.isna(ts):
        raise ConfigError(f"{name} must be a date/time, got NaT")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
