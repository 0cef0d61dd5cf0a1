"""Planning a run: from a spec (or a run folder to resume) to notebook tasks and a manifest.

:func:`plan_run` loads and fingerprints the bars, makes the folds, runs the walk-forward
checks (warm-up, look-ahead gate), resolves every task's parameters against its template, and
builds the initial manifest; :func:`plan_resume` rebuilds the tasks of an existing run folder
after checking that each fold's bars are unchanged. Nothing here executes a notebook.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import shlex
from collections.abc import Mapping
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
    collect_environment,
    fingerprint_bars,
    read_manifest,
    utc_now,
)
from chimera_lab.pipelines.safety import assert_no_secrets
from chimera_lab.pipelines.spec import PipelineSpec, StepSpec
from chimera_lab.validation import Fold, walk_forward_splits

__all__ = ["RunPlan", "plan_resume", "plan_run"]

log = get_logger(__name__)


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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


def _reproduce_command(template: str, notebook: str, params: Mapping[str, Any]) -> str:
    # -y takes the parameters as YAML (JSON is YAML): exact types, unlike -p's guessing.
    blob = json.dumps(dict(params), sort_keys=True)
    return f"papermill {shlex.quote(template)} {shlex.quote(notebook)} -y {shlex.quote(blob)}"


@dataclass
class RunPlan:
    """Tasks to run, in step order, and the manifest that records them."""

    spec: PipelineSpec
    run_dir: Path
    manifest: dict[str, Any]
    tasks: dict[str, NotebookTask]
    steps: list[tuple[StepSpec, list[str]]]


def _load_data(spec: PipelineSpec) -> pd.DataFrame | None:
    if spec.data is None:
        return None
    d = spec.data
    return load_bars(
        data_path=d.path,
        store_url=d.store,
        symbol=d.symbol,
        timeframe=d.timeframe,
        start=d.start,
        end=d.end,
        lookback=d.lookback,
        resample=d.resample,
    )


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
            "first": bars.index[0].isoformat(),
            "last": bars.index[-1].isoformat(),
        }
        # Pin the resolved range so the notebooks and a later --resume read the same bars.
        if spec.data.lookback:
            spec = spec.model_copy(
                update={
                    "data": spec.data.model_copy(
                        update={
                            "start": bars.index[0].isoformat(),
                            "end": bars.index[-1].isoformat(),
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
    manifest: dict[str, Any] = {
        "run_id": run_dir.name,
        "name": spec.name,
        "status": "pending",
        "created": utc_now(),
        "updated": utc_now(),
        "spec": spec.model_dump(mode="json"),
        "environment": collect_environment(),
        "data": data_record,
        "folds": [_fold_record(fold, warmup_bars) for fold in folds],
        "checks": prep.get("checks", {}),
        "outputs": {},
        "tasks": [],
    }
    implicit_data = source_parameters(spec.data) if spec.data is not None else {}
    tasks: dict[str, NotebookTask] = {}
    steps: list[tuple[StepSpec, list[str]]] = []
    kernel = spec.scheduling.kernel or settings.pipeline.kernel_name
    for step in spec.steps:
        template = Path(step.template)
        declared = template_parameters(template)
        template_hash = _sha256_file(template)
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
                "output_dir": str(out_dir),
                "run_dir": str(run_dir),
            }
            fingerprint = None
            if fold is not None:
                assert bars is not None
                fingerprint = fingerprint_bars(
                    window_bars(bars, fold.train_start, fold.test_end, warmup_bars=warmup_bars)
                )
                implicit.update(
                    fold=fold.number,
                    train_start=fold.to_dict()["train_start"],
                    train_end=fold.to_dict()["train_end"],
                    test_start=fold.to_dict()["test_start"],
                    test_end=fold.to_dict()["test_end"],
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
            manifest["tasks"].append(
                {
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
                    "reproduce": _reproduce_command(str(template), str(notebook), params),
                }
            )
        steps.append((step, ids))
    return RunPlan(spec, run_dir, manifest, tasks, steps)


def plan_resume(run_dir: Path, settings: Settings) -> RunPlan:
    """Plan the resumption of the run in ``run_dir`` (unchanged bars are required)."""
    manifest = read_manifest(run_dir)
    spec = PipelineSpec.model_validate(manifest["spec"])
    if manifest.get("data") is not None:
        bars = _load_data(spec)
        assert bars is not None
        for record in manifest["tasks"]:
            expected = record.get("data_fingerprint")
            if not expected or record["status"] == "ok":
                continue
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
    kernel = spec.scheduling.kernel or settings.pipeline.kernel_name
    tasks: dict[str, NotebookTask] = {}
    steps: list[tuple[StepSpec, list[str]]] = []
    for step in spec.steps:
        ids = []
        for record in (r for r in manifest["tasks"] if r["step"] == step.name):
            if record["template_sha256"] != _sha256_file(Path(record["template"])):
                log.warning("pipeline.template_changed", task=record["id"])
                record.setdefault("notes", []).append(
                    f"template changed before resume at {utc_now()}"
                )
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
            ids.append(record["id"])
        steps.append((step, ids))
    return RunPlan(spec, run_dir, manifest, tasks, steps)
