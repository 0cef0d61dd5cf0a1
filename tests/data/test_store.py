"""The bar store: URL dispatch, upserts, reads, resampling, coverage and gaps, errors.

Data: synthetic bars from ``make_ohlcv`` (seeded) and the bundled real sample
``data/samples/btcusdt_1m_binance_20240726_20240825.csv.gz`` (provenance in its README).
Tolerances: open/high/low/close are compared exactly everywhere; volume sums against pandas
with rtol=1e-12 (pandas sums with Kahan compensation, the store sums left to right: both are
within a few ulps of the exact sum for buckets of <= 1440 bars).
"""

from __future__ import annotations

import os
import pickle
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chimera_lab.config import Settings
from chimera_lab.data import DuckDBStore, Store, find_gaps, parse_store_url
from chimera_lab.data.synthetic import make_ohlcv
from chimera_lab.errors import (
    ConfigError,
    DataError,
    DataQualityWarning,
    StoreError,
    UnknownSeriesError,
)
from chimera_lab.frames import validate_ohlcv
from chimera_lab.timeframes import TIMEFRAMES

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "samples" / "btcusdt_1m_binance_20240726_20240825.csv.gz"


@pytest.fixture(autouse=True)
def hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CHIMERA_* variable of the caller reaches these tests (nested ones would merge)."""
    for name in list(os.environ):
        if name.upper().startswith("CHIMERA_"):
            monkeypatch.delenv(name)


def make_settings(url: str = ":memory:", **store: object) -> Settings:
    return Settings(_env_file=None, store={"url": url, **store})  # type: ignore[call-arg]


def pandas_resample(df: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """The reference: pandas, epoch-aligned, left-labelled, empty buckets dropped."""
    out = df.resample(TIMEFRAMES[timeframe], origin="epoch", label="left", closed="left").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    return out.dropna(subset=["open"])


def assert_matches_pandas(got: pd.DataFrame, df: pd.DataFrame, timeframe: str) -> None:
    ref = pandas_resample(df, timeframe)
    pd.testing.assert_index_equal(got.index, ref.index, check_names=False, check_freq=False)
    for col in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(got[col].to_numpy(), ref[col].to_numpy(), err_msg=col)
    np.testing.assert_allclose(got["volume"].to_numpy(), ref["volume"].to_numpy(), rtol=1e-12)


def load_sample() -> pd.DataFrame:
    raw = pd.read_csv(SAMPLE)
    idx = pd.DatetimeIndex(pd.to_datetime(raw["date"], utc=True), name="timestamp")
    df = raw[["open", "high", "low", "close", "volume"]].astype("float64").set_axis(idx)
    return validate_ohlcv(df)


@pytest.fixture
def store(store_url: str) -> Store:
    return Store(store_url, settings=make_settings(store_url))


# --- URLs and dispatch ---------------------------------------------------------------------


def test_store_plain_path_opens_duckdb_store(tmp_path: Path) -> None:
    store = Store(tmp_path / "x.duckdb", settings=make_settings())
    assert isinstance(store, DuckDBStore) and isinstance(store, Store)
    assert store.path == tmp_path / "x.duckdb"


def test_store_duckdb_urls_name_absolute_and_relative_files(tmp_path: Path) -> None:
    assert parse_store_url(f"duckdb://{tmp_path}/a.duckdb").location == f"{tmp_path}/a.duckdb"
    assert parse_store_url("duckdb:data/chimera.duckdb").location == "data/chimera.duckdb"
    assert parse_store_url("duckdb:///:memory:").location == ":memory:"
    assert parse_store_url(r"C:\data\x.duckdb").location == r"C:\data\x.duckdb"
    store = Store(f"duckdb://{tmp_path}/b.duckdb", settings=make_settings())
    assert store.path == tmp_path / "b.duckdb"


def test_store_default_url_comes_from_settings(tmp_path: Path) -> None:
    settings = make_settings(str(tmp_path / "default.duckdb"))
    store = Store(settings=settings)
    assert isinstance(store, DuckDBStore)
    assert store.path == tmp_path / "default.duckdb"


def test_store_without_url_or_settings_reads_the_settings_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Store() builds Settings to pick the backend; the backend must reuse them, not read the
    # environment and .env again (and warn twice about a mistyped variable).
    from chimera_lab.config import ConfigWarning

    monkeypatch.setenv("CHIMERA_STORE__URL", str(tmp_path / "env.duckdb"))
    monkeypatch.setenv("CHIMERA_STORE__LOCK_TIMOUT_S", "3")  # a typo: warned about
    with pytest.warns(ConfigWarning, match="LOCK_TIMOUT_S") as record:
        store = Store()
    assert len(record) == 1
    assert isinstance(store, DuckDBStore)
    assert store.path == tmp_path / "env.duckdb"
    assert store.settings.store.url == str(tmp_path / "env.duckdb")
    assert "_settings_from_new" not in pickle.loads(pickle.dumps(store)).__dict__


def test_store_with_url_or_settings_uses_them(tmp_path: Path) -> None:
    settings = make_settings(":memory:", lock_timeout_s=7.0)
    store = Store(tmp_path / "given.duckdb", settings=settings)
    assert isinstance(store, DuckDBStore) and store.settings is settings
    assert store.path == tmp_path / "given.duckdb" and store.lock_timeout_s == 7.0
    assert DuckDBStore(settings=settings).settings is settings


def test_store_postgresql_url_says_later_release() -> None:
    with pytest.raises(StoreError, match="later release"):
        Store("postgresql://user@localhost/bars", settings=make_settings())


def test_store_unknown_scheme_lists_supported_ones() -> None:
    with pytest.raises(StoreError, match="unsupported store URL scheme 'sqlite'.*duckdb:///"):
        Store("sqlite:///bars.db", settings=make_settings())
    with pytest.raises(StoreError, match="local file"):
        parse_store_url("duckdb://example.com/bars.duckdb")


def test_store_backend_missing_a_method_is_refused_when_defined() -> None:
    with pytest.raises(TypeError, match="does not implement"):

        class Half(Store):  # noqa: F841 - defining it is the test
            def write_bars(self, symbol: str, timeframe: str, df: pd.DataFrame) -> int:
                return 0


def test_store_file_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bars.csv"
    bogus.write_text("a,b\n1,2\n")
    store = Store(bogus, settings=make_settings())
    with pytest.raises(StoreError, match="cannot open store"):
        store.symbols()


# --- writes --------------------------------------------------------------------------------


def test_write_then_read_round_trips_exactly(store: Store, ohlcv: pd.DataFrame) -> None:
    assert store.write_bars("BTCUSDT", "1m", ohlcv) == len(ohlcv)
    got = store.read_bars("BTCUSDT", "1m")
    pd.testing.assert_frame_equal(got, ohlcv, check_exact=True, check_freq=False)
    assert str(got.index.dtype) == "datetime64[ns, UTC]" and got.index.name == "timestamp"


def test_write_same_bars_twice_leaves_same_rows(store: Store, ohlcv: pd.DataFrame) -> None:
    assert store.write_bars("BTCUSDT", "1m", ohlcv) == len(ohlcv)
    before = store.read_bars("BTCUSDT", "1m")
    assert store.write_bars("BTCUSDT", "1m", ohlcv) == 0
    pd.testing.assert_frame_equal(store.read_bars("BTCUSDT", "1m"), before, check_exact=True)
    assert store.coverage()["rows"].tolist() == [len(ohlcv)]


def test_overlapping_writes_merge_and_new_values_win(store: Store, ohlcv: pd.DataFrame) -> None:
    first, second = ohlcv.iloc[:1200], ohlcv.iloc[800:].copy()
    second[["open", "high", "low", "close"]] *= 1.01
    assert store.write_bars("BTCUSDT", "1m", first) == 1200
    assert store.write_bars("BTCUSDT", "1m", second) == len(ohlcv) - 1200
    expected = pd.concat([first.iloc[:800], second])
    got = store.read_bars("BTCUSDT", "1m")
    pd.testing.assert_frame_equal(got, expected, check_exact=True, check_freq=False)
    # Rollups followed the rewrite: resampling through them equals the raw aggregation.
    via_rollup = store.resample("BTCUSDT", "1h")
    raw = store.resample("BTCUSDT", "1h", use_rollups=False)
    pd.testing.assert_frame_equal(via_rollup, raw, check_exact=True)
    assert_matches_pandas(via_rollup, expected, "1h")


def test_write_older_bars_after_newer_ones(store: Store, ohlcv: pd.DataFrame) -> None:
    store.write_bars("BTCUSDT", "1m", ohlcv.iloc[1000:])
    store.write_bars("BTCUSDT", "1m", ohlcv.iloc[:1000])
    got = store.read_bars("BTCUSDT", "1m")
    pd.testing.assert_frame_equal(got, ohlcv, check_exact=True, check_freq=False)
    assert store.last_timestamp("BTCUSDT", "1m") == ohlcv.index[-1]
    cov = store.coverage().iloc[0]
    assert (cov["first"], cov["last"], cov["rows"]) == (ohlcv.index[0], ohlcv.index[-1], 2000)


def test_write_invalid_bars_raises_data_error_and_writes_nothing(
    store: Store, ohlcv: pd.DataFrame
) -> None:
    store.write_bars("BTCUSDT", "1m", ohlcv.iloc[:10])
    bad = ohlcv.iloc[10:20].copy()
    bad.iloc[3, bad.columns.get_loc("low")] = bad["high"].iloc[3] * 2
    with pytest.raises(DataError, match="low") as err:
        store.write_bars("BTCUSDT", "1m", bad)
    assert err.value.row == 4 and err.value.column == "low"
    assert len(store.read_bars("BTCUSDT", "1m")) == 10


def test_write_empty_frame_returns_zero(store: Store, ohlcv: pd.DataFrame) -> None:
    assert store.write_bars("BTCUSDT", "1m", ohlcv.iloc[:0]) == 0
    assert store.symbols() == []


def test_write_bars_finer_than_timeframe_is_refused(store: Store) -> None:
    with pytest.raises(DataError, match=r"finer than the timeframe 1h.*1m bars"):
        store.write_bars("BTCUSDT", "1h", make_ohlcv(100, timeframe="1m"))


def test_write_bars_coarser_than_timeframe_warns(store: Store) -> None:
    with pytest.warns(DataQualityWarning, match="are they 1h bars"):
        store.write_bars("BTCUSDT", "1m", make_ohlcv(100, timeframe="1h"))


def test_write_bars_timeframe_aliases_are_canonical(store: Store, ohlcv: pd.DataFrame) -> None:
    store.write_bars("BTCUSDT", "1min", ohlcv.iloc[:5])
    assert store.timeframes("BTCUSDT") == ["1m"]
    with pytest.raises(ConfigError, match="unknown timeframe '7q'"):
        store.write_bars("BTCUSDT", "7q", ohlcv.iloc[:5])


def test_write_of_two_bars_finer_than_timeframe_is_refused(store: Store) -> None:
    # Two rows are checked too: 0.5 s apart they are not two 1m bars.
    idx = pd.DatetimeIndex(["2024-01-01 00:00:59.5", "2024-01-01 00:01:00"], tz="UTC")
    bars = make_ohlcv(2, seed=1).set_axis(idx.rename("timestamp").as_unit("ns"))
    with pytest.raises(DataError, match="finer than the timeframe 1m") as err:
        store.write_bars("BTCUSDT", "1m", bars)
    assert "2024-01-01T00:00:59.500000Z and 2024-01-01T00:01:00Z" in str(err.value)
    assert (err.value.row, err.value.column) == (2, "timestamp")
    assert store.symbols() == []


# --- one bar per bucket --------------------------------------------------------------------


def hourly(times: list[str], seed: int) -> pd.DataFrame:
    idx = pd.DatetimeIndex(times, tz="UTC").rename("timestamp").as_unit("ns")
    return make_ohlcv(len(idx), timeframe="1h", seed=seed).set_axis(idx)


def upsert_by_bucket(old: pd.DataFrame, new: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Reference: old bars whose bucket holds a new bar are dropped, the new bars added."""
    step = TIMEFRAMES[timeframe].value
    taken = np.isin(old.index.asi8 // step, new.index.asi8 // step)
    return pd.concat([old[~taken], new]).sort_index()


def assert_one_bar_per_bucket_and_consistent(store: Store, expected: pd.DataFrame) -> None:
    got = store.read_bars("BTCUSDT", "1h")
    pd.testing.assert_frame_equal(got, expected, check_exact=True, check_freq=False)
    # Resampling a series to its own timeframe gives one row per stored bar.
    own = store.resample("BTCUSDT", "1h", source_timeframe="1h")
    assert len(own) == len(got)
    np.testing.assert_array_equal(own["volume"].to_numpy(), got["volume"].to_numpy())
    for tf in ("4h", "1d"):
        via_rollup = store.resample("BTCUSDT", tf, source_timeframe="1h")
        raw = store.resample("BTCUSDT", tf, source_timeframe="1h", use_rollups=False)
        pd.testing.assert_frame_equal(via_rollup, raw, check_exact=True)
        assert_matches_pandas(via_rollup, expected, tf)
    cov = store.coverage().iloc[0]
    assert (cov["rows"], cov["first"], cov["last"]) == (
        len(expected),
        expected.index[0],
        expected.index[-1],
    )
    pd.testing.assert_frame_equal(store.gaps("BTCUSDT", "1h"), find_gaps(expected.index, "1h"))


def test_on_grid_bars_replace_off_grid_bars_of_the_same_bucket(store: Store) -> None:
    off = feb_2018_bars()  # 43 bars at hh:28:14 from 2018-02-09 09:28:14
    assert store.write_bars("BTCUSDT", "1h", off) == 53
    # An on-grid source of part of the same hours (and two hours beyond), other values.
    on = hourly(
        [f"2018-02-09 {h:02d}:00" for h in range(8, 14)]
        + ["2018-02-11 03:00", "2018-02-11 04:00", "2018-02-11 09:00"],
        seed=12,
    )
    # 08:00 was empty (in the gap), 09..13 and 03:00 held an off-grid bar, 04:00 an on-grid
    # one, 09:00 on the 11th was after the last bar: 2 buckets are new.
    assert store.write_bars("BTCUSDT", "1h", on) == 2
    expected = upsert_by_bucket(off, on, "1h")
    assert len(expected) == 55
    assert_one_bar_per_bucket_and_consistent(store, expected)
    # The other way round, new values win too: an off-grid bar replaces an on-grid one.
    back = off.loc["2018-02-09 10:00":"2018-02-09 11:00"].copy()
    back["volume"] *= 2
    assert store.write_bars("BTCUSDT", "1h", back) == 0
    expected = upsert_by_bucket(expected, back, "1h")
    assert_one_bar_per_bucket_and_consistent(store, expected)
    # Writing the same bars again changes nothing.
    assert store.write_bars("BTCUSDT", "1h", back) == 0
    assert_one_bar_per_bucket_and_consistent(store, expected)


def test_replacing_the_first_and_last_bar_moves_first_and_last(store: Store) -> None:
    store.write_bars("BTCUSDT", "1h", hourly(["2024-01-01 00:00", "2024-01-01 01:00"], seed=1))
    later = hourly(["2024-01-01 00:30", "2024-01-01 01:45"], seed=2)  # same two buckets
    assert store.write_bars("BTCUSDT", "1h", later) == 0
    cov = store.coverage().iloc[0]
    assert (cov["first"], cov["last"], cov["rows"]) == (later.index[0], later.index[-1], 2)
    assert store.last_timestamp("BTCUSDT", "1h") == later.index[-1]


def test_write_with_two_bars_in_one_bucket_is_refused_naming_both(store: Store) -> None:
    bars = hourly(
        ["2018-02-09 08:00", "2018-02-09 09:00", "2018-02-09 10:00", "2018-02-09 10:28:14"]
        + [f"2018-02-09 {h}:00" for h in range(11, 16)],
        seed=3,
    )
    with pytest.raises(DataError, match="same 1h bucket") as err:
        store.write_bars("BTCUSDT", "1h", bars)
    assert "2018-02-09T10:00:00Z and 2018-02-09T10:28:14Z" in str(err.value)
    assert (err.value.row, err.value.column) == (4, "timestamp")
    assert store.symbols() == []  # nothing written


def test_real_binance_hourly_files_with_off_grid_bars_merge_one_bar_per_hour(
    shared_data: Path,
) -> None:
    from chimera_lab.data import load_ohlcv

    old = load_ohlcv(shared_data / "btcusdt_1h_binance_20170817_20240101.csv.gz")
    new = load_ohlcv(shared_data / "btcusdt_1h_binance_20180101_20260516.csv.gz")
    store = Store(":memory:", settings=make_settings())
    assert store.write_bars("BTCUSDT", "1h", old) == 55_765
    # 42 of the 43 off-grid hours of Feb 2018 in the first file are on-grid in the second.
    assert store.write_bars("BTCUSDT", "1h", new) == 20_779
    expected = upsert_by_bucket(old, new, "1h")
    assert len(expected) == 76_544
    assert_one_bar_per_bucket_and_consistent(store, expected)
    assert len(store.resample("BTCUSDT", "1h", source_timeframe="1h")) == 76_544


def test_store_written_before_one_bar_per_bucket_is_upgraded_on_next_write(
    store_url: str,
) -> None:
    import duckdb

    store = Store(store_url, settings=make_settings(store_url))
    off = feb_2018_bars()
    store.write_bars("BTCUSDT", "1h", off)
    store.write_bars("ETHUSDT", "1h", off)
    # What schema version 1 left after importing an on-grid source on top: on-grid bars
    # stored next to the off-grid ones (here for 09:00 .. 11:00 of the 9th), counted.
    on = hourly(["2018-02-09 09:00", "2018-02-09 10:00", "2018-02-09 11:00"], seed=4)
    con = duckdb.connect(store_url)
    try:
        con.register("extra", on.reset_index().assign(ts=on.index.asi8))
        con.execute(
            "INSERT INTO bars SELECT 1, ts, open, high, low, close, volume FROM extra;"
            "UPDATE series SET bar_count = bar_count + 3 WHERE id = 1;"
            "UPDATE chimera_meta SET value = '1' WHERE key = 'schema_version'"
        )
    finally:
        con.close()
    assert len(store.read_bars("BTCUSDT", "1h")) == 56  # reads show what is stored
    store.write_bars("ETHUSDT", "1h", off.iloc[:1])  # any write upgrades the whole store
    # The earliest bar of each bucket is kept: the on-grid one.
    expected = upsert_by_bucket(off, on, "1h")
    assert_one_bar_per_bucket_and_consistent(store, expected)
    con = duckdb.connect(store_url, read_only=True)
    try:
        assert con.execute("SELECT value FROM chimera_meta").fetchall() == [("2",)]
    finally:
        con.close()
    pd.testing.assert_frame_equal(
        store.read_bars("ETHUSDT", "1h"), off, check_exact=True, check_freq=False
    )


def test_exists_tells_a_missing_file_from_a_store_and_refuses_a_directory(
    tmp_path: Path,
) -> None:
    assert Store(":memory:", settings=make_settings()).exists()
    url = str(tmp_path / "e.duckdb")
    store = Store(url, settings=make_settings(url))
    assert not store.exists()
    assert store.symbols() == [] and not store.exists()  # reading does not create it
    store.write_bars("BTCUSDT", "1m", make_ohlcv(3))
    assert store.exists()
    with pytest.raises(StoreError, match="is a directory, not a DuckDB file"):
        Store(tmp_path, settings=make_settings()).exists()


def test_store_path_that_is_a_directory_is_an_error(tmp_path: Path) -> None:
    store = Store(tmp_path, settings=make_settings())
    with pytest.raises(StoreError, match="is a directory, not a DuckDB file"):
        store.coverage()
    with pytest.raises(StoreError, match="is a directory"):
        store.write_bars("BTCUSDT", "1m", make_ohlcv(3))


# --- reads ---------------------------------------------------------------------------------


def test_read_bars_window_is_inclusive_and_accepts_time_types(
    store: Store, ohlcv: pd.DataFrame
) -> None:
    store.write_bars("BTCUSDT", "1m", ohlcv)
    t0, t1 = ohlcv.index[100], ohlcv.index[200]
    expected = ohlcv.loc[t0:t1]
    for start, end in [
        (t0, t1),
        ("2024-01-01T01:40:00Z", "2024-01-01 03:20"),
        (datetime(2024, 1, 1, 1, 40), t1.to_pydatetime()),  # noqa: DTZ001 - naive means UTC
        (np.datetime64("2024-01-01T01:40"), t1.tz_convert("Asia/Tokyo")),
    ]:
        got = store.read_bars("BTCUSDT", "1m", start=start, end=end)
        pd.testing.assert_frame_equal(got, expected, check_exact=True, check_freq=False)
    assert store.read_bars("BTCUSDT", "1m", start="2030-01-01").shape == (0, 5)
    with pytest.raises(ConfigError, match="after end") as err:
        store.read_bars("BTCUSDT", "1m", start=t1, end=t0)
    assert str(err.value) == (
        "start 2024-01-01T03:20:00Z is after end 2024-01-01T01:40:00Z; swap them"
    )
    with pytest.raises(ConfigError, match="not a date/time"):
        store.read_bars("BTCUSDT", "1m", start="yesterday-ish")


def test_read_unknown_symbol_names_holdings_and_close_matches(
    store: Store, ohlcv: pd.DataFrame
) -> None:
    store.write_bars("BTCUSDT", "1m", ohlcv)
    store.write_bars("ETHUSDT", "1m", ohlcv)
    with pytest.raises(
        StoreError, match=r"no symbol 'BTCUSD'.*BTCUSDT \(1m\).*did you mean BTCUSDT"
    ):
        store.read_bars("BTCUSD", "1m")
    with pytest.raises(StoreError, match="did you mean BTCUSDT"):
        store.read_bars("btcusdt", "1m")


def test_read_unknown_timeframe_names_timeframes_and_suggests_resample(
    store: Store, ohlcv: pd.DataFrame
) -> None:
    store.write_bars("BTCUSDT", "1m", ohlcv)
    with pytest.raises(StoreError, match=r"no 1h bars for BTCUSDT.*in 1m.*store.resample"):
        store.read_bars("BTCUSDT", "1h")


def test_every_missing_series_raises_unknown_series_error(
    tmp_path: Path, store: Store, ohlcv: pd.DataFrame
) -> None:
    # Callers (fetch resume) treat exactly this subclass as "nothing stored yet".
    with pytest.raises(UnknownSeriesError, match="is empty"):
        Store(tmp_path / "none.duckdb", settings=make_settings()).read_bars("BTCUSDT", "1m")
    store.write_bars("BTCUSDT", "1m", ohlcv)
    with pytest.raises(UnknownSeriesError, match="no symbol 'ETHUSDT'"):
        store.read_bars("ETHUSDT", "1m")
    with pytest.raises(UnknownSeriesError, match="no 1h bars for BTCUSDT"):
        store.read_bars("BTCUSDT", "1h")


def test_reads_of_a_missing_file_say_the_store_is_empty(tmp_path: Path) -> None:
    store = Store(tmp_path / "none.duckdb", settings=make_settings())
    with pytest.raises(StoreError, match="is empty; import some with `chimera data import"):
        store.read_bars("BTCUSDT", "1m")
    assert store.symbols() == [] and store.coverage().empty
    assert store.last_timestamp("BTCUSDT", "1m") is None
    assert not (tmp_path / "none.duckdb").exists()  # reading never creates the file


# --- resample ------------------------------------------------------------------------------


def test_resample_real_sample_equals_pandas_and_raw_sql() -> None:
    df = load_sample()
    store = Store(":memory:", settings=make_settings())
    assert store.write_bars("BTCUSDT", "1m", df) == 43_209
    for tf in ("5m", "1h", "4h", "1d", "2h"):  # 2h has no rollup: the raw SQL path
        got = store.resample("BTCUSDT", tf)
        raw = store.resample("BTCUSDT", tf, use_rollups=False)
        pd.testing.assert_frame_equal(got, raw, check_exact=True)
        assert_matches_pandas(got, df, tf)
    start, end = "2024-08-04 13:37", "2024-08-06 02:05:30"
    window = df.loc[start:end]
    got = store.resample("BTCUSDT", "1h", start=start, end=end)
    assert got.index[0] == pd.Timestamp("2024-08-04 13:00", tz="UTC")  # partial edge bucket
    pd.testing.assert_frame_equal(
        got,
        store.resample("BTCUSDT", "1h", start=start, end=end, use_rollups=False),
        check_exact=True,
    )
    assert_matches_pandas(got, window, "1h")


def test_resample_window_inside_one_bucket(store: Store, ohlcv: pd.DataFrame) -> None:
    store.write_bars("BTCUSDT", "1m", ohlcv)
    got = store.resample("BTCUSDT", "1h", start="2024-01-01 05:10", end="2024-01-01 05:20")
    assert_matches_pandas(got, ohlcv.loc["2024-01-01 05:10":"2024-01-01 05:20"], "1h")
    assert len(got) == 1


def test_resample_to_non_multiple_timeframe_is_refused(store: Store) -> None:
    store.write_bars("BTCUSDT", "3m", make_ohlcv(50, timeframe="3m"))
    with pytest.raises(ConfigError, match="not a whole multiple of 3m"):
        store.resample("BTCUSDT", "5m", source_timeframe="3m")


def test_resample_missing_source_series_suggests_what_exists(store: Store) -> None:
    store.write_bars("BTCUSDT", "1h", make_ohlcv(50, timeframe="1h"))
    with pytest.raises(StoreError, match=r"no 1m bars for BTCUSDT.*in 1h"):
        store.resample("BTCUSDT", "1d")
    assert len(store.resample("BTCUSDT", "1d", source_timeframe="1h")) == 3


def test_rollups_follow_changes_of_rollup_timeframes(store_url: str, ohlcv: pd.DataFrame) -> None:
    one = Store(store_url, settings=make_settings(store_url, rollup_timeframes=["1h"]))
    one.write_bars("BTCUSDT", "1m", ohlcv.iloc[:1000])
    two = Store(store_url, settings=make_settings(store_url, rollup_timeframes=["15m", "4h"]))
    two.write_bars("BTCUSDT", "1m", ohlcv.iloc[1000:1010])  # builds 15m and 4h, drops 1h
    for tf in ("15m", "1h", "4h"):
        got = two.resample("BTCUSDT", tf, start="2024-01-01 00:07")
        raw = two.resample("BTCUSDT", tf, start="2024-01-01 00:07", use_rollups=False)
        pd.testing.assert_frame_equal(got, raw, check_exact=True)
        assert_matches_pandas(got, ohlcv.iloc[7:1010], tf)


# --- coverage and gaps ---------------------------------------------------------------------


def feb_2018_bars() -> pd.DataFrame:
    """Hourly bars shaped like Binance's Feb 2018 outage (see ../shared/data/README.md).

    On-grid hours up to 2018-02-08 00:00, then off-grid bars at hh:28:14 from
    2018-02-09 09:28:14 to 2018-02-11 03:28:14, then on-grid hours again from 04:00.
    """
    before = pd.date_range("2018-02-07 20:00", "2018-02-08 00:00", freq="1h", tz="UTC")
    off = pd.date_range("2018-02-09 09:28:14", "2018-02-11 03:28:14", freq="1h", tz="UTC")
    after = pd.date_range("2018-02-11 04:00", periods=5, freq="1h", tz="UTC")
    idx = before.append(off).append(after).rename("timestamp").as_unit("ns")
    bars = make_ohlcv(len(idx), timeframe="1h", seed=11)
    return bars.set_axis(idx)


def test_coverage_and_gaps_handle_off_grid_bars(store: Store) -> None:
    bars = feb_2018_bars()
    assert len(bars) - 10 == 43  # 43 off-grid bars, as in the real file
    store.write_bars("BTCUSDT", "1h", bars)
    cov = store.coverage()
    assert cov.to_dict("records") == [
        {
            "symbol": "BTCUSDT",
            "timeframe": "1h",
            "first": pd.Timestamp("2018-02-07 20:00", tz="UTC"),
            "last": pd.Timestamp("2018-02-11 08:00", tz="UTC"),
            "rows": 53,
            "gaps": 1,
            "missing_bars": 32,  # the hours 01:00 on the 8th .. 08:00 on the 9th
        }
    ]
    gaps = store.gaps("BTCUSDT", "1h")
    assert gaps.to_dict("records") == [
        {
            "first_missing": pd.Timestamp("2018-02-08 01:00", tz="UTC"),
            "last_missing": pd.Timestamp("2018-02-09 08:00", tz="UTC"),
            "missing_bars": 32,
        }
    ]
    pd.testing.assert_frame_equal(gaps, find_gaps(bars.index, "1h"))
    # Resampling off-grid bars puts each in the bucket it falls in, as pandas does.
    assert_matches_pandas(store.resample("BTCUSDT", "4h", source_timeframe="1h"), bars, "4h")


def test_gap_records_follow_writes_that_fill_holes(store: Store, ohlcv: pd.DataFrame) -> None:
    holes = ohlcv.drop(ohlcv.index[[10, 11, 12, 500, 1500, 1501]])
    store.write_bars("BTCUSDT", "1m", holes)
    assert store.coverage()[["gaps", "missing_bars"]].to_numpy().tolist() == [[3, 6]]
    store.write_bars("BTCUSDT", "1m", ohlcv.iloc[[11, 500]])
    gaps = store.gaps("BTCUSDT", "1m")
    assert gaps["missing_bars"].tolist() == [1, 1, 2]
    pd.testing.assert_frame_equal(gaps, find_gaps(store.read_bars("BTCUSDT", "1m").index, "1m"))
    store.write_bars("BTCUSDT", "1m", ohlcv)
    assert store.gaps("BTCUSDT", "1m").empty


def test_coverage_for_one_symbol_and_unknown_symbol(store: Store, ohlcv: pd.DataFrame) -> None:
    store.write_bars("ETHUSDT", "1m", ohlcv)
    store.write_bars("BTCUSDT", "1h", make_ohlcv(24, timeframe="1h"))
    store.write_bars("BTCUSDT", "1m", ohlcv)
    cov = store.coverage()
    assert cov[["symbol", "timeframe"]].to_numpy().tolist() == [
        ["BTCUSDT", "1m"],
        ["BTCUSDT", "1h"],
        ["ETHUSDT", "1m"],
    ]
    assert store.coverage("ETHUSDT")["rows"].tolist() == [2000]
    with pytest.raises(StoreError, match="did you mean ETHUSDT"):
        store.coverage("ETHUSD")


def test_last_timestamp_symbols_timeframes_and_delete(store: Store, ohlcv: pd.DataFrame) -> None:
    assert store.last_timestamp("BTCUSDT", "1m") is None
    store.write_bars("BTCUSDT", "1m", ohlcv)
    store.write_bars("BTCUSDT", "1h", make_ohlcv(24, timeframe="1h"))
    store.write_bars("ETHUSDT", "1m", ohlcv.iloc[:10])
    assert store.last_timestamp("BTCUSDT", "1m") == ohlcv.index[-1]
    assert store.last_timestamp("ETHUSDT", "1h") is None
    assert store.symbols() == ["BTCUSDT", "ETHUSDT"]
    assert store.timeframes("BTCUSDT") == ["1m", "1h"]
    assert store.delete("BTCUSDT", "1m") == 2000
    assert store.timeframes("BTCUSDT") == ["1h"]
    with pytest.raises(StoreError, match="no 1m bars for BTCUSDT"):
        store.delete("BTCUSDT", "1m")
    # A deleted series can be written again from scratch.
    assert store.write_bars("BTCUSDT", "1m", ohlcv.iloc[:5]) == 5
    assert store.resample("BTCUSDT", "5m")["volume"].iloc[0] == ohlcv["volume"].iloc[:5].sum()


def test_delete_leaves_no_rollup_gap_or_bar_rows_of_the_series(
    store_url: str, ohlcv: pd.DataFrame
) -> None:
    import duckdb

    store = Store(store_url, settings=make_settings(store_url, rollup_timeframes=["5m", "1h"]))
    store.write_bars("BTCUSDT", "1m", ohlcv.drop(ohlcv.index[100:110]))  # one gap
    store.write_bars("ETHUSDT", "1m", ohlcv.drop(ohlcv.index[50:52]))
    assert store.delete("BTCUSDT", "1m") == 1990
    con = duckdb.connect(store_url, read_only=True)
    try:
        rows = {
            table: con.execute(f"SELECT series_id, count(*) FROM {table} GROUP BY 1").fetchall()
            for table in ("bars", "gaps", "rollup_5m", "rollup_1h")
        }
        series = con.execute("SELECT id, symbol FROM series").fetchall()
    finally:
        con.close()
    assert series == [(2, "ETHUSDT")]
    assert rows == {
        "bars": [(2, 1998)],
        "gaps": [(2, 1)],
        "rollup_5m": [(2, 400)],
        "rollup_1h": [(2, 34)],
    }


# --- sessions, pickling, locking in one process --------------------------------------------


def test_session_reuses_one_attachment_and_read_session_refuses_writes(
    store: Store, ohlcv: pd.DataFrame
) -> None:
    with store.session(write=True):
        store.write_bars("BTCUSDT", "1m", ohlcv.iloc[:100])
        assert len(store.read_bars("BTCUSDT", "1m")) == 100
        with store.session():  # nested sessions reuse the outer one
            assert store.symbols() == ["BTCUSDT"]
    with store.session():
        with pytest.raises(StoreError, match="read-only"):
            store.write_bars("BTCUSDT", "1m", ohlcv.iloc[100:200])
    assert len(store.read_bars("BTCUSDT", "1m")) == 100


def test_lock_held_by_another_store_times_out_naming_the_holder(
    store_url: str, ohlcv: pd.DataFrame
) -> None:
    holder = Store(store_url, settings=make_settings(store_url))
    waiter = Store(store_url, settings=make_settings(store_url, lock_timeout_s=0.2))
    holder.write_bars("BTCUSDT", "1m", ohlcv.iloc[:10])
    with holder.session(write=True):
        with pytest.raises(StoreError, match=r"(locked|written) by .*PID") as err:
            waiter.read_bars("BTCUSDT", "1m")
        assert "CHIMERA_STORE__LOCK_TIMEOUT_S" in str(err.value)
    assert len(waiter.read_bars("BTCUSDT", "1m")) == 10  # released after the session


def test_file_store_pickles_and_memory_store_refuses(store_url: str, ohlcv: pd.DataFrame) -> None:
    store = Store(store_url, settings=make_settings(store_url))
    store.write_bars("BTCUSDT", "1m", ohlcv.iloc[:10])
    clone = pickle.loads(pickle.dumps(store))
    assert len(clone.read_bars("BTCUSDT", "1m")) == 10
    with pytest.raises(StoreError, match="in-memory"):
        pickle.dumps(Store(":memory:", settings=make_settings()))


def test_store_file_is_readable_with_plain_duckdb_sql(store_url: str, ohlcv: pd.DataFrame) -> None:
    import duckdb

    store = Store(store_url, settings=make_settings(store_url))
    store.write_bars("BTCUSDT", "1m", ohlcv.iloc[:3])
    con = duckdb.connect(store_url, read_only=True)
    try:
        rows = con.execute(
            "SELECT symbol, timeframe, timestamp_utc, close FROM ohlcv ORDER BY timestamp_utc"
        ).fetchall()
    finally:
        con.close()
    assert [r[:2] for r in rows] == [("BTCUSDT", "1m")] * 3
    assert pd.Timestamp(rows[0][2], tz="UTC") == ohlcv.index[0]
    assert rows[2][3] == ohlcv["close"].iloc[2]


def test_threads_with_their_own_stores_read_while_one_writes(
    store_url: str, ohlcv: pd.DataFrame
) -> None:
    import threading

    Store(store_url, settings=make_settings(store_url)).write_bars("BTCUSDT", "1m", ohlcv[:100])
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        store = Store(store_url, settings=make_settings(store_url))
        try:
            for _ in range(2_000):  # bounded; stops when the writer is done
                assert len(store.read_bars("BTCUSDT", "1m")) >= 100
                if done.is_set():
                    break
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    def write() -> None:
        store = Store(store_url, settings=make_settings(store_url))
        try:
            for k in range(1, 20):
                store.write_bars("BTCUSDT", "1m", ohlcv[k * 100 : (k + 1) * 100])
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    threads = [threading.Thread(target=read), threading.Thread(target=read)]
    threads.append(threading.Thread(target=write))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors
    with Store(store_url, settings=make_settings(store_url)) as store:
        pd.testing.assert_frame_equal(
            store.read_bars("BTCUSDT", "1m"), ohlcv, check_exact=True, check_freq=False
        )


def test_large_overlapping_rewrite_is_exact(store_url: str) -> None:
    # Spans over 50,000 bars take the Arrow fetch path and the helper thread for rollups.
    bars = make_ohlcv(120_000, seed=5)
    store = Store(store_url, settings=make_settings(store_url))
    assert store.write_bars("BTCUSDT", "1m", bars) == 120_000
    assert store.write_bars("BTCUSDT", "1m", bars) == 0
    changed = bars.iloc[30_000:].copy()
    changed["close"] = changed[["open", "close"]].mean(axis=1)
    assert store.write_bars("BTCUSDT", "1m", changed) == 0
    expected = pd.concat([bars.iloc[:30_000], changed])
    got = store.read_bars("BTCUSDT", "1m")
    pd.testing.assert_frame_equal(got, expected, check_exact=True, check_freq=False)
    for tf in ("1h", "1d"):
        pd.testing.assert_frame_equal(
            store.resample("BTCUSDT", tf, start="2024-01-03 01:01"),
            store.resample("BTCUSDT", tf, start="2024-01-03 01:01", use_rollups=False),
            check_exact=True,
        )


def test_bars_reads_stored_or_resamples_from_the_finest_divisor(tmp_path: Path) -> None:
    url = str(tmp_path / "b.duckdb")
    store = Store(url, settings=make_settings(url))
    store.write_bars("BTCUSDT", "1m", make_ohlcv(600, seed=5))
    store.write_bars("BTCUSDT", "5m", make_ohlcv(120, seed=6, timeframe="5m"))
    pd.testing.assert_frame_equal(store.bars("BTCUSDT", "5m"), store.read_bars("BTCUSDT", "5m"))
    pd.testing.assert_frame_equal(
        store.bars("BTCUSDT", "1h", start="2024-01-01 01:00"),
        store.resample("BTCUSDT", "1h", "1m", start="2024-01-01 01:00"),
    )
    with pytest.raises(StoreError):
        store.bars("ETHUSDT", "1h")


@pytest.mark.parametrize("alias", ["1H", "60min", "1hour", " 1h"])
def test_bars_timeframe_alias_reads_the_stored_series(tmp_path: Path, alias: str) -> None:
    # With 1m and 1h stored, an alias of 1h must return the stored 1h bars (here unrelated
    # to the 1m ones), not 1h bars resampled from 1m.
    url = str(tmp_path / "alias.duckdb")
    store = Store(url, settings=make_settings(url))
    store.write_bars("BTCUSDT", "1m", make_ohlcv(600, seed=5))
    store.write_bars("BTCUSDT", "1h", make_ohlcv(10, seed=6, timeframe="1h"))
    pd.testing.assert_frame_equal(
        store.bars("BTCUSDT", alias), store.read_bars("BTCUSDT", "1h"), check_exact=True
    )


def test_bars_resamples_for_an_alias_and_a_padded_symbol(tmp_path: Path) -> None:
    url = str(tmp_path / "pad.duckdb")
    store = Store(url, settings=make_settings(url))
    store.write_bars("BTCUSDT", "1m", make_ohlcv(600, seed=5))
    pd.testing.assert_frame_equal(
        store.bars(" BTCUSDT ", "60min"), store.resample("BTCUSDT", "1h"), check_exact=True
    )


def test_bars_opens_the_store_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = str(tmp_path / "once.duckdb")
    store = Store(url, settings=make_settings(url))
    store.write_bars("BTCUSDT", "1m", make_ohlcv(600, seed=5))
    assert isinstance(store, DuckDBStore)
    attaches: list[bool] = []
    real_attach = DuckDBStore._attach

    def counting_attach(self: DuckDBStore, con: object, *, write: bool) -> None:
        attaches.append(write)
        real_attach(self, con, write=write)

    monkeypatch.setattr(DuckDBStore, "_attach", counting_attach)
    store.bars("BTCUSDT", "1h")
    store.bars("BTCUSDT", "1m")
    assert attaches == [False, False]
