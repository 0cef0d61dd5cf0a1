"""The temporal validator: assertions that a fold or a feature frame cannot see the future.

Two rules from the design (the look-ahead lesson):

- every test timestamp is later than every train timestamp plus the embargo;
- a feature frame used for a decision holds no timestamp beyond the decision time, neither in
  its index nor in any datetime column (the classic leak is a ``merge_asof`` or a ``join`` that
  pulled in a later observation).

A violation raises :class:`~chimera_lab.errors.TimestampLeakError` (a ``LookAheadError``) whose
``timestamps`` attribute lists every offending timestamp.

Examples
--------
>>> import pandas as pd
>>> idx = pd.date_range("2024-01-01", periods=6, freq="1h", tz="UTC")
>>> v = TemporalValidator(embargo="1h")
>>> v.validate_fold(idx[:2], idx[3:])
>>> try:
...     v.validate_fold(idx[:3], idx[3:])
... except LookAheadError as exc:
...     print(len(exc.timestamps), "leaking test bar(s)")
1 leaking test bar(s)
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from chimera_lab.errors import ConfigError, LookAheadError, TimestampLeakError
from chimera_lab.validation.splits import Fold, _iso, as_time_index, to_utc

__all__ = ["LookAheadError", "TemporalValidator"]

_SHOW = 5  # offending timestamps quoted in a message (all of them are on the exception)


def _fmt(timestamps: pd.DatetimeIndex) -> str:
    shown = ", ".join(_iso(ts) for ts in timestamps[:_SHOW])
    more = f" and {len(timestamps) - _SHOW} more" if len(timestamps) > _SHOW else ""
    return shown + more


class TemporalValidator:
    """Check folds and feature frames for look-ahead.

    Parameters
    ----------
    embargo : str or Timedelta
        Minimum gap between the last train timestamp and the first test timestamp; the test
        bars must be strictly later than ``max(train) + embargo``.
    """

    def __init__(self, *, embargo: str | pd.Timedelta | timedelta = "0min") -> None:
        self.embargo = embargo

    def _embargo(self) -> pd.Timedelta:
        try:
            value = pd.Timedelta(self.embargo)
        except (TypeError, ValueError):
            raise ConfigError(f"embargo must be a duration, got {self.embargo!r}") from None
        if pd.isna(value) or value < pd.Timedelta(0):
            raise ConfigError(f"embargo must be a duration >= 0, got {self.embargo!r}")
        return value

    def validate_fold(self, train: Any, test: Any) -> None:
        """Assert that every test timestamp is later than every train timestamp + embargo.

        Parameters
        ----------
        train, test : DatetimeIndex, Series or DataFrame
            The bars (or their index) of each window.

        Raises
        ------
        TimestampLeakError
            Listing the test timestamps that are not late enough.
        """
        train_idx = as_time_index(train, name="train")
        test_idx = as_time_index(test, name="test")
        if len(train_idx) == 0 or len(test_idx) == 0:
            return
        limit = train_idx.max() + self._embargo()
        bad = test_idx[test_idx <= limit]
        if len(bad):
            raise TimestampLeakError(
                f"{len(bad)} test bar(s) are not later than the last train bar "
                f"{_iso(train_idx.max())} plus the embargo {self._embargo()}: {_fmt(bad)}; "
                "test windows must start strictly after train windows (plus the embargo)",
                timestamps=list(bad),
            )

    def validate_split(self, fold: Fold, data: pd.DataFrame | pd.Series) -> None:
        """Validate a :class:`Fold` on the data it slices, and the fold's own embargo.

        Raises
        ------
        TimestampLeakError
            As :meth:`validate_fold`.
        """
        checker = TemporalValidator(embargo=max(self._embargo(), fold.embargo))
        checker.validate_fold(data.iloc[fold.train_slice], data.iloc[fold.test_slice])

    def validate_features(
        self, features: pd.DataFrame | pd.Series, decision_time: Any = None
    ) -> None:
        """Assert that a feature frame holds no timestamp beyond the decision time.

        Parameters
        ----------
        features : DataFrame or Series
            Indexed by timestamp; datetime columns (e.g. the time of a joined observation)
            are checked too.
        decision_time : Timestamp, optional
            The time the decision is taken (naive means UTC, see
            :func:`~chimera_lab.validation.to_utc`). Without it each row's decision time is its own
            index timestamp, so every datetime column must be <= the row's timestamp.

        Raises
        ------
        TimestampLeakError
            Listing the offending timestamps (index entries or column values).
        """
        idx = as_time_index(features, name="features")
        frame = features.to_frame() if isinstance(features, pd.Series) else features
        offending: list[pd.Timestamp] = []
        where: list[str] = []
        if decision_time is not None:
            limit = to_utc(decision_time, name="decision_time")
            bad = idx[idx > limit]
            if len(bad):
                offending.extend(bad)
                where.append(f"{len(bad)} index timestamp(s) after {_iso(limit)}")
            limits = np.full(len(idx), limit.value, dtype="int64")
        else:
            limit = None
            limits = idx.as_unit("ns").asi8
        for column in frame.columns:
            values = frame[column]
            if not pd.api.types.is_datetime64_any_dtype(values.dtype):
                continue
            stamps = pd.DatetimeIndex(values)
            if stamps.tz is None:
                raise ConfigError(
                    f"feature column {column!r} holds naive datetimes; make them tz-aware UTC"
                )
            stamps = stamps.tz_convert("UTC").as_unit("ns")
            mask = stamps.asi8 > limits  # NaT is the smallest int64: never flagged
            if mask.any():
                bad = stamps[mask]
                offending.extend(bad)
                ref = "the decision time" if limit is not None else "their row's timestamp"
                where.append(f"{int(mask.sum())} value(s) of column {column!r} after {ref}")
        if offending:
            ordered = pd.DatetimeIndex(sorted(set(offending)))
            raise TimestampLeakError(
                f"feature frame sees the future: {'; '.join(where)}: {_fmt(ordered)}; "
                "features at time t may use data with timestamp <= t only",
                timestamps=list(ordered),
            )
