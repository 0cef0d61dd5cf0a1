"""Planning a run: from a spec (or a run folder to resume) to notebook tasks and a manifest.

:func:`plan_run` loads and fingerprints the bars, makes the folds, runs the walk-forward
checks (warm-up, look-ahead gate), resolves every task's parameters against its template, and
builds the initial manifest; :func:`plan_resume` rebuilds the tasks of an existing run folder
after checking that each fold's bars and the code are unchanged. Nothing here executes a
notebook.

A run folder can be moved or copied: nothing in the manifest points into it by an absolute
path. Each task's kernel runs in the task's output folder, so the injected ``output_dir`` is
``"."`` and ``run_dir`` is the relative path from there to the run folder (``"../.."`` for a
fold, ``".."`` for a report); the manifest records notebook and output paths relative to the
run folder, and a resume rebuilds the absolute paths from wherever the folder is now.
"""

from __future__ import annotations

import difflib
import json
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from chimera_lab.config import Settings
from chimera_lab.errors import PipelineError
from chimera_lab.logging import get_logger
from chimera_lab.pipelines.data import load_bars, source_parameters, window_bars
from chimera_lab.pipelines.execute import NotebookTask, template_parameters
from chimera_lab.pipelines.manifest import (
    code_differences,
    collect_environment,
    fingerprint_bars,
    iso_utc,
    read_manifest,
    sha256_file,
    utc_now,
)
from chimera_lab.pipelines.safety import assert_no_secrets
from chimera_lab.pipelines.spec import PipelineSpec, StepSpec
from chimera_lab.validation import Fold, walk_forward_splits

__all__ = [
    "RunPlan",
    "code_identity",
    "plan_resume",
    "plan_run",
    "reproduce_command",
    "tasks_to_run",
]

log = get_logger(__name__)


_RUN_RELATIVE = ("output_dir", "run_dir")  # implicit parameters that point into the run folder


def code_identity(spec: PipelineSpec) -> dict[str, Any]:
    """Return what identifies the code a run executes: environment and executed files.

    ``files`` maps each template and each ``file.py:function`` strategy of the spec to its
    SHA-256 (see :func:`~chimera_lab.pipelines.manifest.code_differences`).
    """
    from chimera_lab.pipelines.folds import strategy_file

    files: dict[str, str | None] = {}
    for step in spec.steps:
        paths = [Path(step.template)]
        source = strategy_file(step.parameters.get("strategy"))
        if source is not None:
            paths.append(source)
        for path in paths:
            files[str(path)] = sha256_file(path) if path.is_file() else None
    return {"environment": collect_environment(), "files": files}


def reproduce_command(record: Mapping[str, Any], kernel: str) -> str:
    """Return the shell command that re-executes a task into ``reproduce/<task>/``.

    Run it **in the run folder** (it uses relative paths, so a moved folder works): it
    creates ``reproduce/<task>/``, runs the template there with papermill (kernel pinned with
    ``-k``, working directory pinned with ``--cwd``, the recorded parameters with ``-y``) and
    leaves the archived outputs untouched.
    """
    target = f"reproduce/{record['id']}"
    params = dict(record["parameters"])
    if "output_dir" in params:
        params["output_dir"] = "."
    if "run_dir" in params:
        params["run_dir"] = os.path.relpath(".", target)
    # -y takes the parameters as YAML (JSON is YAML): exact types, unlike -p's guessing.
    blob = json.dumps(params, sort_keys=True)
    return (
        f"mkdir -p {target} && papermill -k {shlex.quote(kernel)} --cwd {target} "
        f"{shlex.quote(str(record['template']))} {target}/{record['id']}.ipynb "
        f"-y {shlex.quote(blob)}"
    )


def _encode(value: Any, declared_type: str | None) -> Any:
    # Templates take grids etc. as JSON strings; a YAML mapping becomes that JSON.
    if declared_type == "str" and isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return value


def _task_parameters(
    step: StepSpec,
    declared: Mapping[str, dict[str, Any]],
    implicit: Mapping[str, Any],
) -> dict[str, Any]:
    unknown = [k for k in step.parameters if k not in declared]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, list(declared), n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise PipelineError(
            f"step {step.name!r}: template {step.template} declares no parameter "
            f"{', '.join(hints)}; it declares {', '.join(sorted(declared))}"
        )
    params: dict[str, Any] = {k: v for k, v in implicit.items() if k in declared}
    params.update(step.parameters)
    return {k: _encode(v, declared[k]["type"]) for k, v in params.items()}


def _fold_record(fold: Fold, warmup_bars: int) -> dict[str, Any]:
    return {**fold.to_dict(), "warmup_bars": warmup_bars}


@dataclass
class RunPlan:
    """Tasks to run, in step order, and the manifest that records them."""

    spec: PipelineSpec
    run_dir: Path
    manifest: dict[str, Any]
    tasks: dict[str, NotebookTask]
    steps: list[tuple[StepSpec, list[str]]]
    code: dict[str, Any]
    code_changes: list[str]
    to_run: set[str]
    """Ids of the tasks this attempt executes (see :func:`tasks_to_run`)."""


def _needs_run(record: Mapping[str, Any], run_dir: Path) -> bool:
    if record["status"] != "ok":
        return True
    return not (run_dir / record["notebook"]).is_file()


def tasks_to_run(
    records: Sequence[Mapping[str, Any]], step_ids: Sequence[Sequence[str]], run_dir: Path
) -> set[str]:
    """Return the ids of the tasks an attempt executes.

    A task runs unless it finished ``ok`` and its executed notebook is still there; every
    task of a step after one with a task to run runs too (a report must reflect the folds it
    summarises). ``step_ids`` lists each step's task ids, in step order.
    """
    to_run = {str(r["id"]) for r in records if _needs_run(r, run_dir)}
    rerun_later = False
    for ids in step_ids:
        if rerun_later:
            to_run.update(ids)
        if to_run.intersection(ids):
            rerun_later = True
    return to_run


def _load_data(spec: PipelineSpec) -> pd.DataFrame | None:
    if spec.data is None:
        return None
    # The very parameters each notebook gets, so driver and notebooks read the same bars.
    return load_bars(**source_parameters(spec.data))


def plan_run(spec: PipelineSpec, run_dir: Path, settings: Settings) -> RunPlan:
    """Plan a new run of ``spec`` in ``run_dir`` (see the module notes)."""
    from chimera_lab.pipelines import walk_forward

    # Refuse credentials before anything is read or written (the spec goes into the manifest).
    assert_no_secrets(spec.model_dump(mode="json"), settings=settings, what="spec entry")
    bars = _load_data(spec)
    data_record: dict[str, Any] | None = None
    folds: list[Fold] = []
    prep: dict[str, Any] = {}
    if bars is not None:
        assert spec.data is not None
        data_record = {
            "source": spec.data.model_dump(),
            "fingerprint": fingerprint_bars(bars),
            "n_bars": len(bars),
            "first": iso_utc(bars.index[0]),
            "last": iso_utc(bars.index[-1]),
        }
        # Pin the resolved range so the notebooks and a later --resume read the same bars.
        if spec.data.lookback:
            spec = spec.model_copy(
                update={
                    "data": spec.data.model_copy(
                        update={
                            "start": iso_utc(bars.index[0]),
                            "end": iso_utc(bars.index[-1]),
                            "lookback": None,
                        }
                    )
                }
            )
    if spec.folds is not None:
        assert bars is not None
        f = spec.folds
        folds = list(
            walk_forward_splits(
                bars,
                train=f.train,
                test=f.test,
                step=f.step,
                anchored=f.anchored,
                embargo=f.embargo,
                partial=f.partial,
            )
        )
        prep = walk_forward.prepare(spec, bars)
    warmup_bars = int(prep.get("warmup_bars", 0))
    code = code_identity(spec)
    manifest: dict[str, Any] = {
        "run_id": run_dir.name,
        "name": spec.name,
        "status": "pending",
        "created": utc_now(),
        "updated": utc_now(),
        "spec": spec.model_dump(mode="json"),
        "environment": code["environment"],
        "code": code,
        "attempts": [],
        "data": data_record,
        "folds": [_fold_record(fold, warmup_bars) for fold in folds],
        "checks": prep.get("checks", {}),
        "outputs": {},
        "tasks": [],
    }
    implicit_data = source_parameters(spec.data) if spec.data is not None else {}
    costs = settings.backtest
    implicit_costs = {
        "fee_bps": costs.fee_bps,
        "slippage_bps": costs.slippage_bps,
        "initial_capital": costs.initial_capital,
    }
    # Per fold, once (not per foreach step): its window bounds and the fingerprint of its bars.
    windows = {fold.number: fold.to_dict() for fold in folds}
    prints: dict[int, str] = {}
    if bars is not None and any(step.foreach == "fold" for step in spec.steps):
        prints = {
            fold.number: fingerprint_bars(
                window_bars(bars, fold.train_start, fold.test_end, warmup_bars=warmup_bars)
            )
            for fold in folds
        }
    tasks: dict[str, NotebookTask] = {}
    steps: list[tuple[StepSpec, list[str]]] = []
    kernel = spec.scheduling.kernel or settings.pipeline.kernel_name
    for step in spec.steps:
        template = Path(step.template)
        declared = template_parameters(template)
        template_hash = sha256_file(template)
        ids: list[str] = []
        units: list[Fold | None] = list(folds) if step.foreach == "fold" else [None]
        for fold in units:
            if fold is None:
                task_id = step.name
                notebook = run_dir / f"{step.name}.ipynb"
                out_dir = run_dir / step.name
            else:
                task_id = f"{step.name}-{fold.number:03d}"
                notebook = run_dir / step.name / f"{task_id}.ipynb"
                out_dir = run_dir / step.name / task_id
            implicit: dict[str, Any] = {
                **implicit_data,
                **implicit_costs,
                # The kernel runs in out_dir: these are relative to it (see module notes).
                "output_dir": ".",
                "run_dir": os.path.relpath(run_dir, out_dir),
            }
            fingerprint = None
            if fold is not None:
                fingerprint = prints[fold.number]
                window = windows[fold.number]
                implicit.update(
                    fold=fold.number,
                    train_start=window["train_start"],
                    train_end=window["train_end"],
                    test_start=window["test_start"],
                    test_end=window["test_end"],
                    warmup_bars=warmup_bars,
                    embargo=fold.embargo.isoformat(),
                    data_fingerprint=fingerprint,
                )
            params = _task_parameters(step, declared, implicit)
            assert_no_secrets(params, settings=settings)
            html = str(run_dir / f"{task_id}.html") if step.export_html else None
            task = NotebookTask(
                task_id=task_id,
                template=str(template),
                notebook=str(notebook),
                output_dir=str(out_dir),
                parameters=params,
                kernel_name=kernel,
                timeout_s=spec.scheduling.timeout_s,
                html=html,
            )
            tasks[task_id] = task
            ids.append(task_id)
            record: dict[str, Any] = {
                "id": task_id,
                "step": step.name,
                "fold": None if fold is None else fold.number,
                "template": str(template),
                "template_sha256": template_hash,
                "notebook": os.path.relpath(notebook, run_dir),
                "output_dir": os.path.relpath(out_dir, run_dir),
                "html": None if html is None else os.path.relpath(html, run_dir),
                "parameters": params,
                "data_fingerprint": fingerprint,
                "status": "pending",
                "attempts": 0,
                "started": None,
                "finished": None,
                "duration_s": None,
                "worker": None,
                "error": None,
                "history": [],
            }
            record["reproduce"] = reproduce_command(record, kernel)
            manifest["tasks"].append(record)
        steps.append((step, ids))
    to_run = tasks_to_run(manifest["tasks"], [ids for _, ids in steps], run_dir)
    return RunPlan(spec, run_dir, manifest, tasks, steps, code, [], to_run)


def _check_not_moved(record: Mapping[str, Any], run_dir: Path) -> None:
    # Manifests written before run-relative parameters held absolute paths into the run
    # folder: resuming a moved copy would write into the original. Refuse those.
    for key in _RUN_RELATIVE:
        value = record["parameters"].get(key)
        if not isinstance(value, str) or not Path(value).is_absolute():
            continue
        target = Path(value).resolve()
        if target != run_dir and run_dir not in target.parents:
            raise PipelineError(
                f"task {record['id']} of {run_dir} has {key}={value}, outside this folder: the "
                "run folder was moved or copied after a run by an older chimera_lab, and "
                "resuming it would write into the original; start a new run"
            )


def plan_resume(run_dir: Path, settings: Settings, *, force: bool = False) -> RunPlan:
    """Plan the resumption of the run in ``run_dir`` (unchanged bars and code are required).

    Raises
    ------
    PipelineError
        A fold's bars changed (never overridable: it would mix data versions), or the code
        differs from the run's (package sources, library versions, templates, strategy
        files) and ``force`` is false.
    """
    manifest = read_manifest(run_dir)
    spec = PipelineSpec.model_validate(manifest["spec"])
    step_ids = [[r["id"] for r in manifest["tasks"] if r["step"] == s.name] for s in spec.steps]
    to_run = tasks_to_run(manifest["tasks"], step_ids, run_dir)
    # The bars of exactly the fold tasks that run again; none: the data is not even read.
    checked = [r for r in manifest["tasks"] if r["id"] in to_run and r.get("data_fingerprint")]
    if manifest.get("data") is not None and checked:
        bars = _load_data(spec)
        assert bars is not None
        for record in checked:
            expected = record["data_fingerprint"]
            fold = manifest["folds"][record["fold"]]
            got = fingerprint_bars(
                window_bars(
                    bars, fold["train_start"], fold["test_end"], warmup_bars=fold["warmup_bars"]
                )
            )
            if got != expected:
                raise PipelineError(
                    f"the bars of task {record['id']} changed since the run started (fingerprint "
                    f"{got[:12]} != {expected[:12]}); resuming would mix data versions: start a "
                    "new run instead"
                )
    for record in manifest["tasks"]:
        _check_not_moved(record, run_dir)
    code = code_identity(spec)
    recorded = manifest.get("code") or {"environment": manifest.get("environment"), "files": {}}
    changes = code_differences(recorded, code)
    if not manifest.get("code"):
        changes.insert(0, "the run recorded no code identity (made by an older chimera_lab)")
    if changes and not force:
        shown = "; ".join(changes[:6]) + (
            f"; and {len(changes) - 6} more" if len(changes) > 6 else ""
        )
        raise PipelineError(
            f"the code differs from the one {run_dir.name} ran with ({shown}); resuming would "
            "mix code versions in one run: start a new run, or resume with --force (the "
            "manifest then records the new code for the tasks it reruns)"
        )
    kernel = spec.scheduling.kernel or settings.pipeline.kernel_name
    tasks: dict[str, NotebookTask] = {}
    steps: list[tuple[StepSpec, list[str]]] = []
    for step in spec.steps:
        ids = []
        for record in (r for r in manifest["tasks"] if r["step"] == step.name):
            tasks[record["id"]] = NotebookTask(
                task_id=record["id"],
                template=record["template"],
                notebook=str(run_dir / record["notebook"]),
                output_dir=str(run_dir / record["output_dir"]),
                parameters=record["parameters"],
                kernel_name=kernel,
                timeout_s=spec.scheduling.timeout_s,
                html=None if record["html"] is None else str(run_dir / record["html"]),
            )
            record["reproduce"] = reproduce_command(record, kernel)
            ids.append(record["id"])
        steps.append((step, ids))
    return RunPlan(spec, run_dir, manifest, tasks, steps, code, changes, to_run)
