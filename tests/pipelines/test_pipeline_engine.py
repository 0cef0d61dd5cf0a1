"""The pipeline engine with a trivial template: manifest, failure, resume, Ctrl-C, secrets."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest
import yaml

from chimera_lab.config import Settings
from chimera_lab.data import load_ohlcv
from chimera_lab.data.samples import sample_path
from chimera_lab.errors import PipelineError
from chimera_lab.pipelines import (
    PipelineSpec,
    fingerprint_bars,
    read_manifest,
    run_pipeline,
    window_bars,
)
from chimera_lab.pipelines.manifest import sha256_file

TEMPLATE = Path(__file__).resolve().parent / "templates" / "trivial.ipynb"


def _spec(template: Path, **fold_params: Any) -> PipelineSpec:
    return PipelineSpec.model_validate(
        {
            "name": "trivial",
            "data": {"path": "btcusdt_1m"},
            "folds": {"train": "7D", "test": "7D", "warmup": 30},
            "steps": [
                {
                    "name": "fold",
                    "template": str(template),
                    "foreach": "fold",
                    "parameters": {"value": 21, **fold_params},
                },
                {"name": "summary", "template": str(template), "parameters": {"value": 5}},
            ],
        }
    )


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_failed_fold_is_recorded_and_resume_reruns_only_it(
    tmp_path: Path, trivial_template: Path, dask_client: Any
) -> None:
    flag = tmp_path / "fail-now"
    flag.touch()
    spec = _spec(trivial_template, fail_fold=1, fail_flag=str(flag))
    result = run_pipeline(spec, runs_dir=tmp_path / "runs", client=dask_client, progress=False)

    run = result.run_dir
    assert run.parent == tmp_path / "runs" and run.name.endswith("-trivial")
    assert result.status == "failed"
    m = read_manifest(run)
    assert m == result.manifest
    assert stat.S_IMODE((run / "manifest.json").stat().st_mode) == 0o644  # not mkstemp's 0600
    tasks = {t["id"]: t for t in m["tasks"]}
    assert list(tasks) == ["fold-000", "fold-001", "fold-002", "summary"]
    # The failure: recorded with its error and the notebook up to the failing cell.
    failed = tasks["fold-001"]
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "RuntimeError"
    assert "induced failure in fold 1" in failed["error"]["message"]
    assert "raise RuntimeError" in failed["error"]["cell_source"]
    nb = nbformat.read(run / failed["notebook"], as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [
        i
        for i, c in enumerate(code)
        if any(o.get("ename") == "RuntimeError" for o in c.get("outputs", []))
    ]
    assert errors == [2]  # parameters, injected parameters, then the failing cell
    assert not code[3]["outputs"]  # the cell after the failure never ran
    # The other folds and the summary finished.
    for tid in ("fold-000", "fold-002", "summary"):
        assert tasks[tid]["status"] == "ok", tasks[tid]["error"]
        assert (run / tasks[tid]["notebook"]).is_file()
    assert json.loads((run / "fold" / "fold-002" / "result.json").read_text()) == {
        "fold": 2,
        "value": 42,
    }
    assert (run / "summary.html").is_file() and "<html" in (run / "summary.html").read_text()
    # Attempts write into hidden temporary folders that are moved into place: none is left.
    assert not [p for p in run.rglob(".*") if p.name != ".ipynb_checkpoints"]

    # The manifest lets one reproduce a fold: spec, resolved parameters, data fingerprint.
    bars = load_ohlcv(sample_path("btcusdt_1m"))
    assert m["data"]["fingerprint"] == fingerprint_bars(bars)
    fold0 = m["folds"][0]
    assert fold0["warmup_bars"] == 30 and fold0["n_test"] == 7 * 1440
    expected = fingerprint_bars(
        window_bars(bars, fold0["train_start"], fold0["test_end"], warmup_bars=30)
    )
    assert tasks["fold-000"]["data_fingerprint"] == expected
    params = tasks["fold-000"]["parameters"]
    assert params["fold"] == 0 and params["value"] == 21
    # Paths into the run folder are relative to the kernel's working directory (the task's
    # output folder): a moved or copied run folder stays self-contained.
    assert params["output_dir"] == "."
    assert "-k python3 --cwd reproduce/fold-000" in tasks["fold-000"]["reproduce"]
    assert str(run) not in json.dumps(m["tasks"])
    assert m["environment"]["chimera_lab"] and m["environment"]["python"]
    assert m["code"]["files"] == {str(trivial_template): sha256_file(trivial_template)}
    assert [a["number"] for a in m["attempts"]] == [1] and m["attempts"][0]["status"] == "failed"
    assert m["spec"]["name"] == "trivial"
    for t in m["tasks"]:
        if t["status"] == "ok":
            assert t["duration_s"] > 0 and t["started"] <= t["finished"]
        assert [h["attempt"] for h in t["history"]] == [1]

    # Move the run folder (copy it elsewhere), remove the cause, resume the copy: only the
    # failed fold and the step after it run again, in the copy; the original is untouched.
    original = _tree_digest(run)
    moved = tmp_path / "elsewhere" / run.name
    shutil.copytree(run, moved)
    flag.unlink()
    again = run_pipeline(resume=moved, client=dask_client, progress=False)
    assert again.ok and again.run_dir == moved
    assert _tree_digest(run) == original
    attempts = {t["id"]: t["attempts"] for t in again.manifest["tasks"]}
    assert attempts == {"fold-000": 1, "fold-001": 2, "fold-002": 1, "summary": 2}
    assert json.loads((moved / "fold" / "fold-001" / "result.json").read_text())["value"] == 42
    assert not (run / "fold" / "fold-001" / "result.json").exists()
    m2 = read_manifest(moved)
    assert [a["status"] for a in m2["attempts"]] == ["failed", "ok"]
    assert m2["attempts"][1]["tasks"] == ["fold-001", "summary"]
    assert m2["attempts"][1]["resume"] is True and m2["attempts"][1]["code_changes"] == []
    history = {t["id"]: [(h["attempt"], h["status"]) for h in t["history"]] for t in m2["tasks"]}
    assert history["fold-001"] == [(1, "failed"), (2, "ok")]
    assert history["fold-000"] == [(1, "ok")]


def test_resume_refuses_other_code_unless_forced(tmp_path: Path, dask_client: Any) -> None:
    # A step that runs a strategy file: the file and the template are part of the run's code.
    strategy = tmp_path / "mystrat.py"
    strategy.write_text("def f(data):\n    return data['close'] * 0\n")
    nb = nbformat.read(TEMPLATE, as_version=4)
    nb.cells[1].source += '\nstrategy: str = ""  # a strategy file target'
    template = tmp_path / "step.ipynb"
    nbformat.write(nb, template)
    flag = tmp_path / "fail-now"
    flag.touch()
    spec = PipelineSpec.model_validate(
        {
            "name": "code",
            "steps": [
                {
                    "name": "s",
                    "template": str(template),
                    "parameters": {
                        "strategy": f"{strategy}:f",
                        "fail_fold": -1,
                        "fail_flag": str(flag),
                    },
                }
            ],
        }
    )
    first = run_pipeline(spec, runs_dir=tmp_path / "runs", client=dask_client, progress=False)
    assert first.status == "failed"
    files = first.manifest["code"]["files"]
    assert files[str(strategy)] == sha256_file(strategy)
    flag.unlink()
    strategy.write_text("def f(data):\n    return data['close'] * 0 + 1\n")
    with pytest.raises(PipelineError, match="the code differs") as info:
        run_pipeline(resume=first.run_dir, client=dask_client, progress=False)
    assert "mystrat.py" in str(info.value) and "--force" in str(info.value)
    assert read_manifest(first.run_dir)["status"] == "failed"  # nothing ran
    forced = run_pipeline(resume=first.run_dir, force=True, client=dask_client, progress=False)
    assert forced.ok
    attempts = forced.manifest["attempts"]
    assert [a["forced"] for a in attempts] == [False, True]
    assert any("mystrat.py" in c for c in attempts[1]["code_changes"])
    assert attempts[1]["files"][str(strategy)] == sha256_file(strategy)
    assert attempts[0]["files"][str(strategy)] == files[str(strategy)]


def test_resume_refuses_when_the_bars_changed(tmp_path: Path, trivial_template: Path) -> None:
    from chimera_lab.pipelines.manifest import write_manifest

    run = tmp_path / "run"
    run.mkdir()
    spec = _spec(trivial_template).with_paths_resolved()
    manifest = {
        "spec": spec.model_dump(mode="json"),
        "data": {"fingerprint": "x"},
        "folds": [
            {
                "train_start": "2024-07-26T14:15:00Z",
                "test_end": "2024-08-09T14:14:00Z",
                "warmup_bars": 0,
            }
        ],
        "tasks": [
            {
                "id": "fold-000",
                "step": "fold",
                "fold": 0,
                "status": "failed",
                "data_fingerprint": "0" * 64,
            }
        ],
    }
    write_manifest(run, manifest)
    with pytest.raises(PipelineError, match="changed since the run started"):
        run_pipeline(resume=run, progress=False)


def test_resume_checks_the_bars_of_exactly_the_tasks_it_reruns(
    tmp_path: Path, trivial_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chimera_lab.pipelines import plan as plan_module
    from chimera_lab.pipelines.manifest import write_manifest

    settings = Settings(_env_file=None)
    run = tmp_path / "run"
    run.mkdir()
    planned = plan_module.plan_run(_spec(trivial_template).with_paths_resolved(), run, settings)
    assert planned.to_run == set(planned.tasks)  # a new run runs everything
    manifest = planned.manifest
    folds = [r for r in manifest["tasks"] if r["step"] == "fold"]
    assert len(folds) >= 2
    for record in manifest["tasks"]:  # every task finished, its notebook is there
        record["status"] = "ok"
        notebook = run / record["notebook"]
        notebook.parent.mkdir(parents=True, exist_ok=True)
        notebook.write_text("{}", encoding="utf-8")
    write_manifest(run, manifest)
    loads: list[int] = []
    real_load = plan_module.load_bars

    def counting_load(**kwargs: Any) -> pd.DataFrame:
        loads.append(1)
        return real_load(**kwargs)

    monkeypatch.setattr(plan_module, "load_bars", counting_load)
    # Nothing to re-run: the bars are not even read.
    assert plan_module.plan_resume(run, settings).to_run == set()
    assert loads == []
    # An ok fold whose notebook is gone runs again, and so does the later step; its bars are
    # read once and checked ...
    (run / folds[1]["notebook"]).unlink()
    resumed = plan_module.plan_resume(run, settings)
    assert resumed.to_run == {folds[1]["id"], "summary"}
    assert loads == [1]
    # ... so changed bars under it are refused although the task's status is "ok" ...
    recorded = folds[1]["data_fingerprint"]
    folds[1]["data_fingerprint"] = "0" * 64
    write_manifest(run, manifest)
    with pytest.raises(PipelineError, match=f"the bars of task {folds[1]['id']} changed"):
        plan_module.plan_resume(run, settings)
    # ... while a fold that does not run again is not the resume's concern.
    folds[1]["data_fingerprint"], folds[0]["data_fingerprint"] = recorded, "0" * 64
    (run / folds[1]["notebook"]).write_text("{}", encoding="utf-8")
    write_manifest(run, manifest)
    assert plan_module.plan_resume(run, settings).to_run == set()


@pytest.mark.parametrize(
    ("parameters", "match"),
    [
        ({"api_key": "abc"}, "looks like a credential"),
        ({"value": "postgresql://quant:hunter2@db/bars"}, "URL with a password"),
        ({"value": "prefix-s3cr3t-value-suffix"}, "contains a configured secret"),
    ],
)
def test_secrets_never_reach_parameters(
    tmp_path: Path, trivial_template: Path, parameters: dict[str, str], match: str
) -> None:
    nb = nbformat.read(trivial_template, as_version=4)
    nb.cells[1].source += '\napi_key: str = ""  # (a template that asks for a key)'
    template = tmp_path / "asks_for_a_key.ipynb"
    nbformat.write(nb, template)
    spec = PipelineSpec.model_validate(
        {
            "name": "leaky",
            "steps": [{"name": "s", "template": str(template), "parameters": parameters}],
        }
    )
    settings = Settings(_env_file=None, bitget={"api_secret": "s3cr3t-value"})
    with pytest.raises(PipelineError, match=match):
        run_pipeline(spec, runs_dir=tmp_path / "runs", settings=settings, progress=False)
    assert not any((tmp_path / "runs").iterdir())  # nothing was written


def test_unknown_parameters_are_refused_with_a_suggestion(
    tmp_path: Path, trivial_template: Path
) -> None:
    spec = PipelineSpec.model_validate(
        {
            "name": "typo",
            "steps": [{"name": "s", "template": str(trivial_template), "parameters": {"valeu": 3}}],
        }
    )
    with pytest.raises(PipelineError, match="did you mean 'value'"):
        run_pipeline(spec, runs_dir=tmp_path, progress=False)


def _interrupt_a_running_notebook(
    tmp_path: Path, template: Path, where: list[str], hosts: list[int]
) -> tuple[Path, list[Any], str]:
    """Run a sleeping notebook with `chimera pipeline run`, Ctrl-C it once its kernel runs.

    ``hosts`` are the pids under which the kernel will appear (none: under chimera itself).
    Returns the run folder, the papermill child and kernel that were running, and stderr.
    """
    import psutil

    spec_file = tmp_path / "slow.yaml"
    spec_file.write_text(
        yaml.safe_dump(
            {
                "name": "slow",
                "steps": [
                    {"name": "nap", "template": str(template), "parameters": {"sleep_s": 120.0}}
                ],
            }
        )
    )
    runs = tmp_path / "runs"
    chimera = Path(sys.executable).with_name("chimera")
    proc = subprocess.Popen(
        [str(chimera), "pipeline", "run", str(spec_file), "--out", str(runs), "--no-progress"]
        + where,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Wait (bounded) until the notebook's kernel is running.
        deadline = time.monotonic() + 120
        running: list[Any] = []
        while time.monotonic() < deadline:
            family = [c for h in hosts or [proc.pid] for c in psutil.Process(h).children(True)]
            running = [
                c
                for c in family
                if any(k in " ".join(_cmdline(c)) for k in ("ipykernel", "pipelines._child"))
            ]
            if len(running) == 2:  # the papermill child and its kernel
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        assert len(running) == 2, "the notebook never started"
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    (run,) = runs.iterdir()
    return run, running, err


def _assert_cancelled(run: Path) -> None:
    m = read_manifest(run)
    assert m["status"] == "cancelled"
    assert [t["status"] for t in m["tasks"]] == ["cancelled"]
    assert m["attempts"][0]["status"] == "cancelled"
    # Nothing of the interrupted attempt was moved into place, nothing temporary is left.
    assert sorted(p.name for p in run.iterdir()) == ["manifest.json"]


@pytest.mark.slow
def test_ctrl_c_cancels_cleanly(tmp_path: Path, trivial_template: Path) -> None:
    import psutil

    run, running, err = _interrupt_a_running_notebook(
        tmp_path, trivial_template, ["--workers", "1"], []
    )
    assert "error: aborted" in err or "error: interrupted" in err
    assert '"level": "info"' not in err  # dask's chatter stays quiet without --verbose
    _assert_cancelled(run)
    # The papermill child and the kernel are gone (the local cluster's workers too).
    _, alive = psutil.wait_procs(running, timeout=30)
    assert not alive, [_cmdline(p) for p in alive]


@pytest.mark.slow
def test_ctrl_c_stops_the_notebook_on_a_remote_worker(
    tmp_path: Path, trivial_template: Path, dask_cluster: dict[str, Any]
) -> None:
    # The notebook runs under a `dask worker` started by the fixture, not under chimera: only
    # the run's cancel event can stop it there. Its worker survives and stays usable.
    import psutil

    workers = sorted(dask_cluster["worker_pids"])
    run, running, _ = _interrupt_a_running_notebook(
        tmp_path, trivial_template, ["--scheduler", dask_cluster["address"]], workers
    )
    _assert_cancelled(run)
    # The worker stopped the notebook and said so before chimera exited: an immediate
    # --resume cannot race a notebook still running from the cancelled attempt.
    (task,) = read_manifest(run)["tasks"]
    assert [h["status"] for h in task["history"]] == ["cancelled"]
    assert int(task["history"][0]["worker"].rsplit(":", 1)[1]) in workers
    _, alive = psutil.wait_procs(running, timeout=5)  # at most reaping left
    assert not alive, [_cmdline(p) for p in alive]
    assert all(psutil.pid_exists(pid) for pid in workers)


def _cmdline(p: Any) -> list[str]:
    import psutil

    try:
        return list(p.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def test_pipeline_status_command(tmp_path: Path, trivial_template: Path) -> None:
    from click.testing import CliRunner

    from chimera_lab.cli import cli
    from chimera_lab.pipelines.manifest import write_manifest

    run = tmp_path / "20240101T000000Z-x"
    run.mkdir()
    write_manifest(
        run,
        {
            "run_id": run.name,
            "status": "failed",
            "updated": "2024-01-01T00:00:00Z",
            "environment": {"chimera_lab": "0.1.0", "git": {"commit": "a" * 40, "dirty": True}},
            "data": None,
            "attempts": [
                {"number": 1, "status": "failed", "started": "2024-01-01T00:00:00Z"},
                {
                    "number": 2,
                    "status": "failed",
                    "started": "2024-01-01T01:00:00Z",
                    "forced": True,
                },
            ],
            "error": {"type": "PipelineError", "message": "cannot reach the Dask scheduler"},
            "tasks": [
                {
                    "id": "fold-000",
                    "status": "failed",
                    "duration_s": 1.5,
                    "error": {"type": "RuntimeError", "message": "boom"},
                }
            ],
        },
    )
    res = CliRunner().invoke(cli, ["pipeline", "status", str(run)])
    assert res.exit_code == 0, res.output
    assert "failed" in res.output and "RuntimeError: boom" in res.output
    assert "(dirty)" in res.output
    assert "attempts: 2 (with other code, --force: [2])" in res.output
    assert "error: PipelineError: cannot reach the Dask scheduler" in res.output
    res = CliRunner().invoke(cli, ["pipeline", "status", str(run), "--json"])
    assert json.loads(res.output)["tasks"][0]["id"] == "fold-000"


def test_stitch_run_concatenates_fold_returns(tmp_path: Path) -> None:
    from chimera_lab.pipelines import stitch_run

    idx = pd.date_range("2024-01-01", periods=6, freq="1h", tz="UTC", name="timestamp")
    records = []
    for k, (a, b) in enumerate([(0, 3), (3, 6)]):
        out = tmp_path / f"fold-{k}"
        out.mkdir()
        pd.DataFrame({"returns": [0.01, -0.02, 0.03][: b - a]}, index=idx[a:b]).to_parquet(
            out / "oos_returns.parquet"
        )
        records.append({"status": "ok", "fold": k, "output_dir": out.name})
    records.append({"status": "failed", "fold": 2, "output_dir": "missing"})
    outputs = stitch_run(tmp_path, records)
    assert outputs["oos_folds"] == [0, 1] and outputs["oos_bars"] == 6
    equity = pd.read_parquet(tmp_path / "oos_equity.parquet")["equity"]
    assert equity.iloc[-1] == pytest.approx((1.01 * 0.98 * 1.03) ** 2, rel=1e-12)
    assert outputs["oos_total_return"] == pytest.approx(equity.iloc[-1] - 1, rel=1e-12)
    # Overlapping folds cannot be stitched.
    records[1]["output_dir"] = records[0]["output_dir"]
    with pytest.raises(PipelineError, match="overlap"):
        stitch_run(tmp_path, records[:2])


def test_unparseable_parameter_lines_are_refused(tmp_path: Path, trivial_template: Path) -> None:
    # papermill silently skips `x: str = ""  # "" means ...` (quotes in the help comment);
    # such a parameter would keep its default in every fold.
    from chimera_lab.pipelines.execute import template_parameters

    nb = nbformat.read(trivial_template, as_version=4)
    nb.cells[1].source += '\nlabel: str = ""  # "" = no label'
    bad = tmp_path / "bad.ipynb"
    nbformat.write(nb, bad)
    with pytest.raises(PipelineError, match="cannot read the parameter"):
        template_parameters(bad)
    assert "value" in template_parameters(trivial_template)
