"""End to end: `chimera walk-forward` on a real Dask cluster (scheduler + 2 workers started by the
session fixture), a failed start and its resume, fold reproduction from the manifest, the
look-ahead gate and `chimera lookahead`.

Data: the bundled Binance BTC/USDT 1-minute sample (data/samples/README.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest
from click.testing import CliRunner

from chimera_lab.cli import cli, main
from chimera_lab.pipelines import read_manifest

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "samples" / "btcusdt_1m_binance_20240726_20240825.csv.gz"
BIASED = REPO / "tests" / "validation" / "biased_strategies.py"
STRATEGIES = Path(__file__).resolve().parent / "strategies_for_tests.py"


def _digest(root: Path, skip: str) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.relative_to(root).parts[0] == skip
    }


def test_walk_forward_on_a_real_dask_cluster_end_to_end(
    tmp_path: Path,
    dask_cluster: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The strategy is a file named by a path relative to the current directory (the kernels
    # run elsewhere: it must be resolved when the run is planned).
    monkeypatch.chdir(tmp_path)
    (tmp_path / "strats").mkdir()
    shutil.copy(STRATEGIES, tmp_path / "strats" / "mine.py")
    strategy_file = tmp_path / "strats" / "mine.py"
    runs = tmp_path / "runs"
    plan = [
        "walk-forward",
        "--csv",
        str(SAMPLE),
        "--start",
        "2024-07-26",
        "--end",
        "2024-07-31 14:14",
        "--strategy",
        "strats/mine.py:trend",
        "--train",
        "2D",
        "--test",
        "1D",
        "--grid",
        '{"fast": [10, 30], "slow": [60]}',
        "--out",
        str(runs),
        "--no-progress",
    ]

    # 1. No scheduler at that address: the run is planned, fails to connect within the
    # configured timeout, and its folder records the failure instead of "running" forever.
    monkeypatch.setenv("CHIMERA_PIPELINE__CONNECT_TIMEOUT_S", "2")
    code = main([*plan, "--scheduler", "tcp://127.0.0.1:1"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot reach the Dask scheduler" in err and "--resume" in err
    (run,) = runs.iterdir()
    m = read_manifest(run)
    assert m["status"] == "failed" and m["error"]["type"] == "PipelineError"
    assert {t["status"] for t in m["tasks"]} == {"failed"}
    assert all(t["error"]["message"].startswith("not run: ") for t in m["tasks"])
    assert m["attempts"][0]["status"] == "failed"
    strategy = m["tasks"][0]["parameters"]["strategy"]
    assert strategy == f"{strategy_file}:trend"  # absolute: found from the fold folder
    assert (
        m["code"]["files"][str(strategy_file)]
        == hashlib.sha256(strategy_file.read_bytes()).hexdigest()
    )

    # 2. Resume it on the real cluster: --resume needs no planning option.
    code = main(["walk-forward", "--resume", str(run), "--scheduler", dask_cluster["address"],
                 "--no-progress", "--json"])  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    assert out["status"] == "ok" and Path(out["run_dir"]) == run
    assert [t["id"] for t in out["tasks"]] == ["fold-000", "fold-001", "fold-002", "report"]

    m = read_manifest(run)
    assert len(m["folds"]) == 3
    warm = m["checks"]["warmup"]
    assert (warm["method"], warm["signal_warmup_bars"], warm["warmup_bars"]) == ("auto", 59, 60)
    assert warm["per_params"] == [
        {"params": {"fast": 10, "slow": 60}, "warmup_bars": 59},
        {"params": {"fast": 30, "slow": 60}, "warmup_bars": 59},
    ]
    assert m["checks"]["lookahead"]["passed"] and len(m["checks"]["lookahead"]["checked"]) == 2
    assert [a["status"] for a in m["attempts"]] == ["failed", "ok"]
    # Every notebook ran in one of the cluster's two worker processes.
    pids = {int(t["worker"].rsplit(":", 1)[1]) for t in m["tasks"]}
    assert pids <= dask_cluster["worker_pids"]

    # Fold notebooks are executed and archived; OOS returns are stitched in order.
    parts = []
    for t in m["tasks"][:3]:
        nb = nbformat.read(run / t["notebook"], as_version=4)
        assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code")
        parts.append(pd.read_parquet(run / t["output_dir"] / "oos_returns.parquet")["returns"])
        result = json.loads((run / t["output_dir"] / "result.json").read_text())
        assert result["lookahead_check"]["passed"] and result["warmup_check"]["agreed"]
        assert result["strategy_sha256"] == m["code"]["files"][str(strategy_file)]
        assert result["cost_model"]["fee_bps"] == 6.0
    stitched = pd.read_parquet(run / "oos_returns.parquet")
    pd.testing.assert_series_equal(stitched["returns"], pd.concat(parts), check_freq=False)
    assert stitched.index[0] == pd.Timestamp("2024-07-28 14:15", tz="UTC")
    assert m["outputs"]["oos_bars"] == 3 * 1440

    # The report: a readable page without code.
    html = (run / "report.html").read_text()
    assert "Walk-forward report" in html and "out-of-sample" in html
    assert "load_walk_forward(" not in html
    assert html.count("<img") >= 3
    assert "fee 6 bps and slippage 0 bps per fill" in html
    coverage = pd.read_csv(run / "report" / "var_coverage.csv", index_col="method")
    assert "basel" not in coverage.columns  # one-minute bars: no Basel traffic light
    for verdict in coverage["verdict"]:
        assert verdict in html and ("coverage OK" in verdict or "VaR too" in verdict)

    # The report's header is built from the manifest.
    from chimera_lab.pipelines.report import load_walk_forward

    described = load_walk_forward(run).describe()
    assert "mine.py:trend" in described and "warm-up 60 bars (auto)" in described
    assert "3 of 3 folds finished" in described and "every one of 2 grid points" in described

    # Any fold can be reproduced from the manifest alone, without touching the archive: the
    # command runs in the run folder and writes to reproduce/<task>/.
    task = m["tasks"][1]
    before = _digest(run, skip="reproduce")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    subprocess.run(task["reproduce"], shell=True, cwd=run, env=env, check=True, timeout=300,
                   capture_output=True)  # fmt: skip
    assert _digest(run, skip="reproduce") == before
    original = json.loads((run / task["output_dir"] / "result.json").read_text())
    again = json.loads((run / "reproduce" / task["id"] / "result.json").read_text())
    assert again == original


def test_walk_forward_options_without_and_with_resume(tmp_path: Path) -> None:
    missing = CliRunner().invoke(cli, ["walk-forward", "--csv", str(SAMPLE), "--train", "1D"])
    assert missing.exit_code == 2 and "Missing option '--strategy'" in missing.output
    run = tmp_path / "run"
    run.mkdir()
    both = CliRunner().invoke(
        cli, ["walk-forward", "--resume", str(run), "--strategy", "sma_cross", "--out", "x"]
    )
    assert both.exit_code == 2 and "drop --strategy, --out" in both.output
    forced = CliRunner().invoke(
        cli,
        ["walk-forward", "--csv", str(SAMPLE), "--strategy", "s", "--train", "1", "--test", "1",
         "--force"],
    )  # fmt: skip
    assert forced.exit_code == 2 and "--force only applies to --resume" in forced.output


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
    assert verdict["passed"] is True and verdict["n_errors"] == 0  # runs on every prefix
    assert verdict["recursive_converged"] is True and verdict["recursive_warmup_bars"] > 0
