"""Several processes on one DuckDB store file: readers during an import, lock waits, timeouts.

DuckDB allows one read-write process or many read-only processes per file; the store opens the
file per call and retries on a lock conflict (see chimera_lab/data/duckdb_store.py). Worker
processes are started with ``sys.executable -c``; every loop and wait here is bounded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from chimera_lab.config import Settings
from chimera_lab.data import Store
from chimera_lab.data.synthetic import make_ohlcv
from chimera_lab.errors import StoreError

pytestmark = pytest.mark.slow

CHUNK, CHUNKS, OVERLAP = 4_000, 25, 50

READER = r"""
import json, sys, time
from pathlib import Path
from chimera_lab.config import Settings
from chimera_lab.data import Store

url, flags, name = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
store = Store(url, settings=Settings(_env_file=None, store={"url": url}))
reads = during = last_rows = 0
deadline = time.monotonic() + 240
while True:
    if time.monotonic() > deadline:
        raise SystemExit("reader: the import did not finish in time")
    began = (flags / "started").exists()
    df = store.read_bars("BTCUSDT", "1m")
    assert df.index.is_monotonic_increasing and df.index.is_unique
    assert len(df) >= last_rows, (len(df), last_rows)  # an import only ever adds rows
    last_rows = len(df)
    hourly = store.resample("BTCUSDT", "1h")
    assert len(hourly) > 0
    store.coverage()
    finished = (flags / "done").exists()
    reads += 1
    if began and not finished:
        during += 1
        (flags / f"during-{name}").touch()
    if reads == 1:
        (flags / f"ready-{name}").touch()
    if finished and reads >= 3:
        break
(flags / f"result-{name}.json").write_text(json.dumps({"reads": reads, "during": during}))
"""

WRITER = r"""
import sys, time
from pathlib import Path
from chimera_lab.config import Settings
from chimera_lab.data import Store
from chimera_lab.data.synthetic import make_ohlcv

url, flags, chunk, chunks, overlap = sys.argv[1], Path(sys.argv[2]), *map(int, sys.argv[3:6])
readers = sys.argv[6].split(",") if len(sys.argv) > 6 else []
store = Store(url, settings=Settings(_env_file=None, store={"url": url}))
bars = make_ohlcv(chunk * chunks, seed=3)
(flags / "started").touch()
new = 0
for k in range(1, chunks):
    new += store.write_bars("BTCUSDT", "1m", bars.iloc[k * chunk - overlap:(k + 1) * chunk])
    if k == 1:  # the import is under way: let each reader finish a read in it (bounded)
        deadline = time.monotonic() + 120
        while not all((flags / f"during-{r}").exists() for r in readers):
            if time.monotonic() > deadline:
                raise SystemExit("writer: the readers did not read during the import")
            time.sleep(0.01)
(flags / "done").touch()
print(new)
"""

HOLDER = r"""
import sys, time
from pathlib import Path
from chimera_lab.config import Settings
from chimera_lab.data import Store

url, flags, mode = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
store = Store(url, settings=Settings(_env_file=None, store={"url": url}))
with store.session(write=(mode == "write")):
    store.symbols()
    (flags / "holding").touch()
    deadline = time.monotonic() + 60
    while not (flags / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
"""


def spawn(code: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.01)


def finish(proc: subprocess.Popen[str], timeout_s: float = 240) -> str:
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"worker timed out; stderr:\n{err}") from None
    assert proc.returncode == 0, f"worker failed ({proc.returncode}):\n{err}"
    return out


@pytest.fixture(autouse=True)
def hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CHIMERA_* variable of the caller reaches these tests or their worker processes."""
    for name in list(os.environ):
        if name.upper().startswith("CHIMERA_"):
            monkeypatch.delenv(name)


def make_settings(url: str, **store: object) -> Settings:
    return Settings(_env_file=None, store={"url": url, **store})  # type: ignore[call-arg]


def test_two_readers_keep_reading_while_a_third_process_imports(tmp_path: Path) -> None:
    url = str(tmp_path / "shared.duckdb")
    flags = tmp_path / "flags"
    flags.mkdir()
    bars = make_ohlcv(CHUNK * CHUNKS, seed=3)
    store = Store(url, settings=make_settings(url))
    store.write_bars("BTCUSDT", "1m", bars.iloc[:CHUNK])
    readers = [spawn(READER, url, flags, name) for name in ("a", "b")]
    try:
        wait_for(lambda: all((flags / f"ready-{n}").exists() for n in "ab"), 60, "readers")
        writer = spawn(WRITER, url, flags, CHUNK, CHUNKS, OVERLAP, "a,b")
        assert int(finish(writer)) == CHUNK * (CHUNKS - 1)
        for reader in readers:
            finish(reader)
    finally:
        for proc in readers:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    results = [json.loads((flags / f"result-{n}.json").read_text()) for n in "ab"]
    assert all(r["during"] >= 1 for r in results), results  # they read while it imported
    got = store.read_bars("BTCUSDT", "1m")
    pd.testing.assert_frame_equal(got, bars, check_exact=True, check_freq=False)
    pd.testing.assert_frame_equal(
        store.resample("BTCUSDT", "1h"),
        store.resample("BTCUSDT", "1h", use_rollups=False),
        check_exact=True,
    )


def test_writer_waits_for_a_reading_process_and_blocks_new_readers(tmp_path: Path) -> None:
    url = str(tmp_path / "shared.duckdb")
    flags = tmp_path / "flags"
    flags.mkdir()
    store = Store(url, settings=make_settings(url))
    store.write_bars("BTCUSDT", "1m", make_ohlcv(100, seed=1))
    holder = spawn(HOLDER, url, flags, "read")
    writer = None
    try:
        wait_for(lambda: (flags / "holding").exists(), 60, "the reading process")
        writer = spawn(WRITER, url, flags, 100, 3, 0)
        gate = tmp_path / "shared.duckdb.lock"
        wait_for(
            lambda: gate.exists() and gate.read_text().startswith(f"PID {writer.pid}"),
            60,
            "the writer to queue on the gate",
        )
        # A writer is waiting: a new reader is held back (writers first), then times out.
        late = Store(url, settings=make_settings(url, lock_timeout_s=0.3))
        with pytest.raises(StoreError, match=f"being written by PID {writer.pid}"):
            late.read_bars("BTCUSDT", "1m")
        assert writer.poll() is None  # still waiting for the reader, not failed
        (flags / "release").touch()
        assert int(finish(writer)) == 200
        finish(holder)
    finally:
        for proc in (holder, writer):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert len(store.read_bars("BTCUSDT", "1m")) == 300


def test_lock_timeout_names_the_process_holding_the_store(tmp_path: Path) -> None:
    url = str(tmp_path / "shared.duckdb")
    flags = tmp_path / "flags"
    flags.mkdir()
    Store(url, settings=make_settings(url)).write_bars("BTCUSDT", "1m", make_ohlcv(10))
    holder = spawn(HOLDER, url, flags, "write")
    try:
        wait_for(lambda: (flags / "holding").exists(), 60, "the writing process")
        waiter = Store(url, settings=make_settings(url, lock_timeout_s=0.3))
        with pytest.raises(StoreError, match=f"PID {holder.pid}"):
            waiter.read_bars("BTCUSDT", "1m")
        (flags / "release").touch()
        finish(holder)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.communicate()
    assert len(waiter.read_bars("BTCUSDT", "1m")) == 10


FORKER = r"""
import os, sys
from chimera_lab.config import Settings
from chimera_lab.data import Store
from chimera_lab.data.synthetic import make_ohlcv

url = sys.argv[1]
store = Store(url, settings=Settings(_env_file=None, store={"url": url}))
store.write_bars("BTCUSDT", "1m", make_ohlcv(10, seed=1))
go_r, go_w = os.pipe()
with store.session(write=True):
    store.write_bars("BTCUSDT", "1m", make_ohlcv(20, seed=1))
    child = os.fork()  # inherits the writer's gate fd, like a multiprocessing worker
    if child == 0:  # stays in the session's block and outlives the parent's session
        os.close(go_w)
        os.read(go_r, 1)  # until the parent writes or exits (then the pipe closes)
        os._exit(0)
os.close(go_r)
try:
    # The session is over: another writer and a reader get in at once, child or no child.
    other = Store(url, settings=Settings(_env_file=None, store={"url": url, "lock_timeout_s": 2}))
    print(other.write_bars("BTCUSDT", "1m", make_ohlcv(30, seed=1)), flush=True)
    print(len(other.read_bars("BTCUSDT", "1m")), flush=True)
finally:
    os.write(go_w, b"x")
    _, status = os.waitpid(child, 0)
print(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
def test_a_child_forked_in_a_write_session_does_not_keep_the_store_locked(
    tmp_path: Path,
) -> None:
    url = str(tmp_path / "forked.duckdb")
    proc = spawn(FORKER, url)
    assert finish(proc, timeout_s=120).split() == ["10", "30", "0"]
