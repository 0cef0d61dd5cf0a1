"""Load OHLCV bars from the files real sources produce, detected automatically.

:func:`load_ohlcv` reads CSV (plain or gzip, detected from the bytes, not the name), Parquet and
Feather (freqtrade's format) and returns the OHLCV frame convention (:mod:`chimera_lab.frames`).

What it recognises
------------------
- **Layout**: a header row, optionally preceded by ``#`` comment lines (gapless-crypto-data) or a
  banner line (CryptoDataDownload); or no header at all, as in Binance kline archives and Bitget
  candle dumps, whose first six columns are ``open_time, open, high, low, close, volume``.
  Delimiters ``,`` ``;`` tab ``|``.
- **Column names**, case- and punctuation-insensitive: the time column (``open_time``,
  ``timestamp``, ``date``, ``datetime``, ``time``, ``ts``, ``unix`` ... — never ``close_time``);
  prices ``open``/``o``/``open_price`` ...; volume ``volume``/``vol``/``Volume BTC``/``volume_base``
  ... in the **base** asset (columns naming a quote currency, ``quote_asset_volume`` or
  ``taker_*`` are not taken for volume). Extra columns are ignored. A ``symbol``/``pair`` column
  selects rows by ``symbol``.
- **Times**: ISO-8601 or ``YYYY-mm-dd HH:MM:SS`` text with or without offset (naive means UTC),
  dates, ``YYYYmmdd`` integers, and Unix epochs in seconds, milliseconds, microseconds or
  nanoseconds (the unit is chosen from the magnitude). Files may be newest-first.

Validation (never silent)
-------------------------
Unparseable or missing timestamps, non-numeric or missing values, non-positive prices,
``low > min(open, close)``, ``high < max(open, close)``, negative volume and *conflicting* duplicate
timestamps each raise :class:`~chimera_lab.errors.DataError` naming the file, the first offending
row (1-based data row, and the physical line for text files) and the column, as named in the file.
Rows that are exact duplicates are dropped (counted in ``df.attrs["duplicates_dropped"]``).
Off-grid timestamps are kept as they are: :func:`chimera_lab.data.quality_report` counts them.

The CSV reader is Arrow's multi-threaded parser; parsing is vectorised end to end.
"""

from __future__ import annotations

import csv
import gzip
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from chimera_lab.errors import DataError
from chimera_lab.frames import OHLCV_COLUMNS, find_bar_problem

__all__ = ["load_ohlcv", "read_table"]

_SNIFF_BYTES = 1 << 16
_NULLS = ["", "NaN", "nan", "NAN", "null", "NULL", "None", "none", "N/A", "n/a", "NA", "-"]

_TIME_NAMES = (
    "open_time",
    "opentime",
    "open_timestamp",
    "timestamp",
    "time_open",
    "candle_begin_time",
    "date",
    "datetime",
    "date_time",
    "time",
    "ts",
    "t",
    "unix",
    "unix_timestamp",
    "timestamp_ms",
    "epoch",
    "start_time",
    "starttime",
)
# Tokens that make an `open_*`/`close_*` column something other than a price.
_NOT_PRICE = {"time", "date", "timestamp", "interest", "count", "volume", "vol", "trades", "id"}
_SYMBOL_NAMES = ("symbol", "pair", "ticker", "instrument", "instid", "market")
_QUOTE_TOKENS = {
    "quote",
    "taker",
    "maker",
    "trades",
    "number",
    "count",
    "usd",
    "usdt",
    "usdc",
    "busd",
    "fdusd",
    "tusd",
    "dai",
    "eur",
    "gbp",
    "jpy",
    "notional",
    "turnover",
    "amount",
    "value",
    "to",
    "buy",
    "sell",
}


@dataclass(frozen=True)
class _Columns:
    time: str
    prices: dict[str, str]  # role -> source column name
    symbol: str | None


# ----------------------------------------------------------------------------------------------
# reading raw tables


def _sniff_kind(path: Path) -> str:
    with path.open("rb") as fh:
        head = fh.read(8)
    if head.startswith(b"\x1f\x8b"):
        return "csv.gz"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"ARROW1") or head.startswith(b"FEA1"):
        return "feather"
    if head.startswith(b"PK\x03\x04"):
        raise DataError(
            "this is a zip archive; unzip it and load the CSV inside (Binance archives are zips)",
            file=path,
        )
    return "csv"


def _head_text(path: Path, compressed: bool) -> str:
    opener = gzip.open if compressed else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read(_SNIFF_BYTES)
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read the file: {exc}", file=path) from exc
    text = raw.decode("utf-8-sig", errors="replace")
    if len(raw) == _SNIFF_BYTES and "\n" in text:
        text = text[: text.rindex("\n")]  # drop a partial last line
    return text


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class _CsvLayout:
    skip_rows: int
    delimiter: str
    header: bool
    width: int  # fields per row


def _fields(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter))


def _csv_layout(path: Path, text: str) -> _CsvLayout:
    # What may precede the table: blank lines, `#` comment lines (gapless-crypto-data) and at
    # most one banner line without any delimiter (CryptoDataDownload). Anything else that does
    # not fit the table is an error naming its line, never silently skipped.
    lines = text.splitlines()
    content = [
        (i, ln) for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#")
    ]
    if not content:
        raise DataError("the file is empty", file=path)

    def best_delimiter(line: str) -> tuple[str, int]:
        counts = {d: len(_fields(line, d)) for d in (",", ";", "\t", "|")}
        delimiter = max(counts, key=lambda d: counts[d])
        return delimiter, counts[delimiter]

    start, first = content[0]
    delimiter, width = best_delimiter(first)
    if width < 2 and len(content) > 1:  # a banner line: skip exactly one
        start, first = content[1]
        delimiter, width = best_delimiter(first)
    if width < 2:
        raise DataError(
            f"line {start + 1} has no delimiter among , ; tab |; not a table of bars", file=path
        )
    for i, line in content:
        if i <= start:
            continue
        n = len(_fields(line, delimiter))
        if n != width:
            raise DataError(
                f"line {i + 1} has {n} fields where line {start + 1} has {width}; "
                "fix or drop the malformed line",
                file=path,
                line=i + 1,
            )
    header = not all(_is_number(f.strip()) for f in _fields(first, delimiter) if f.strip())
    return _CsvLayout(skip_rows=start, delimiter=delimiter, header=header, width=width)


def _malformed_line(path: Path, compressed: bool, layout: _CsvLayout) -> DataError | None:
    # Locate the first line whose field count differs from the table's (Arrow's message does
    # not say which line); only run on the error path.
    opener = gzip.open if compressed else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter=layout.delimiter)
        width: int | None = None
        for number, row in enumerate(reader, start=1):
            if number <= layout.skip_rows or not row or row[0].lstrip().startswith("#"):
                continue
            if width is None:
                width = len(row)
            elif len(row) != width:
                return DataError(
                    f"line {reader.line_num} has {len(row)} fields where the table has {width}; "
                    "fix or drop the malformed line",
                    file=path,
                    line=reader.line_num,
                )
    return None


def _read_csv(path: Path, compressed: bool) -> tuple[pa.Table, int]:
    layout = _csv_layout(path, _head_text(path, compressed))
    read_options = pacsv.ReadOptions(skip_rows=layout.skip_rows, block_size=1 << 22)
    if not layout.header:
        read_options = pacsv.ReadOptions(
            skip_rows=layout.skip_rows,
            column_names=[f"column_{i}" for i in range(layout.width)],
            block_size=1 << 22,
        )
    convert = pacsv.ConvertOptions(null_values=_NULLS, strings_can_be_null=True)
    parse = pacsv.ParseOptions(delimiter=layout.delimiter)
    try:
        stream = pa.input_stream(str(path), compression="gzip" if compressed else None)
        table = pacsv.read_csv(
            stream, read_options=read_options, parse_options=parse, convert_options=convert
        )
    except (pa.ArrowInvalid, OSError, EOFError) as exc:
        located = _malformed_line(path, compressed, layout) if "columns" in str(exc) else None
        if located is not None:
            raise located from exc
        raise DataError(f"cannot parse as CSV: {_arrow_message(exc)}", file=path) from exc
    # Physical line of data row 1 (1-based) is skip_rows + header + 1.
    line_offset = layout.skip_rows + (1 if layout.header else 0)
    return table, line_offset


def _arrow_message(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:400]


def read_table(path: str | Path) -> tuple[pa.Table, int | None]:
    """Read a bar file into an Arrow table without interpreting it.

    Returns the table and, for text files, the offset that maps a 1-based data row to its
    physical line (``line = row + offset``); ``None`` for binary formats.
    """
    path = Path(path)
    if not path.exists():
        raise DataError("no such file", file=path)
    if path.is_dir():
        raise DataError("is a directory, expected a file of bars", file=path)
    kind = _sniff_kind(path)
    if kind in ("csv", "csv.gz"):
        return _read_csv(path, compressed=kind == "csv.gz")
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path), None
        import pyarrow.feather as feather

        return feather.read_table(path), None
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read {kind}: {_arrow_message(exc)}", file=path) from exc


# ----------------------------------------------------------------------------------------------
# column recognition


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")


def _tokens(name: str) -> set[str]:
    return set(_norm(name).split("_"))


def _find_columns(
    names: list[str], path: Path, symbol: str | None, volume_column: str | None = None
) -> _Columns:
    norm = {_norm(n): n for n in reversed(names)}  # first occurrence wins
    if all(n.startswith("column_") for n in names) and len(names) >= 6:
        return _Columns(
            time=names[0],
            prices=dict(zip(OHLCV_COLUMNS, names[1:6], strict=True)),
            symbol=None,
        )

    time_col = next((norm[c] for c in _TIME_NAMES if c in norm), None)
    if time_col is None:
        time_col = next(
            (
                n
                for n in names
                if ({"time", "date", "timestamp"} & _tokens(n)) and "close" not in _tokens(n)
            ),
            None,
        )
    if time_col is None:
        raise DataError(
            f"no time column found among {names}; name it timestamp, date, time or open_time",
            file=path,
        )

    prices: dict[str, str] = {}
    for role in ("open", "high", "low", "close"):
        exact = (role, role[0], f"{role}_price", f"price_{role}", f"{role}_px")
        found = next((norm[c] for c in exact if c in norm), None)
        if found is None:
            found = next(
                (
                    n
                    for n in names
                    if _norm(n).startswith(role + "_") and not (_NOT_PRICE & _tokens(n))
                ),
                None,
            )
        if found is None:
            hint = ""
            if "funding_rate" in norm:
                hint = " (this is a funding-rate file: use chimera_lab.data.load_funding)"
            raise DataError(
                f"not a file of OHLCV bars: no {role!r} column among {names}; expected a column "
                f"named {role} (any case; suffixes like {role}_price are accepted){hint}",
                file=path,
            )
        prices[role] = found
    prices["volume"] = _find_volume(names, norm, path, symbol, volume_column)

    symbol_col = next((norm[c] for c in _SYMBOL_NAMES if c in norm), None)
    return _Columns(time=time_col, prices=prices, symbol=symbol_col)


_BASE_VOLUME_NAMES = ("volume", "base_volume", "volume_base", "basevolume", "base_asset_volume")
# Names whose meaning differs between exchanges (HTX: amount = base, vol = quote; Gate.io:
# a = base, v = quote): usable alone, ambiguous next to another volume-like column.
_AMBIGUOUS_VOLUME_NAMES = ("vol", "v", "amount", "a")


def _find_volume(
    names: list[str], norm: dict[str, str], path: Path, symbol: str | None, chosen: str | None
) -> str:
    if chosen is not None:
        if chosen not in names:
            raise DataError(
                f"volume_column={chosen!r} is not a column; columns are {names}", file=path
            )
        return chosen
    for exact in _BASE_VOLUME_NAMES:
        if exact in norm:
            return norm[exact]
    named = [
        n for n in names if _tokens(n) & {"volume", "vol"} and not (_tokens(n) & _QUOTE_TOKENS)
    ]
    if symbol and named:
        base = re.sub(r"[^a-z]", "", symbol.lower())
        for n in named:
            extra = _tokens(n) - {"volume", "vol"}
            if any(base.startswith(tok) for tok in extra if tok):
                return n
    ambiguous = [norm[a] for a in _AMBIGUOUS_VOLUME_NAMES if a in norm and norm[a] not in named]
    candidates = named + ambiguous
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        raise DataError(
            f"cannot tell which of {candidates} is the base-asset volume; pass "
            "volume_column=... (or symbol=... when the columns name their currency)",
            file=path,
        )
    raise DataError(
        f"no base-asset volume column among {names}; expected volume (quote-currency "
        "volumes such as quote_asset_volume or 'Volume USDT' are not used)",
        file=path,
    )


def _symbol_key(value: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", str(value).upper())


# ----------------------------------------------------------------------------------------------
# conversion


def _raise_at(
    path: Path, pos: int, column: str, message: str, line_offset: int | None
) -> DataError:
    line = pos + 1 + line_offset if line_offset is not None else None
    return DataError(message, file=path, row=pos + 1, column=column, line=line)


def _to_float(col: pa.ChunkedArray, name: str, path: Path, line_offset: int | None) -> np.ndarray:
    numeric = pa.types.is_floating(col.type) or pa.types.is_integer(col.type)
    if numeric or pa.types.is_decimal(col.type):
        return np.asarray(col.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        raw = col.to_pandas()
        values: np.ndarray = pd.to_numeric(raw, errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
        bad = np.isnan(values) & raw.notna().to_numpy()
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise _raise_at(
                path,
                pos,
                name,
                f"not a number: {raw.iloc[pos]!r}; fix or drop the row at the source",
                line_offset,
            )
        return values
    raise DataError(f"column has type {col.type}, expected numbers", file=path, column=name)


_EPOCH_LIMITS = ((1e11, "s"), (1e14, "ms"), (1e17, "us"))
_TIME_FORMATS = ("ISO8601", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d")
_DAY_FIRST = re.compile(r"^\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}")


def _first_unparsed(values: pd.Series) -> int:
    # Position of the first value no accepted format parses.
    ok = np.zeros(len(values), dtype=bool)
    for fmt in _TIME_FORMATS:
        parsed = pd.to_datetime(values, utc=True, format=fmt, errors="coerce")
        ok |= parsed.notna().to_numpy()
    return int(np.flatnonzero(~ok)[0]) if (~ok).any() else 0


def _epoch_to_ns(values: np.ndarray, name: str, path: Path) -> np.ndarray:
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    if finite.size == 0:
        raise DataError("the time column holds no values", file=path, column=name)
    lo, hi = float(finite.min()), float(finite.max())
    if values.dtype.kind in "iu" and 19_000_101 <= lo and hi <= 21_001_231:
        # YYYYmmdd integers (some exchange exports): parse as dates.
        parsed = pd.to_datetime(values.astype(str), format="%Y%m%d", errors="coerce", utc=True)
        if not parsed.isna().any():
            return np.asarray(parsed.as_unit("ns").asi8)
    magnitude = max(abs(lo), abs(hi))
    unit = next((u for limit, u in _EPOCH_LIMITS if magnitude < limit), "ns")
    scale = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[unit]
    if magnitude * scale >= 2**63:
        raise DataError(
            f"epoch value {hi:.0f} is outside 1980..2100 in any unit (s, ms, us, ns)",
            file=path,
            column=name,
        )
    if values.dtype.kind == "f":
        # Split whole and fractional units: values * scale in float64 would round at ~1e-7
        # of a millisecond epoch (2**53 < 1.7e18 ns).
        whole = np.floor(values)
        frac = np.round((values - whole) * scale)
        return np.asarray(whole, dtype=np.int64) * scale + np.asarray(frac, dtype=np.int64)
    return np.asarray(values, dtype=np.int64) * scale


def _to_ns(col: pa.ChunkedArray, name: str, path: Path, line_offset: int | None) -> np.ndarray:
    nulls = col.is_null().to_numpy(zero_copy_only=False)
    if nulls.any():
        pos = int(np.flatnonzero(nulls)[0])
        raise _raise_at(path, pos, name, "missing timestamp", line_offset)
    typ = col.type
    if pa.types.is_timestamp(typ):
        tz = typ.tz
        try:
            ns = col.cast(pa.timestamp("ns", tz=tz), safe=True)
        except pa.ArrowInvalid as exc:
            raise DataError(
                f"timestamps out of range: {_arrow_message(exc)}", file=path, column=name
            ) from exc
        return np.asarray(ns.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    if pa.types.is_date(typ):
        ns = col.cast(pa.timestamp("ns")).cast(pa.int64())
        return np.asarray(ns.to_numpy(zero_copy_only=False), dtype=np.int64)
    if pa.types.is_integer(typ) or pa.types.is_floating(typ):
        return _epoch_to_ns(np.asarray(col.to_numpy(zero_copy_only=False)), name, path)
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        raw = col.to_pandas()
        stripped = raw.str.strip()
        if stripped.str.fullmatch(r"-?\d+(\.\d+)?").all():
            return _epoch_to_ns(pd.to_numeric(stripped).to_numpy(), name, path)
        parsed: pd.Series | None = None
        # ISO-8601 and year-first slashed forms only: day/month orders (01/02/2024) are
        # ambiguous, and parsing each value on its own would scramble a file silently.
        for fmt in _TIME_FORMATS:
            try:
                parsed = pd.to_datetime(stripped, utc=True, format=fmt)
                break
            except (ValueError, TypeError, OverflowError):
                continue
        if parsed is None or parsed.isna().any():
            pos = _first_unparsed(stripped)
            value = raw.iloc[pos]
            hint = (
                "day/month order is ambiguous; convert the column to ISO-8601 (YYYY-mm-dd)"
                if _DAY_FIRST.match(str(value).strip())
                else "expected ISO-8601 (e.g. 2024-07-26 14:15:00+00:00) or a Unix epoch"
            )
            raise _raise_at(
                path, pos, name, f"cannot parse timestamp {value!r}; {hint}", line_offset
            )
        return np.asarray(pd.DatetimeIndex(parsed).as_unit("ns").asi8)
    raise DataError(f"time column has type {typ}, expected times", file=path, column=name)


_PLAUSIBLE = (
    pd.Timestamp("1980-01-01", tz="UTC").value,
    pd.Timestamp("2100-01-01", tz="UTC").value,
)


def load_ohlcv(
    path: str | Path, *, symbol: str | None = None, volume_column: str | None = None
) -> pd.DataFrame:
    r"""Load OHLCV bars from a CSV, CSV.gz, Parquet or Feather file of any common layout.

    Parameters
    ----------
    path : str or Path
        The file. Its format is detected from its bytes.
    symbol : str, optional
        When the file has a symbol/pair column, keep the rows of this symbol (``BTC/USDT``,
        ``btc-usdt`` and ``BTCUSDT`` match). Also used to prefer ``Volume BTC`` over other
        volume columns. Required when the file holds several symbols.
    volume_column : str, optional
        The column holding base-asset volume, as named in the file, when the loader cannot
        tell (e.g. HTX's ``amount`` next to ``vol``).

    Returns
    -------
    DataFrame
        The OHLCV convention: tz-aware UTC ``DatetimeIndex`` named ``timestamp`` (bar open
        time, ns), float64 ``open, high, low, close, volume``, sorted ascending, unique.
        ``attrs`` records ``source``, ``rows_read`` and ``duplicates_dropped``.

    Raises
    ------
    DataError
        For a missing or unreadable file, an unrecognised layout, or any invalid value; the
        message names the file, the first offending row and the column.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "bars.csv"
    >>> _ = p.write_text("Open time,Open,High,Low,Close,Volume BTC\n"
    ...                  "1700000060000,2,3,1,2.5,7\n1700000000000,1,2,1,2,5\n")
    >>> df = load_ohlcv(p)
    >>> df.index[0], df["volume"].tolist()
    (Timestamp('2023-11-14 22:13:20+0000', tz='UTC'), [5.0, 7.0])
    """
    path = Path(path)
    table, line_offset = read_table(path)
    names = [str(n) for n in table.column_names]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(
            f"column name(s) {repeated} appear more than once; rename them so each is unique",
            file=path,
        )
    cols = _find_columns(names, path, symbol, volume_column)
    n_read = table.num_rows
    if n_read == 0:
        raise DataError("the file has a header but no rows of bars", file=path)

    positions = np.arange(n_read)
    if cols.symbol is not None:
        keys = pd.Series(table.column(cols.symbol).to_pandas()).map(_symbol_key)
        present = sorted(set(keys.dropna()))
        if symbol is None and len(present) > 1:
            raise DataError(
                f"the file holds several symbols {present[:10]}; pass symbol=...",
                file=path,
                column=cols.symbol,
            )
        if symbol is not None:
            mask = (keys == _symbol_key(symbol)).to_numpy()
            if not mask.any():
                raise DataError(
                    f"symbol {symbol!r} is not in the file; it holds {present[:10]}",
                    file=path,
                    column=cols.symbol,
                )
            positions = np.flatnonzero(mask)
            table = table.take(pa.array(positions))

    ts = _to_ns(table.column(cols.time), cols.time, path, line_offset)
    values = {
        role: _to_float(table.column(src), src, path, line_offset)
        for role, src in cols.prices.items()
    }

    def at(pos: int, column: str, message: str) -> DataError:
        return _raise_at(path, int(positions[pos]), column, message, line_offset)

    out_of_range = (ts < _PLAUSIBLE[0]) | (ts > _PLAUSIBLE[1])
    if out_of_range.any():
        pos = int(np.flatnonzero(out_of_range)[0])
        when = pd.Timestamp(int(ts[pos]), tz="UTC")
        raise at(
            pos,
            cols.time,
            f"timestamp {when} is outside 1980..2100; check the time column and its epoch unit",
        )

    problem = find_bar_problem(values)
    if problem is not None:
        raise at(problem.position, cols.prices[problem.column], problem.message)

    order: np.ndarray | None = None
    steps = np.diff(ts)
    if (steps <= 0).any():
        order = np.argsort(ts, kind="stable")
        ts = ts[order]
        values = {k: v[order] for k, v in values.items()}
    dup = np.flatnonzero(np.diff(ts) == 0) + 1  # later copies of a timestamp
    dropped = 0
    if dup.size:
        differs = np.zeros(dup.size, dtype=bool)
        for role in OHLCV_COLUMNS:
            differs |= values[role][dup] != values[role][dup - 1]
        if differs.any():
            k = int(dup[np.flatnonzero(differs)[0]])
            orig = order if order is not None else np.arange(ts.size)
            first, second = sorted((int(orig[k - 1]), int(orig[k])))
            column = next(role for role in OHLCV_COLUMNS if values[role][k] != values[role][k - 1])
            raise at(
                second,
                cols.prices[column],
                f"conflicting duplicate bar for {pd.Timestamp(int(ts[k]), tz='UTC')}: "
                f"data row {int(positions[first]) + 1} has a different {column}; "
                "keep one of the two rows",
            )
        keep = np.ones(ts.size, dtype=bool)
        keep[dup] = False
        ts = ts[keep]
        values = {k: v[keep] for k, v in values.items()}
        dropped = int(dup.size)

    index = pd.DatetimeIndex(pd.to_datetime(ts, unit="ns", utc=True), name="timestamp")
    df = pd.DataFrame({role: values[role] for role in OHLCV_COLUMNS}, index=index)
    df.attrs.update(
        {"source": str(path), "rows_read": int(positions.size), "duplicates_dropped": dropped}
    )
    return df
