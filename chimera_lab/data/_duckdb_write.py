"""Writes of the DuckDB store: bucket upserts, rollup and gap maintenance, schema upgrades.

Private to :mod:`chimera_lab.data.duckdb_store` (see its docstring for the design). Everything
here runs on a connection that has the store attached read-write, inside the caller's
transaction.

The write invariant: a series holds **at most one bar per epoch-aligned bucket of its
timeframe**. An upsert replaces whatever bar occupies a bucket the new bars fall in (new values
win, whether or not the open times are equal), so mixing an off-grid source (Binance's
``hh:28:14`` hourly bars of February 2018) with an on-grid one never stores two bars for one
hour, and ``read_bars`` always equals ``resample`` to the series' own timeframe.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from chimera_lab.data._buckets import (
    I64_MAX,
    I64_MIN,
    aggregate_buckets,
    bucket_floor,
    gap_runs,
    shared_buckets,
    sort_by_ts,
)
from chimera_lab.data._duckdb_sql import (
    COLUMNS,
    DB,
    ROLLUP_TABLE,
    bars_query,
    columns,
    first_row,
    parse_rollups,
    purge_series,
    rollup_table,
)
from chimera_lab.data.store import iso_utc
from chimera_lab.errors import DataError, DataQualityWarning
from chimera_lab.frames import OHLCV_COLUMNS
from chimera_lab.timeframes import TIMEFRAMES

__all__ = [
    "aggregate_plan",
    "check_buckets",
    "check_spacing",
    "merge",
    "migrate_one_bar_per_bucket",
    "rollup_targets",
    "upsert",
]


# --- checks of the bars to write --------------------------------------------------------------


def check_spacing(ts: np.ndarray, step: int, symbol: str, timeframe: str) -> None:
    # Refuse bars finer than the declared timeframe; warn when the bars look like a coarser
    # timeframe. Off-grid bars and gaps are fine. Any write of two or more bars is checked.
    if ts.shape[0] < 2:
        return
    diffs = np.diff(ts)
    if np.count_nonzero(diffs == step) * 2 >= diffs.shape[0]:
        return
    median = int(np.median(diffs))
    spacing = pd.Timedelta(median, unit="ns")
    named = [name for name, delta in TIMEFRAMES.items() if delta == spacing]
    if median < step:
        hint = f" (they look like {named[0]} bars)" if named else ""
        i = int(np.flatnonzero(diffs < step)[0])
        raise DataError(
            f"bars for {symbol} are finer than the timeframe {timeframe}: their median spacing "
            f"is {spacing}{hint}, and the bars at {iso_utc(ts[i])} and {iso_utc(ts[i + 1])} are "
            f"{pd.Timedelta(int(diffs[i]), unit='ns')} apart; pass the timeframe the bars "
            "really have",
            row=i + 2,
            column="timestamp",
        )
    regular = np.count_nonzero(diffs == median) >= 0.9 * diffs.shape[0]
    if named and median >= 2 * step and regular and diffs.shape[0] >= 10:
        warnings.warn(
            f"bars written as {symbol} {timeframe} have a median spacing of {spacing}: are they "
            f"{named[0]} bars? They are stored as {timeframe}, and gaps are counted on that grid",
            DataQualityWarning,
            stacklevel=3,
        )


def check_buckets(ts: np.ndarray, step: int, symbol: str, timeframe: str) -> None:
    # Refuse a write carrying two bars for one bucket of the timeframe (which would win?).
    same = shared_buckets(ts, step)
    if same.shape[0] == 0:
        return
    i = int(same[0])
    more = f"; {same.shape[0] - 1} more buckets hold two bars" if same.shape[0] > 1 else ""
    raise DataError(
        f"bars for {symbol} at {iso_utc(ts[i])} and {iso_utc(ts[i + 1])} fall in the same "
        f"{timeframe} bucket (opening {iso_utc(int(bucket_floor(int(ts[i]), step)))}){more}. "
        f"A {timeframe} series holds one bar per bucket: drop one of them, or pass the "
        "timeframe the bars really have",
        row=i + 2,
        column="timestamp",
    )


# --- merging and aggregation (numpy) --------------------------------------------------------


def merge(
    old: dict[str, np.ndarray], new: dict[str, np.ndarray], step: int
) -> tuple[dict[str, np.ndarray], int, bool]:
    # Upsert ``new`` into ``old`` by bucket of ``step``: every old bar whose bucket holds a new
    # bar is replaced (new values win). Both are sorted by ts; ``new`` has one bar per bucket.
    # Returns (merged, buckets added, whether anything changed).
    n_old, n_new = old["ts"].shape[0], new["ts"].shape[0]
    if n_old == 0:
        return new, n_new, True
    old_b, new_b = old["ts"] // step, new["ts"] // step
    pos = np.minimum(np.searchsorted(new_b, old_b), n_new - 1)
    replaced = new_b[pos] == old_b  # old bars whose bucket gets a new bar
    hit = pos[replaced]  # sorted: the new bars whose bucket was occupied (repeats possible)
    occupied = 1 + int(np.count_nonzero(hit[1:] != hit[:-1])) if hit.shape[0] else 0
    added = n_new - occupied
    if added == 0 and hit.shape[0] == n_new:  # every new bar lands on exactly one old bar
        if all(np.array_equal(old[c][replaced], new[c]) for c in COLUMNS):
            return old, 0, False
    merged = {c: np.concatenate([old[c][~replaced], new[c]]) for c in COLUMNS}
    return sort_by_ts(merged), added, True


def aggregate_plan(
    bars: dict[str, np.ndarray], plan: list[tuple[str, int, int]]
) -> list[dict[str, np.ndarray]]:
    # Rollup rows for each (timeframe, first bucket, last bucket) of ``plan``, from ``bars``,
    # which holds every bar of those buckets (sorted).
    out = []
    ts = bars["ts"]
    for name, b0, b1 in plan:
        rstep = int(TIMEFRAMES[name].value)
        if b0 == I64_MIN:
            i0, i1 = 0, ts.shape[0]
        else:
            i0 = int(np.searchsorted(ts, b0, side="left"))
            i1 = int(np.searchsorted(ts, b1 + rstep, side="left"))
        out.append(
            aggregate_buckets(
                ts[i0:i1],
                bars["open"][i0:i1],
                bars["high"][i0:i1],
                bars["low"][i0:i1],
                bars["close"][i0:i1],
                bars["volume"][i0:i1],
                rstep,
            )
        )
    return out


def rollup_targets(rollup_timeframes: tuple[str, ...], step: int) -> list[tuple[str, int]]:
    # Rollups kept for a series of bar spacing ``step``: coarser whole multiples only.
    out = []
    for name in rollup_timeframes:
        rstep = int(TIMEFRAMES[name].value)
        if rstep > step and rstep % step == 0:
            out.append((name, rstep))
    return out


# --- the upsert -------------------------------------------------------------------------------


def upsert(
    con: Any,
    symbol: str,
    tf: str,
    step: int,
    new: dict[str, np.ndarray],
    targets: list[tuple[str, int]],
) -> int:
    """Upsert checked bars ``new`` (sorted, one per bucket) into a series; return buckets added."""
    row = first_row(
        con,
        f"SELECT id, first_ts, last_ts, rollups FROM {DB}.series "
        "WHERE symbol = $1 AND timeframe = $2",
        [symbol, tf],
    )
    if row is None:
        sid = int(con.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {DB}.series").fetchall()[0][0])
        con.execute(
            f"INSERT INTO {DB}.series VALUES ($1, $2, $3, $4, 0, NULL, NULL, '')",
            [sid, symbol, tf, step],
        )
        first_ts: int | None = None
        last_ts: int | None = None
        registered: set[str] = set()
    else:
        sid, first_ts, last_ts = int(row[0]), row[1], row[2]
        registered = parse_rollups(row[3])
    wanted = {name for name, _ in targets}
    missing = wanted - registered
    ts0, ts1 = int(new["ts"][0]), int(new["ts"][-1])
    # The span rewritten: the series' buckets the new bars fall in (an old bar there may have
    # another open time) and every rollup bucket they touch, whole. A rollup not built yet
    # needs the whole series.
    lo, hi = int(bucket_floor(ts0, step)), int(bucket_floor(ts1, step)) + step - 1
    if missing and first_ts is not None:
        lo, hi = I64_MIN, I64_MAX
    else:
        for _, rstep in targets:
            lo = min(lo, int(bucket_floor(ts0, rstep)))
            hi = max(hi, int(bucket_floor(ts1, rstep)) + rstep - 1)
    old = fetch(con, sid, lo, hi, step) if first_ts is not None else None
    if old is not None:
        merged, added, changed = merge(old, new, step)
    else:
        merged, added, changed = new, int(new["ts"].shape[0]), True
    full = lo == I64_MIN
    fresh = first_ts is None  # a new series: no rollup rows to replace
    plan: list[tuple[str, int, int]] = []  # rollup buckets b0..b1 to recompute
    for name, rstep in targets:
        if name in missing or (changed and full):
            plan.append((name, I64_MIN, I64_MAX))
        elif changed:
            plan.append((name, int(bucket_floor(ts0, rstep)), int(bucket_floor(ts1, rstep))))
    # Big writes aggregate the rollups (numpy) in a helper thread while DuckDB inserts the
    # bars; both release the GIL. The thread lives only for this call.
    pool = ThreadPoolExecutor(max_workers=1) if merged["ts"].shape[0] > 100_000 else None
    try:
        pending = pool.submit(aggregate_plan, merged, plan) if pool is not None else None
        if changed:
            _write_span(con, sid, step, lo, hi, old, merged, first_ts, last_ts)
            # Bars outside [lo, hi] are untouched; inside it the series is now ``merged``.
            mts = merged["ts"]
            new_first = int(first_ts) if first_ts is not None and first_ts < lo else int(mts[0])
            new_last = int(last_ts) if last_ts is not None and last_ts > hi else int(mts[-1])
            delta = int(mts.shape[0]) - (int(old["ts"].shape[0]) if old is not None else 0)
            con.execute(
                f"UPDATE {DB}.series SET bar_count = bar_count + $2, first_ts = $3, "
                "last_ts = $4 WHERE id = $1",
                [sid, delta, new_first, new_last],
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
        insert(con, table, sid, agg, ["ts", *OHLCV_COLUMNS, "bars"])
    for name in sorted(registered - wanted):
        con.execute(f"DELETE FROM {DB}.{rollup_table(name)} WHERE series_id = $1", [sid])
    if registered != wanted:
        kept = ",".join(name for name, _ in targets)
        con.execute(f"UPDATE {DB}.series SET rollups = $2 WHERE id = $1", [sid, kept])
    return added


def _write_span(
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
    insert(con, "bars", sid, merged, list(COLUMNS))
    _refresh_gaps(con, sid, step, lo, hi, merged["ts"], first_ts, last_ts)


def fetch(con: Any, sid: int, lo: int, hi: int, step: int) -> dict[str, np.ndarray]:
    """Return the stored bars of series ``sid`` in ``[lo, hi]``, sorted by ts."""
    return sort_by_ts(columns(con, bars_query(sid, lo, hi), large=(hi - lo) // step > 50_000))


def insert(con: Any, table: str, sid: int, arrays: dict[str, np.ndarray], names: list[str]) -> None:
    """Append rows of ``arrays`` (columns ``names``) to ``table`` for series ``sid``."""
    import pyarrow as pa

    if arrays[names[0]].shape[0] == 0:
        return
    data = pa.table({c: arrays[c] for c in names})
    con.register("chimera_incoming", data)
    try:
        con.execute(
            f"INSERT INTO {DB}.{table} SELECT $1::INTEGER, {', '.join(names)} "
            "FROM chimera_incoming",
            [sid],
        )
    finally:
        con.unregister("chimera_incoming")


def _refresh_gaps(
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
    insert(
        con,
        "gaps",
        sid,
        {"prev_ts": prev, "next_ts": nxt, "missing_bars": missing},
        ["prev_ts", "next_ts", "missing_bars"],
    )


# --- upgrading stores written before the one-bar-per-bucket rule (schema version 1) ----------


def migrate_one_bar_per_bucket(
    con: Any, rollup_timeframes: tuple[str, ...]
) -> list[tuple[str, str, int]]:
    """Keep one bar per bucket in every series; return (symbol, timeframe, bars dropped).

    Schema version 1 upserted on exact open times, so a series fed from an off-grid and an
    on-grid source could hold two bars for one bucket. Of those, the earliest bar of the
    bucket is kept (the on-grid one where there is one), and the series' rollups and gap
    records are rebuilt from the bars kept. Series without a shared bucket are not touched.
    """
    bucket = "(b.ts - (((b.ts % s.step_ns) + s.step_ns) % s.step_ns))"
    rows = con.execute(
        f"SELECT s.id, s.symbol, s.timeframe, s.step_ns, s.rollups, "
        f"count(*) - count(DISTINCT {bucket}) AS surplus "
        f"FROM {DB}.bars AS b JOIN {DB}.series AS s ON s.id = b.series_id "
        "GROUP BY ALL HAVING surplus > 0 ORDER BY s.id"
    ).fetchall()
    done = []
    for sid, symbol, tf, step, rollups, surplus in rows:
        sid, step = int(sid), int(step)
        bars = fetch(con, sid, I64_MIN, I64_MAX, step)
        # keep the first bar of each bucket: drop bar i + 1 wherever it shares i's bucket
        first = np.ones(bars["ts"].shape[0], dtype=bool)
        first[shared_buckets(bars["ts"], step) + 1] = False
        kept = {c: v[first] for c, v in bars.items()}
        purge_series(con, sid, parse_rollups(rollups))
        con.execute(
            f"UPDATE {DB}.series SET bar_count = 0, first_ts = NULL, last_ts = NULL, "
            "rollups = '' WHERE id = $1",
            [sid],
        )
        upsert(con, str(symbol), str(tf), step, kept, rollup_targets(rollup_timeframes, step))
        done.append((str(symbol), str(tf), int(surplus)))
    return done
