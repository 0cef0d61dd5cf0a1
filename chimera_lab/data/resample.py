"""Resample an OHLCV frame exactly as the store does (bit-identical bars from a file or SQL).

The store aggregates bars in SQL (``arg_min(open)``, ``max(high)``, ``min(low)``,
``arg_max(close)``, ``sum(volume ORDER BY ts)`` per epoch-aligned bucket) and through its
rollups with :func:`chimera_lab.data._buckets.aggregate_buckets`, which reproduces that SQL to
the last bit (the volume is the sequential left-to-right float sum in time order, not numpy's
pairwise sum). :func:`resample_ohlcv` applies the same helper to a frame in memory, so bars
read from a file and resampled here have the same fingerprint as the same bars resampled by
the store. ``DataFrame.resample(...).agg(...)`` would not: pandas sums volumes in another
order, and the last bits differ.

Buckets are aligned to the Unix epoch and labelled by their open time (``origin="epoch"``,
``label="left"``, ``closed="left"``); empty buckets are dropped.

Examples
--------
>>> from chimera_lab.data.synthetic import make_ohlcv
>>> bars = make_ohlcv(150, seed=1, start="2024-01-01 00:10")
>>> hourly = resample_ohlcv(bars, "1h")
>>> [t.strftime("%H:%M") for t in hourly.index]
['00:00', '01:00', '02:00']
>>> bool(hourly["close"].iloc[0] == bars["close"].iloc[49])  # 00:10 .. 00:59 is 50 bars
True
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from chimera_lab.data._buckets import aggregate_buckets
from chimera_lab.frames import OHLCV_COLUMNS, validate_ohlcv
from chimera_lab.timeframes import timeframe_to_timedelta

__all__ = ["resample_ohlcv"]


def resample_ohlcv(bars: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Aggregate OHLCV bars into epoch-aligned ``timeframe`` bars, exactly like the store.

    Parameters
    ----------
    bars : DataFrame
        OHLCV bars (``chimera_lab.frames`` convention), sorted and unique.
    timeframe : str
        Target timeframe (``"15m"``, ``"1h"``, ...), coarser than the bars' spacing.

    Returns
    -------
    DataFrame
        ``open`` (first), ``high`` (max), ``low`` (min), ``close`` (last), ``volume``
        (sequential sum in time order), indexed by bucket open time; empty buckets absent.

    Raises
    ------
    DataError
        The bars break the OHLCV convention.
    ConfigError
        Unknown timeframe (close matches are suggested).
    """
    bars = validate_ohlcv(bars, name="bars to resample")
    step = timeframe_to_timedelta(timeframe)
    index = pd.DatetimeIndex(bars.index).tz_convert("UTC").as_unit("ns")
    cols = {c: np.ascontiguousarray(bars[c].to_numpy(dtype=np.float64)) for c in OHLCV_COLUMNS}
    agg = aggregate_buckets(
        np.ascontiguousarray(index.asi8),
        cols["open"],
        cols["high"],
        cols["low"],
        cols["close"],
        cols["volume"],
        int(step.value),
    )
    return pd.DataFrame(
        {c: agg[c] for c in OHLCV_COLUMNS},
        index=pd.DatetimeIndex(pd.to_datetime(agg["ts"], unit="ns", utc=True), name="timestamp"),
    )
