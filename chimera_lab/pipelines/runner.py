"""Run a pipeline spec: papermill notebooks on Dask, archived in a run folder.

:func:`run_pipeline` turns a :class:`~chimera_lab.pipelines.PipelineSpec` into notebook tasks
(one per step, or one per fold for ``foreach: fold`` steps), submits each step's tasks to a
``dask.distributed`` cluster — a ``LocalCluster`` with one single-threaded worker process per
core by default, or an existing scheduler by address (the same code path) — and records
everything in ``data/runs/<UTC timestamp>-<name>/``::

    manifest.json            spec, environment, data fingerprint, folds, one record per task
    fold/fold-000.ipynb      executed notebooks of a foreach step (outputs in fold/fold-000/)
    report.ipynb, report.html  a step without foreach (outputs in report/)
    oos_returns.parquet      stitched out-of-sample returns/equity of walk-forward folds

A failing notebook is recorded with its error and kept up to the failing cell; the other tasks
finish. ``resume=<run folder>`` re-runs only failed, cancelled or missing tasks (and the steps
after them), after checking that each fold's bars still have the recorded fingerprint. Ctrl-C
cancels what is queued, records the run as cancelled and re-raises ``KeyboardInterrupt``.

With a remote scheduler, the workers must see the run folder and the data at the same paths
(a shared filesystem), and have chimera_lab installed in the same version.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import json
import logging
import os
import shlex
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from chimera_lab.config import Settings
from chimera_lab.errors import ChimeraError, PipelineError
from chimera_lab.logging import get_logger
from chimera_lab.pipelines.data import load_bars, source_parameters, window_bars
from chimera_lab.pipelines.execute import (
    NotebookTask,
    TaskOutcome,
    execute_task,
    template_parameters,
)
from chimera_lab.pipelines.manifest import (
    collect_environment,
    fingerprint_bars,
    read_manifest,
    utc_now,
    write_manifest,
)
from chimera_lab.pipelines.safety import assert_no_secrets
from chimera_lab.pipelines.spec import PipelineSpec, StepSpec, load_spec
from chimera_lab.validation import Fold, walk_forward_splits

__all__ = ["RunResult", "dask_client", "make_run_dir", "run_pipeline"]

log = get_logger(__name__)


@dataclass(frozen=True)
class RunResult:
    """The outcome of :func:`run_pipeline`: the run folder and its final manifest."""

    run_dir: Path
    manifest: dict[str, Any]

    @property
    def status(self) -> str:
        """``ok``, ``failed`` (some task failed) or ``cancelled``."""
        return str(self.manifest["status"])

    @property
    def ok(self) -> bool:
        """Whether every task succeeded."""
        return self.status == "ok"

    @property
    def failed_tasks(self) -> list[dict[str, Any]]:
        """Records of the tasks that did not succeed."""
        return [t for t in self.manifest["tasks"] if t["status"] != "ok"]

    def path(self, relative: str) -> Path:
        """Return a path inside the run folder."""
        return self.run_dir / relative


def make_run_dir(runs_dir: str | Path, name: str) -> Path:
    """Create ``<runs_dir>/<UTC timestamp>-<name>/`` (suffixed if it exists) and return it."""
    root = Path(runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for i in range(1000):
        candidate = root / (f"{stamp}-{name}" + (f"-{i}" if i else ""))
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate.resolve()
    raise PipelineError(f"could not create a run folder under {root}")


@contextmanager
def dask_client(
    *, workers: int | None = None, scheduler: str | None = None, n_tasks: int | None = None
) -> Iterator[Any]:
    """Yield a ``distributed.Client``: to ``scheduler`` if given, else to a new LocalCluster.

    The LocalCluster has ``workers`` single-threaded worker processes (default: one per core,
    at most ``n_tasks``) and is shut down on exit.
    """
    # distributed's annotations are partial; use it dynamically.
    dd: Any = importlib.import_module("distributed")
    if scheduler:
        try:
            client = dd.Client(scheduler, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise PipelineError(
                f"cannot reach the Dask scheduler at {scheduler} ({exc}); start one with "
                "`dask scheduler` or drop --scheduler to use a local cluster"
            ) from None
        try:
            yield client
        finally:
            client.close(timeout=10)
        return
    n = workers or os.cpu_count() or 1
    if n_tasks:
        n = max(1, min(n, n_tasks))
    cluster = dd.LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        dashboard_address="127.0.0.1:0",  # random port: no clash, no port warning
        silence_logs=logging.ERROR,
    )
    client = dd.Client(cluster)
    try:
        yield client
    finally:
        client.close(timeout=10)
        cluster.close(timeout=30)


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
class _Plan:
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


def _plan_new(spec: PipelineSpec, run_dir: Path, settings: Settings) -> _Plan:
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
    return _Plan(spec, run_dir, manifest, tasks, steps)


def _plan_resume(run_dir: Path, settings: Settings) -> _Plan:
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
    return _Plan(spec, run_dir, manifest, tasks, steps)


def _needs_run(record: Mapping[str, Any], run_dir: Path) -> bool:
    if record["status"] != "ok":
        return True
    return not (run_dir / record["notebook"]).is_file()


def _apply(record: dict[str, Any], outcome: TaskOutcome) -> None:
    record.update(
        status=outcome.status,
        started=outcome.started,
        finished=outcome.finished,
        duration_s=outcome.duration_s,
        worker=outcome.worker,
        error=outcome.error,
    )
    record["attempts"] = int(record.get("attempts", 0)) + 1
    expected = record.get("data_fingerprint")
    got = (outcome.result or {}).get("data_fingerprint")
    if outcome.status == "ok" and expected and got and got != expected:
        record["status"] = "failed"
        record["error"] = {
            "type": "DataMismatch",
            "message": f"the notebook read bars with fingerprint {got[:12]}, the run expected "
            f"{expected[:12]}: the data source changed or differs on the worker",
            "cell_index": None,
            "execution_count": None,
            "traceback": [],
        }


def _overall_status(records: list[dict[str, Any]]) -> str:
    statuses = {r["status"] for r in records}
    if statuses <= {"ok"}:
        return "ok"
    if "cancelled" in statuses:
        return "cancelled"
    return "failed"


def run_pipeline(
    spec: PipelineSpec | str | Path | None = None,
    *,
    runs_dir: str | Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    resume: str | Path | None = None,
    client: Any = None,
    progress: bool = True,
    settings: Settings | None = None,
) -> RunResult:
    """Run a pipeline (or resume one) and return its run folder and manifest.

    Parameters
    ----------
    spec : PipelineSpec, str or Path, optional
        The spec, or a YAML file; not needed with ``resume``.
    runs_dir : str or Path, optional
        Where run folders go (default: ``settings.pipeline.runs_dir``, ``data/runs``).
    workers : int, optional
        LocalCluster worker processes (default: spec hint, settings, else one per core).
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://host:8786``) instead of a LocalCluster.
    resume : str or Path, optional
        A run folder: re-run its failed, cancelled or missing tasks and the steps after them.
    client : distributed.Client, optional
        Use this client (its cluster is left running).
    progress : bool
        Show a progress bar over notebooks on stderr.
    settings : Settings, optional
        Configuration (default: ``Settings()``).

    Returns
    -------
    RunResult
        ``status`` is ``ok`` or ``failed``; failed tasks carry their error in the manifest.

    Raises
    ------
    PipelineError
        The spec cannot be planned (missing template, unknown parameter, secret in a
        parameter, changed data on resume, unreachable scheduler).
    KeyboardInterrupt
        After cancelling queued work and recording the run as cancelled.
    """
    settings = settings or Settings()
    if resume is not None:
        plan = _plan_resume(Path(resume).resolve(), settings)
    else:
        if spec is None:
            raise PipelineError("give a pipeline spec (or resume=<run folder>)")
        if isinstance(spec, str | Path):
            spec = load_spec(spec)
        else:
            spec = spec.with_paths_resolved()
        root = Path(runs_dir or settings.pipeline.runs_dir)
        run_dir = make_run_dir(root, spec.name)
        try:
            plan = _plan_new(spec, run_dir, settings)
        except BaseException:
            if not any(run_dir.iterdir()):
                run_dir.rmdir()
            raise
    manifest, run_dir = plan.manifest, plan.run_dir
    records = {r["id"]: r for r in manifest["tasks"]}
    manifest["status"] = "running"
    manifest["updated"] = utc_now()
    write_manifest(run_dir, manifest)
    to_run = {tid for tid, r in records.items() if _needs_run(r, run_dir)}
    # A step after a re-run step runs again (a report must reflect the folds it summarises).
    rerun_later = False
    for _, ids in plan.steps:
        if rerun_later:
            to_run.update(ids)
        if to_run.intersection(ids):
            rerun_later = True
    log.info("pipeline.start", run=run_dir.name, tasks=len(to_run), resume=resume is not None)
    sched = scheduler or plan.spec.scheduling.scheduler or settings.pipeline.scheduler
    n_workers = workers or plan.spec.scheduling.workers or settings.pipeline.workers
    biggest = max((len(to_run.intersection(ids)) for _, ids in plan.steps), default=1)
    try:
        if to_run:
            with _maybe_client(client, n_workers, sched, biggest) as dask:
                _execute(plan, dask, to_run, records, progress)
    except KeyboardInterrupt:
        for tid in to_run:
            if records[tid]["status"] in {"pending", "running"}:
                records[tid]["status"] = "cancelled"
        manifest["status"] = "cancelled"
        manifest["updated"] = utc_now()
        write_manifest(run_dir, manifest)
        log.warning("pipeline.cancelled", run=run_dir.name)
        raise
    manifest["status"] = _overall_status(manifest["tasks"])
    manifest["updated"] = utc_now()
    write_manifest(run_dir, manifest)
    log.info("pipeline.done", run=run_dir.name, status=manifest["status"])
    return RunResult(run_dir, manifest)


@contextmanager
def _maybe_client(client: Any, workers: int | None, scheduler: str | None, n: int) -> Iterator[Any]:
    if client is not None:
        yield client
    else:
        with dask_client(workers=workers, scheduler=scheduler, n_tasks=n) as new:
            yield new


def _execute(
    plan: _Plan, client: Any, to_run: set[str], records: dict[str, dict[str, Any]], progress: bool
) -> None:
    from tqdm.auto import tqdm

    as_completed: Any = importlib.import_module("distributed").as_completed

    from chimera_lab.pipelines import walk_forward

    bar = tqdm(
        total=len(to_run),
        desc=plan.spec.name,
        unit="nb",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    futures: list[Any] = []
    try:
        for step, ids in plan.steps:
            batch = [tid for tid in ids if tid in to_run]
            if not batch:
                continue
            futures = []
            for tid in batch:
                records[tid].update(status="running", error=None)
                futures.append(
                    client.submit(
                        execute_task,
                        plan.tasks[tid],
                        key=f"{plan.run_dir.name}-{tid}-{records[tid].get('attempts', 0)}",
                        pure=False,
                        retries=0,
                    )
                )
            plan.manifest["updated"] = utc_now()
            write_manifest(plan.run_dir, plan.manifest)
            by_key = {f.key: tid for f, tid in zip(futures, batch, strict=True)}
            for future in as_completed(futures):
                tid = by_key[future.key]
                try:
                    outcome: TaskOutcome = future.result()
                except Exception as exc:  # a worker died, the task was lost, ...
                    now = utc_now()
                    outcome = TaskOutcome(
                        task_id=tid,
                        status="failed",
                        started=records[tid].get("started") or now,
                        finished=now,
                        duration_s=0.0,
                        worker="?",
                        error={
                            "type": type(exc).__name__,
                            "message": str(exc) or type(exc).__name__,
                            "cell_index": None,
                            "execution_count": None,
                            "traceback": [],
                        },
                    )
                _apply(records[tid], outcome)
                log.info(
                    "pipeline.task",
                    task=tid,
                    status=records[tid]["status"],
                    duration_s=outcome.duration_s,
                )
                plan.manifest["updated"] = utc_now()
                write_manifest(plan.run_dir, plan.manifest)
                bar.update(1)
                bar.set_postfix_str(
                    f"failed={sum(records[t]['status'] == 'failed' for t in to_run)}"
                )
            if step.foreach == "fold":
                try:
                    outputs = walk_forward.stitch_run(plan.run_dir, [records[t] for t in ids])
                except ChimeraError as exc:
                    outputs = {"stitch_error": str(exc)}
                plan.manifest["outputs"].update(outputs)
                write_manifest(plan.run_dir, plan.manifest)
    except BaseException:
        if futures:
            client.cancel(futures, force=True)
        raise
    finally:
        bar.close()
