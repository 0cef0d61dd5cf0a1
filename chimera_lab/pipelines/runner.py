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

import importlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chimera_lab.config import Settings
from chimera_lab.errors import ChimeraError, PipelineError
from chimera_lab.logging import get_logger
from chimera_lab.pipelines.execute import (
    TaskOutcome,
    execute_task,
)
from chimera_lab.pipelines.manifest import (
    utc_now,
    write_manifest,
)
from chimera_lab.pipelines.plan import RunPlan, plan_resume, plan_run
from chimera_lab.pipelines.spec import PipelineSpec, load_spec

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
        plan = plan_resume(Path(resume).resolve(), settings)
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
            plan = plan_run(spec, run_dir, settings)
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
    plan: RunPlan, client: Any, to_run: set[str], records: dict[str, dict[str, Any]], progress: bool
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
