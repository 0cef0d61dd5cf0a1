"""Benchmark the bar store against pandas and sqlite3 doing the same work, in the same run.

Data: ``make_ohlcv(1_000_000, seed=42)`` one-minute bars written to a CSV file (ISO timestamps,
as ``DataFrame.to_csv`` writes them). Operations, each the median of ``--repeat`` runs:

- import: chimera = ``load_ohlcv`` + ``Store.write_bars`` into a fresh DuckDB file (the user
  path, validation included); pandas = ``read_csv`` with timestamp parsing (in memory only);
  sqlite3 = the same parse + inserts into an indexed table, committed.
- read all: chimera ``read_bars``; pandas ``read_csv`` again (no store); sqlite3 ``SELECT``
  ordered by time into a DataFrame.
- 1h resample of everything, and of a 30-day window that starts and ends mid-hour: chimera
  ``Store.resample`` (rollups + SQL edges, one call with its own file open/close); pandas
  ``df.resample`` on bars already in memory; ``read_bars`` + pandas; sqlite3 ``GROUP BY``
  joined back for open/close; and DuckDB's plain ``GROUP BY`` over raw bars
  (``use_rollups=False``) to show what the rollups buy.

Run: ``.venv/bin/python benchmarks/bench_store.py [--rows N] [--repeat K]``. Prints a table with
ratios and writes ``benchmarks/results/store.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from chimera_lab.config import Settings
from chimera_lab.data import Store, load_ohlcv
from chimera_lab.data.synthetic import make_ohlcv

RESULTS = Path(__file__).resolve().parent / "results" / "store.json"
HOUR_NS = 3_600_000_000_000
AGG = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}


SAMPLES: list[list[float]] = []  # every timing, in order, for the JSON (this script only)


def timed(fn: Callable[[], Any], repeat: int, setup: Callable[[], Any] | None = None) -> float:
    """Median wall time of ``fn`` over ``repeat`` runs (``setup`` runs untimed before each)."""
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    SAMPLES.append(times)
    return statistics.median(times)


def pandas_read(csv: Path) -> pd.DataFrame:
    df = pd.read_csv(csv, index_col="timestamp")
    df.index = pd.to_datetime(df.index, utc=True).as_unit("ns")
    return df


def pandas_resample(df: pd.DataFrame) -> pd.DataFrame:
    out = df.resample("1h", origin="epoch", label="left", closed="left").agg(AGG)
    return out.dropna(subset=["open"])


class SqliteStore:
    """The stdlib baseline: one indexed table, the same operations as the store."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def create(self) -> None:
        for p in (self.path, Path(f"{self.path}-journal")):
            p.unlink(missing_ok=True)
        with sqlite3.connect(self.path) as con:
            con.execute(
                "CREATE TABLE bars (symbol TEXT, timeframe TEXT, ts INTEGER, open REAL, high REAL,"
                " low REAL, close REAL, volume REAL, PRIMARY KEY (symbol, timeframe, ts))"
            )

    def import_csv(self, csv: Path) -> None:
        df = pandas_read(csv)
        rows = zip(
            df.index.asi8.tolist(),
            *(df[c].tolist() for c in ("open", "high", "low", "close", "volume")),
            strict=True,
        )
        con = sqlite3.connect(self.path)
        try:
            with con:
                con.executemany(
                    "INSERT OR REPLACE INTO bars VALUES ('BTCUSDT', '1m', ?, ?, ?, ?, ?, ?)", rows
                )
        finally:
            con.close()

    def read_all(self) -> pd.DataFrame:
        con = sqlite3.connect(self.path)
        try:
            rows = con.execute(
                "SELECT ts, open, high, low, close, volume FROM bars "
                "WHERE symbol = 'BTCUSDT' AND timeframe = '1m' ORDER BY ts"
            ).fetchall()
        finally:
            con.close()
        arr = np.array(rows, dtype=np.float64)
        idx = pd.DatetimeIndex(np.array([r[0] for r in rows], dtype="M8[ns]"), tz="UTC")
        return pd.DataFrame(arr[:, 1:], columns=list(AGG), index=idx)

    def resample(self, start: int, end: int) -> list[tuple[Any, ...]]:
        con = sqlite3.connect(self.path)
        try:
            return con.execute(
                "WITH g AS (SELECT (ts / :step) * :step AS bucket, min(ts) AS t0, max(ts) AS t1, "
                "max(high) AS high, min(low) AS low, sum(volume) AS volume FROM bars "
                "WHERE symbol = 'BTCUSDT' AND timeframe = '1m' AND ts BETWEEN :a AND :b "
                "GROUP BY bucket) "
                "SELECT g.bucket, o.open, g.high, g.low, c.close, g.volume FROM g "
                "JOIN bars o ON o.symbol = 'BTCUSDT' AND o.timeframe = '1m' AND o.ts = g.t0 "
                "JOIN bars c ON c.symbol = 'BTCUSDT' AND c.timeframe = '1m' AND c.ts = g.t1 "
                "ORDER BY g.bucket",
                {"step": HOUR_NS, "a": start, "b": end},
            ).fetchall()
        finally:
            con.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    n, repeat = args.rows, args.repeat

    bars = make_ohlcv(n, seed=42)
    with tempfile.TemporaryDirectory(prefix="chimera-bench-") as tmp:
        tmpdir = Path(tmp)
        csv = tmpdir / "bars.csv"
        bars.to_csv(csv)
        db = tmpdir / "store.duckdb"
        settings = Settings(_env_file=None, store={"url": str(db)})  # type: ignore[call-arg]

        def fresh_store() -> None:
            for p in tmpdir.glob("store.duckdb*"):
                p.unlink()

        def chimera_import() -> None:
            Store(db, settings=settings).write_bars("BTCUSDT", "1m", load_ohlcv(csv))

        loaded: dict[str, pd.DataFrame] = {}
        t_load = timed(lambda: loaded.__setitem__("df", load_ohlcv(csv)), repeat)
        t_write = timed(
            lambda: Store(db, settings=settings).write_bars("BTCUSDT", "1m", loaded["df"]),
            repeat,
            setup=fresh_store,
        )
        t_import = timed(chimera_import, repeat, setup=fresh_store)
        store = Store(db, settings=settings)  # holds the last import
        assert store.coverage()["rows"].iloc[0] == n

        t_pd_read = timed(lambda: pandas_read(csv), repeat)
        sq = SqliteStore(tmpdir / "bars.sqlite")
        sq_repeat = max(1, min(repeat, 3))  # sqlite3 imports are slow; 3 runs are plenty
        t_sq_import = timed(lambda: sq.import_csv(csv), sq_repeat, setup=sq.create)

        def duck_native_import() -> None:
            con = duckdb.connect(str(tmpdir / "native.duckdb"))
            try:
                con.execute(f"CREATE TABLE bars AS SELECT * FROM read_csv('{csv}')")
            finally:
                con.close()

        t_duck_native = timed(
            duck_native_import,
            repeat,
            setup=lambda: [p.unlink() for p in tmpdir.glob("native.duckdb*")],
        )

        # --- read everything
        t_read = timed(lambda: store.read_bars("BTCUSDT", "1m"), repeat)
        t_sq_read = timed(sq.read_all, repeat)

        # --- resample, whole range and a 30-day window starting and ending mid-hour
        mem = pandas_read(csv)
        w0 = bars.index[n // 5] + pd.Timedelta(minutes=17)
        w1 = w0 + pd.Timedelta(days=30) - pd.Timedelta(minutes=31)
        results: dict[str, dict[str, float]] = {}
        for label, (a, b) in {
            "resample 1h, all": (None, None),
            "resample 1h, 30 days": (w0, w1),
        }.items():
            lo = -(2**63) if a is None else a.value
            hi = 2**63 - 1 if b is None else b.value
            window_mem = mem if a is None else mem.loc[a:b]
            got = store.resample("BTCUSDT", "1h", start=a, end=b)
            ref = pandas_resample(window_mem)
            assert got.index.equals(ref.index.as_unit("ns"))
            assert np.array_equal(got["close"].to_numpy(), ref["close"].to_numpy())
            results[label] = {
                "chimera": timed(
                    lambda a=a, b=b: store.resample("BTCUSDT", "1h", start=a, end=b), repeat
                ),
                "duckdb_group_by": timed(
                    lambda a=a, b=b: store.resample(
                        "BTCUSDT", "1h", start=a, end=b, use_rollups=False
                    ),
                    repeat,
                ),
                "pandas_in_memory": timed(lambda w=window_mem: pandas_resample(w), repeat),
                "read_bars_plus_pandas": timed(
                    lambda a=a, b=b: pandas_resample(
                        store.read_bars("BTCUSDT", "1m", start=a, end=b)
                    ),
                    repeat,
                ),
                "sqlite3": timed(lambda lo=lo, hi=hi: sq.resample(lo, hi), repeat),
            }
        file_mb = db.stat().st_size / 1e6

    rows_per_s = n / t_import
    table = [
        ("import CSV", t_import, t_pd_read, t_sq_import),
        ("read all bars", t_read, t_pd_read, t_sq_read),
        *(
            (label, r["chimera"], r["pandas_in_memory"], r["sqlite3"])
            for label, r in results.items()
        ),
    ]
    print(
        f"bar store benchmark: {n:,} 1m bars, median of {repeat} runs (sqlite3 import: "
        f"{sq_repeat}); {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'operation':<22}{'chimera':>12}{'pandas':>12}{'sqlite3':>12}"
        f"{'vs pandas':>11}{'vs sqlite3':>12}"
    )
    for label, ours, pdt, sqt in table:
        print(
            f"{label:<22}{ours * 1e3:>10.1f}ms{pdt * 1e3:>10.1f}ms{sqt * 1e3:>10.1f}ms"
            f"{pdt / ours:>10.1f}x{sqt / ours:>11.1f}x"
        )
    print()
    print(
        f"import = load_ohlcv {t_load * 1e3:.0f} ms + write_bars {t_write * 1e3:.0f} ms "
        f"(measured apart); {rows_per_s / 1e6:.2f} M rows/s with validation; DuckDB's own "
        f"read_csv into a table: {t_duck_native * 1e3:.0f} ms; store file {file_mb:.1f} MB"
    )
    for label, r in results.items():
        print(
            f"{label}: read_bars + pandas {r['read_bars_plus_pandas'] * 1e3:.1f} ms, "
            f"plain DuckDB GROUP BY {r['duckdb_group_by'] * 1e3:.1f} ms"
        )
    full = results["resample 1h, all"]
    targets = {
        "import >= 2M rows/s": rows_per_s >= 2e6,
        "read_bars of all rows <= 0.1 s": t_read <= 0.1,
        "resample 1h of all rows <= 10 ms": full["chimera"] <= 0.010,
        "resample >= 50x sqlite3": full["sqlite3"] / full["chimera"] >= 50,
        "resample faster than read_bars + pandas": full["chimera"] < full["read_bars_plus_pandas"],
    }
    print("targets: " + "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in targets.items()))

    report = {
        "benchmark": "store",
        "rows": n,
        "repeat": repeat,
        "when": pd.Timestamp.now(tz="UTC").isoformat(),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": sys.version.split()[0],
            "duckdb": duckdb.__version__,
            "pandas": pd.__version__,
            "sqlite": sqlite3.sqlite_version,
        },
        "seconds": {
            "import": {
                "chimera": t_import,
                "chimera_load_ohlcv": t_load,
                "chimera_write_bars": t_write,
                "pandas_read_csv": t_pd_read,
                "sqlite3": t_sq_import,
                "duckdb_read_csv_native": t_duck_native,
            },
            "read_all": {"chimera": t_read, "pandas_read_csv": t_pd_read, "sqlite3": t_sq_read},
            **{label.replace(" ", "_").replace(",", ""): r for label, r in results.items()},
        },
        "import_rows_per_s": rows_per_s,
        "load_average_1m_after": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "all_samples_s": SAMPLES,
        "store_file_mb": file_mb,
        "targets": targets,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
