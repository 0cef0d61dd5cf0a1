"""Epoch-aligned buckets of bars: rollup aggregation and gap runs, on int64 nanosecond arrays.

Everything here works on sorted, unique ``int64`` epoch-nanosecond timestamps and float64
arrays, so the store can aggregate millions of bars in a few milliseconds.

Exactness contract (relied on by the store's rollups, checked by its tests): for every bucket,
:func:`aggregate_buckets` returns

- ``open`` = open of the earliest bar, ``close`` = close of the latest bar,
- ``high`` = max of highs, ``low`` = min of lows (exact float operations),
- ``volume`` = the **sequential** left-to-right float64 sum of the volumes in time order,
  starting from ``0.0``.

The last is what DuckDB computes for ``sum(volume ORDER BY ts)`` (an ordered aggregate feeds
the values to one summation state in order), so a bucket aggregated here is bit-for-bit equal
to the same bucket aggregated in SQL. numpy's ``sum``/``add.reduceat`` would not do: they use
pairwise summation, whose rounding differs.
"""

from __future__ import annotations

import numpy as np

__all__ = ["aggregate_buckets", "bucket_floor", "gap_runs", "shared_buckets", "sort_by_ts"]

I64_MIN = np.iinfo(np.int64).min
I64_MAX = np.iinfo(np.int64).max


def bucket_floor(ts: np.ndarray | int, step: int) -> np.ndarray | int:
    """Return the open time of the epoch-aligned bucket of width ``step`` holding ``ts``.

    Floors towards minus infinity (also before 1970), like pandas ``origin="epoch"``.
    """
    return (ts // step) * step


def sort_by_ts(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return ``arrays`` (parallel columns, one named ``ts``) ordered by ``ts``.

    Already sorted input (the usual case: one O(n) check) is returned as it is; otherwise every
    column is reordered by a stable sort of ``ts``.
    """
    ts = arrays["ts"]
    if ts.shape[0] < 2 or bool(np.all(ts[1:] > ts[:-1])):
        return arrays
    order = np.argsort(ts, kind="stable")
    return {name: values[order] for name, values in arrays.items()}


def shared_buckets(ts: np.ndarray, step: int) -> np.ndarray:
    """Return the positions ``i`` where bars ``i`` and ``i + 1`` fall in one bucket of ``step``.

    ``ts`` must be sorted; an empty result means at most one bar per epoch-aligned bucket.
    """
    if ts.shape[0] < 2:
        return np.empty(0, dtype=np.intp)
    buckets = ts // step
    return np.flatnonzero(buckets[1:] == buckets[:-1])


def _segments(buckets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Start and end (exclusive) positions of runs of equal bucket values in a sorted array.
    n = buckets.shape[0]
    brk = np.empty(n, dtype=bool)
    brk[0] = True
    np.not_equal(buckets[1:], buckets[:-1], out=brk[1:])
    starts = np.flatnonzero(brk)
    ends = np.empty_like(starts)
    ends[:-1] = starts[1:]
    ends[-1] = n
    return starts, ends


def _sequential_segment_sums(
    values: np.ndarray, starts: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    # Left-to-right float sums per segment, starting from 0.0 (the order DuckDB's ordered sum
    # uses). Two exact ways, chosen by which runs fewer Python iterations: one per segment
    # when segments are few and long (a 1d rollup of a few 1m days: 1440 bars each), one per
    # position when they are many and short (a year of 1m bars into 1h: 8760 segments of 60).
    longest = int(counts.max()) if counts.size else 0
    if starts.shape[0] < longest:
        return _segment_sums_by_segment(values, starts, counts)
    return _segment_sums_by_position(values, starts, counts)


def _segment_sums_by_segment(
    values: np.ndarray, starts: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    # np.add.accumulate is a running sum, strictly left to right (unlike np.sum's pairwise
    # summation). It starts from the first value, not from 0.0; the two differ only for a
    # segment of -0.0s (0.0 + -0.0 is 0.0), which adding 0.0 at the end makes +0.0 too.
    sums = np.empty(starts.shape[0], dtype=np.float64)
    for i, (start, count) in enumerate(zip(starts.tolist(), counts.tolist(), strict=True)):
        sums[i] = np.add.accumulate(values[start : start + count])[-1]
    sums += 0.0
    return sums


def _segment_sums_by_position(
    values: np.ndarray, starts: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    # Vectorised across segments: step k adds the k-th value of every segment that has more
    # than k values. Total work is O(n); the Python loop runs max(counts) times.
    sums = np.zeros(starts.shape[0], dtype=np.float64)
    sums += values[starts]
    longest = int(counts.max()) if counts.size else 0
    for k in range(1, longest):
        alive = counts > k
        if alive.all():
            sums += values[starts + k]
        else:
            idx = np.flatnonzero(alive)
            sums[idx] += values[starts[idx] + k]
    return sums


def aggregate_buckets(
    ts: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    step: int,
) -> dict[str, np.ndarray]:
    """Aggregate sorted bars into epoch-aligned buckets of ``step`` nanoseconds.

    Returns a dict of arrays ``ts`` (bucket open time), ``open``, ``high``, ``low``, ``close``,
    ``volume`` and ``bars`` (bars per bucket); empty buckets are absent.
    """
    if ts.shape[0] == 0:
        empty = np.empty(0, dtype=np.float64)
        return {
            "ts": np.empty(0, dtype=np.int64),
            "open": empty,
            "high": empty,
            "low": empty,
            "close": empty,
            "volume": empty,
            "bars": np.empty(0, dtype=np.int32),
        }
    buckets = bucket_floor(ts, step)
    assert isinstance(buckets, np.ndarray)
    starts, ends = _segments(buckets)
    counts = ends - starts
    return {
        "ts": buckets[starts],
        "open": open_[starts],
        "high": np.maximum.reduceat(high, starts),
        "low": np.minimum.reduceat(low, starts),
        "close": close[ends - 1],
        "volume": _sequential_segment_sums(volume, starts, counts),
        "bars": counts.astype(np.int32),
    }


def gap_runs(ts: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(prev_ts, next_ts, missing_bars)`` for each gap between consecutive bars.

    Bars are placed in epoch-aligned buckets of ``step``; a gap is a pair of consecutive bars
    whose buckets are more than one step apart, and ``missing_bars`` counts the empty buckets
    between them. Off-grid bars (Binance's 2018 hourly bars at ``hh:28:14``) therefore count
    as present in the bucket they fall in, and never produce fractional or negative counts.
    """
    if ts.shape[0] < 2:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    buckets = bucket_floor(ts, step)
    assert isinstance(buckets, np.ndarray)
    jumps = np.diff(buckets)
    where = np.flatnonzero(jumps > step)
    return ts[where], ts[where + 1], jumps[where] // step - 1
