"""``chimera data``: import, info, export, quality, delete; JSON shapes; errors exit 2.

Data: the bundled real sample data/samples/btcusdt_1m_binance_20240726_20240825.csv.gz
(43,209 Binance 1m bars, 2024-07-26 14:15 .. 2024-08-25 14:23 UTC, no gaps; README there) and,
where present, every file of ../shared/data (rows and ranges from its README).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pandas as pd
import pytest

from chimera_lab.cli import main
from chimera_lab.config import Settings
from chimera_lab.data import Store, load_ohlcv
from chimera_lab.data.synthetic import make_ohlcv

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "samples" / "btcusdt_1m_binance_20240726_20240825.csv.gz"


@pytest.fixture(autouse=True)
def hermetic_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The commands see no CHIMERA_* variable of the caller and no .env file (cwd is empty)."""
    for name in list(os.environ):
        if name.upper().startswith("CHIMERA_"):
            monkeypatch.delenv(name)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


def open_store(url: str) -> Store:
    return Store(url, settings=Settings(_env_file=None, store={"url": url}))  # type: ignore[call-arg]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> object:
    code, out, err = run(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_import_prints_rows_range_and_gaps(
    capsys: pytest.CaptureFixture[str], store_url: str
) -> None:
    code, out, err = run(
        capsys,
        "data",
        "import",
        str(SAMPLE),
        "--symbol",
        "BTCUSDT",
        "--timeframe",
        "1m",
        "--store",
        store_url,
    )
    assert code == 0, err
    assert "rows read   43,209" in out and "rows new    43,209" in out
    assert "2024-07-26T14:15:00Z .. 2024-08-25T14:23:00Z" in out
    assert "gaps        0 (0 missing bars)" in out


def test_import_json_has_the_documented_keys_and_is_idempotent(
    capsys: pytest.CaptureFixture[str], store_url: str
) -> None:
    args = ("data", "import", str(SAMPLE), "--symbol", "BTCUSDT", "--store", store_url)
    first = run_json(capsys, *args, "--timeframe", "1m")
    assert first == {
        "symbol": "BTCUSDT",
        "timeframe": "1m",
        "rows_read": 43_209,
        "rows_new": 43_209,
        "start": "2024-07-26T14:15:00Z",
        "end": "2024-08-25T14:23:00Z",
        "gaps": 0,
        "missing_bars": 0,
        "store": store_url,
    }
    again = run_json(capsys, *args)  # timeframe inferred from the spacing
    assert again["rows_new"] == 0 and again["timeframe"] == "1m"
    assert len(open_store(store_url).read_bars("BTCUSDT", "1m")) == 43_209


def test_import_reports_gaps_of_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, store_url: str
) -> None:
    bars = make_ohlcv(100, seed=2).drop(make_ohlcv(100, seed=2).index[[10, 11, 50]])
    path = tmp_path / "holes.csv"
    bars.to_csv(path)
    got = run_json(capsys, "data", "import", str(path), "--symbol", "X", "--store", store_url)
    assert (got["rows_read"], got["gaps"], got["missing_bars"]) == (97, 2, 3)


def test_info_lists_coverage_as_table_and_json(
    capsys: pytest.CaptureFixture[str], store_url: str
) -> None:
    store = open_store(store_url)
    with store.session(write=True):  # creates the file, with nothing in it
        pass
    code, out, _ = run(capsys, "data", "info", "--store", store_url)
    assert code == 0 and "is empty" in out
    assert run_json(capsys, "data", "info", "--store", store_url) == []
    store.write_bars("BTCUSDT", "1m", make_ohlcv(100).drop(make_ohlcv(100).index[5:8]))
    store.write_bars("ETHUSDT", "1h", make_ohlcv(24, timeframe="1h"))
    records = run_json(capsys, "data", "info", "--store", store_url)
    assert records[0] == {
        "symbol": "BTCUSDT",
        "timeframe": "1m",
        "first": "2024-01-01T00:00:00Z",
        "last": "2024-01-01T01:39:00Z",
        "rows": 97,
        "gaps": 1,
        "missing_bars": 3,
    }
    assert [r["symbol"] for r in records] == ["BTCUSDT", "ETHUSDT"]
    only = run_json(capsys, "data", "info", "--symbol", "ETHUSDT", "--store", store_url)
    assert [r["timeframe"] for r in only] == ["1h"]
    code, out, _ = run(capsys, "data", "info", "--store", store_url)
    lines = out.splitlines()
    assert lines[1].split() == ["symbol", "timeframe", "first", "last", "rows", "gaps", "missing"]
    assert lines[2].split()[:2] == ["BTCUSDT", "1m"] and lines[2].split()[-3:] == ["97", "1", "3"]


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".csv.gz", ".feather"])
def test_export_round_trips_through_load_ohlcv(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, store_url: str, suffix: str
) -> None:
    bars = make_ohlcv(500, seed=4)
    open_store(store_url).write_bars("BTCUSDT", "1m", bars)
    out = tmp_path / "sub" / f"bars{suffix}"
    got = run_json(
        capsys,
        "data",
        "export",
        "--symbol",
        "BTCUSDT",
        "--timeframe",
        "1m",
        "--out",
        str(out),
        "--start",
        "2024-01-01 01:00",
        "--end",
        "2024-01-01T02:00:00Z",
        "--store",
        store_url,
    )
    assert got == {
        "path": str(out),
        "rows": 61,
        "start": "2024-01-01T01:00:00Z",
        "end": "2024-01-01T02:00:00Z",
    }
    back = load_ohlcv(out)
    expected = bars.loc["2024-01-01 01:00":"2024-01-01 02:00"]
    pd.testing.assert_frame_equal(back, expected, check_exact=True, check_freq=False)
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary file left


def test_export_refuses_unknown_extension_and_empty_window(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, store_url: str
) -> None:
    open_store(store_url).write_bars("BTCUSDT", "1m", make_ohlcv(10))
    base = ("data", "export", "--symbol", "BTCUSDT", "--store", store_url, "--out")
    code, _, err = run(capsys, *base, str(tmp_path / "bars.xlsx"))
    assert code == 2 and err.startswith("error: ") and ".parquet" in err
    code, _, err = run(capsys, *base, str(tmp_path / "b.csv"), "--start", "2030-01-01")
    assert code == 2 and "no BTCUSDT 1m bars between 2030-01-01" in err
    assert not (tmp_path / "b.csv").exists()


def test_quality_of_a_file_and_of_stored_bars(
    capsys: pytest.CaptureFixture[str], store_url: str
) -> None:
    from_file = run_json(capsys, "data", "quality", str(SAMPLE))
    assert (from_file["rows"], from_file["gaps"], from_file["timeframe"]) == (43_209, 0, "1m")
    run_json(capsys, "data", "import", str(SAMPLE), "--symbol", "BTCUSDT", "--store", store_url)
    stored = run_json(
        capsys,
        "data",
        "quality",
        "--symbol",
        "BTCUSDT",
        "--timeframe",
        "1m",
        "--store",
        store_url,
        "--start",
        "2024-08-01",
        "--end",
        "2024-08-01 23:59",
    )
    assert (stored["rows"], stored["start"], stored["end"]) == (
        1440,
        "2024-08-01T00:00:00Z",
        "2024-08-01T23:59:00Z",
    )
    code, out, _ = run(capsys, "data", "quality", "--symbol", "BTCUSDT", "--store", store_url)
    assert code == 0 and "43,209" in out and "quality report" in out
    code, _, err = run(capsys, "data", "quality", "--store", store_url)
    assert code == 2 and err.startswith("error: ")


def test_delete_removes_a_series(capsys: pytest.CaptureFixture[str], store_url: str) -> None:
    open_store(store_url).write_bars("BTCUSDT", "1m", make_ohlcv(10))
    got = run_json(
        capsys,
        "data",
        "delete",
        "--symbol",
        "BTCUSDT",
        "--timeframe",
        "1m",
        "--yes",
        "--store",
        store_url,
    )
    assert got == {"symbol": "BTCUSDT", "timeframe": "1m", "rows_deleted": 10}
    assert open_store(store_url).symbols() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["import", "missing.csv", "--symbol", "X"], "does not exist"),
        (["export", "--symbol", "BTCUSD", "--out", "x.csv"], "did you mean BTCUSDT"),
        (["info", "--symbol", "ETH"], "no symbol 'ETH'"),
        (["quality", "--symbol", "BTCUSDT", "--timeframe", "1h"], "no 1h bars for BTCUSDT"),
        (["export", "--symbol", "BTCUSDT", "--out", "x.csv", "--start", "soon"], "--start"),
        (["import", "__README__", "--symbol", "X"], "README.md"),
    ],
)
def test_bad_input_prints_one_error_line_and_exits_2(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    store_url: str,
    args: list[str],
    message: str,
) -> None:
    open_store(store_url).write_bars("BTCUSDT", "1m", make_ohlcv(10))
    args = [str(REPO / "data" / "samples" / "README.md") if a == "__README__" else a for a in args]
    code, out, err = run(capsys, "data", *args, "--store", store_url)
    assert code == 2
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


def test_timeframe_aliases_are_printed_canonical(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, store_url: str
) -> None:
    daily = tmp_path / "daily.csv"
    make_ohlcv(30, timeframe="1d", seed=4).to_csv(daily)
    imported = run_json(
        capsys, "data", "import", str(daily), "--symbol", "BTCUSDT", "--timeframe", "1day",
        "--store", store_url,
    )  # fmt: skip
    assert imported["timeframe"] == "1d"
    code, out, err = run(
        capsys, "data", "import", str(daily), "--symbol", "BTCUSDT", "--timeframe", "1day",
        "--store", store_url,
    )  # fmt: skip
    assert code == 0 and out.startswith("imported BTCUSDT 1d from "), err
    out_file = tmp_path / "daily.parquet"
    code, out, err = run(
        capsys, "data", "export", "--symbol", "BTCUSDT", "--timeframe", "1day", "--out",
        str(out_file), "--store", store_url,
    )  # fmt: skip
    assert code == 0 and out.startswith("exported 30 BTCUSDT 1d bars"), err
    deleted = run_json(
        capsys, "data", "delete", "--symbol", "BTCUSDT", "--timeframe", "1day", "--yes",
        "--store", store_url,
    )  # fmt: skip
    assert deleted == {"symbol": "BTCUSDT", "timeframe": "1d", "rows_deleted": 30}


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_export_error_names_the_requested_path_not_the_temporary_file(
    capsys: pytest.CaptureFixture[str], store_url: str
) -> None:
    open_store(store_url).write_bars("BTCUSDT", "1m", make_ohlcv(10))
    code, out, err = run(
        capsys,
        "data",
        "export",
        "--symbol",
        "BTCUSDT",
        "--out",
        "/proc/x.csv",
        "--store",
        store_url,
    )
    assert code == 2 and out == ""
    assert err.startswith("error: cannot write --out /proc/x.csv: ") and err.count("\n") == 1, err
    assert ".tmp" not in err


def test_export_to_a_long_file_name_works(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, store_url: str
) -> None:
    # 250 characters: a valid name, too long for a temporary name built from it.
    open_store(store_url).write_bars("BTCUSDT", "1m", make_ohlcv(10))
    out = tmp_path / ("b" * 246 + ".csv")
    got = run_json(
        capsys, "data", "export", "--symbol", "BTCUSDT", "--out", str(out), "--store", store_url
    )
    assert got["rows"] == 10 and len(load_ohlcv(out)) == 10
    assert [p.name for p in out.parent.iterdir() if p.suffix == ".tmp"] == []


def test_start_after_end_is_named_in_iso(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, store_url: str
) -> None:
    open_store(store_url).write_bars("BTCUSDT", "1m", make_ohlcv(10))
    window = ("--start", "2024-08-05", "--end", "2024-08-01 12:00")
    for args in (
        ("export", "--symbol", "BTCUSDT", "--out", str(tmp_path / "x.csv"), *window),
        ("quality", "--symbol", "BTCUSDT", *window),
        ("quality", str(SAMPLE), *window),
    ):
        code, _, err = run(capsys, "data", *args, "--store", store_url)
        assert code == 2
        assert err == (
            "error: --start 2024-08-05T00:00:00Z is after --end 2024-08-01T12:00:00Z; swap them\n"
        )


@pytest.mark.parametrize(
    "args",
    [
        ["info"],
        ["info", "--symbol", "BTCUSDT"],
        ["export", "--symbol", "BTCUSDT", "--out", "x.csv"],
        ["quality", "--symbol", "BTCUSDT"],
        ["delete", "--symbol", "BTCUSDT", "--timeframe", "1m", "--yes"],
    ],
)
def test_reading_commands_refuse_a_missing_or_directory_store(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str]
) -> None:
    missing = tmp_path / "typo.duckdb"
    code, out, err = run(capsys, "data", *args, "--store", str(missing))
    assert code == 2 and out == ""
    assert err.startswith(f"error: no store at {missing} (no such file)") and err.count("\n") == 1
    assert not missing.exists()
    code, out, err = run(capsys, "data", *args, "--store", str(tmp_path))
    assert code == 2 and out == ""
    assert err.startswith(f"error: store {tmp_path} is a directory, not a DuckDB file"), err


def test_import_creates_a_missing_store_but_refuses_a_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    new = tmp_path / "sub" / "new.duckdb"
    args = ("data", "import", str(SAMPLE), "--symbol", "BTCUSDT")
    assert run_json(capsys, *args, "--store", str(new))["rows_new"] == 43_209
    code, _, err = run(capsys, *args, "--store", str(tmp_path))
    assert code == 2 and "is a directory, not a DuckDB file" in err


def test_data_help_lists_fetch_without_importing_it(capsys: pytest.CaptureFixture[str]) -> None:
    sys.modules.pop("chimera_lab.cli.exchange", None)
    code, out, _ = run(capsys, "data", "--help")
    assert code == 0
    for name in ("import", "info", "export", "quality", "fetch"):
        assert f"  {name}" in out
    assert "Page Bitget history candles into the store." in out
    assert "chimera_lab.cli.exchange" not in sys.modules


# --- every real file in ../shared/data: imported with the documented rows, or refused ------

REAL = {  # file: (timeframe, rows, first, last) from ../shared/data/README.md
    "btcusdt_1m_binance_20250520_20250818.csv.gz": (
        "1m",
        130_708,
        "2025-05-20 00:00",
        "2025-08-18 18:27",
    ),
    "ethusdt_1m_binance_20250520_20250818.csv.gz": (
        "1m",
        130_708,
        "2025-05-20 00:00",
        "2025-08-18 18:27",
    ),
    "btcusdt_1m_binance_20240726_20240825.csv.gz": (
        "1m",
        43_209,
        "2024-07-26 14:15",
        "2024-08-25 14:23",
    ),
    "ethusdt_1m_binance_20240726_20240825.csv.gz": (
        "1m",
        43_208,
        "2024-07-26 14:16",
        "2024-08-25 14:23",
    ),
    "btcusdt_1m_binanceus_20230301_20230321.csv.gz": (
        "1m",
        30_240,
        "2023-03-01 00:00",
        "2023-03-21 23:59",
    ),
    "btcusd_1m_binanceus_20230301_20230321.csv.gz": (
        "1m",
        30_240,
        "2023-03-01 00:00",
        "2023-03-21 23:59",
    ),
    "btcusdc_1m_binanceus_20230301_20230321.csv.gz": (
        "1m",
        30_240,
        "2023-03-01 00:00",
        "2023-03-21 23:59",
    ),
    "btcusdt_1h_binance_20170817_20240101.csv.gz": (
        "1h",
        55_765,
        "2017-08-17 04:00",
        "2024-01-01 23:00",
    ),
    "btcusdt_1h_binance_20180101_20260516.csv.gz": (
        "1h",
        73_265,
        "2018-01-01 00:00",
        "2026-05-16 18:00",
    ),
    "ethusdt_1h_binance_20180101_20260516.csv.gz": (
        "1h",
        73_265,
        "2018-01-01 00:00",
        "2026-05-16 18:00",
    ),
    "ethusdt_1h_binance_20200920_20250919.csv.gz": (
        "1h",
        43_803,
        "2020-09-20 00:00",
        "2025-09-19 22:00",
    ),
    "btcusdt_1d_binance_20170817_20250826.csv": ("1d", 2_932, "2017-08-17", "2025-08-26"),
    "btcusd_1d_bitstamp-coinbase_20110818_20250924.csv": ("1d", 5_152, "2011-08-18", "2025-09-24"),
}


@pytest.mark.slow
def test_every_shared_file_imports_with_documented_rows_or_is_refused(
    capsys: pytest.CaptureFixture[str], shared_data: Path, store_url: str
) -> None:
    files = sorted(p for p in shared_data.rglob("*") if p.is_file())
    assert set(REAL) <= {p.name for p in files}
    for path in files:
        symbol = path.name.split(".")[0].upper()
        code, out, err = run(
            capsys, "data", "import", str(path), "--symbol", symbol, "--store", store_url, "--json"
        )
        if path.name in REAL:
            timeframe, rows, first, last = REAL[path.name]
            assert code == 0, err
            got = json.loads(out)
            assert got["timeframe"] == timeframe
            assert (got["rows_new"], got["start"], got["end"]) == (
                rows,
                pd.Timestamp(first, tz="UTC").isoformat().replace("+00:00", "Z"),
                pd.Timestamp(last, tz="UTC").isoformat().replace("+00:00", "Z"),
            ), path.name
        elif path.suffix == ".feather":  # byte-exact originals of converted CSVs
            assert code == 0, err
        else:  # funding rates, news, manifests: not bars, refused with a clear DataError
            assert code == 2 and out == "", path.name
            assert err.startswith("error: ") and str(path) in err, err
    coverage = open_store(store_url).coverage()
    by_symbol = coverage.set_index("symbol")["rows"]
    for name, (_, rows, _, _) in REAL.items():
        assert by_symbol[name.split(".")[0].upper()] == rows
