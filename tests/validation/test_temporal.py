"""TemporalValidator: leaking folds and feature frames raise with the offending timestamps."""

from __future__ import annotations

import pandas as pd
import pytest

from chimera_lab.errors import ConfigError, LookAheadError, TimestampLeakError
from chimera_lab.validation import Fold, TemporalValidator, walk_forward_splits


def _idx(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2024-08-01", periods=n, freq="1min", tz="UTC", name="timestamp")


def test_validator_accepts_folds_from_the_splitter(ohlcv: pd.DataFrame) -> None:
    validator = TemporalValidator(embargo="15min")
    for fold in walk_forward_splits(ohlcv, train=600, test=200, embargo="15min"):
        validator.validate_fold(fold.train(ohlcv), fold.test(ohlcv))
        validator.validate_split(fold, ohlcv)


def test_validator_catches_an_overlapping_fold_and_lists_the_timestamps() -> None:
    idx = _idx(100)
    train, test = idx[:60], idx[55:80]  # five test bars are inside the train window
    with pytest.raises(TimestampLeakError) as info:
        TemporalValidator().validate_fold(train, test)
    assert isinstance(info.value, LookAheadError)
    assert list(info.value.timestamps) == list(idx[55:60])
    assert "5 test bar(s)" in str(info.value)


def test_validator_catches_an_embargo_violation() -> None:
    idx = _idx(100)
    train, test = idx[:60], idx[62:80]  # gap of 2 bars; embargo 5 bars needed
    validator = TemporalValidator(embargo="5min")
    with pytest.raises(TimestampLeakError) as info:
        validator.validate_fold(train, test)
    # idx[59] + 5min = idx[64]; test bars idx[62..64] are not strictly later.
    assert list(info.value.timestamps) == list(idx[62:65])
    TemporalValidator(embargo="2min").validate_fold(train, test)


def test_validator_catches_a_hand_built_leaking_split(ohlcv: pd.DataFrame) -> None:
    good = next(walk_forward_splits(ohlcv, train=500, test=100))
    leaking = Fold(
        number=0,
        train_start=good.train_start,
        train_end=ohlcv.index[good.test_positions[0] + 9],
        test_start=good.test_start,
        test_end=good.test_end,
        train_positions=(0, good.test_positions[0] + 10),
        test_positions=good.test_positions,
        embargo=pd.Timedelta(0),
    )
    with pytest.raises(LookAheadError) as info:
        TemporalValidator().validate_split(leaking, ohlcv)
    assert len(info.value.timestamps) == 10  # type: ignore[attr-defined]


def test_features_beyond_the_decision_time_are_flagged() -> None:
    idx = _idx(10)
    features = pd.DataFrame({"x": range(10)}, index=idx)
    TemporalValidator().validate_features(features, decision_time=idx[-1])
    with pytest.raises(TimestampLeakError) as info:
        TemporalValidator().validate_features(features, decision_time=idx[6])
    assert list(info.value.timestamps) == list(idx[7:])


def test_a_forward_asof_join_is_flagged_per_row() -> None:
    # The classic leak: joining each bar to the *next* funding print instead of the last one.
    bars = pd.DataFrame({"close": range(12)}, index=_idx(12))
    prints = pd.DataFrame({"funding_ts": _idx(12)[[0, 4, 8]], "funding": [0.01, 0.02, 0.03]})
    for direction, leaks in (("backward", False), ("forward", True)):
        joined = pd.merge_asof(
            bars.reset_index(),
            prints,
            left_on="timestamp",
            right_on="funding_ts",
            direction=direction,
        ).set_index("timestamp")
        if leaks:
            with pytest.raises(TimestampLeakError, match="funding_ts") as info:
                TemporalValidator().validate_features(joined)
            assert list(info.value.timestamps) == list(_idx(12)[[4, 8]])
        else:
            TemporalValidator().validate_features(joined)


def test_validator_rejects_bad_arguments() -> None:
    idx = _idx(5)
    with pytest.raises(ConfigError, match="embargo"):
        TemporalValidator(embargo="soon").validate_fold(idx[:2], idx[3:])
    frame = pd.DataFrame({"x": range(5)}, index=idx)
    with pytest.raises(ConfigError, match="not a date/time"):
        TemporalValidator().validate_features(frame, decision_time="soon")
    # A naive decision time means UTC (the one rule for scalar times, see to_utc).
    with pytest.raises(TimestampLeakError) as naive_leak:
        TemporalValidator().validate_features(frame, decision_time=str(idx[2].tz_localize(None)))
    with pytest.raises(TimestampLeakError) as aware_leak:
        TemporalValidator().validate_features(frame, decision_time=idx[2])
    assert naive_leak.value.timestamps == aware_leak.value.timestamps == tuple(idx[3:])
    naive = pd.DataFrame({"t": pd.date_range("2024-08-01", periods=5, freq="1min")}, index=idx)
    with pytest.raises(ConfigError, match="naive"):
        TemporalValidator().validate_features(naive)
