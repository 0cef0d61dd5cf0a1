"""walk_forward_splits: hand-computed folds, a slow reference, and hypothesis properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chimera_lab.errors import ConfigError, DataError
from chimera_lab.validation import Fold, TemporalValidator, walk_forward_splits


def _hourly(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="timestamp")


def test_splits_daily_rolling_by_hand() -> None:
    idx = pd.date_range("2024-01-01", periods=10, freq="1D", tz="UTC")
    folds = list(walk_forward_splits(idx, train="4D", test="2D"))
    # train Jan 1-4, test 5-6; train 3-6, test 7-8; train 5-8, test 9-10; nothing left.
    assert [
        (f.train_start.day, f.train_end.day, f.test_start.day, f.test_end.day) for f in folds
    ] == [
        (1, 4, 5, 6),
        (3, 6, 7, 8),
        (5, 8, 9, 10),
    ]
    assert [f.number for f in folds] == [0, 1, 2]
    assert all(f.n_train == 4 and f.n_test == 2 for f in folds)


def test_splits_anchored_and_embargo_by_hand() -> None:
    idx = pd.date_range("2024-01-01", periods=10, freq="1D", tz="UTC")
    folds = list(walk_forward_splits(idx, train="3D", test="2D", anchored=True, embargo="1D"))
    # test windows start at day 1 + 3 + 1 = Jan 5, then Jan 7, Jan 9; the day before is skipped.
    assert [(f.train_start.day, f.train_end.day, f.test_start.day) for f in folds] == [
        (1, 3, 5),
        (1, 5, 7),
        (1, 7, 9),
    ]
    assert folds[0].embargo == pd.Timedelta("1D")


def test_splits_bar_counts_embargo_in_bars_and_as_duration_agree() -> None:
    idx = _hourly(200)
    in_bars = list(walk_forward_splits(idx, train=50, test=20, embargo=3))
    as_time = list(walk_forward_splits(idx, train=50, test=20, embargo="150min"))  # ceil -> 3
    assert [f.to_dict() for f in in_bars] == [f.to_dict() for f in as_time]
    first = in_bars[0]
    assert first.train_positions == (0, 50) and first.test_positions == (53, 73)
    assert len(in_bars) == (200 - 53 - 20) // 20 + 1


def test_splits_partial_keeps_the_short_tail() -> None:
    idx = _hourly(100)
    full = list(walk_forward_splits(idx, train=40, test=25))
    part = list(walk_forward_splits(idx, train=40, test=25, partial=True))
    assert [f.test_positions for f in full] == [(40, 65), (65, 90)]
    assert [f.test_positions for f in part] == [(40, 65), (65, 90), (90, 100)]


def test_splits_skip_windows_inside_a_data_gap() -> None:
    idx = _hourly(24 * 10)
    gappy = idx[(idx < "2024-01-05") | (idx >= "2024-01-07")]  # two days missing
    folds = list(walk_forward_splits(gappy, train="2D", test="1D"))
    assert all(f.n_train > 0 and f.n_test > 0 for f in folds)
    assert not any(
        pd.Timestamp("2024-01-05", tz="UTC") <= f.test_start < pd.Timestamp("2024-01-07", tz="UTC")
        for f in folds
    )


def test_fold_slices_frames_by_time_and_position(ohlcv: pd.DataFrame) -> None:
    fold = next(walk_forward_splits(ohlcv, train="10h", test="5h", embargo="30min"))
    assert fold.train(ohlcv).equals(ohlcv.iloc[fold.train_slice])
    assert fold.test(ohlcv).equals(ohlcv.iloc[fold.test_slice])
    assert fold.to_dict()["train_start"].endswith("Z")
    TemporalValidator(embargo="30min").validate_split(fold, ohlcv)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"train": "7D", "test": 100}, "must both be durations or both bar counts"),
        ({"train": 100, "test": 50, "step": 10}, "must be >= test"),
        ({"train": 100, "test": 50, "step": "1h"}, "same kind"),
        ({"train": "0D", "test": "1D"}, "must be > 0"),
        ({"train": "7D", "test": "1D", "embargo": "-1h"}, "must be >= 0"),
        ({"train": True, "test": 5}, "duration"),
        ({"train": "a week", "test": "1D"}, "neither a duration"),
        ({"train": "300D", "test": "1D"}, "too short for one fold"),
    ],
)
def test_splits_reject_bad_windows(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        list(walk_forward_splits(_hourly(500), **kwargs))  # type: ignore[arg-type]


def test_splits_reject_bad_indexes() -> None:
    naive = pd.date_range("2024-01-01", periods=50, freq="1h")
    with pytest.raises(DataError, match="tz-aware"):
        walk_forward_splits(naive, train=10, test=5)
    shuffled = _hourly(50)[::-1]
    with pytest.raises(DataError, match="strictly increasing"):
        walk_forward_splits(shuffled, train=10, test=5)
    with pytest.raises(DataError, match="DatetimeIndex"):
        walk_forward_splits(pd.RangeIndex(50), train=10, test=5)  # type: ignore[arg-type]


# --- properties -------------------------------------------------------------------------------


@st.composite
def _indexes(draw: st.DrawFn) -> pd.DatetimeIndex:
    n = draw(st.integers(30, 400))
    idx = _hourly(n)
    drop = draw(st.lists(st.integers(1, n - 2), max_size=n // 5, unique=True))  # random gaps
    return idx.delete(sorted(drop))


def _reference_time_folds(
    idx: pd.DatetimeIndex,
    train: pd.Timedelta,
    test: pd.Timedelta,
    embargo: pd.Timedelta,
    anchored: bool,
) -> list[tuple[int, int, int, int]]:
    # The obvious slow version: boolean masks per fold, complete windows only.
    out = []
    spacing = pd.Timedelta(np.median(np.diff(idx.asi8)), unit=idx.unit)
    k = 0
    while True:
        t = idx[0] + train + embargo + k * test
        k += 1
        if t > idx[-1] or t + test > idx[-1] + spacing:
            return out
        tr = (idx >= (idx[0] if anchored else t - embargo - train)) & (idx < t - embargo)
        te = (idx >= t) & (idx < t + test)
        if tr.any() and te.any():
            a, b = np.flatnonzero(tr)[[0, -1]]
            c, d = np.flatnonzero(te)[[0, -1]]
            out.append((int(a), int(b) + 1, int(c), int(d) + 1))


@settings(max_examples=60, deadline=None)
@given(
    idx=_indexes(),
    train_h=st.integers(1, 60),
    test_h=st.integers(1, 40),
    embargo_h=st.integers(0, 5),
    anchored=st.booleans(),
)
def test_time_splits_match_the_slow_reference_and_never_overlap(
    idx: pd.DatetimeIndex, train_h: int, test_h: int, embargo_h: int, anchored: bool
) -> None:
    train, test = pd.Timedelta(hours=train_h), pd.Timedelta(hours=test_h)
    embargo = pd.Timedelta(hours=embargo_h)
    try:
        folds = list(
            walk_forward_splits(idx, train=train, test=test, embargo=embargo, anchored=anchored)
        )
    except ConfigError:
        folds = []
    expected = _reference_time_folds(idx, train, test, embargo, anchored)
    assert [(*f.train_positions, *f.test_positions) for f in folds] == expected
    _check_fold_invariants(idx, folds, embargo)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(20, 500),
    train=st.integers(1, 80),
    test=st.integers(1, 50),
    extra_step=st.integers(0, 10),
    embargo=st.integers(0, 10),
    anchored=st.booleans(),
    partial=st.booleans(),
)
def test_bar_splits_cover_the_range_and_respect_the_embargo(
    n: int, train: int, test: int, extra_step: int, embargo: int, anchored: bool, partial: bool
) -> None:
    idx = _hourly(n)
    step = test + extra_step
    try:
        folds = list(
            walk_forward_splits(
                idx,
                train=train,
                test=test,
                step=step,
                embargo=embargo,
                anchored=anchored,
                partial=partial,
            )
        )
    except ConfigError:
        assert train + embargo + (1 if partial else test) > n
        return
    _check_fold_invariants(idx, folds, pd.Timedelta(hours=embargo))
    for f in folds:
        assert f.n_train == (f.train_positions[1] if anchored else train)
        assert f.train_positions[1] + embargo == f.test_positions[0]
    assert all(f.n_test == test for f in folds[:-1])
    first = train + embargo
    assert folds[0].test_positions[0] == first
    if extra_step == 0:
        # Test windows tile the range from the first test bar: contiguous, no overlap...
        ends = [f.test_positions for f in folds]
        assert all(b == c for (_, b), (c, _) in zip(ends, ends[1:], strict=False))
        # ... and stop only where the data (or the last complete window) ends.
        last_stop = folds[-1].test_positions[1]
        assert last_stop == n if partial else n - last_stop < test


def _check_fold_invariants(idx: pd.DatetimeIndex, folds: list[Fold], embargo: pd.Timedelta) -> None:
    validator = TemporalValidator(embargo=embargo)
    for prev, f in zip([None, *folds], folds, strict=False):
        a, b = f.train_positions
        c, d = f.test_positions
        assert 0 <= a < b <= c < d <= len(idx)
        # No overlap and the embargo respected, checked on the timestamps themselves.
        assert idx[c] - idx[b - 1] > embargo
        validator.validate_fold(idx[a:b], idx[c:d])
        assert (f.train_start, f.train_end, f.test_start, f.test_end) == (
            idx[a],
            idx[b - 1],
            idx[c],
            idx[d - 1],
        )
        if prev is not None:
            assert prev.test_positions[1] <= c  # test windows never overlap each other
            assert f.number == prev.number + 1


def test_to_utc_is_the_one_rule_for_scalar_times() -> None:
    from chimera_lab.validation import to_utc

    utc = pd.Timestamp("2024-07-26 14:15", tz="UTC")
    for value in (
        "2024-07-26 14:15",  # naive means UTC
        "2024-07-26T14:15:00Z",
        "2024-07-26T16:15:00+02:00",
        pd.Timestamp("2024-07-26 14:15"),
        utc.tz_convert("America/New_York").to_pydatetime(),
    ):
        assert to_utc(value, name="t") == utc
        assert str(to_utc(value, name="t").tz) == "UTC"
    for bad in ("", None, "soon", pd.NaT):
        with pytest.raises(ConfigError, match="'?t"):
            to_utc(bad, name="t")
