"""Reading the bars of a pipeline, the same way in the driver and in every notebook.

A step's notebook gets *where* the bars are (``data_path`` or ``store_url``/``symbol``/
``timeframe``), never the bars themselves, and reads them with :func:`load_bars`; the driver
reads them with the same function and fingerprints them, and the notebook reports the
fingerprint of what it read, so a store that changed under a run is detected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from chimera_lab.config import Settings
from chimera_lab.errors import ConfigError, DataError
from chimera_lab.validation import to_utc

__all__ = ["load_bars", "resolve_data_path", "source_parameters", "window_bars"]


def resolve_data_path(path: str | Path) -> Path:
    """Return the file for ``path``: a bundled sample name (``btcusdt_1m``) or a path."""
    from chimera_lab.data.samples import SAMPLES, sample_path

    text = str(path)
    if text in SAMPLES:
        return sample_path(text)
    from chimera_lab.pipelines.spec import resolve_path

    resolved = resolve_path(text)
    if not resolved.is_file():
        raise ConfigError(
            f"bars file {text!r} not found (looked in the current directory and the project "
            f"tree); bundled samples are {', '.join(SAMPLES)}"
        )
    return resolved


def _utc(value: Any, name: str) -> pd.Timestamp | None:
    # Optional bounds: empty means none; otherwise the one rule (naive means UTC).
    if value is None or value == "":
        return None
    return to_utc(value, name=name)


def load_bars(
    *,
    data_path: str | Path | None = None,
    store_url: str | None = None,
    symbol: str | None = None,
    timeframe: str = "1m",
    start: Any = None,
    end: Any = None,
    lookback: str | None = None,
    resample: str | None = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Load OHLCV bars from a file/sample or from the store, between ``start`` and ``end``.

    The one loader behind the ``chimera`` commands' ``--csv``/``--symbol`` options, the
    pipeline driver and every pipeline notebook.

    Parameters
    ----------
    data_path : str or Path, optional
        A bars file (CSV, CSV.gz, Parquet, Feather) or a bundled sample name.
    store_url : str, optional
        Store URL; empty means the default store (``CHIMERA_STORE__URL`` in this process).
    symbol, timeframe : str
        The store series (used when ``data_path`` is empty). A timeframe the store does not
        hold is aggregated from the finest stored one that divides it (:meth:`Store.bars`).
    start, end : timestamp-like, optional
        Inclusive bounds (UTC; naive means UTC).
    lookback : str, optional
        Keep only the bars within this duration before the last one (``"30D"``).
    resample : str, optional
        Aggregate to this timeframe (``"15m"``, ``"1h"``): inside the store for a store
        series, else with :func:`chimera_lab.data.resample.resample_ohlcv`, the store's own
        aggregation (bit-identical bars, so file and store sources have the same
        fingerprint); buckets aligned to the Unix epoch, labelled by their open time, empty
        buckets dropped.
    settings : Settings, optional
        Settings for the store (default: read from the environment).

    Raises
    ------
    ConfigError
        Neither or both sources given, or no bars in the range.
    """
    t0, t1 = _utc(start, "start"), _utc(end, "end")
    span = _duration(lookback) if lookback else None
    if data_path:
        from chimera_lab.data import load_ohlcv

        bars = load_ohlcv(resolve_data_path(data_path))
        if t0 is not None:
            bars = bars.loc[bars.index >= t0]
        if t1 is not None:
            bars = bars.loc[bars.index <= t1]
        if resample:
            from chimera_lab.data.resample import resample_ohlcv

            bars = resample_ohlcv(bars, resample)
        where = str(data_path)
    elif symbol:
        from chimera_lab.data import Store

        store = Store(store_url or None, settings=settings)

        def read(lo: pd.Timestamp | None) -> pd.DataFrame:
            if resample:
                return store.resample(
                    symbol, resample, source_timeframe=timeframe, start=lo, end=t1
                )
            return store.bars(symbol, timeframe, start=lo, end=t1)

        lo = t0
        if span is not None:
            lo = _lookback_start(store, symbol, timeframe, resample, span, t0, t1)
        bars = read(lo)
        if span is not None and lo is not t0 and (bars.empty or bars.index[-1] - span < lo):
            # A gap before ``end`` put the last bar further back than the bound assumed:
            # read the whole range as before (rare; the trim below is exact either way).
            bars = read(t0)
        where = f"{symbol} {timeframe} in the store"
    else:
        raise ConfigError("give data_path (a file or sample name) or symbol (a store series)")
    if span is not None and len(bars):
        bars = bars.loc[bars.index > bars.index[-1] - span]
    if bars.empty:
        raise DataError(f"no bars in {where} between {start or '-'} and {end or '-'}")
    return bars


def _duration(lookback: str) -> pd.Timedelta:
    try:
        return pd.Timedelta(lookback)
    except (TypeError, ValueError):
        raise ConfigError(f"lookback={lookback!r} is not a duration like '30D'") from None


def _lookback_start(
    store: Any,
    symbol: str,
    timeframe: str,
    resample: str | None,
    span: pd.Timedelta,
    t0: pd.Timestamp | None,
    t1: pd.Timestamp | None,
) -> pd.Timestamp | None:
    # Where to start reading so the lookback trim sees every bar it keeps, without reading
    # (and resampling) all history: the trim keeps labels > L - span, L the last bucket's
    # label, and L > last - bucket for the last stored bar ``last``; so every kept bucket
    # starts after last - span - bucket and is read whole (the same rows as an unbounded
    # read, hence the same bars and fingerprint).
    from chimera_lab.timeframes import timeframe_to_timedelta

    last = store.last_timestamp(symbol, timeframe)
    if last is None:
        return t0  # no such series: the unbounded read raises, naming what exists
    if t1 is not None:
        last = min(last, t1)
    bound = last - span - timeframe_to_timedelta(resample or timeframe)
    return bound if t0 is None or bound > t0 else t0


def source_parameters(data: Any) -> dict[str, Any]:
    """Return the notebook parameters naming a :class:`~chimera_lab.pipelines.DataSpec`."""
    return {
        "data_path": data.path or "",
        "store_url": data.store or "",
        "symbol": data.symbol or "",
        "timeframe": data.timeframe,
        "start": data.start or "",
        "end": data.end or "",
        "lookback": data.lookback or "",
        "resample": data.resample or "",
    }


def window_bars(bars: pd.DataFrame, start: Any, end: Any, *, warmup_bars: int = 0) -> pd.DataFrame:
    """Return the bars from ``warmup_bars`` before ``start`` through ``end`` (inclusive).

    This is exactly what a fold uses (and what its data fingerprint covers). Fewer warm-up
    bars are returned when the data starts later.
    """
    t0, t1 = _utc(start, "start"), _utc(end, "end")
    if t0 is None or t1 is None:
        raise ConfigError("window_bars needs both start and end")
    first = int(bars.index.searchsorted(t0, side="left"))
    stop = int(bars.index.searchsorted(t1, side="right"))
    return bars.iloc[max(0, first - int(warmup_bars)) : stop]
