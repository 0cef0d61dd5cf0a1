"""load_ohlcv: every real-world layout, every validation error, and property tests.

Fixtures are tiny files written in the exact layouts of real sources; their first rows are
copied from the real files in ../shared/data (README there) or from the sources' documented
formats (Binance kline archive: 12 headerless columns; Bitget candles: bitget-api.md §3.2;
CryptoDataDownload: banner line, newest first).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chimera_lab.data import load_ohlcv
from chimera_lab.data.synthetic import make_ohlcv
from chimera_lab.errors import DataError

UTC = "UTC"


def _write(path: Path, text: str, *, gz: bool = False) -> Path:
    data = text.encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


FREQTRADE = """date,open,high,low,close,volume
2024-07-26 14:15:00+00:00,67745.75,67784.0,67726.0,67768.0,26.98425
2024-07-26 14:16:00+00:00,67768.0,67810.0,67730.0,67740.33,26.43686
2024-07-26 14:17:00+00:00,67740.33,67760.0,67700.0,67712.0,10.5
"""


def test_freqtrade_csv_gz_with_offsets(tmp_path: Path) -> None:
    df = load_ohlcv(_write(tmp_path / "a.csv.gz", FREQTRADE, gz=True))
    assert list(df.columns) == ["open", "high", "low", "close", "volume"]
    assert df.index.name == "timestamp"
    assert str(df.index.tz) == UTC and df.index.unit == "ns"
    assert df.index[0] == pd.Timestamp("2024-07-26 14:15", tz=UTC)
    assert df["close"].tolist() == [67768.0, 67740.33, 67712.0]
    assert all(df[c].dtype == np.float64 for c in df.columns)


def test_gzip_is_detected_from_bytes_not_name(tmp_path: Path) -> None:
    df = load_ohlcv(_write(tmp_path / "misnamed.csv", FREQTRADE, gz=True))
    assert len(df) == 3


@pytest.mark.parametrize(
    ("scale", "unit"), [(1, "s"), (1_000, "ms"), (1_000_000, "us"), (1_000_000_000, "ns")]
)
def test_headerless_binance_kline_archive_any_epoch_unit(
    tmp_path: Path, scale: int, unit: str
) -> None:
    # data.binance.vision spot klines: 12 columns, no header (microseconds since 2025).
    t0 = 1_722_003_300
    rows = [
        f"{(t0 + 60 * i) * scale},{100 + i},{101 + i},{99 + i},{100.5 + i},{5 + i},"
        f"{(t0 + 60 * i + 59) * scale},{500 + i},{12},{2.5},{250.0},0"
        for i in range(3)
    ]
    df = load_ohlcv(_write(tmp_path / f"k_{unit}.csv", "\n".join(rows) + "\n"))
    assert df.index[0] == pd.Timestamp(t0, unit="s", tz=UTC)
    assert df["volume"].tolist() == [5.0, 6.0, 7.0]


def test_bitget_candle_dump_seven_columns(tmp_path: Path) -> None:
    # bitget-api.md §3.2 futures row: [ts, o, h, l, c, baseVolume, quoteVolume]
    text = (
        "1695835800000,26210.5,26210.5,26194.5,26194.5,26.26,687897.63\n"
        "1695835860000,26194.5,26200.0,26190.0,26199.0,3.1,81216.9\n"
    )
    df = load_ohlcv(_write(tmp_path / "bitget.csv", text))
    assert df.index[0] == pd.Timestamp(1695835800000, unit="ms", tz=UTC)
    assert df["volume"].tolist() == [26.26, 3.1]


def test_gapless_crypto_data_comments_and_extra_columns(tmp_path: Path) -> None:
    header = "\n".join(f"# comment line {i}" for i in range(9)) + "\n#\n"
    body = (
        "date,open,high,low,close,volume,close_time,quote_asset_volume,number_of_trades,"
        "taker_buy_base_asset_volume,taker_buy_quote_asset_volume\n"
        "2017-08-17 04:00:00,4261.48,4313.62,4261.32,4308.83,47.181009,2017-08-17 04:59:59,"
        "202366.13839304,171,35.160503,150952.47794304\n"
        "2017-08-17 05:00:00,4308.83,4328.69,4291.37,4315.32,23.234916,2017-08-17 05:59:59,"
        "100304.82356749,102,21.448071,92608.27972836\n"
    )
    df = load_ohlcv(_write(tmp_path / "g.csv", header + body))
    assert df.index[0] == pd.Timestamp("2017-08-17 04:00", tz=UTC)
    assert df["volume"].tolist() == [47.181009, 23.234916]


def test_cryptodatadownload_banner_newest_first_volume_btc(tmp_path: Path) -> None:
    text = (
        "https://www.CryptoDataDownload.com\n"
        "Unix Timestamp,Date,Symbol,Open,High,Low,Close,Volume BTC,Volume USDT\n"
        "1571961600,2019-10-25 00:00:00,BTC/USDT,7400,7500,7300,7450,10.5,78000\n"
        "1571958000,2019-10-24 23:00:00,BTC/USDT,7380,7420,7350,7400,8.25,61000\n"
    )
    df = load_ohlcv(_write(tmp_path / "cdd.csv", text), symbol="BTCUSDT")
    assert df.index.is_monotonic_increasing
    assert df["volume"].tolist() == [8.25, 10.5]
    assert df.index[0] == pd.Timestamp("2019-10-24 23:00", tz=UTC)


def test_unusual_column_order_bitstamp_coinbase(tmp_path: Path) -> None:
    text = (
        "timestamp,open,close,volume,unix_timestamp,high,low\n"
        "2011-08-18 00:00:00,10.9,10.9,0.48990826,1313625600,10.9,10.9\n"
        "2011-08-19 00:00:00,10.9,11.69,1.9265781400000002,1313712000,11.85,10.9\n"
    )
    df = load_ohlcv(_write(tmp_path / "bs.csv", text))
    assert df["high"].tolist() == [10.9, 11.85]
    assert df.index[1] == pd.Timestamp("2011-08-19", tz=UTC)


@pytest.mark.parametrize(
    "stamp",
    [
        "2017-08-17",
        "2017-08-17 00:00:00",
        "2017-08-17T00:00:00Z",
        "2017-08-17T00:00:00.000Z",
        "2017-08-17 00:00:00.000",
        "2017-08-17T02:00:00+02:00",
        "20170817",
    ],
)
def test_time_formats(tmp_path: Path, stamp: str) -> None:
    text = f"Date,Open,High,Low,Close,Volume\n{stamp},1,2,0.5,1.5,3\n"
    df = load_ohlcv(_write(tmp_path / "t.csv", text))
    assert df.index[0] == pd.Timestamp("2017-08-17", tz=UTC)


def test_capitalised_and_suffixed_names_prefer_base_volume(tmp_path: Path) -> None:
    text = (
        "Open Time;Open Price;High Price;Low Price;Close Price;Volume_USDT;Volume\n"
        "2024-01-01 00:00;1;2;0.5;1.5;300;3\n"
    )
    df = load_ohlcv(_write(tmp_path / "semi.csv", text))
    assert df["volume"].tolist() == [3.0]
    assert df["open"].tolist() == [1.0]


def test_symbol_column_selects_rows(tmp_path: Path) -> None:
    text = (
        "timestamp,symbol,open,high,low,close,volume\n"
        "2024-01-01 00:00,BTC-USDT,1,2,0.5,1.5,3\n"
        "2024-01-01 00:00,ETH-USDT,10,20,5,15,30\n"
        "2024-01-01 00:01,BTC-USDT,1.5,2,1,1.8,4\n"
    )
    path = _write(tmp_path / "multi.csv", text)
    assert load_ohlcv(path, symbol="BTCUSDT")["close"].tolist() == [1.5, 1.8]
    assert load_ohlcv(path, symbol="eth/usdt")["close"].tolist() == [15.0]
    with pytest.raises(DataError, match="several symbols"):
        load_ohlcv(path)
    with pytest.raises(DataError, match="'SOLUSDT' is not in the file"):
        load_ohlcv(path, symbol="SOLUSDT")


def test_parquet_and_feather_round_trip(tmp_path: Path) -> None:
    df = make_ohlcv(50, seed=3)
    df.reset_index().rename(columns={"timestamp": "date"}).to_parquet(tmp_path / "x.parquet")
    df.reset_index().rename(columns={"timestamp": "date"}).to_feather(tmp_path / "x.feather")
    pd.testing.assert_frame_equal(load_ohlcv(tmp_path / "x.parquet"), df, check_freq=False)
    pd.testing.assert_frame_equal(load_ohlcv(tmp_path / "x.feather"), df, check_freq=False)


def test_identical_duplicates_are_dropped(tmp_path: Path) -> None:
    text = FREQTRADE + "2024-07-26 14:16:00+00:00,67768.0,67810.0,67730.0,67740.33,26.43686\n"
    df = load_ohlcv(_write(tmp_path / "d.csv", text))
    assert len(df) == 3 and df.attrs["duplicates_dropped"] == 1


# --- every validation error names file, row (and line) and column ------------------------------


@pytest.mark.parametrize(
    ("bad_row", "column", "message"),
    [
        ("2024-07-26 14:18:00+00:00,,67760.0,67700.0,67712.0,10.5", "open", "missing value"),
        ("2024-07-26 14:18:00+00:00,-1,67760.0,-2,67712.0,10.5", "open", "must be > 0"),
        ("2024-07-26 14:18:00+00:00,67740,67760.0,67720.0,67712.0,10.5", "low", "low is above"),
        ("2024-07-26 14:18:00+00:00,67740,67739.0,67700.0,67712.0,10.5", "high", "high is below"),
        ("2024-07-26 14:18:00+00:00,67740,67760.0,67700.0,67712.0,-1", "volume", ">= 0"),
        ("2024-07-26 14:18:00+00:00,abc,67760.0,67700.0,67712.0,1", "open", "not a number"),
        ("yesterday noon,67740,67760.0,67700.0,67712.0,1", "date", "cannot parse timestamp"),
        ("2024-07-26 14:16:00+00:00,67768.0,67810.0,67730.0,67741.0,26.4", "close", "conflicting"),
    ],
)
def test_validation_errors_name_file_row_line_column(
    tmp_path: Path, bad_row: str, column: str, message: str
) -> None:
    path = _write(tmp_path / "bad.csv", FREQTRADE + bad_row + "\n")
    with pytest.raises(DataError, match=message) as info:
        load_ohlcv(path)
    err = info.value
    assert err.file == str(path)
    assert err.row == 4 and err.line == 5  # 4th data row, 5th physical line (after the header)
    assert err.column == column
    assert f"row 4 (line 5), column {column!r}" in str(err)


def test_error_rows_refer_to_the_file_order_of_a_newest_first_file(tmp_path: Path) -> None:
    text = (
        "date,open,high,low,close,volume\n"
        "2024-01-01 00:02,1,2,0.5,1.5,3\n"
        "2024-01-01 00:01,1,2,0.5,1.5,3\n"
        "2024-01-01 00:00,1,0.9,0.5,1.5,3\n"
    )
    with pytest.raises(DataError) as info:
        load_ohlcv(_write(tmp_path / "n.csv", text))
    assert (info.value.row, info.value.column) == (3, "high")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("date,open,high,low,close,volume\n", "no rows"),
        ("when,open,high,low,close,volume\n1,1,1,1,1,1\n2,1,1,1,1,1\n", "no time column"),
        ("date,open,high,low,close\n2024-01-01,1,1,1,1\n2024-01-02,1,1,1,1\n", "volume"),
        ("timestamp,funding_rate\n2024-01-01,0.0001\n2024-01-02,0.0001\n", "load_funding"),
        ("date,open,high,low,close,volume\n99999999999999999999,1,1,1,1,1\n", "outside|range"),
    ],
)
def test_layout_errors(tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_ohlcv(_write(tmp_path / "x.csv", content))


def test_missing_file_and_zip(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_ohlcv(tmp_path / "nope.csv")
    (tmp_path / "a.zip").write_bytes(b"PK\x03\x04rest")
    with pytest.raises(DataError, match="unzip"):
        load_ohlcv(tmp_path / "a.zip")


# --- property tests ------------------------------------------------------------------------------


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(min_value=1, max_value=40))
    seed = draw(st.integers(min_value=0, max_value=2**31 - 1))
    tf = draw(st.sampled_from(["1m", "5m", "1h", "1d"]))
    return make_ohlcv(n, seed=seed, timeframe=tf, start="2021-03-04 05:00")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(df=frames(), fmt=st.sampled_from(["csv", "csv.gz", "parquet"]), newest_first=st.booleans())
def test_valid_frames_round_trip(
    tmp_path: Path, df: pd.DataFrame, fmt: str, newest_first: bool
) -> None:
    out = df.iloc[::-1] if newest_first else df
    path = tmp_path / f"rt.{fmt}"
    flat = out.reset_index()
    if fmt == "parquet":
        flat.to_parquet(path)
    else:
        flat.to_csv(path, index=False, compression="gzip" if fmt == "csv.gz" else None)
    # CSV keeps 17 significant digits (pandas' float format), so values round-trip exactly.
    pd.testing.assert_frame_equal(load_ohlcv(path), df, check_freq=False)


CORRUPTIONS = [
    "nan",
    "inf",
    "negative",
    "text",
    "low_high",
    "bad_time",
    "dup_conflict",
    "drop_cell",
    "extra_cell",
]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    df=frames().filter(lambda d: len(d) >= 2),
    kind=st.sampled_from(CORRUPTIONS),
    where=st.floats(min_value=0, max_value=0.999),
    column=st.sampled_from(["open", "high", "low", "close", "volume"]),
)
def test_corruptions_raise_data_error_never_bare_exceptions(
    tmp_path: Path, df: pd.DataFrame, kind: str, where: float, column: str
) -> None:
    flat = df.reset_index().astype({"timestamp": str}).astype(object)
    i = int(where * len(flat))
    if kind == "nan":
        flat.loc[i, column] = ""
    elif kind == "inf":
        flat.loc[i, column] = "inf"
    elif kind == "negative":
        flat.loc[i, column] = -abs(float(flat.loc[i, column])) - 1
    elif kind == "text":
        flat.loc[i, column] = "n/a?"
    elif kind == "low_high":
        flat.loc[i, "low"] = float(flat.loc[i, "high"]) * 1.5
    elif kind == "bad_time":
        flat.loc[i, "timestamp"] = "not-a-time"
    elif kind == "dup_conflict":
        j = (i + 1) % len(flat)
        flat.loc[j, "timestamp"] = flat.loc[i, "timestamp"]
        flat.loc[j, "close"] = float(flat.loc[i, "close"]) + 1e-3
        flat.loc[j, "high"] = max(float(flat.loc[j, "high"]), float(flat.loc[j, "close"]))
    path = tmp_path / "c.csv"
    if kind in ("drop_cell", "extra_cell"):
        lines = flat.to_csv(index=False).splitlines()
        if kind == "drop_cell":
            lines[i + 1] = lines[i + 1].rsplit(",", 1)[0]
        else:
            lines[i + 1] += ",1"
        path.write_text("\n".join(lines) + "\n")
    else:
        flat.to_csv(path, index=False)
    with pytest.raises(DataError) as info:
        load_ohlcv(path)
    assert info.value.file == str(path)


# --- the real files in ../shared/data ----------------------------------------------------------

REAL = {
    # file: (rows, first, last) from ../shared/data/README.md
    "btcusdt_1m_binance_20250520_20250818.csv.gz": (
        130_708,
        "2025-05-20 00:00",
        "2025-08-18 18:27",
    ),
    "ethusdt_1m_binance_20250520_20250818.csv.gz": (
        130_708,
        "2025-05-20 00:00",
        "2025-08-18 18:27",
    ),
    "btcusdt_1m_binance_20240726_20240825.csv.gz": (43_209, "2024-07-26 14:15", "2024-08-25 14:23"),
    "ethusdt_1m_binance_20240726_20240825.csv.gz": (43_208, "2024-07-26 14:16", "2024-08-25 14:23"),
    "btcusdt_1m_binanceus_20230301_20230321.csv.gz": (
        30_240,
        "2023-03-01 00:00",
        "2023-03-21 23:59",
    ),
    "btcusd_1m_binanceus_20230301_20230321.csv.gz": (
        30_240,
        "2023-03-01 00:00",
        "2023-03-21 23:59",
    ),
    "btcusdc_1m_binanceus_20230301_20230321.csv.gz": (
        30_240,
        "2023-03-01 00:00",
        "2023-03-21 23:59",
    ),
    "btcusdt_1h_binance_20170817_20240101.csv.gz": (55_765, "2017-08-17 04:00", "2024-01-01 23:00"),
    "btcusdt_1h_binance_20180101_20260516.csv.gz": (73_265, "2018-01-01 00:00", "2026-05-16 18:00"),
    "ethusdt_1h_binance_20180101_20260516.csv.gz": (73_265, "2018-01-01 00:00", "2026-05-16 18:00"),
    "ethusdt_1h_binance_20200920_20250919.csv.gz": (43_803, "2020-09-20 00:00", "2025-09-19 22:00"),
    "btcusdt_1d_binance_20170817_20250826.csv": (2_932, "2017-08-17", "2025-08-26"),
    "btcusd_1d_bitstamp-coinbase_20110818_20250924.csv": (5_152, "2011-08-18", "2025-09-24"),
    "original_feather/btcusdt_1m_binance_20240726_20240825.feather": (
        43_209,
        "2024-07-26 14:15",
        "2024-08-25 14:23",
    ),
}
NOT_BARS = [
    "btcusdt_perp_funding_binance_20190910_20260207.csv",
    "crypto_news_btc_20250502_20250531.csv.gz",
]


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_files_load_with_documented_rows_and_range(shared_data: Path, name: str) -> None:
    rows, first, last = REAL[name]
    df = load_ohlcv(shared_data / name)
    assert len(df) == rows
    assert df.index[0] == pd.Timestamp(first, tz=UTC)
    assert df.index[-1] == pd.Timestamp(last, tz=UTC)


@pytest.mark.parametrize("name", NOT_BARS)
def test_real_non_bar_files_are_refused_clearly(shared_data: Path, name: str) -> None:
    with pytest.raises(DataError, match="not a file of OHLCV bars"):
        load_ohlcv(shared_data / name)


def test_bundled_sample_loads(samples_dir: Path) -> None:
    df = load_ohlcv(samples_dir / "btcusdt_1m_binance_20240726_20240825.csv.gz")
    assert len(df) == 43_209


# --- layouts that must never lose or scramble rows silently -------------------------------------


def test_a_malformed_early_line_is_an_error_not_a_silent_skip(tmp_path: Path) -> None:
    rows = [f"{1704067200000 + 60_000 * i},1,2,0.5,1.5,3,x,y,z" for i in range(10)]
    rows[1] = rows[1].rsplit(",", 3)[0]  # truncated line 2
    with pytest.raises(DataError, match="line 2 has 6 fields where line 1 has 9") as info:
        load_ohlcv(_write(tmp_path / "trunc.csv", "\n".join(rows) + "\n"))
    assert info.value.line == 2
    text = FREQTRADE.replace("67740.33,26.43686", "67740.33,26.43686,extra")
    with pytest.raises(DataError, match="line 3 has 7 fields"):
        load_ohlcv(_write(tmp_path / "extra.csv", text))


def test_a_malformed_line_far_into_the_file_is_located(tmp_path: Path) -> None:
    body = "".join(
        f"{1704067200 + 60 * i},1,2,0.5,1.5,3\n" for i in range(20_000)
    )  # > the 64 KiB sniffed head
    lines = body.splitlines()
    lines[15_000] += ",7"
    with pytest.raises(DataError, match="line 15001 has 7 fields where the table has 6"):
        load_ohlcv(_write(tmp_path / "far.csv", "\n".join(lines) + "\n"))


@pytest.mark.parametrize("stamp", ["01/02/2024", "13.01.2024", "01-02-2024 10:00"])
def test_day_month_orders_are_refused_as_ambiguous(tmp_path: Path, stamp: str) -> None:
    text = f"date,open,high,low,close,volume\n{stamp},1,2,0.5,1.5,3\n"
    with pytest.raises(DataError, match="day/month order is ambiguous"):
        load_ohlcv(_write(tmp_path / "dmy.csv", text))


def test_year_first_slashed_dates_are_read(tmp_path: Path) -> None:
    text = "date,open,high,low,close,volume\n2024/01/02 03:04:05,1,2,0.5,1.5,3\n"
    assert load_ohlcv(_write(tmp_path / "ymd.csv", text)).index[0] == pd.Timestamp(
        "2024-01-02 03:04:05", tz=UTC
    )


@pytest.mark.parametrize("value", ["inf", "-inf", "1e400"])
def test_infinite_values_are_refused(tmp_path: Path, value: str) -> None:
    text = FREQTRADE.replace("67712.0,10.5", f"67712.0,{value}")
    with pytest.raises(DataError, match="infinite value in 'volume'"):
        load_ohlcv(_write(tmp_path / "inf.csv", text))


@pytest.mark.parametrize(
    ("header", "row", "base_column"),
    [
        # HTX: amount is the base volume, vol the quote volume
        ("ts,open,close,low,high,amount,vol,count", "1704067200,1,1.5,0.5,2,7,9,3", "amount"),
        # Gate.io: v is the quote volume, a the base volume
        ("t,o,c,h,l,v,a", "1704067200,1,1.5,2,0.5,9,7", "a"),
        # two currencies and no symbol to choose by
        (
            "timestamp,open,high,low,close,Volume TRY,Volume BTC",
            "1704067200,1,2,0.5,1.5,9,7",
            "Volume BTC",
        ),
    ],
)
def test_ambiguous_volume_columns_ask_for_volume_column(
    tmp_path: Path, header: str, row: str, base_column: str
) -> None:
    path = _write(tmp_path / "vol.csv", header + "\n" + row + "\n")
    with pytest.raises(DataError, match="volume_column"):
        load_ohlcv(path)
    assert load_ohlcv(path, volume_column=base_column)["volume"].tolist() == [7.0]
    if base_column == "Volume BTC":
        assert load_ohlcv(path, symbol="BTCTRY")["volume"].tolist() == [7.0]


def test_open_interest_is_not_an_open_price(tmp_path: Path) -> None:
    text = "timestamp,open_interest,high,low,close,volume\n1704067200,5,2,0.5,1.5,3\n"
    with pytest.raises(DataError, match="no 'open' column"):
        load_ohlcv(_write(tmp_path / "oi.csv", text))


def test_duplicate_column_names_are_a_data_error(tmp_path: Path) -> None:
    text = "timestamp,open,high,low,close,volume,volume\n1704067200,1,2,0.5,1.5,3,4\n"
    with pytest.raises(DataError, match=r"\['volume'\] appear more than once"):
        load_ohlcv(_write(tmp_path / "dup.csv", text))


def test_float_millisecond_epochs_keep_their_milliseconds(tmp_path: Path) -> None:
    text = "open_time,open,high,low,close,volume\n1704067200123.0,1,2,0.5,1.5,3\n"
    df = load_ohlcv(_write(tmp_path / "fms.csv", text))
    assert df.index[0] == pd.Timestamp(1704067200123, unit="ms", tz=UTC)


def test_bom_crlf_and_trailing_blank_lines(tmp_path: Path) -> None:
    text = "\ufeff" + FREQTRADE.replace("\n", "\r\n") + "\r\n\r\n"
    assert len(load_ohlcv(_write(tmp_path / "bom.csv", text))) == 3
