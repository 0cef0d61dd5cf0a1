"""Property tests of the store: random bars, random overlapping writes, random windows.

Invariants checked against independent references:

- the store equals an upsert by 1m bucket (last write wins, whatever the bar's open time in
  its minute) of everything written: one bar per bucket;
- ``resample`` through rollups equals the plain SQL aggregation of raw bars **exactly**
  (``check_exact``, volume included), and equals pandas ``resample`` (exactly for open, high,
  low, close; volume to rtol=1e-12, the difference of summation orders);
- gap records equal :func:`find_gaps` of what is stored;
- DuckDB's ordered ``sum(volume ORDER BY ts)`` is the left-to-right float sum, which is what
  :func:`aggregate_buckets` computes: the proof that rollups and raw SQL agree bit for bit.
"""

from __future__ import annotations

import os
from functools import reduce

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chimera_lab.config import Settings
from chimera_lab.data import Store, find_gaps
from chimera_lab.data._buckets import (
    _segment_sums_by_position,
    _segment_sums_by_segment,
    _sequential_segment_sums,
    aggregate_buckets,
)
from chimera_lab.errors import DataError
from chimera_lab.timeframes import TIMEFRAMES

MINUTE = 60_000_000_000
T0 = pd.Timestamp("2024-03-01 22:00", tz="UTC").value  # near a day boundary
TARGETS = ["5m", "15m", "1h", "2h", "4h", "1d"]  # 2h has no rollup: raw path


@pytest.fixture(autouse=True)
def hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CHIMERA_* variable of the caller reaches these tests (nested ones would merge)."""
    for name in list(os.environ):
        if name.upper().startswith("CHIMERA_"):
            monkeypatch.delenv(name)


def make_settings() -> Settings:
    return Settings(_env_file=None, store={"url": ":memory:"})  # type: ignore[call-arg]


def bars_at(ts: np.ndarray, seed: int) -> pd.DataFrame:
    """Valid bars at the given epoch-ns times; volumes spread over magnitudes 1e-6..1e6."""
    rng = np.random.default_rng(seed)
    n = ts.shape[0]
    open_ = rng.uniform(10.0, 100.0, n)
    close = open_ * np.exp(rng.normal(0.0, 0.01, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n))
    volume = rng.uniform(0, 1, n) * 10.0 ** rng.integers(-6, 7, n)
    volume[rng.uniform(size=n) < 0.05] = 0.0
    idx = pd.DatetimeIndex(ts.view("M8[ns]"), dtype="datetime64[ns, UTC]", name="timestamp")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=idx
    )


@st.composite
def timelines(draw: st.DrawFn) -> np.ndarray:
    """Sorted unique 1m open times over up to ~2 days, with holes and some off-grid bars."""
    n_slots = draw(st.integers(10, 3000))
    keep = draw(st.floats(0.3, 1.0))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    slots = np.flatnonzero(rng.uniform(size=n_slots) < keep)
    if slots.size == 0:
        slots = np.array([0])
    offsets = np.zeros(slots.size, dtype=np.int64)
    off_grid = rng.uniform(size=slots.size) < draw(st.sampled_from([0.0, 0.0, 0.1]))
    offsets[off_grid] = rng.integers(1, 59, int(off_grid.sum())) * 1_000_000_000
    return np.asarray(T0 + slots.astype(np.int64) * MINUTE + offsets, dtype=np.int64)


@st.composite
def write_plans(draw: st.DrawFn) -> tuple[np.ndarray, list[tuple[int, int, int, float]]]:
    """A timeline and 1-4 writes: a contiguous slice [a, b), a value seed, and the share of
    its bars moved elsewhere in their minute (an off-grid source of the same bars)."""
    ts = draw(timelines())
    n = ts.shape[0]
    writes = []
    for _ in range(draw(st.integers(1, 4))):
        a = draw(st.integers(0, n - 1))
        b = draw(st.integers(a + 1, n))
        moved = draw(st.sampled_from([0.0, 0.0, 0.3, 1.0]))
        writes.append((a, b, draw(st.integers(0, 10**6)), moved))
    return ts, writes


def moved_in_minute(ts: np.ndarray, share: float, seed: int) -> np.ndarray:
    """``ts`` with about ``share`` of the bars at second k of their minute (one k per write,
    like a source whose clock is off by k seconds)."""
    rng = np.random.default_rng(seed)
    out = ts.copy()
    pick = rng.uniform(size=ts.shape[0]) < share
    out[pick] = ts[pick] // MINUTE * MINUTE + int(rng.integers(0, 60)) * 10**9
    return out


@st.composite
def windows(draw: st.DrawFn, ts: np.ndarray) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    lo, hi = int(ts[0]) - 3 * MINUTE, int(ts[-1]) + 3 * MINUTE
    start = draw(st.none() | st.integers(lo, hi))
    end = draw(st.none() | st.integers(start if start is not None else lo, hi))
    as_ts = lambda v: None if v is None else pd.Timestamp(v, unit="ns", tz="UTC")  # noqa: E731
    return as_ts(start), as_ts(end)


def pandas_reference(df: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    out = df.resample(TIMEFRAMES[timeframe], origin="epoch", label="left", closed="left").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    return out.dropna(subset=["open"])


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(plan=write_plans(), data=st.data())
def test_store_equals_upsert_reference_and_resample_is_exact(
    plan: tuple[np.ndarray, list[tuple[int, int, int, float]]], data: st.DataObject
) -> None:
    ts, writes = plan
    store = Store(":memory:", settings=make_settings())
    reference: pd.DataFrame | None = None
    total_new = 0
    for a, b, seed, moved in writes:
        part = bars_at(moved_in_minute(ts[a:b], moved, seed), seed)
        try:
            total_new += store.write_bars("BTCUSDT", "1m", part)
        except DataError as exc:  # bars closer than a minute (median): refused, nothing written
            assert "finer than the timeframe 1m" in str(exc)
            assert np.median(np.diff(part.index.asi8)) < MINUTE
            continue
        if reference is None:
            reference = part
        else:  # an upsert by bucket: the old bar of each minute written again is dropped
            taken = np.isin(reference.index.asi8 // MINUTE, part.index.asi8 // MINUTE)
            reference = pd.concat([reference[~taken], part]).sort_index()
    if reference is None:  # every write was refused
        assert store.symbols() == []
        return
    assert total_new == len(reference)
    stored = store.read_bars("BTCUSDT", "1m")
    pd.testing.assert_frame_equal(stored, reference, check_exact=True, check_freq=False)
    pd.testing.assert_frame_equal(store.gaps("BTCUSDT", "1m"), find_gaps(reference.index, "1m"))

    for _ in range(3):
        start, end = data.draw(windows(ts))
        target = data.draw(st.sampled_from(TARGETS))
        got = store.resample("BTCUSDT", target, start=start, end=end)
        raw = store.resample("BTCUSDT", target, start=start, end=end, use_rollups=False)
        pd.testing.assert_frame_equal(got, raw, check_exact=True)
        window = reference.loc[start:end] if len(reference) else reference
        ref = pandas_reference(window, target)
        assert got.index.equals(ref.index)
        for col in ("open", "high", "low", "close"):
            np.testing.assert_array_equal(got[col].to_numpy(), ref[col].to_numpy())
        np.testing.assert_allclose(got["volume"].to_numpy(), ref["volume"].to_numpy(), rtol=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=6),
    seed=st.integers(0, 2**32 - 1),
)
def test_duckdb_ordered_sum_is_the_left_to_right_sum(sizes: list[int], seed: int) -> None:
    """The float summation order both resample paths share (groups longer than a vector)."""
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    volume = rng.uniform(0, 1, n) * 10.0 ** rng.integers(-9, 10, n)
    group = np.repeat(np.arange(len(sizes)), sizes)
    ts = np.arange(n, dtype=np.int64)
    shuffled = rng.permutation(n)  # storage order must not matter
    con = duckdb.connect(":memory:")
    try:
        con.execute("CREATE TABLE t (g BIGINT, ts BIGINT, v DOUBLE)")
        con.execute(
            "INSERT INTO t SELECT unnest($1), unnest($2), unnest($3)",
            [group[shuffled], ts[shuffled], volume[shuffled]],
        )
        sql_sums = con.execute("SELECT sum(v ORDER BY ts) FROM t GROUP BY g ORDER BY g").fetchall()
    finally:
        con.close()
    bounds = np.cumsum([0, *sizes])
    left_to_right = [
        reduce(lambda acc, x: acc + x, volume[a:b].tolist(), 0.0)
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    assert [s[0] for s in sql_sums] == left_to_right
    agg = aggregate_buckets(ts, volume, volume, volume, volume, volume, 1)  # 1 ns buckets
    assert agg["volume"].tolist() == volume.tolist()
    # And whole groups through aggregate_buckets (group g -> bucket g * step):
    step = 10_000
    agg = aggregate_buckets(group * step, volume, volume, volume, volume, volume, step)
    assert agg["volume"].tolist() == left_to_right


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 3000), min_size=1, max_size=8)
    | st.lists(st.integers(1, 4), min_size=1, max_size=300),
    seed=st.integers(0, 2**32 - 1),
    signed_zeros=st.booleans(),
)
def test_both_segment_sum_paths_are_bit_identical_left_to_right_sums(
    sizes: list[int], seed: int, signed_zeros: bool
) -> None:
    """Per-segment accumulate and per-position loop give the same bits as a sum from 0.0."""
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    values = rng.uniform(0, 1, n) * 10.0 ** rng.integers(-9, 10, n)
    if signed_zeros:  # -0.0 + 0.0 is 0.0: a segment of -0.0s must sum to +0.0, as from 0.0
        values[rng.uniform(size=n) < 0.5] = -0.0
    starts = np.cumsum([0, *sizes[:-1]]).astype(np.intp)
    counts = np.array(sizes, dtype=np.intp)
    reference = np.array(
        [
            reduce(lambda acc, x: acc + x, values[a : a + c].tolist(), 0.0)
            for a, c in zip(starts.tolist(), sizes, strict=True)
        ],
        dtype=np.float64,
    )
    for sums in (
        _segment_sums_by_segment(values, starts, counts),
        _segment_sums_by_position(values, starts, counts),
        _sequential_segment_sums(values, starts, counts),
    ):
        assert sums.view(np.int64).tolist() == reference.view(np.int64).tolist()


@pytest.mark.parametrize("timeframe", ["5m", "1h", "1d"])
def test_aggregate_buckets_matches_pandas_on_random_bars(timeframe: str) -> None:
    rng = np.random.default_rng(5)
    ts = np.sort(rng.choice(np.arange(20_000), 8_000, replace=False)).astype(np.int64) * MINUTE
    bars = bars_at(ts + T0, 9)
    agg = aggregate_buckets(
        bars.index.asi8,
        *(bars[c].to_numpy() for c in ("open", "high", "low", "close", "volume")),
        int(TIMEFRAMES[timeframe].value),
    )
    ref = pandas_reference(bars, timeframe)
    assert agg["ts"].tolist() == ref.index.asi8.tolist()
    for col in ("open", "high", "low", "close"):
        assert agg[col].tolist() == ref[col].tolist()
    np.testing.assert_allclose(agg["volume"], ref["volume"].to_numpy(), rtol=1e-12)
    assert agg["bars"].sum() == len(bars)
