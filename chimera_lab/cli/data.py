"""``chimera data``: import, inspect, export and check bars in the store; fetch from Bitget.

Every command takes ``--store URL`` (default ``CHIMERA_STORE__URL``, else
``data/chimera.duckdb``) and ``--json`` (one JSON document on stdout, nothing else; times are
ISO-8601 UTC such as ``2024-07-26T14:15:00Z``). Bad input prints one line ``error: ...`` on
stderr and exits with status 2.
"""

from __future__ import annotations

import os
import uuid
import warnings
from pathlib import Path
from typing import Any

import click
import pandas as pd

from chimera_lab.cli import LazyGroup
from chimera_lab.cli._common import emit_json, get_settings, json_option, parse_time, store_option
from chimera_lab.cli._common import to_jsonable as _jsonable
from chimera_lab.errors import ConfigError, StoreError

__all__ = ["data", "delete", "export", "import_bars", "info", "quality"]

EXPORT_FORMATS = {".parquet": "parquet", ".csv": "csv", ".csv.gz": "csv.gz", ".feather": "feather"}


@click.group(
    cls=LazyGroup,
    lazy={
        "fetch": (
            "chimera_lab.cli.exchange:fetch",
            "Page Bitget history candles into the store.",
        )
    },
)
def data() -> None:
    """Import, inspect, export and fetch bars."""


def _open_store(store_url: str | None, *, create: bool = False) -> Any:
    # The store named by --store (or the settings). Only ``import`` may create it: for the
    # other commands a missing file is a mistyped path, not an empty store.
    from chimera_lab.data import Store

    settings = get_settings()
    store = Store(store_url or None, settings=settings)
    exists = store.exists()  # refuses a directory before any work, import included
    if not create and not exists:
        raise StoreError(
            f"no store at {store.url} (no such file); check --store, or create it with "
            f"`chimera data import FILE --symbol SYMBOL --timeframe 1m --store {store.url}`"
        )
    return store


def _window(start: str | None, end: str | None) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    # --start/--end as UTC Timestamps; refuse a window that ends before it starts.
    t0, t1 = parse_time(start, name="start"), parse_time(end, name="end")
    if t0 is not None and t1 is not None and t0 > t1:
        raise ConfigError(f"--start {_iso(t0)} is after --end {_iso(t1)}; swap them")
    return t0, t1


def _timeframe(timeframe: str) -> str:
    # The canonical name ("1day" -> "1d"), as the store keeps and `info` shows it.
    from chimera_lab.data.store import canonical_timeframe

    return canonical_timeframe(timeframe)[0]


def _iso(value: pd.Timestamp | None) -> str | None:
    out = _jsonable(value)
    return out if isinstance(out, str) else None


def _warn_lines(caught: list[warnings.WarningMessage]) -> None:
    for item in caught:
        click.echo(f"warning: {item.message}", err=True)


@data.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--symbol", required=True, help="Instrument to store the bars under, e.g. BTCUSDT.")
@click.option(
    "--timeframe",
    default=None,
    help="Bar timeframe, e.g. 1m (default: inferred from the bar spacing).",
)
@store_option
@json_option
def import_bars(
    file: Path, symbol: str, timeframe: str | None, store_url: str | None, as_json: bool
) -> None:
    """Import a bar file (CSV, CSV.gz, Parquet, Feather) into the store.

    Prints rows read, rows new, the time range and the gaps of the imported bars. Importing
    the same file again adds nothing; overlapping files merge (the newer import wins).
    """
    from chimera_lab.data import find_gaps, load_ohlcv
    from chimera_lab.timeframes import infer_timeframe

    if timeframe is not None:
        timeframe = _timeframe(timeframe)  # before reading a big file
    df = load_ohlcv(file, symbol=symbol)
    index = pd.DatetimeIndex(df.index)
    if timeframe is None:
        timeframe = infer_timeframe(index) if len(df) >= 2 else None
        if timeframe is None:
            raise ConfigError(
                f"cannot infer the timeframe of {file} from its bar spacing; pass --timeframe"
            )
        timeframe = _timeframe(timeframe)
    store = _open_store(store_url, create=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows_new = store.write_bars(symbol, timeframe, df)
    gaps = find_gaps(index, timeframe)
    result = {
        "symbol": symbol.strip(),
        "timeframe": timeframe,
        "rows_read": int(df.attrs.get("rows_read", len(df))),
        "rows_new": int(rows_new),
        "start": _iso(index[0]) if len(df) else None,
        "end": _iso(index[-1]) if len(df) else None,
        "gaps": int(len(gaps)),
        "missing_bars": int(gaps["missing_bars"].sum()),
        "store": store.url,
    }
    _warn_lines(caught)
    if as_json:
        emit_json(result)
        return
    click.echo(f"imported {result['symbol']} {timeframe} from {file} into {store.url}")
    click.echo(f"  rows read   {result['rows_read']:,}")
    click.echo(f"  rows new    {result['rows_new']:,}")
    click.echo(f"  range       {result['start']} .. {result['end']}")
    click.echo(f"  gaps        {result['gaps']:,} ({result['missing_bars']:,} missing bars)")


@data.command("info")
@click.option("--symbol", default=None, help="Only this symbol.")
@store_option
@json_option
def info(symbol: str | None, store_url: str | None, as_json: bool) -> None:
    """Show what the store holds (coverage and gaps per symbol and timeframe)."""
    store = _open_store(store_url)
    cov = store.coverage(symbol)
    records = [
        {
            "symbol": row.symbol,
            "timeframe": row.timeframe,
            "first": _iso(row.first),
            "last": _iso(row.last),
            "rows": int(row.rows),
            "gaps": int(row.gaps),
            "missing_bars": int(row.missing_bars),
        }
        for row in cov.itertuples(index=False)
    ]
    if as_json:
        emit_json(records)
        return
    if not records:
        click.echo(
            f"store {store.url} is empty; import bars with "
            "`chimera data import FILE --symbol BTCUSDT --timeframe 1m`"
        )
        return
    header = ("symbol", "timeframe", "first", "last", "rows", "gaps", "missing")
    table = [
        (
            r["symbol"],
            r["timeframe"],
            str(r["first"]),
            str(r["last"]),
            f"{r['rows']:,}",
            f"{r['gaps']:,}",
            f"{r['missing_bars']:,}",
        )
        for r in records
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *table, strict=True)]
    right = {4, 5, 6}
    click.echo(f"store {store.url}")
    for line in (header, *table):
        cells = [
            str(x).rjust(w) if i in right else str(x).ljust(w)
            for i, (x, w) in enumerate(zip(line, widths, strict=True))
        ]
        click.echo("  ".join(cells).rstrip())


def _export_format(path: Path) -> str:
    name = path.name.lower()
    for suffix in sorted(EXPORT_FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return EXPORT_FORMATS[suffix]
    raise click.BadParameter(
        f"cannot tell the format of {path.name!r} from its extension; use one of "
        f"{', '.join(EXPORT_FORMATS)}",
        param_hint="--out",
    )


def _write_frame(df: pd.DataFrame, path: Path, fmt: str) -> None:
    # Write next to the target and rename, so a failed export never leaves half a file. The
    # temporary name is short (any name valid for the target must work) and an error names
    # the requested path, not the temporary file.
    tmp = path.with_name(f".chimera-export-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "parquet":
            df.to_parquet(tmp)
        elif fmt == "feather":
            df.reset_index().to_feather(tmp)
        else:
            df.to_csv(tmp, compression="gzip" if fmt == "csv.gz" else None)
        tmp.replace(path)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(
            f"cannot write --out {path}: {reason}; choose a writable location"
        ) from exc
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # nothing was created there


@data.command("export")
@click.option("--symbol", required=True, help="Instrument, e.g. BTCUSDT.")
@click.option("--timeframe", default="1m", show_default=True, help="Bar timeframe.")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output file: .parquet, .csv, .csv.gz or .feather (the extension decides).",
)
@click.option("--start", default=None, help="First bar (ISO date/time, UTC, inclusive).")
@click.option("--end", default=None, help="Last bar (ISO date/time, UTC, inclusive).")
@store_option
@json_option
def export(
    symbol: str,
    timeframe: str,
    out: Path,
    start: str | None,
    end: str | None,
    store_url: str | None,
    as_json: bool,
) -> None:
    """Export stored bars to Parquet, CSV, CSV.gz or Feather.

    The files read back unchanged with `chimera data import` and load_ohlcv.
    """
    fmt = _export_format(out)
    timeframe = _timeframe(timeframe)
    t0, t1 = _window(start, end)
    store = _open_store(store_url)
    df = store.read_bars(symbol, timeframe, start=t0, end=t1)
    if df.empty:
        last = store.last_timestamp(symbol, timeframe)
        raise ConfigError(
            f"no {symbol} {timeframe} bars between {start or '-'} and {end or '-'} in "
            f"{store.url} (its last bar is {_iso(last)}); widen --start/--end"
        )
    _write_frame(df, out, fmt)
    result = {
        "path": str(out),
        "rows": len(df),
        "start": _iso(df.index[0]),
        "end": _iso(df.index[-1]),
    }
    if as_json:
        emit_json(result)
        return
    click.echo(
        f"exported {len(df):,} {symbol} {timeframe} bars ({result['start']} .. {result['end']}) "
        f"to {out}"
    )


@data.command("quality")
@click.argument(
    "file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--symbol", default=None, help="Stored symbol (or the rows of FILE to check).")
@click.option("--timeframe", default=None, help="Bar timeframe (default: 1m for the store).")
@click.option("--start", default=None, help="First bar (ISO date/time, UTC, inclusive).")
@click.option("--end", default=None, help="Last bar (ISO date/time, UTC, inclusive).")
@store_option
@json_option
def quality(
    file: Path | None,
    symbol: str | None,
    timeframe: str | None,
    start: str | None,
    end: str | None,
    store_url: str | None,
    as_json: bool,
) -> None:
    """Data-quality report of a bar file or of stored bars.

    Gaps, duplicates, off-grid bars, outliers and coverage (see quality_report).
    """
    from chimera_lab.data import load_ohlcv, quality_report

    t0, t1 = _window(start, end)
    if timeframe is not None:
        timeframe = _timeframe(timeframe)
    if file is not None:
        df = load_ohlcv(file, symbol=symbol)
        if t0 is not None or t1 is not None:
            attrs = dict(df.attrs)
            df = df.loc[t0:t1]
            df.attrs.update(attrs)
    elif symbol is not None:
        timeframe = timeframe or "1m"
        store = _open_store(store_url)
        df = store.read_bars(symbol, timeframe, start=t0, end=t1)
        df.attrs["source"] = f"{store.url} [{symbol.strip()} {timeframe}]"
    else:
        raise click.UsageError("give a FILE or --symbol SYMBOL [--timeframe T] (from the store)")
    report = quality_report(df, timeframe=timeframe)
    if as_json:
        emit_json(report.to_dict())
        return
    click.echo(str(report))


@data.command("delete")
@click.option("--symbol", required=True, help="Instrument, e.g. BTCUSDT.")
@click.option("--timeframe", required=True, help="Bar timeframe, e.g. 1m.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@store_option
@json_option
def delete(symbol: str, timeframe: str, yes: bool, store_url: str | None, as_json: bool) -> None:
    """Delete one stored series with its rollups and gap records."""
    timeframe = _timeframe(timeframe)
    store = _open_store(store_url)
    if not yes:
        click.confirm(f"delete every {symbol} {timeframe} bar from {store.url}?", abort=True)
    rows = store.delete(symbol, timeframe)
    if as_json:
        emit_json({"symbol": symbol.strip(), "timeframe": timeframe, "rows_deleted": rows})
        return
    click.echo(f"deleted {rows:,} {symbol} {timeframe} bars from {store.url}")
