"""The DuckDB bar store: one embedded database file, no server (the default backend).

What DuckDB allows, and what this store does about it
-----------------------------------------------------
DuckDB guards a database file with an operating-system lock:

- **one process may open the file read-write**, and while it does, no other process can open
  the file at all, not even read-only (the writer holds an exclusive lock);
- **any number of processes may open it read-only at the same time** (shared locks), and while
  any of them does, no process can open it read-write;
- a failed open does not wait: it fails at once with "Could not set lock on file ...
  Conflicting lock is held in <program> (PID n)";
- inside one process, one DuckDB database instance per file; a second read-write open of the
  same file in the same process is refused ("Unique file handle conflict"). Threads of one
  process may share one instance (MVCC).

So an embedded store serves many readers or one writer at a time, never several writers at
once (that is what the PostgreSQL backend is for). To let readers and an importer share a file,
:class:`DuckDBStore` **opens the file for one call only**: every call attaches the file to a
private in-memory DuckDB instance (read calls ``READ_ONLY``, write calls read-write), runs its
queries, and detaches, which releases the lock. Attaching costs ~0.5 ms, against ~13 ms to
create a new DuckDB instance per call. When the file is locked, the call retries with a
bounded, jittered exponential backoff until ``settings.store.lock_timeout_s`` (default 30 s),
then raises :class:`~chimera_lab.errors.StoreError` naming the process that holds the lock.

Because DuckDB's open never waits, a writer could starve behind readers that take turns; so
writers announce themselves on a sidecar file ``<store>.lock`` (POSIX ``flock``). A writer holds
it exclusively from before its open until after its close; each reader passes through it
(shared, released at once) before opening. A waiting writer therefore stops new readers from
starting, the running ones finish, and the writer gets in: writers are served first. The
sidecar holds no data and may be deleted when no process uses the store. Where ``flock`` is not
available (Windows, read-only directories) the store works without it; only this fairness is
lost.

:meth:`DuckDBStore.session` holds one open (read-only or read-write) across several calls of
one thread, which saves the attach and takes the lock for the whole block.

One bar per bucket
------------------
A series holds at most one bar per epoch-aligned bucket of its timeframe: ``write_bars``
replaces whatever bar occupies a bucket that a new bar falls in (new values win, whether or not
the open times are equal) and refuses a write that carries two bars for one bucket. So an
off-grid source (Binance's ``hh:28:14`` hourly bars of February 2018) and an on-grid one never
leave two bars for one hour, and every count (rows, gaps, rollup bars) is a count of buckets.
The write path lives in :mod:`chimera_lab.data._duckdb_write`; a store written before this rule
(schema version 1) is upgraded at its first ``write_bars`` (the earliest bar of each bucket is
kept, that series' rollups and gaps rebuilt).

Rollups (continuous aggregates)
-------------------------------
For every stored series, ``write_bars`` keeps one ``rollup_<tf>`` table per timeframe in
``settings.store.rollup_timeframes`` that is a whole multiple of the series' timeframe, and
recomputes the buckets touched by the write (only those). :meth:`DuckDBStore.resample` answers
the buckets that lie entirely inside the requested window from the rollup and aggregates raw
bars, in SQL, only for the (at most two) partial edge buckets. Both paths compute
``sum(volume)`` left to right in time order (``sum(volume ORDER BY ts)`` in DuckDB, a
sequential sum in :mod:`chimera_lab.data._buckets`), so resampling through rollups returns
exactly the same numbers as aggregating the raw bars. Changing ``rollup_timeframes`` takes
effect at the next write of each series (missing rollups are built, dropped ones removed).

Examples
--------
>>> from chimera_lab.data.synthetic import make_ohlcv
>>> store = DuckDBStore(":memory:")
>>> bars = make_ohlcv(120, seed=3)
>>> store.write_bars("BTCUSDT", "1m", bars), store.write_bars("BTCUSDT", "1m", bars)
(120, 0)
>>> store.read_bars("BTCUSDT", "1m", start="2024-01-01 00:30", end="2024-01-01 00:39").shape
(10, 5)
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from chimera_lab.data._buckets import I64_MAX, I64_MIN
from chimera_lab.data._duckdb_sql import (
    DB,
    SCHEMA,
    SCHEMA_VERSION,
    bars_query,
    columns,
    first_row,
    parse_rollups,
    purge_series,
    resample_query,
)
from chimera_lab.data._duckdb_write import (
    check_buckets,
    check_spacing,
    migrate_one_bar_per_bucket,
    rollup_targets,
    upsert,
)
from chimera_lab.data._file_lock import WriterGate, lock_holder
from chimera_lab.data.store import (
    Store,
    TimeLike,
    canonical_timeframe,
    check_symbol,
    gaps_frame,
    ohlcv_frame,
    parse_store_url,
    resolve_path,
    unknown_series_error,
    utc_index,
    utc_timestamp,
    window,
)
from chimera_lab.errors import ConfigError, StoreError
from chimera_lab.frames import OHLCV_COLUMNS, validate_ohlcv
from chimera_lab.logging import get_logger
from chimera_lab.timeframes import TIMEFRAMES

if TYPE_CHECKING:
    from chimera_lab.config import Settings

__all__ = ["SCHEMA_VERSION", "DuckDBStore"]

log = get_logger(__name__)


class DuckDBStore(Store):
    """Bars in one DuckDB file (or in memory), opened per call; see the module docstring.

    Parameters
    ----------
    url : str or path-like, optional
        A path, ``duckdb:`` URL or ``:memory:``; default ``settings.store.url``.
    settings : Settings, optional
        Uses ``store.lock_timeout_s`` and ``store.rollup_timeframes``; default ``Settings()``.

    Attributes
    ----------
    url : str
        The URL as given.
    path : Path or None
        The absolute file path (``None`` for an in-memory store).
    lock_timeout_s : float
        How long a call waits for another process's lock.
    rollup_timeframes : tuple of str
        Continuous aggregates kept for each series (canonical names).
    """

    def __init__(
        self, url: str | os.PathLike[str] | None = None, *, settings: Settings | None = None
    ) -> None:
        self.settings = self._take_settings(settings)
        raw = url if url is not None else self.settings.store.url
        parsed = parse_store_url(raw)
        if parsed.backend != "duckdb":  # pragma: no cover - parse_store_url raises first
            raise StoreError(f"{raw!r} is not a DuckDB store URL")
        self.url = os.fspath(raw)
        self.path: Path | None = (
            None if parsed.location == ":memory:" else resolve_path(parsed.location)
        )
        self.lock_timeout_s = float(self.settings.store.lock_timeout_s)
        self.rollup_timeframes: tuple[str, ...] = tuple(
            dict.fromkeys(
                canonical_timeframe(tf)[0] for tf in self.settings.store.rollup_timeframes
            )
        )
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._mutex = threading.RLock()
        self._con: Any = None
        self._con_pid: int | None = None
        self._session_depth = 0
        self._session_write = False
        self._session_attached = False
        self._gate_fd: int | None = None
        self._gate = (
            WriterGate(self.path, self.url, self.lock_timeout_s) if self.path is not None else None
        )
        self._schema_checked = False

    def __getstate__(self) -> dict[str, Any]:
        if self.path is None:
            raise StoreError(
                "an in-memory store cannot be sent to another process; use a DuckDB file"
            )
        return {
            k: self.__dict__[k]
            for k in ("settings", "url", "path", "lock_timeout_s", "rollup_timeframes")
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_runtime()

    def close(self) -> None:
        """Drop the private DuckDB instance (for an in-memory store, its data too)."""
        with self._mutex:
            if self._session_depth:
                raise StoreError("close() inside store.session(); leave the session first")
            if self._con is not None and self._con_pid == os.getpid():
                self._con.close()
            self._con = None
            self._con_pid = None

    # --- opening and locking ------------------------------------------------------------------

    def _connection(self) -> Any:
        # The private in-memory instance of this Store in this process (recreated after fork).
        pid = os.getpid()
        if self._con is None or self._con_pid != pid:
            import duckdb

            con = duckdb.connect(":memory:")
            if self.path is None:
                con.execute(f"ATTACH ':memory:' AS {DB}")
            if self._con_pid is not None and self._con_pid != pid:
                self._session_depth = 0  # a session of the parent process is not ours
                self._session_attached = False
                self._gate_fd = None  # closed in this child at fork (see _file_lock)
            self._con, self._con_pid = con, pid
        return self._con

    def exists(self) -> bool:
        """Return whether the store file exists (always ``True`` in memory).

        Reads treat a missing file as an empty store; writes create it.

        Raises
        ------
        StoreError
            If the path names a directory.

        Examples
        --------
        >>> DuckDBStore(":memory:").exists()
        True
        """
        if self.path is None:
            return True
        self._refuse_directory(self.path)
        return self.path.is_file()

    def _refuse_directory(self, path: Path) -> None:
        if path.is_dir():
            raise StoreError(
                f"store {self.url} is a directory, not a DuckDB file; name a file such as "
                f"{path / 'chimera.duckdb'}"
            )

    @contextmanager
    def _open(self, *, write: bool) -> Iterator[Any]:
        # Yield the private connection with the store attached as ``chimera_store``.
        with self._mutex:
            con = self._connection()
            if self.path is None or self._session_attached:
                if write and not self._session_write and self.path is not None:
                    raise StoreError(
                        "this store session is read-only; open it with session(write=True) to write"
                    )
                yield con
                return
            self._attach(con, write=write)
            try:
                yield con
            finally:
                self._detach(con)

    def _attach(self, con: Any, *, write: bool) -> None:
        import duckdb

        assert self.path is not None
        self._refuse_directory(self.path)
        if write:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        quoted = str(self.path).replace("'", "''")
        sql = f"ATTACH '{quoted}' AS {DB}" + ("" if write else " (READ_ONLY)")
        started = time.monotonic()
        deadline = started + self.lock_timeout_s
        delay = 0.002
        gate = self._gate_enter(write=write, deadline=deadline)
        attempts = 0
        while True:
            attempts += 1
            try:
                con.execute(sql)
            except duckdb.Error as exc:
                holder = lock_holder(exc)
                if holder is None:
                    WriterGate.leave(gate)
                    raise StoreError(f"cannot open store {self.url}: {exc}") from exc
            else:
                self._gate_fd = gate
                waited_ms = (time.monotonic() - started) * 1e3
                if attempts > 1 or waited_ms > 100:
                    log.info(
                        "store.lock_wait",
                        store=self.url,
                        write=write,
                        attempts=attempts,
                        waited_ms=round(waited_ms, 1),
                    )
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                WriterGate.leave(gate)
                raise StoreError(
                    f"store {self.url} is locked by {holder}; waited {self.lock_timeout_s:g} s. "
                    "DuckDB lets one process write a store file or many processes read it, "
                    "not both: wait for that process to finish (an import, a long session), "
                    "or raise CHIMERA_STORE__LOCK_TIMEOUT_S"
                )
            time.sleep(min(delay * (0.5 + random.random()), remaining))
            delay = min(delay * 2, 0.05)
            if not write:
                self._gate_enter(write=False, deadline=deadline)

    def _detach(self, con: Any) -> None:
        if self._con_pid != os.getpid():
            # A child forked while the parent had the store open: the attachment and the gate
            # are the parent's (the gate fd was closed in the child at fork, see _file_lock).
            self._gate_fd = None
            return
        try:
            con.execute(f"DETACH {DB}")
        finally:
            gate, self._gate_fd = self._gate_fd, None
            WriterGate.leave(gate)

    def _gate_enter(self, *, write: bool, deadline: float) -> int | None:
        return self._gate.enter(write=write, deadline=deadline) if self._gate is not None else None

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[DuckDBStore]:
        """Keep the store file open for the calls inside the block (one thread).

        Parameters
        ----------
        write : bool
            Open read-write (needed for writes inside the block). A read session blocks
            writers in other processes; a write session blocks every other process.

        Examples
        --------
        >>> store = DuckDBStore(":memory:")
        >>> with store.session():
        ...     store.symbols()
        []
        """
        with self._mutex:
            if self._session_depth:
                if write and not self._session_write and self.path is not None:
                    raise StoreError("a read-only session is open; open the outer one with write")
                self._session_depth += 1
                try:
                    yield self
                finally:
                    self._session_depth -= 1
                return
            con = self._connection()
            attach = self.path is not None and (write or self.exists())
            if attach:
                self._attach(con, write=write)
            self._session_depth, self._session_write = 1, write
            self._session_attached = attach
            try:
                yield self
            finally:
                self._session_depth, self._session_write = 0, False
                if attach:
                    self._session_attached = False
                    self._detach(con)

    # --- schema and series --------------------------------------------------------------------

    def _schema_version(self, con: Any) -> int | None:
        import duckdb

        try:
            row = first_row(
                con, f"SELECT value FROM {DB}.chimera_meta WHERE key = 'schema_version'"
            )
        except duckdb.CatalogException:
            return None
        version = int(row[0]) if row else None
        if version is not None and version > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.url} has schema version {version}, newer than this chimera_lab "
                f"understands ({SCHEMA_VERSION}); upgrade chimera_lab"
            )
        return version

    def _ensure_schema(self, con: Any) -> None:
        # Create the tables in a new store; upgrade an older layout (write calls only).
        version = self._schema_version(con)
        if version is not None and version < 2:
            con.execute("BEGIN TRANSACTION")
            try:
                fixed = migrate_one_bar_per_bucket(con, self.rollup_timeframes)
                con.execute(SCHEMA)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            log.info(
                "store.upgrade",
                store=self.url,
                from_version=version,
                to_version=SCHEMA_VERSION,
                series_fixed=[f"{sym} {tf}" for sym, tf, _ in fixed],
                bars_dropped=sum(n for _, _, n in fixed),
            )
        elif version is None:
            con.execute(SCHEMA)

    def _all_series(self, con: Any) -> list[tuple[str, str]]:
        rows = con.execute(f"SELECT symbol, timeframe FROM {DB}.series").fetchall()
        return [(str(s), str(t)) for s, t in rows]

    def _require_series(self, con: Any, symbol: str, timeframe: str) -> tuple[int, int, set[str]]:
        # (series id, bar count, rollups kept) in one single-table query, or a StoreError
        # naming what exists. The schema version is checked once per Store and file.
        import duckdb

        try:
            row = first_row(
                con,
                f"SELECT id, bar_count, rollups FROM {DB}.series "
                "WHERE symbol = $1 AND timeframe = $2",
                [symbol, timeframe],
            )
        except duckdb.CatalogException:
            raise unknown_series_error(self.url, symbol, timeframe, []) from None
        if not self._schema_checked:
            self._schema_checked = self._schema_version(con) is not None
        if row is None:
            raise unknown_series_error(self.url, symbol, timeframe, self._all_series(con))
        return int(row[0]), int(row[1]), parse_rollups(row[2])

    # --- writing ------------------------------------------------------------------------------

    def write_bars(self, symbol: str, timeframe: str, df: pd.DataFrame) -> int:
        """Upsert bars, at most one per bucket of ``timeframe`` (new values win).

        See :meth:`Store.write_bars`. The write is one transaction: on any error nothing is
        written. Rollups and gap records of the touched buckets are refreshed in it.
        """
        symbol = check_symbol(symbol)
        tf, step = canonical_timeframe(timeframe)
        frame = validate_ohlcv(df, name=f"bars for {symbol} {tf}")
        if frame.shape[0] == 0:
            return 0
        new: dict[str, np.ndarray] = {"ts": cast(pd.DatetimeIndex, frame.index).asi8}
        for col in OHLCV_COLUMNS:
            new[col] = frame[col].to_numpy(dtype=np.float64)
        new["volume"] = new["volume"] + 0.0  # -0.0 -> 0.0, so sums start like SQL's
        check_spacing(new["ts"], step, symbol, tf)
        check_buckets(new["ts"], step, symbol, tf)
        targets = rollup_targets(self.rollup_timeframes, step)
        started = time.perf_counter()
        with self._open(write=True) as con:
            self._ensure_schema(con)
            con.execute("BEGIN TRANSACTION")
            try:
                added = upsert(con, symbol, tf, step, new, targets)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        log.info(
            "store.write",
            store=self.url,
            symbol=symbol,
            timeframe=tf,
            rows=int(frame.shape[0]),
            rows_new=added,
            elapsed_ms=round((time.perf_counter() - started) * 1e3, 1),
        )
        return added

    # --- reading ------------------------------------------------------------------------------

    def read_bars(
        self,
        symbol: str,
        timeframe: str,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
    ) -> pd.DataFrame:
        """Return stored bars with ``start <= timestamp <= end`` as an OHLCV frame.

        See :meth:`Store.read_bars`. ``start``/``end`` are bar open times, inclusive; a date
        such as ``"2024-08-01"`` means midnight UTC.
        """
        symbol = check_symbol(symbol)
        tf, step = canonical_timeframe(timeframe)
        lo, hi = window(start, end)
        if not self.exists():
            raise unknown_series_error(self.url, symbol, tf, [])
        with self._open(write=False) as con:
            sid, count, _ = self._require_series(con, symbol, tf)
            first, last = I64_MIN if lo is None else lo, I64_MAX if hi is None else hi
            expected = count if lo is None or hi is None else min(count, (hi - lo) // step + 1)
            res = columns(con, bars_query(sid, first, last), large=expected > 50_000)
        return ohlcv_frame(res)

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
        """Aggregate stored bars into coarser epoch-aligned bars, in SQL.

        See :meth:`Store.resample`. Buckets wholly inside ``[start, end]`` come from the
        rollup of ``to_timeframe`` when one is kept; the partial buckets at the window's edges
        are aggregated from raw bars. The result equals
        ``read_bars(...).resample(rule, origin="epoch", label="left", closed="left")`` with
        empty buckets dropped (exactly for open, high, low, close; volume to the last bits of
        float summation order, see the module docstring).

        Examples
        --------
        >>> from chimera_lab.data.synthetic import make_ohlcv
        >>> store = DuckDBStore(":memory:")
        >>> _ = store.write_bars("BTCUSDT", "1m", make_ohlcv(600, seed=2))
        >>> hourly = store.resample("BTCUSDT", "1h", start="2024-01-01 00:30")
        >>> [t.strftime("%H:%M") for t in hourly.index[:2]], len(hourly)
        (['00:00', '01:00'], 10)
        """
        symbol = check_symbol(symbol)
        to_tf, step = canonical_timeframe(to_timeframe)
        src_tf, src_step = canonical_timeframe(source_timeframe)
        if step % src_step:
            options = [n for n, d in TIMEFRAMES.items() if d.value % src_step == 0]
            raise ConfigError(
                f"cannot resample {src_tf} bars to {to_tf}: {to_tf} is not a whole multiple of "
                f"{src_tf}; choose one of {', '.join(options)}"
            )
        lo, hi = window(start, end)
        if not self.exists():
            raise unknown_series_error(self.url, symbol, src_tf, [])
        with self._open(write=False) as con:
            sid, _, rollups = self._require_series(con, symbol, src_tf)
            has_rollup = to_tf in rollups
            sql = resample_query(sid, step, lo, hi, to_tf if has_rollup and use_rollups else None)
            res = columns(con, sql, large=False)
        return ohlcv_frame(res)

    def coverage(self, symbol: str | None = None) -> pd.DataFrame:
        """Return one row per series: symbol, timeframe, first, last, rows, gaps, missing_bars.

        See :meth:`Store.coverage`. Rows are sorted by symbol, then timeframe (shortest first).
        """
        if symbol is not None:
            symbol = check_symbol(symbol)
        rows: list[tuple[Any, ...]] = []
        if self.exists():
            with self._open(write=False) as con:
                if self._schema_version(con) is not None:
                    rows = con.execute(
                        f"SELECT s.symbol, s.timeframe, s.step_ns, s.first_ts, s.last_ts, "
                        "s.bar_count, count(g.series_id), coalesce(sum(g.missing_bars), 0) "
                        f"FROM {DB}.series AS s LEFT JOIN {DB}.gaps AS g ON g.series_id = s.id "
                        "WHERE $1::VARCHAR IS NULL OR s.symbol = $1 "
                        "GROUP BY ALL ORDER BY s.symbol, s.step_ns",
                        [symbol],
                    ).fetchall()
                    if symbol is not None and not rows:
                        raise unknown_series_error(self.url, symbol, None, self._all_series(con))
        if symbol is not None and not rows:
            raise unknown_series_error(self.url, symbol, None, [])
        return pd.DataFrame(
            {
                "symbol": pd.Series([str(r[0]) for r in rows], dtype=str),
                "timeframe": pd.Series([str(r[1]) for r in rows], dtype=str),
                "first": utc_index(np.array([r[3] for r in rows], dtype=np.int64)).rename(None),
                "last": utc_index(np.array([r[4] for r in rows], dtype=np.int64)).rename(None),
                "rows": np.array([r[5] for r in rows], dtype=np.int64),
                "gaps": np.array([r[6] for r in rows], dtype=np.int64),
                "missing_bars": np.array([r[7] for r in rows], dtype=np.int64),
            }
        )

    def gaps(self, symbol: str, timeframe: str) -> pd.DataFrame:
        """Return the runs of missing bars: first_missing, last_missing, missing_bars.

        See :func:`~chimera_lab.data.store.find_gaps` for the definition.
        """
        symbol = check_symbol(symbol)
        tf, step = canonical_timeframe(timeframe)
        if not self.exists():
            raise unknown_series_error(self.url, symbol, tf, [])
        with self._open(write=False) as con:
            sid, _, _ = self._require_series(con, symbol, tf)
            res = con.execute(
                f"SELECT prev_ts, next_ts, missing_bars FROM {DB}.gaps WHERE series_id = $1 "
                "ORDER BY prev_ts",
                [sid],
            ).fetchnumpy()
        return gaps_frame(res["prev_ts"], res["next_ts"], res["missing_bars"], step)

    def last_timestamp(self, symbol: str, timeframe: str) -> pd.Timestamp | None:
        """Return the open time of the newest stored bar, or ``None`` if there is none."""
        symbol = check_symbol(symbol)
        tf, _ = canonical_timeframe(timeframe)
        if not self.exists():
            return None
        with self._open(write=False) as con:
            if self._schema_version(con) is None:
                return None
            row = first_row(
                con,
                f"SELECT last_ts FROM {DB}.series WHERE symbol = $1 AND timeframe = $2",
                [symbol, tf],
            )
        return utc_timestamp(row[0]) if row is not None else None

    def symbols(self) -> list[str]:
        """Return the stored symbols, sorted."""
        if not self.exists():
            return []
        with self._open(write=False) as con:
            if self._schema_version(con) is None:
                return []
            rows = con.execute(f"SELECT DISTINCT symbol FROM {DB}.series ORDER BY 1").fetchall()
        return [str(r[0]) for r in rows]

    def timeframes(self, symbol: str) -> list[str]:
        """Return the timeframes stored for ``symbol``, shortest first."""
        symbol = check_symbol(symbol)
        if not self.exists():
            raise unknown_series_error(self.url, symbol, None, [])
        with self._open(write=False) as con:
            series = self._all_series(con) if self._schema_version(con) is not None else []
        have = sorted(
            (tf for sym, tf in series if sym == symbol),
            key=lambda tf: TIMEFRAMES.get(tf, pd.Timedelta.max),
        )
        if not have:
            raise unknown_series_error(self.url, symbol, None, series)
        return have

    def delete(self, symbol: str, timeframe: str) -> int:
        """Delete a series with its rollups and gaps; return the number of bars deleted.

        Raises
        ------
        StoreError
            If the series does not exist (naming what does).
        """
        symbol = check_symbol(symbol)
        tf, _ = canonical_timeframe(timeframe)
        if not self.exists():
            raise unknown_series_error(self.url, symbol, tf, [])
        with self._open(write=True) as con:
            sid, count, rollups = self._require_series(con, symbol, tf)
            con.execute("BEGIN TRANSACTION")
            try:
                purge_series(con, sid, rollups)
                con.execute(f"DELETE FROM {DB}.series WHERE id = $1", [sid])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        log.info("store.delete", store=self.url, symbol=symbol, timeframe=tf, rows=count)
        return count
