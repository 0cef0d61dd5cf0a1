"""SQL of the DuckDB store: schema, bar and resample queries, fetching results as arrays.

Private to :mod:`chimera_lab.data.duckdb_store`; see its docstring for the design.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chimera_lab.data._buckets import I64_MAX, I64_MIN
from chimera_lab.errors import ConfigError
from chimera_lab.frames import OHLCV_COLUMNS
from chimera_lab.timeframes import TIMEFRAMES

__all__ = [
    "AGGREGATES",
    "BUCKET",
    "COLUMNS",
    "DB",
    "ROLLUP_TABLE",
    "SCHEMA",
    "SCHEMA_VERSION",
    "bars_query",
    "columns",
    "first_row",
    "parse_rollups",
    "purge_series",
    "resample_query",
    "rollup_table",
]

SCHEMA_VERSION = 2
"""Version of the store layout written by this release (stored in ``chimera_meta``).

1: the first layout. 2: the same tables, with at most one bar per bucket of a series'
timeframe (version 1 upserted on exact open times; a version-1 store is upgraded at its first
``write_bars``, see :func:`chimera_lab.data._duckdb_write.migrate_one_bar_per_bucket`).
"""

DB = "chimera_store"  # alias of the attached store file inside the private instance
COLUMNS = ("ts", *OHLCV_COLUMNS)
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {DB}.chimera_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS {DB}.series (
    id INTEGER PRIMARY KEY, symbol VARCHAR NOT NULL, timeframe VARCHAR NOT NULL,
    step_ns BIGINT NOT NULL, bar_count BIGINT NOT NULL, first_ts BIGINT, last_ts BIGINT,
    rollups VARCHAR NOT NULL, UNIQUE (symbol, timeframe));
CREATE TABLE IF NOT EXISTS {DB}.bars (
    series_id INTEGER NOT NULL, ts BIGINT NOT NULL, open DOUBLE NOT NULL,
    high DOUBLE NOT NULL, low DOUBLE NOT NULL, close DOUBLE NOT NULL, volume DOUBLE NOT NULL);
CREATE TABLE IF NOT EXISTS {DB}.gaps (
    series_id INTEGER NOT NULL, prev_ts BIGINT NOT NULL, next_ts BIGINT NOT NULL,
    missing_bars BIGINT NOT NULL);
USE {DB};
CREATE OR REPLACE VIEW ohlcv AS
    SELECT s.symbol, s.timeframe, make_timestamp_ns(b.ts) AS timestamp_utc,
           b.open, b.high, b.low, b.close, b.volume
    FROM bars AS b JOIN series AS s ON s.id = b.series_id;
USE memory;
INSERT OR REPLACE INTO {DB}.chimera_meta VALUES ('schema_version', '{SCHEMA_VERSION}');
"""
ROLLUP_TABLE = """
CREATE TABLE IF NOT EXISTS {db}.{table} (
    series_id INTEGER NOT NULL, ts BIGINT NOT NULL, open DOUBLE NOT NULL, high DOUBLE NOT NULL,
    low DOUBLE NOT NULL, close DOUBLE NOT NULL, volume DOUBLE NOT NULL, bars INTEGER NOT NULL)
"""
# Bucket open time of ts, floored towards -inf (DuckDB's % keeps the dividend's sign).
BUCKET = "(ts - (((ts % {step}) + {step}) % {step}))"
# The raw aggregation. arg_min/arg_max by ts are first/last (ts is unique per series), and the
# ordered sum makes the float summation order part of the definition (see module docstring).
AGGREGATES = (
    "arg_min(open, ts) AS open, max(high) AS high, min(low) AS low, "
    "arg_max(close, ts) AS close, sum(volume ORDER BY ts) AS volume"
)


def rollup_table(timeframe: str) -> str:
    # Table names come only from TIMEFRAMES keys, never from user text.
    if timeframe not in TIMEFRAMES:  # pragma: no cover - guarded by canonical_timeframe
        raise ConfigError(f"unknown timeframe {timeframe!r}")
    return f"rollup_{timeframe}"


def parse_rollups(value: object) -> set[str]:
    # The rollup timeframes kept for a series, stored comma-separated in series.rollups.
    return {name for name in str(value).split(",") if name}


def purge_series(con: Any, sid: int, rollups: set[str]) -> None:
    # Delete every row of series ``sid``: its rollups, gap records and bars (not the series
    # row itself). Runs inside the caller's transaction.
    for name in sorted(rollups):
        con.execute(f"DELETE FROM {DB}.{rollup_table(name)} WHERE series_id = $1", [sid])
    for table in ("gaps", "bars"):
        con.execute(f"DELETE FROM {DB}.{table} WHERE series_id = $1", [sid])


def resample_query(sid: int, step: int, lo: int | None, hi: int | None, rollup: str | None) -> str:
    # SQL resampling series ``sid`` into buckets of ``step`` ns over [lo, hi]. Without a
    # rollup: one GROUP BY over raw bars. With one: the buckets wholly inside the window come
    # from the rollup, and only the partial edge buckets (at most two) are aggregated from raw
    # bars, in one scan of their two ranges. Every value is an int computed here, so they are
    # inlined as literals (DuckDB plans the UNION faster than with parameters).
    sid, step = int(sid), int(step)
    first = I64_MIN if lo is None else int(lo)
    last = I64_MAX if hi is None else int(hi)
    bucket = BUCKET.format(step=step)

    def raw(*ranges: tuple[int, int]) -> str:
        where = " OR ".join(f"ts BETWEEN {a} AND {b}" for a, b in ranges)
        return (
            f"SELECT {bucket} AS ts, {AGGREGATES} FROM {DB}.bars "
            f"WHERE series_id = {sid} AND ({where}) GROUP BY 1"
        )

    if rollup is None:
        return raw((first, last))
    # Bucket B is whole iff first <= B and B + step - 1 <= last: the raw bars of whole buckets
    # are those in [full_lo, full_hi).
    full_lo = first if lo is None else -((-first) // step) * step
    full_hi = last if hi is None else ((last + 1) // step) * step
    if full_lo >= full_hi:  # the window lies inside one bucket (or two partial ones)
        return raw((first, last))
    parts = [
        f"SELECT ts, open, high, low, close, volume FROM {DB}.{rollup_table(rollup)} "
        f"WHERE series_id = {sid} AND ts >= {full_lo} AND ts < {full_hi}"
    ]
    edges = []
    if lo is not None and first < full_lo:
        edges.append((first, full_lo - 1))
    if hi is not None and full_hi <= last:
        edges.append((full_hi, last))
    if edges:  # one scan for both edges (DuckDB prunes row groups on the OR of ranges)
        parts.append(raw(*edges))
    return " UNION ALL ".join(parts)  # unordered: ohlcv_frame sorts


def first_row(con: Any, sql: str, params: list[Any] | None = None) -> tuple[Any, ...] | None:
    # The first row of a query, or None. fetchall, not fetchone: a half-read result would
    # block the next query on this connection.
    rows = con.execute(sql, params or []).fetchall()
    return tuple(rows[0]) if rows else None


def bars_query(sid: int, lo: int, hi: int) -> str:
    # Bars of series ``sid`` with lo <= ts <= hi, in storage order (ints inlined as literals).
    return (
        f"SELECT ts, open, high, low, close, volume FROM {DB}.bars "
        f"WHERE series_id = {int(sid)} AND ts BETWEEN {int(lo)} AND {int(hi)}"
    )


def columns(con: Any, sql: str, *, large: bool) -> dict[str, np.ndarray]:
    # Run a query and return its columns as numpy arrays. For large results through Arrow
    # (~40% faster than fetchnumpy for a million rows: no NULLs here, so to_numpy shares the
    # Arrow buffers); for small ones fetchnumpy (Arrow costs ~1 ms more per query).
    if not large:
        return {k: np.asarray(v) for k, v in con.execute(sql).fetchnumpy().items()}
    table = con.sql(sql).to_arrow_table().combine_chunks()
    return {name: table.column(name).to_numpy() for name in table.column_names}
