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
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from chimera_lab.data._buckets import I64_MAX, I64_MIN, bucket_floor, gap_runs
from chimera_lab.data._duckdb_sql import (
    COLUMNS,
    DB,
    ROLLUP_TABLE,
    SCHEMA,
    SCHEMA_VERSION,
    aggregate_plan,
    bars_query,
    check_spacing,
    columns,
    first_row,
    merge,
    resample_query,
    rollup_table,
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
        from chimera_lab.config import Settings

        self.settings = settings if settings is not None else Settings()
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
                self._gate_fd = None
            self._con, self._con_pid = con, pid
        return self._con

    def _exists(self) -> bool:
        return self.path is None or self.path.is_file()

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
            attach = self.path is not None and (write or self._exists())
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
        if self._schema_version(con) is None:
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
        return int(row[0]), int(row[1]), {r for r in str(row[2]).split(",") if r}

    def _rollup_targets(self, step: int) -> list[tuple[str, int]]:
        # Rollups kept for a series of bar spacing ``step``: coarser whole multiples only.
        out = []
        for name in self.rollup_timeframes:
            rstep = int(TIMEFRAMES[name].value)
            if rstep > step and rstep % step == 0:
                out.append((name, rstep))
        return out

    # --- writing ------------------------------------------------------------------------------

    def write_bars(self, symbol: str, timeframe: str, df: pd.DataFrame) -> int:
        """Upsert bars: new keys are added, existing keys take the new values.

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
        targets = self._rollup_targets(step)
        started = time.perf_counter()
        with self._open(write=True) as con:
            self._ensure_schema(con)
            con.execute("BEGIN TRANSACTION")
            try:
                added = self._upsert(con, symbol, tf, step, new, targets)
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

    def _upsert(
        self,
        con: Any,
        symbol: str,
        tf: str,
        step: int,
        new: dict[str, np.ndarray],
        targets: list[tuple[str, int]],
    ) -> int:
        row = first_row(
            con,
            f"SELECT id, first_ts, last_ts, rollups FROM {DB}.series "
            "WHERE symbol = $1 AND timeframe = $2",
            [symbol, tf],
        )
        if row is None:
            sid = int(
                con.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {DB}.series").fetchall()[0][0]
            )
            con.execute(
                f"INSERT INTO {DB}.series VALUES ($1, $2, $3, $4, 0, NULL, NULL, '')",
                [sid, symbol, tf, step],
            )
            first_ts: int | None = None
            last_ts: int | None = None
            registered: set[str] = set()
        else:
            sid, first_ts, last_ts = int(row[0]), row[1], row[2]
            registered = {r for r in str(row[3]).split(",") if r}
        wanted = {name for name, _ in targets}
        missing = wanted - registered
        ts0, ts1 = int(new["ts"][0]), int(new["ts"][-1])
        # The span rewritten: every bucket (of every rollup) that the new bars touch, whole.
        # A rollup not built yet needs the whole series.
        lo, hi = ts0, ts1
        if missing and first_ts is not None:
            lo, hi = I64_MIN, I64_MAX
        else:
            for _, rstep in targets:
                lo = min(lo, int(bucket_floor(ts0, rstep)))
                hi = max(hi, int(bucket_floor(ts1, rstep)) + rstep - 1)
        old = self._fetch(con, sid, lo, hi, step) if first_ts is not None else None
        merged, added, changed = merge(old, new) if old is not None else (new, len(new["ts"]), True)
        full = lo == I64_MIN
        fresh = first_ts is None  # a new series: no rollup rows to replace
        plan: list[tuple[str, int, int]] = []  # rollup buckets b0..b1 to recompute
        for name, rstep in targets:
            if name in missing or (changed and full):
                plan.append((name, I64_MIN, I64_MAX))
            elif changed:
                plan.append((name, int(bucket_floor(ts0, rstep)), int(bucket_floor(ts1, rstep))))
        # Big writes aggregate the rollups (numpy) in a helper thread while DuckDB inserts
        # the bars; both release the GIL. The thread lives only for this call.
        pool = ThreadPoolExecutor(max_workers=1) if merged["ts"].shape[0] > 100_000 else None
        try:
            pending = pool.submit(aggregate_plan, merged, plan) if pool is not None else None
            if changed:
                self._write_bars_span(con, sid, step, lo, hi, old, merged, first_ts, last_ts)
                new_first = ts0 if first_ts is None else min(int(first_ts), ts0)
                new_last = ts1 if last_ts is None else max(int(last_ts), ts1)
                con.execute(
                    f"UPDATE {DB}.series SET bar_count = bar_count + $2, first_ts = $3, "
                    "last_ts = $4 WHERE id = $1",
                    [sid, added, new_first, new_last],
                )
            aggregates = pending.result() if pending is not None else aggregate_plan(merged, plan)
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        for (name, b0, b1), agg in zip(plan, aggregates, strict=True):
            table = rollup_table(name)
            con.execute(ROLLUP_TABLE.format(db=DB, table=table))
            if not fresh:
                con.execute(
                    f"DELETE FROM {DB}.{table} WHERE series_id = $1 AND ts BETWEEN $2 AND $3",
                    [sid, b0, b1],
                )
            self._insert(con, table, sid, agg, ["ts", *OHLCV_COLUMNS, "bars"])
        for name in sorted(registered - wanted):
            con.execute(f"DELETE FROM {DB}.{rollup_table(name)} WHERE series_id = $1", [sid])
        if registered != wanted:
            kept = ",".join(name for name in self.rollup_timeframes if name in wanted)
            con.execute(f"UPDATE {DB}.series SET rollups = $2 WHERE id = $1", [sid, kept])
        return added

    def _write_bars_span(
        self,
        con: Any,
        sid: int,
        step: int,
        lo: int,
        hi: int,
        old: dict[str, np.ndarray] | None,
        merged: dict[str, np.ndarray],
        first_ts: int | None,
        last_ts: int | None,
    ) -> None:
        # Replace the stored bars of [lo, hi] by ``merged`` and refresh the gap records.
        if old is not None and old["ts"].shape[0]:
            con.execute(
                f"DELETE FROM {DB}.bars WHERE series_id = $1 AND ts BETWEEN $2 AND $3",
                [sid, lo, hi],
            )
        self._insert(con, "bars", sid, merged, list(COLUMNS))
        self._refresh_gaps(con, sid, step, lo, hi, merged["ts"], first_ts, last_ts)

    def _fetch(self, con: Any, sid: int, lo: int, hi: int, step: int) -> dict[str, np.ndarray]:
        # Stored bars of a series in [lo, hi], sorted by ts.
        out = columns(con, bars_query(sid, lo, hi), large=(hi - lo) // step > 50_000)
        ts = out["ts"]
        if ts.shape[0] > 1 and not bool(np.all(ts[1:] > ts[:-1])):
            order = np.argsort(ts, kind="stable")
            out = {c: v[order] for c, v in out.items()}
        return out

    def _insert(
        self, con: Any, table: str, sid: int, arrays: dict[str, np.ndarray], columns: list[str]
    ) -> None:
        import pyarrow as pa

        if arrays[columns[0]].shape[0] == 0:
            return
        data = pa.table({c: arrays[c] for c in columns})
        con.register("chimera_incoming", data)
        try:
            con.execute(
                f"INSERT INTO {DB}.{table} SELECT $1::INTEGER, {', '.join(columns)} "
                "FROM chimera_incoming",
                [sid],
            )
        finally:
            con.unregister("chimera_incoming")

    def _refresh_gaps(
        self,
        con: Any,
        sid: int,
        step: int,
        lo: int,
        hi: int,
        ts: np.ndarray,
        first_ts: int | None,
        last_ts: int | None,
    ) -> None:
        # Recompute gap records whose bars lie in [bar before lo, bar after hi].
        before = after = None
        if first_ts is not None and lo > first_ts:
            before = con.execute(
                f"SELECT max(ts) FROM {DB}.bars WHERE series_id = $1 AND ts < $2", [sid, lo]
            ).fetchall()[0][0]
        if last_ts is not None and hi < last_ts:
            after = con.execute(
                f"SELECT min(ts) FROM {DB}.bars WHERE series_id = $1 AND ts > $2", [sid, hi]
            ).fetchall()[0][0]
        chain = ts
        if before is not None or after is not None:
            head = [int(before)] if before is not None else []
            tail = [int(after)] if after is not None else []
            chain = np.concatenate([np.array(head, dtype=np.int64), ts, np.array(tail, np.int64)])
        con.execute(
            f"DELETE FROM {DB}.gaps WHERE series_id = $1 AND prev_ts >= $2 AND prev_ts < $3",
            [
                sid,
                int(before) if before is not None else I64_MIN,
                int(after) if after is not None else I64_MAX,
            ],
        )
        prev, nxt, missing = gap_runs(chain, step)
        self._insert(
            con,
            "gaps",
            sid,
            {"prev_ts": prev, "next_ts": nxt, "missing_bars": missing},
            ["prev_ts", "next_ts", "missing_bars"],
        )

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
        if not self._exists():
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
        if not self._exists():
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
        if self._exists():
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
        if not self._exists():
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
        if not self._exists():
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
        if not self._exists():
            return []
        with self._open(write=False) as con:
            if self._schema_version(con) is None:
                return []
            rows = con.execute(f"SELECT DISTINCT symbol FROM {DB}.series ORDER BY 1").fetchall()
        return [str(r[0]) for r in rows]

    def timeframes(self, symbol: str) -> list[str]:
        """Return the timeframes stored for ``symbol``, shortest first."""
        symbol = check_symbol(symbol)
        if not self._exists():
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
        if not self._exists():
            raise unknown_series_error(self.url, symbol, tf, [])
        with self._open(write=True) as con:
            sid, count, rollups = self._require_series(con, symbol, tf)
            con.execute("BEGIN TRANSACTION")
            try:
                for name in sorted(rollups):
                    con.execute(
                        f"DELETE FROM {DB}.{rollup_table(name)} WHERE series_id = $1", [sid]
                    )
                for table in ("gaps", "bars"):
                    con.execute(f"DELETE FROM {DB}.{table} WHERE series_id = $1", [sid])
                con.execute(f"DELETE FROM {DB}.series WHERE id = $1", [sid])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        log.info("store.delete", store=self.url, symbol=symbol, timeframe=tf, rows=count)
        return count
