"""Load perpetual-futures funding rates (for ``chimera_lab.backtest.run(funding=...)``).

Exchanges publish one rate per funding time (every 8 h on Binance and Bitget USDT-M), as a
fraction of position notional: positive rates are paid by longs to shorts. Exported files
carry a few milliseconds of jitter on the timestamps (``2019-10-03 08:00:00.001``) and rates
in plain or scientific notation (``-6.876e-05``). :func:`load_funding` reads any such file
(CSV, CSV.gz, Parquet, Feather; the same readers as :func:`chimera_lab.data.load_ohlcv`),
snaps timestamps to the hour and returns a float Series indexed by UTC time.

Examples
--------
>>> from chimera_lab.data.samples import FUNDING_SAMPLE, samples_dir
>>> rates = load_funding(samples_dir() / FUNDING_SAMPLE)
>>> rates.index[:2].strftime("%Y-%m-%d %H:%M").tolist()
['2019-09-10 08:00', '2019-09-10 16:00']
>>> rates.name, str(rates.dtype)
('funding_rate', 'float64')
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from chimera_lab.data.loaders import _norm, _raise_at, _to_float, _to_ns, read_table
from chimera_lab.errors import DataError

__all__ = ["MAX_JITTER", "load_funding"]

MAX_JITTER = pd.Timedelta(minutes=1)
"""Largest distance from the hour that is treated as timestamp jitter (snapped to the hour)."""

_TIME_NAMES: tuple[str, ...] = (
    "funding_time",
    "fundingtime",
    "calc_time",
    "timestamp",
    "time",
    "datetime",
    "date",
    "ts",
    "open_time",
)
_RATE_NAMES: tuple[str, ...] = (
    "funding_rate",
    "fundingrate",
    "last_funding_rate",
    "lastfundingrate",
    "rate",
    "funding",
)


def _pick(names: list[str], wanted: tuple[str, ...], what: str, path: Path) -> str:
    norm = {_norm(n): n for n in reversed(names)}
    for key in wanted:
        if key in norm:
            return norm[key]
    raise DataError(
        f"no {what} column; expected one of {', '.join(wanted)} (columns: {', '.join(names)})",
        file=path,
    )


def load_funding(path: str | Path) -> pd.Series:
    """Read funding rates from a file into a Series indexed by UTC funding time.

    Parameters
    ----------
    path : str or Path
        A table with a time column (``timestamp``, ``fundingTime``, ``calc_time`` ...:
        ISO text, naive meaning UTC, or a Unix epoch in s/ms/us/ns) and a rate column
        (``funding_rate``, ``fundingRate``, ``rate`` ...) as a fraction per funding period.

    Returns
    -------
    Series
        float64 rates named ``funding_rate``, index ``timestamp`` (UTC, snapped to the hour),
        sorted and unique. Rows repeating a time with the same rate are dropped.

    Raises
    ------
    DataError
        Missing columns, unparseable values, a timestamp more than :data:`MAX_JITTER` away
        from the hour, or two different rates for one funding time; with file, row and column.
    """
    path = Path(path)
    table, line_offset = read_table(path)
    names = [str(n) for n in table.column_names]
    time_col = _pick(names, _TIME_NAMES, "funding time", path)
    rate_col = _pick(names, _RATE_NAMES, "funding rate", path)
    ns = _to_ns(table.column(time_col), time_col, path, line_offset)
    rates = _to_float(table.column(rate_col), rate_col, path, line_offset)

    def fail(pos: int, column: str, message: str) -> DataError:
        return _raise_at(path, pos, column, message, line_offset)

    if np.isnan(rates).any():
        raise fail(int(np.flatnonzero(np.isnan(rates))[0]), rate_col, "missing funding rate")
    times = pd.DatetimeIndex(pd.to_datetime(ns, unit="ns", utc=True))
    snapped = times.round("h")
    off = np.abs(np.asarray(times - snapped, dtype="timedelta64[ns]").astype(np.int64))
    far = np.flatnonzero(off > MAX_JITTER.value)
    if far.size:
        pos = int(far[0])
        raise fail(
            pos,
            time_col,
            f"funding time {times[pos]} is {pd.Timedelta(int(off[pos]))} from the hour; "
            f"only jitter up to {MAX_JITTER} is snapped. Is this a funding-rate file?",
        )
    series = pd.Series(rates, index=snapped.as_unit("ns").rename("timestamp"), name="funding_rate")
    order = np.argsort(snapped.asi8, kind="stable")
    series = series.iloc[order]
    dup = series.index.duplicated(keep="first")
    if dup.any():
        distinct = series.groupby(level=0).nunique()
        conflict = distinct[distinct > 1]
        if len(conflict):
            when = conflict.index[0]
            pos = int(order[np.flatnonzero(series.index == when)[-1]])
            raise fail(
                pos,
                rate_col,
                f"two different funding rates for {when}; keep one row per funding time",
            )
        series = series[~dup]
    return series
