"""Data-quality report for a frame of bars: gaps, duplicates, off-grid bars, outliers, coverage.

Definitions (bar spacing ``s``, the timeframe given or the median spacing of the index):

- bars sit in epoch-aligned buckets of ``s`` (an off-grid bar counts for the bucket it falls in);
  a **gap** is a run of empty buckets between two consecutive bars; ``missing_bars`` sums the
  empty buckets and ``gaps`` lists each run (last bar before, first bar after, missing). This is
  the store's definition too (:func:`chimera_lab.data.find_gaps`), so both report the same counts.
- **expected bars**: buckets from the first bar's to the last bar's; **coverage** = rows / expected.
- **off-grid**: a timestamp that is not a multiple of ``s`` from the Unix epoch (for ``s`` up
  to one day), e.g. Binance's hh:28:14 hourly bars after the Feb 2018 outage.
- **outlier**: a close-to-close log return further than ``outlier_sigma`` robust standard
  deviations (1.4826 × median absolute deviation) from the median return.
- **flat zero-volume bars**: ``open == high == low == close`` and ``volume == 0`` (nothing traded;
  stale prices on thin markets).

Examples
--------
>>> from chimera_lab.data.synthetic import make_ohlcv
>>> df = make_ohlcv(10, seed=1).drop(index=make_ohlcv(10, seed=1).index[[3, 4]])
>>> r = quality_report(df, timeframe="1m")
>>> r.rows, r.missing_bars, len(r.gaps)
(8, 2, 1)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from chimera_lab.data._buckets import gap_runs
from chimera_lab.errors import DataError
from chimera_lab.timeframes import TIMEFRAMES, infer_bar_spacing, timeframe_to_timedelta

__all__ = ["Gap", "QualityReport", "quality_report"]


@dataclass(frozen=True)
class Gap:
    """A run of missing bars between two consecutive bars."""

    after: pd.Timestamp
    before: pd.Timestamp
    missing: int


@dataclass(frozen=True)
class QualityReport:
    """What :func:`quality_report` found. ``str(report)`` is a readable summary."""

    rows: int
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    timeframe: str | None
    spacing: pd.Timedelta | None
    expected_bars: int
    missing_bars: int
    gaps: tuple[Gap, ...]
    duplicates: int
    off_grid: int
    zero_volume: int
    flat_zero_volume: int
    outliers: tuple[tuple[pd.Timestamp, float], ...]
    outlier_sigma: float
    coverage: float
    source: str | None = None
    duplicates_dropped: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_gaps(self) -> int:
        """Number of gap runs."""
        return len(self.gaps)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready summary (times as ISO-8601 UTC strings)."""

        def iso(ts: pd.Timestamp | None) -> str | None:
            return None if ts is None else ts.isoformat().replace("+00:00", "Z")

        return {
            "source": self.source,
            "rows": self.rows,
            "start": iso(self.start),
            "end": iso(self.end),
            "timeframe": self.timeframe,
            "expected_bars": self.expected_bars,
            "missing_bars": self.missing_bars,
            "gaps": self.n_gaps,
            "largest_gaps": [
                {"after": iso(g.after), "before": iso(g.before), "missing": g.missing}
                for g in sorted(self.gaps, key=lambda g: -g.missing)[:5]
            ],
            "duplicates": self.duplicates,
            "duplicates_dropped": self.duplicates_dropped,
            "off_grid": self.off_grid,
            "zero_volume": self.zero_volume,
            "flat_zero_volume": self.flat_zero_volume,
            "outliers": len(self.outliers),
            "outlier_sigma": self.outlier_sigma,
            "coverage": round(self.coverage, 6),
        }

    def __str__(self) -> str:
        if self.rows == 0:
            return "quality report: no bars"
        tf = self.timeframe or f"spacing {self.spacing}"
        lines = [
            f"quality report{f' for {self.source}' if self.source else ''}",
            f"  rows          {self.rows:,} ({tf})",
            f"  range         {self.start} .. {self.end}",
            f"  coverage      {self.coverage:.2%} of {self.expected_bars:,} expected bars",
            f"  gaps          {self.n_gaps:,} ({self.missing_bars:,} missing bars)",
        ]
        for g in sorted(self.gaps, key=lambda g: -g.missing)[:3]:
            lines.append(f"    largest: {g.missing:,} bars after {g.after}")
        lines += [
            f"  duplicates    {self.duplicates:,} in frame, {self.duplicates_dropped:,} "
            "identical rows dropped on load",
            f"  off-grid      {self.off_grid:,}",
            f"  zero volume   {self.zero_volume:,} ({self.flat_zero_volume:,} flat)",
            f"  outliers      {len(self.outliers):,} returns beyond {self.outlier_sigma:g} "
            "robust sigmas",
        ]
        for ts, ret in self.outliers[:3]:
            lines.append(f"    {ts}: log return {ret:+.4f}")
        return "\n".join(lines)


def quality_report(
    df: pd.DataFrame, *, timeframe: str | None = None, outlier_sigma: float = 10.0
) -> QualityReport:
    """Return gaps, duplicates, off-grid bars, outliers and coverage of an OHLCV frame.

    Parameters
    ----------
    df : DataFrame
        Bars with a DatetimeIndex (as returned by ``load_ohlcv`` or ``Store.read_bars``).
    timeframe : str, optional
        Expected bar spacing; inferred from the median spacing when omitted.
    outlier_sigma : float
        Threshold, in robust standard deviations, for an outlier return.
    """
    if not isinstance(df.index, pd.DatetimeIndex):
        raise DataError("quality_report needs a frame indexed by bar open time (DatetimeIndex)")
    if outlier_sigma <= 0:
        raise DataError(f"outlier_sigma must be > 0, got {outlier_sigma}")
    source = df.attrs.get("source")
    dropped = int(df.attrs.get("duplicates_dropped", 0))
    n = len(df)
    if n == 0:
        return QualityReport(
            0, None, None, timeframe, None, 0, 0, (), 0, 0, 0, 0, (), outlier_sigma, 0.0, source
        )
    index = df.index if df.index.tz is not None else df.index.tz_localize("UTC")
    index = index.tz_convert("UTC").as_unit("ns")
    duplicates = int(index.duplicated().sum())
    unique = index.unique().sort_values()
    if timeframe is not None:
        spacing = timeframe_to_timedelta(timeframe)
    elif len(unique) >= 2:
        spacing = infer_bar_spacing(unique)
        timeframe = next((k for k, v in TIMEFRAMES.items() if v == spacing), None)
    else:
        spacing = None

    gaps: list[Gap] = []
    missing = 0
    expected = len(unique)
    off_grid = 0
    if spacing is not None:
        step = spacing.value
        ts = unique.asi8
        prev, nxt, miss = gap_runs(ts, step)
        gaps = [
            Gap(pd.Timestamp(int(a), tz="UTC"), pd.Timestamp(int(b), tz="UTC"), int(m))
            for a, b, m in zip(prev, nxt, miss, strict=True)
        ]
        missing = int(miss.sum())
        expected = int(ts[-1] // step - ts[0] // step) + 1
        if spacing <= pd.Timedelta(days=1):
            off_grid = int(np.count_nonzero(ts % step))

    volume = df["volume"].to_numpy(dtype=np.float64) if "volume" in df else np.zeros(n)
    zero_volume = int(np.count_nonzero(volume == 0))
    flat = 0
    if {"open", "high", "low", "close"} <= set(df.columns):
        o, h, lo, c = (df[k].to_numpy(dtype=np.float64) for k in ("open", "high", "low", "close"))
        flat = int(np.count_nonzero((o == h) & (h == lo) & (lo == c) & (volume == 0)))

    outliers: list[tuple[pd.Timestamp, float]] = []
    if "close" in df and n > 2:
        close = df["close"].to_numpy(dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            rets = np.diff(np.log(close))
        finite = np.isfinite(rets)
        if finite.sum() > 2:
            med = float(np.median(rets[finite]))
            mad = float(np.median(np.abs(rets[finite] - med)))
            sigma = 1.4826 * mad
            if sigma > 0:
                hits = np.flatnonzero(finite & (np.abs(rets - med) > outlier_sigma * sigma))
                outliers = [(index[int(i) + 1], float(rets[i])) for i in hits]

    return QualityReport(
        rows=n,
        start=unique[0],
        end=unique[-1],
        timeframe=timeframe,
        spacing=spacing,
        expected_bars=expected,
        missing_bars=missing,
        gaps=tuple(gaps),
        duplicates=duplicates,
        off_grid=off_grid,
        zero_volume=zero_volume,
        flat_zero_volume=flat,
        outliers=tuple(outliers),
        outlier_sigma=outlier_sigma,
        coverage=len(unique) / expected if expected else 0.0,
        source=source,
        duplicates_dropped=dropped,
    )
