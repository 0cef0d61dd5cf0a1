"""The bar store: OHLCV bars keyed by ``(symbol, timeframe, timestamp)``.

:class:`Store` is the interface every backend implements, and ``Store(url)`` is also how users
open one; the URL picks the backend:

- a plain path (``data/chimera.duckdb``), ``duckdb:relative/path.duckdb``,
  ``duckdb:///absolute/path.duckdb`` or ``:memory:`` → :class:`~chimera_lab.data.DuckDBStore`
  (embedded, no server; the default, from ``settings.store.url``);
- ``postgresql://...`` → the PostgreSQL/TimescaleDB backend, which comes in a later release.

Every backend offers the same calls: :meth:`Store.write_bars` (idempotent upsert of at most
one bar per bucket of the timeframe, new values win), :meth:`Store.read_bars`,
:meth:`Store.resample` (in the database, answered from continuous aggregates where it can),
:meth:`Store.coverage`, :meth:`Store.gaps`, :meth:`Store.last_timestamp`, :meth:`Store.symbols`,
:meth:`Store.timeframes` and :meth:`Store.delete`. Times are bar **open** times in UTC;
``start``/``end`` are inclusive and accept strings, :class:`pandas.Timestamp` and
:class:`datetime.datetime` (naive means UTC).

Resampling is defined as pandas defines it with
``df.resample(rule, origin="epoch", label="left", closed="left")`` and empty buckets dropped:
buckets are aligned to the Unix epoch (UTC), labelled by their open time, and aggregate
``open=first, high=max, low=min, close=last, volume=sum``.

Schema and how it maps to PostgreSQL/TimescaleDB
------------------------------------------------
The DuckDB backend keeps these tables (timestamps are BIGINT nanoseconds since the epoch):

===========================  ==============================================================
``series``                   one row per (symbol, timeframe): integer ``id``, bar spacing,
                             row count, first/last timestamp, the rollups kept
``bars``                     ``series_id, ts, open, high, low, close, volume``; at most one
                             bar per epoch-aligned bucket of the series' timeframe
``rollup_<tf>``              a continuous aggregate: one row per (series, ``tf`` bucket),
                             kept up to date inside ``write_bars`` for the affected buckets
``gaps``                     one row per run of missing bars (kept up to date on write)
``ohlcv`` (view)             bars with symbol, timeframe and a readable timestamp, for SQL users
===========================  ==============================================================

A PostgreSQL backend keeps the same calls and the same layout: ``series`` is an ordinary table,
``bars`` a TimescaleDB hypertable on ``ts timestamptz`` with a ``bucket`` column (``ts`` floored
to the series' timeframe), primary key ``(series_id, bucket)`` and ``INSERT ... ON CONFLICT
(series_id, bucket) DO UPDATE`` (``ts`` included) for the upsert, each ``rollup_<tf>`` a continuous
aggregate (``time_bucket('<tf>', ts, origin => '1970-01-01')``, ``first(open, ts)``,
``max(high)``, ``min(low)``, ``last(close, ts)``, ``sum(volume ORDER BY ts)``) refreshed for the
written range, and ``gaps`` a table maintained the same way. Several processes may then write
at once, which an embedded DuckDB file does not allow (see
:class:`~chimera_lab.data.DuckDBStore`).

Examples
--------
>>> from chimera_lab.data.synthetic import make_ohlcv
>>> store = Store(":memory:")
>>> store.write_bars("BTCUSDT", "1m", make_ohlcv(180, seed=1))
180
>>> store.resample("BTCUSDT", "1h").shape
(3, 5)
>>> store.coverage()[["symbol", "timeframe", "rows", "gaps"]]
    symbol timeframe  rows  gaps
0  BTCUSDT        1m   180     0
"""

from __future__ import annotations

import difflib
import os
import re
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import numpy as np
import pandas as pd

from chimera_lab.data._buckets import gap_runs, sort_by_ts
from chimera_lab.errors import ConfigError, StoreError, UnknownSeriesError
from chimera_lab.frames import to_utc
from chimera_lab.timeframes import TIMEFRAMES
from chimera_lab.timeframes import canonical_timeframe as canonical_timeframe  # re-exported

# canonical_timeframe moved to chimera_lab.timeframes (the exchange adapter needs it without
# the store); backends and the CLI still import it from here.

if TYPE_CHECKING:
    from chimera_lab.config import Settings

__all__ = [
    "SUPPORTED_STORE_URLS",
    "Store",
    "StoreURL",
    "TimeLike",
    "find_gaps",
    "parse_store_url",
]

TimeLike = str | pd.Timestamp | datetime | date | np.datetime64
"""What ``start``/``end`` accept: ISO strings, Timestamps, datetimes (naive means UTC)."""

SUPPORTED_STORE_URLS = (
    "a plain path such as data/chimera.duckdb",
    "duckdb:///absolute/path.duckdb",
    "duckdb:relative/path.duckdb",
    ":memory:",
    "postgresql://user@host/db (in a later release)",
)
"""URL forms :class:`Store` understands (for error messages and docs)."""

_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]+):(?P<rest>.*)$", re.DOTALL)
_POSTGRES_SCHEMES = {"postgresql", "postgres", "timescaledb"}


@dataclass(frozen=True)
class StoreURL:
    """A parsed store URL: the backend name and its location (a path for DuckDB)."""

    backend: str
    location: str


def parse_store_url(url: str | os.PathLike[str]) -> StoreURL:
    """Parse a store URL or path and name its backend.

    Parameters
    ----------
    url : str or path-like
        A plain path, ``duckdb:`` URL, ``:memory:`` or ``postgresql://`` URL.

    Returns
    -------
    StoreURL

    Raises
    ------
    StoreError
        For an unsupported scheme (listing the supported ones), a ``duckdb://`` URL naming a
        remote host, or a PostgreSQL URL (that backend comes in a later release).

    Examples
    --------
    >>> parse_store_url("data/chimera.duckdb")
    StoreURL(backend='duckdb', location='data/chimera.duckdb')
    >>> parse_store_url("duckdb:///tmp/bars.duckdb").location
    '/tmp/bars.duckdb'
    """
    text = os.fspath(url)
    if not isinstance(text, str) or not text.strip():
        raise StoreError(
            f"store URL must be a non-empty string, got {url!r}; "
            f"use one of: {'; '.join(SUPPORTED_STORE_URLS)}"
        )
    text = text.strip()
    if text == ":memory:":
        return StoreURL("duckdb", ":memory:")
    match = _SCHEME.match(text)
    if match is None:  # a plain path (also Windows paths like C:\data\x.duckdb)
        return StoreURL("duckdb", text)
    scheme = match.group("scheme").lower()
    base = scheme.split("+", 1)[0]
    if base in _POSTGRES_SCHEMES:
        raise StoreError(
            f"the PostgreSQL/TimescaleDB store backend ({scheme}://) comes in a later release; "
            "use a DuckDB file for now, e.g. --store data/chimera.duckdb"
        )
    if base in {"duckdb", "file"}:
        parts = urlsplit(text)
        if parts.netloc not in {"", "localhost"}:
            raise StoreError(
                f"store URL {text!r} names host {parts.netloc!r}, but a DuckDB store is a local "
                "file; use duckdb:///absolute/path.duckdb or duckdb:relative/path.duckdb"
            )
        path = unquote(parts.path)
        if path in {":memory:", "/:memory:"}:
            return StoreURL("duckdb", ":memory:")
        if path.startswith("//"):  # SQLAlchemy style duckdb:////abs/path
            path = path[1:]
        if not path:
            raise StoreError(f"store URL {text!r} names no file; e.g. duckdb:///data/x.duckdb")
        return StoreURL("duckdb", path)
    raise StoreError(
        f"unsupported store URL scheme {scheme!r} in {text!r}; "
        f"supported: {'; '.join(SUPPORTED_STORE_URLS)}"
    )


class Store:
    """Bars keyed by (symbol, timeframe, timestamp); ``Store(url)`` opens the right backend.

    ``Store`` is the interface every backend implements (a subclass that leaves out a method
    is refused when it is defined) and the way to open one: ``Store(url)`` returns a
    :class:`~chimera_lab.data.DuckDBStore` for a DuckDB path or URL.

    Parameters
    ----------
    url : str or path-like, optional
        Where the bars live (see :func:`parse_store_url`); default ``settings.store.url``.
    settings : Settings, optional
        Configuration (lock timeout, rollup timeframes); default ``Settings()``.

    Notes
    -----
    Implementations never hold a connection or lock longer than one call unless asked to
    with :meth:`session`.
    """

    url: str
    # Settings that Store.__new__ built to choose the backend. Python then calls the
    # backend's __init__ with the caller's arguments (settings=None), which takes these
    # instead of reading the environment and .env a second time.
    _settings_from_new: Settings | None = None

    _INTERFACE: tuple[str, ...] = (
        "write_bars",
        "read_bars",
        "resample",
        "coverage",
        "gaps",
        "last_timestamp",
        "symbols",
        "timeframes",
        "delete",
        "session",
        "exists",
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # The interface is enforced when a backend is defined (what abc.ABC would do at
        # instantiation), so that ``Store(url)`` itself stays instantiable for type checkers.
        super().__init_subclass__(**kwargs)
        missing = [name for name in Store._INTERFACE if getattr(cls, name) is getattr(Store, name)]
        if missing:
            raise TypeError(f"store backend {cls.__name__} does not implement {missing}")

    def __new__(
        cls, url: str | os.PathLike[str] | None = None, *, settings: Settings | None = None
    ) -> Store:
        """Return an instance of the backend named by ``url`` (when called on ``Store``)."""
        if cls is Store:
            if url is None:
                if settings is None:
                    from chimera_lab.config import Settings

                    settings = Settings()
                url = settings.store.url
            parsed = parse_store_url(url)
            if parsed.backend == "duckdb":
                from chimera_lab.data.duckdb_store import DuckDBStore

                store = super().__new__(DuckDBStore)
                store._settings_from_new = settings
                return store
            raise StoreError(f"no store backend {parsed.backend!r}")  # pragma: no cover
        return super().__new__(cls)

    def _take_settings(self, settings: Settings | None) -> Settings:
        # The settings a backend's __init__ uses: the caller's, else those Store.__new__
        # built, else fresh ones (a backend class instantiated directly).
        built, self._settings_from_new = self._settings_from_new, None
        if settings is not None:
            return settings
        if built is not None:
            return built
        from chimera_lab.config import Settings

        return Settings()

    def write_bars(self, symbol: str, timeframe: str, df: pd.DataFrame) -> int:
        """Upsert bars: a series holds at most one bar per bucket of its timeframe.

        Bars are placed in the epoch-aligned buckets of ``timeframe`` (the bar at
        ``09:28:14`` of an hourly series is the 09:00 bar). A new bar fills an empty bucket or
        replaces the bar that occupies its bucket, whatever that bar's open time: new values
        win. Writing the same bars twice leaves the store unchanged; overlapping writes merge;
        an off-grid and an on-grid source of the same bars never store two bars for one hour.

        Parameters
        ----------
        symbol : str
            Instrument, e.g. ``"BTCUSDT"`` (stored as given).
        timeframe : str
            Bar timeframe, e.g. ``"1m"``.
        df : DataFrame
            Bars in the OHLCV convention (checked with
            :func:`~chimera_lab.frames.validate_ohlcv`); off-grid open times are accepted.

        Returns
        -------
        int
            How many buckets were empty before (bars added, not replaced).

        Raises
        ------
        DataError
            If ``df`` breaks the OHLCV convention, is finer than ``timeframe``, or carries two
            bars for one bucket (the error names both open times).
        StoreError
            If the store stays locked by another process for ``lock_timeout_s``.
        """
        raise NotImplementedError

    def read_bars(
        self,
        symbol: str,
        timeframe: str,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
    ) -> pd.DataFrame:
        """Return stored bars with ``start <= timestamp <= end`` as an OHLCV frame.

        Raises
        ------
        UnknownSeriesError
            If the series does not exist (naming what does, with close matches); a
            :class:`~chimera_lab.errors.StoreError`.
        """
        raise NotImplementedError

    def resample(
        self,
        symbol: str,
        to_timeframe: str,
        source_timeframe: str = "1m",
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        *,
        use_rollups: bool = True,
    ) -> pd.DataFrame:
        """Aggregate stored bars of ``source_timeframe`` into ``to_timeframe`` bars.

        Bars with ``start <= timestamp <= end`` are grouped into epoch-aligned buckets
        labelled by their open time (``open=first, high=max, low=min, close=last,
        volume=sum``); empty buckets are dropped. ``use_rollups=False`` forces the plain SQL
        aggregation of raw bars (the results are identical, only slower).

        Raises
        ------
        ConfigError
            If ``to_timeframe`` is not a whole multiple of ``source_timeframe``.
        StoreError
            If the source series does not exist.
        """
        raise NotImplementedError

    def bars(
        self,
        symbol: str,
        timeframe: str,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
    ) -> pd.DataFrame:
        """Return ``timeframe`` bars: stored ones, else resampled from the finest stored series.

        The usual way for notebooks and commands to ask for bars: ``store.bars("BTCUSDT",
        "1h")`` reads stored 1h bars if there are any, and otherwise aggregates the finest
        stored timeframe that divides 1h (1m, say) with :meth:`resample`.

        Raises
        ------
        StoreError
            If neither the series nor a finer one that divides it is stored.
        """
        symbol = check_symbol(symbol)
        # Stored names are canonical: "1H" or "60min" must find the stored 1h series, not
        # resample it from 1m.
        tf, step_ns = canonical_timeframe(timeframe)
        # One session: the lookups and the read see the same store and open it once.
        with self.session():
            stored = self.timeframes(symbol) if symbol in self.symbols() else []
            if tf in stored:
                return self.read_bars(symbol, tf, start, end)
            sources = [
                source
                for source in stored  # shortest first
                if (source_ns := canonical_timeframe(source)[1]) < step_ns
                and step_ns % source_ns == 0
            ]
            if not sources:
                return self.read_bars(symbol, tf, start, end)  # raises, naming what exists
            return self.resample(symbol, tf, sources[0], start, end)

    def coverage(self, symbol: str | None = None) -> pd.DataFrame:
        """Return one row per series: symbol, timeframe, first, last, rows, gaps, missing_bars.

        ``gaps`` counts runs of missing bars and ``missing_bars`` the bars they miss, both on
        the epoch-aligned grid of the series' timeframe.
        """
        raise NotImplementedError

    def gaps(self, symbol: str, timeframe: str) -> pd.DataFrame:
        """Return the runs of missing bars: first_missing, last_missing, missing_bars."""
        raise NotImplementedError

    def last_timestamp(self, symbol: str, timeframe: str) -> pd.Timestamp | None:
        """Return the open time of the newest stored bar, or ``None`` if there is none."""
        raise NotImplementedError

    def symbols(self) -> list[str]:
        """Return the stored symbols, sorted."""
        raise NotImplementedError

    def timeframes(self, symbol: str) -> list[str]:
        """Return the timeframes stored for ``symbol``, shortest first."""
        raise NotImplementedError

    def delete(self, symbol: str, timeframe: str) -> int:
        """Delete a series with its rollups and gaps; return the number of bars deleted."""
        raise NotImplementedError

    def session(self, *, write: bool = False) -> AbstractContextManager[Store]:
        """Hold the store open for a sequence of calls (``with store.session(): ...``).

        While a session is open this process keeps the store's lock: a read session blocks
        writers in other processes, a write session blocks every other process.
        """
        raise NotImplementedError

    def exists(self) -> bool:
        """Return whether the store is there to read (a missing file reads as empty).

        Raises
        ------
        StoreError
            If the URL names something that cannot be a store (a directory, say).
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release what the store keeps between calls (nothing is locked between calls)."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


# --- helpers shared by backends -------------------------------------------------------------


def check_symbol(symbol: str) -> str:
    """Return ``symbol`` stripped of surrounding blanks; refuse empty or multi-line names."""
    if not isinstance(symbol, str) or not symbol.strip():
        raise ConfigError(f"symbol must be a non-empty string such as 'BTCUSDT', got {symbol!r}")
    clean = symbol.strip()
    if any(ch.isspace() or not ch.isprintable() for ch in clean):
        raise ConfigError(f"symbol {symbol!r} contains blanks or control characters")
    return clean


def to_utc_ns(value: TimeLike | None, *, name: str) -> int | None:
    """Convert a time-like value to epoch nanoseconds by :func:`chimera_lab.frames.to_utc`."""
    return None if value is None else int(to_utc(value, name=name).value)


def window(start: TimeLike | None, end: TimeLike | None) -> tuple[int | None, int | None]:
    """Return ``(start_ns, end_ns)``; raise ``ConfigError`` if start is after end.

    Examples
    --------
    >>> window("2024-08-01", None)
    (1722470400000000000, None)
    >>> try:
    ...     window("2024-08-02", pd.Timestamp("2024-08-01", tz="UTC"))
    ... except ConfigError as exc:
    ...     print(exc)
    start 2024-08-02T00:00:00Z is after end 2024-08-01T00:00:00Z; swap them
    """
    lo, hi = to_utc_ns(start, name="start"), to_utc_ns(end, name="end")
    if lo is not None and hi is not None and lo > hi:
        raise ConfigError(f"start {iso_utc(lo)} is after end {iso_utc(hi)}; swap them")
    return lo, hi


def iso_utc(ns: int | np.integer[Any]) -> str:
    """Format epoch nanoseconds as ISO-8601 UTC with a ``Z`` (``2024-08-01T12:00:00Z``).

    Examples
    --------
    >>> iso_utc(1_518_168_494_000_000_000)
    '2018-02-09T09:28:14Z'
    """
    return pd.Timestamp(int(ns), unit="ns", tz="UTC").isoformat().replace("+00:00", "Z")


def utc_index(ts: np.ndarray) -> pd.DatetimeIndex:
    """Build a UTC nanosecond index named ``timestamp`` from epoch-nanosecond ints."""
    return pd.DatetimeIndex(
        np.asarray(ts, dtype=np.int64).view("M8[ns]"),
        dtype=pd.DatetimeTZDtype("ns", "UTC"),
        name="timestamp",
    )


def utc_timestamp(ns: int | None) -> pd.Timestamp | None:
    """Return the UTC Timestamp of epoch nanoseconds (``None`` stays ``None``)."""
    return None if ns is None else pd.Timestamp(int(ns), unit="ns", tz="UTC")


def unknown_series_error(
    url: str, symbol: str, timeframe: str | None, series: list[tuple[str, str]]
) -> UnknownSeriesError:
    """Build the error for a missing series, naming what the store holds and close matches.

    ``timeframe=None`` means the symbol itself was asked for (any timeframe).
    """
    what = f"{timeframe} bars" if timeframe else "bars"
    if not series:
        how = f" --timeframe {timeframe}" if timeframe else " --timeframe 1m"
        return UnknownSeriesError(
            f"no {what} for {symbol}: the store {url} is empty; import some with "
            f"`chimera data import FILE --symbol {symbol}{how}`"
        )
    by_symbol: dict[str, list[str]] = {}
    for sym, tf in series:
        by_symbol.setdefault(sym, []).append(tf)
    for tfs in by_symbol.values():
        tfs.sort(key=lambda tf: TIMEFRAMES.get(tf, pd.Timedelta.max))
    if symbol in by_symbol and timeframe is not None:
        have = by_symbol[symbol]
        wanted = TIMEFRAMES.get(timeframe, pd.Timedelta(0))
        finer = [tf for tf in have if TIMEFRAMES.get(tf, pd.Timedelta.max) < wanted]
        hint = ""
        if finer:
            hint = (
                f"; aggregate them with store.resample({symbol!r}, {timeframe!r}, "
                f"source_timeframe={finer[0]!r})"
            )
        return UnknownSeriesError(
            f"no {timeframe} bars for {symbol} in store {url}; it has {symbol} in "
            f"{', '.join(have)}{hint}"
        )
    holdings = "; ".join(f"{sym} ({', '.join(tfs)})" for sym, tfs in sorted(by_symbol.items()))
    matches = [s for s in by_symbol if s.lower() == symbol.lower()]
    matches += [
        s for s in difflib.get_close_matches(symbol, list(by_symbol), n=3) if s not in matches
    ]
    hint = f"; did you mean {', '.join(matches)}?" if matches else ""
    return UnknownSeriesError(f"no symbol {symbol!r} in store {url}; it holds {holdings}{hint}")


def find_gaps(index: pd.DatetimeIndex | pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Return the runs of missing bars in ``index`` on the epoch-aligned ``timeframe`` grid.

    Each run is a row with ``first_missing`` and ``last_missing`` (open times of the first and
    last empty bucket) and ``missing_bars``. Off-grid bars count for the bucket they fall in.

    Parameters
    ----------
    index : DatetimeIndex or DataFrame
        Sorted, unique bar open times (or an OHLCV frame).
    timeframe : str
        The bar timeframe, e.g. ``"1m"``.

    Examples
    --------
    >>> idx = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 00:01", "2024-01-01 00:04"],
    ...                        tz="UTC")
    >>> find_gaps(idx, "1m")
                  first_missing              last_missing  missing_bars
    0 2024-01-01 00:02:00+00:00 2024-01-01 00:03:00+00:00             2
    """
    if isinstance(index, pd.DataFrame):
        index = index.index  # type: ignore[assignment]
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise ConfigError("find_gaps needs a tz-aware DatetimeIndex of bar open times")
    _, step = canonical_timeframe(timeframe)
    ts = index.tz_convert("UTC").as_unit("ns").asi8
    prev, nxt, missing = gap_runs(ts, step)
    return gaps_frame(prev, nxt, missing, step)


def gaps_frame(prev: np.ndarray, nxt: np.ndarray, missing: np.ndarray, step: int) -> pd.DataFrame:
    """Build the gaps table from bars around each gap (see :func:`find_gaps`)."""
    first = (np.asarray(prev, dtype=np.int64) // step + 1) * step
    last = (np.asarray(nxt, dtype=np.int64) // step - 1) * step
    return pd.DataFrame(
        {
            "first_missing": utc_index(first).rename(None),
            "last_missing": utc_index(last).rename(None),
            "missing_bars": np.asarray(missing, dtype=np.int64),
        }
    )


def ohlcv_frame(columns: dict[str, Any]) -> pd.DataFrame:
    """Build an OHLCV frame from query results (``ts`` and the five columns), sorted by time."""
    ts = np.asarray(columns["ts"], dtype=np.int64)
    values = {c: np.asarray(columns[c], dtype=np.float64) for c in ("open", "high", "low", "close")}
    values["volume"] = np.asarray(columns["volume"], dtype=np.float64)
    ordered = sort_by_ts({"ts": ts, **values})
    ts = ordered.pop("ts")
    return pd.DataFrame(ordered, index=utc_index(ts))


def resolve_path(location: str) -> Path:
    """Return the absolute path of a DuckDB store location (``~`` expanded)."""
    return Path(location).expanduser().absolute()
