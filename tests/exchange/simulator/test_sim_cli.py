"""``chimera sim serve``: starts, prints where it listens, serves, stops on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from chimera_lab.cli import main

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "data" / "samples" / "btcusdt_1m_binance_20240726_20240825.csv.gz"


def test_serve_replay_prints_urls_serves_history_and_stops_on_sigint() -> None:
    env = {
        **os.environ,
        "CHIMERA_SIM__API_KEY": "env-key",
        "CHIMERA_SIM__API_SECRET": "env-secret",
        "CHIMERA_SIM__PASSPHRASE": "env-pass",
    }
    chimera = str(Path(sys.executable).with_name("chimera"))  # the console script
    cmd = [
        chimera,
        "sim",
        "serve",
        "--port",
        "0",
        "--json",
        "--replay",
        str(SAMPLE),
        "--faults",
        "latency=0.001",
        "--balance",
        "USDT=500",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once ready
        info = json.loads(line)
        assert info["ws_public_url"].endswith("/v2/ws/public")
        # The live clock starts at the file's end: the whole file is history.
        assert info["now"].startswith("2024-08-25T14:24")
        with httpx.Client(base_url=info["base_url"], timeout=10) as http:
            r = http.get(
                "/api/v2/spot/market/history-candles",
                params={
                    "symbol": "BTCUSDT",
                    "granularity": "1min",
                    "limit": "200",
                    "endTime": "1722500000000",
                },
            )
            rows = r.json()["data"]
            assert len(rows) == 200 and int(rows[-1][0]) < 1722500000000
            state = http.get("/_sim/state").json()["data"]
            assert state["faults"] == "latency_s=0.001"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    assert "env-secret" not in out + err


def test_serve_without_credentials_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("API_KEY", "API_SECRET", "PASSPHRASE"):
        monkeypatch.delenv(f"CHIMERA_SIM__{name}", raising=False)
    monkeypatch.chdir(REPO / "tests")  # no .env here
    assert main(["sim", "serve", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the simulator needs credentials") and err.count("\n") == 1


def test_serve_with_a_bad_start_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in (
        ("API_KEY", "key-1"),
        ("API_SECRET", "secret-1"),
        ("PASSPHRASE", "phrase-1"),
    ):
        monkeypatch.setenv(f"CHIMERA_SIM__{name}", value)
    monkeypatch.chdir(REPO / "tests")  # no .env here
    assert main(["sim", "serve", "--port", "0", "--start", "garbage"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: start='garbage' is not a date/time") and err.count("\n") == 1
