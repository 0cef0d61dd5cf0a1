"""End to end: `chimera walk-forward` on a real Dask cluster (scheduler + 2 workers started here),
fold reproduction from the manifest, the look-ahead gate and `chimera lookahead`.

Data: the bundled Binance BTC/USDT 1-minute sample (data/samples/README.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest
from click.testing import CliRunner

from chimera_lab.cli import cli
from chimera_lab.pipelines import read_manifest

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "samples" / "btcusdt_1m_binance_20240726_20240825.csv.gz"
BIASED = REPO / "tests" / "validation" / "biased_strategies.py"
DASK = Path(sys.executable).with_name("dask")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A real `dask scheduler` and two `dask worker` processes on 127.0.0.1, torn down after."""
    from distributed import Client

    scheduler_file = tmp_path / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [
        subprocess.Popen(
            [
                str(DASK),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--dashboard-address",
                "127.0.0.1:0",
                "--scheduler-file",
                str(scheduler_file),
            ],
            **quiet,  # type: ignore[call-overload]
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.is_file():
            assert procs[0].poll() is None, "dask scheduler exited"
            assert time.monotonic() < deadline, "dask scheduler did not start in 60 s"
            time.sleep(0.1)
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        str(DASK),
                        "worker",
                        "--scheduler-file",
                        str(scheduler_file),
                        "--host",
                        "127.0.0.1",
                        "--nworkers",
                        "1",
                        "--nthreads",
                        "1",
                        "--dashboard-address",
                        "127.0.0.1:0",
                    ],
                    **quiet,  # type: ignore[call-overload]
                )
            )
        with Client(scheduler_file=str(scheduler_file), timeout="30s") as client:
            client.wait_for_workers(2, timeout=120)
            address = client.scheduler_info()["address"]
            worker_pids = set(client.run(os.getpid).values())
        yield {"address": address, "worker_pids": worker_pids}
    finally:
        _stop(procs[1:])
        _stop(procs[:1])


def test_walk_forward_on_a_real_dask_cluster_end_to_end(
    tmp_path: Path, dask_cluster: dict[str, Any]
) -> None:
    import papermill

    runs = tmp_path / "runs"
    result = CliRunner().invoke(
        cli,
        [
            "walk-forward",
            "--csv",
            str(SAMPLE),
            "--start",
            "2024-07-26",
            "--end",
            "2024-07-31 14:14",
            "--strategy",
            "sma_cross",
            "--train",
            "2D",
            "--test",
            "1D",
            "--grid",
            '{"fast": [10, 30], "slow": [60]}',
            "--scheduler",
            dask_cluster["address"],
            "--out",
            str(runs),
            "--no-progress",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    run = Path(out["run_dir"])
    assert out["status"] == "ok"
    assert [t["id"] for t in out["tasks"]] == ["fold-000", "fold-001", "fold-002", "report"]

    m = read_manifest(run)
    assert len(m["folds"]) == 3
    assert m["checks"]["warmup"] == {
        "method": "auto",
        "warmup_bars": 59,
        "skipped": [],
        "per_params": [
            {"params": {"fast": 10, "slow": 60}, "warmup_bars": 59},
            {"params": {"fast": 30, "slow": 60}, "warmup_bars": 59},
        ],
    }
    assert m["checks"]["lookahead"]["lookahead"] is False
    # Every notebook ran in one of the cluster's two worker processes.
    pids = {int(t["worker"].rsplit(":", 1)[1]) for t in m["tasks"]}
    assert pids <= dask_cluster["worker_pids"]

    # Fold notebooks are executed and archived; OOS returns are stitched in order.
    parts = []
    for t in m["tasks"][:3]:
        nb = nbformat.read(run / t["notebook"], as_version=4)
        assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code")
        parts.append(pd.read_parquet(run / t["output_dir"] / "oos_returns.parquet")["returns"])
    stitched = pd.read_parquet(run / "oos_returns.parquet")
    pd.testing.assert_series_equal(stitched["returns"], pd.concat(parts), check_freq=False)
    assert stitched.index[0] == pd.Timestamp("2024-07-28 14:15", tz="UTC")
    assert m["outputs"]["oos_bars"] == 3 * 1440

    # The report: a readable page without code.
    html = (run / "report.html").read_text()
    assert "Walk-forward report" in html and "out-of-sample" in html
    assert "load_walk_forward(" not in html
    assert html.count("<img") >= 3

    # The report's header is built from the manifest.
    from chimera_lab.pipelines.report import load_walk_forward

    described = load_walk_forward(run).describe()
    assert "strategy sma_cross" in described and "warm-up 59 bars (auto)" in described
    assert "3 of 3 folds finished" in described

    # Any fold can be reproduced from the manifest alone.
    task = m["tasks"][1]
    params = dict(task["parameters"], output_dir=str(tmp_path / "again"))
    papermill.execute_notebook(
        task["template"],
        str(tmp_path / "again.ipynb"),
        parameters=params,
        progress_bar=False,
        cwd=str(tmp_path),
        extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
    )
    original = json.loads((run / task["output_dir"] / "result.json").read_text())
    again = json.loads((tmp_path / "again" / "result.json").read_text())
    assert again == original


def test_walk_forward_refuses_a_leaky_strategy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from chimera_lab.cli import main

    runs = tmp_path / "runs"
    code = main(
        [
            "walk-forward",
            "--csv",
            str(SAMPLE),
            "--end",
            "2024-08-02",
            "--strategy",
            f"{BIASED}:future_peek",
            "--train",
            "2D",
            "--test",
            "1D",
            "--warmup",
            "0",
            "--out",
            str(runs),
            "--no-progress",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "refusing to run" in err and "LOOK-AHEAD" in err
    assert not runs.exists() or not any(runs.iterdir())


def test_lookahead_command_flags_the_history_bug(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["lookahead", "--csv", str(SAMPLE), "--strategy", f"{BIASED}:future_peek", "--json"]
    )
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.output)
    assert verdict["lookahead"] is True
    assert pd.Timestamp(verdict["first_offending_timestamp"]).tzinfo is not None
    assert verdict["recursive_warmup_bars"] == 0
    human = CliRunner().invoke(
        cli,
        [
            "lookahead",
            "--csv",
            str(SAMPLE),
            "--strategy",
            f"{BIASED}:future_peek",
            "--param",
            "threshold=0.02",
            "--n-checks",
            "5",
        ],
    )
    assert human.exit_code == 0 and "LOOK-AHEAD" in human.output


def _builtin_strategies() -> list[str]:
    # Every strategy the package registers (test modules may register their own: not these).
    from chimera_lab.backtest import strategies

    return [
        n
        for n in strategies.names()
        if strategies.get(n).func.__module__.startswith("chimera_lab.")
    ]


def test_the_builtins_are_found() -> None:
    assert {"sma_cross", "rsi_reversion", "breakout", "bollinger_reversion"} <= set(
        _builtin_strategies()
    )


@pytest.mark.parametrize("name", _builtin_strategies())
def test_lookahead_command_clears_every_builtin(name: str) -> None:
    result = CliRunner().invoke(
        cli, ["lookahead", "--csv", str(SAMPLE), "--strategy", name, "--json"]
    )
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.output)
    assert verdict["lookahead"] is False and verdict["first_offending_timestamp"] is None
    assert verdict["recursive_converged"] is True and verdict["recursive_warmup_bars"] > 0
