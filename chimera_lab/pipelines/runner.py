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
after them), after checking that each fold's bars still have the recorded fingerprint and that
the code is the run's own (``force=True`` accepts other code; every attempt's environment is
recorded in ``manifest["attempts"]`` and each task's ``history`` names the attempt that ran it).

Ctrl-C sets the run's cancel event: running notebooks are stopped where they run (the
papermill process and its kernel are killed, on a remote worker too), queued ones never
start; the run is recorded as cancelled and ``KeyboardInterrupt`` is re-raised. Any other
error (an unreachable scheduler, a dead cluster) is recorded too: the run is marked failed
with the error, and its tasks that did not finish are failed "not run", so ``--resume`` picks
them up.

With a remote scheduler, the workers must see the run folder and the data at the same paths
(a shared filesystem), and have chimera_lab installed in the same version.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import sys
import uuid
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
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    n_tasks: int | None = None,
    connect_timeout_s: float = 30.0,
) -> Iterator[Any]:
    """Yield a ``distributed.Client``: to ``scheduler`` if given, else to a new LocalCluster.

    The LocalCluster has ``workers`` single-threaded worker processes (default: one per core,
    at most ``n_tasks``) and is shut down on exit. A scheduler that cannot be reached within
    ``connect_timeout_s`` raises :class:`~chimera_lab.errors.PipelineError`.
    """
    # distributed's annotations are partial; use it dynamically.
    dd: Any = importlib.import_module("distributed")
    if scheduler:
        try:
            client = dd.Client(scheduler, timeout=f"{connect_timeout_s}s")
        except (OSError, TimeoutError) as exc:
            raise PipelineError(
                f"cannot reach the Dask scheduler at {scheduler} within {connect_timeout_s:g} s "
                f"({exc}); start one with `dask scheduler` or drop --scheduler to use a local "
                "cluster"
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


def _error(kind: str, message: str) -> dict[str, Any]:
    return {
        "type": kind,
        "message": message,
        "cell_index": None,
        "execution_count": None,
        "traceback": [],
    }


def _apply(
    record: dict[str, Any], outcome: TaskOutcome, attempt: int, files: Mapping[str, Any]
) -> None:
    record.update(
        status=outcome.status,
        started=outcome.started,
        finished=outcome.finished,
        duration_s=outcome.duration_s,
        worker=outcome.worker,
        error=outcome.error,
    )
    record["attempts"] = int(record.get("attempts", 0)) + 1
    result = outcome.result or {}
    expected = record.get("data_fingerprint")
    got = result.get("data_fingerprint")
    if outcome.status == "ok" and expected and got and got != expected:
        record["status"] = "failed"
        record["error"] = _error(
            "DataMismatch",
            f"the notebook read bars with fingerprint {got[:12]}, the run expected "
            f"{expected[:12]}: the data source changed or differs on the worker",
        )
    strategy = (record.get("parameters") or {}).get("strategy")
    recorded_sha = files.get(strategy.rpartition(":")[0]) if isinstance(strategy, str) else None
    got_sha = result.get("strategy_sha256")
    if outcome.status == "ok" and recorded_sha and got_sha and got_sha != recorded_sha:
        record["status"] = "failed"
        record["error"] = _error(
            "CodeMismatch",
            f"the notebook ran strategy file sha256 {got_sha[:12]}, the run recorded "
            f"{recorded_sha[:12]}: the file changed during the run or differs on the worker",
        )
    record.setdefault("history", []).append(
        {
            "attempt": attempt,
            "status": record["status"],
            "started": outcome.started,
            "duration_s": outcome.duration_s,
            "worker": outcome.worker,
            "error": None if record["error"] is None else record["error"].get("type"),
        }
    )


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
    force: bool = False,
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
    force : bool
        With ``resume``: accept code that differs from the run's (recorded per attempt).
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
        parameter, changed data or code on resume), or the run could not execute
        (unreachable scheduler): then the run folder records the error and can be resumed.
    KeyboardInterrupt
        After stopping running notebooks, cancelling queued ones and recording the run as
        cancelled.
    """
    settings = settings or Settings()
    if resume is not None:
        plan = plan_resume(Path(resume).resolve(), settings, force=force)
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
    to_run = set(plan.to_run)
    attempt: dict[str, Any] = {
        "number": len(manifest.setdefault("attempts", [])) + 1,
        "started": utc_now(),
        "finished": None,
        "resume": resume is not None,
        "forced": bool(force and plan.code_changes),
        "code_changes": plan.code_changes,
        "environment": plan.code["environment"],
        "files": plan.code["files"],
        "tasks": sorted(to_run),
        "status": "running",
        "error": None,
    }
    manifest["attempts"].append(attempt)
    manifest["status"] = "running"
    manifest["error"] = None
    manifest["updated"] = utc_now()
    write_manifest(run_dir, manifest)
    log.info("pipeline.start", run=run_dir.name, tasks=len(to_run), resume=resume is not None)
    sched = scheduler or plan.spec.scheduling.scheduler or settings.pipeline.scheduler
    n_workers = workers or plan.spec.scheduling.workers or settings.pipeline.workers
    biggest = max((len(to_run.intersection(ids)) for _, ids in plan.steps), default=1)

    def finish(status: str, error: dict[str, Any] | None = None) -> None:
        manifest["status"] = status
        manifest["error"] = error
        attempt.update(status=status, finished=utc_now(), error=error)
        manifest["updated"] = utc_now()
        write_manifest(run_dir, manifest)

    try:
        if to_run:
            with _maybe_client(
                client, n_workers, sched, biggest, settings.pipeline.connect_timeout_s
            ) as dask:
                _execute(plan, dask, to_run, records, progress, attempt["number"], settings)
    except KeyboardInterrupt:
        for tid in to_run:
            if records[tid]["status"] in {"pending", "running"}:
                records[tid]["status"] = "cancelled"
        finish("cancelled")
        log.warning("pipeline.cancelled", run=run_dir.name)
        raise
    except BaseException as exc:
        error = _error(type(exc).__name__, str(exc) or type(exc).__name__)
        for tid in to_run:
            if records[tid]["status"] in {"pending", "running"}:
                records[tid]["status"] = "failed"
                records[tid]["error"] = _error(error["type"], f"not run: {error['message']}")
        finish("failed", error)
        log.error("pipeline.failed", run=run_dir.name, error=error["message"])
        if isinstance(exc, ChimeraError | OSError):
            raise PipelineError(
                f"{error['message']} (the run folder {run_dir} records the failure; fix the "
                f"cause and resume it with --resume {run_dir})"
            ) from exc
        raise
    finish(_overall_status(manifest["tasks"]))
    log.info("pipeline.done", run=run_dir.name, status=manifest["status"])
    return RunResult(run_dir, manifest)


@contextmanager
def _maybe_client(
    client: Any, workers: int | None, scheduler: str | None, n: int, connect_timeout_s: float
) -> Iterator[Any]:
    if client is not None:
        yield client
    else:
        with dask_client(
            workers=workers, scheduler=scheduler, n_tasks=n, connect_timeout_s=connect_timeout_s
        ) as new:
            yield new


def _failed_outcome(tid: str, record: Mapping[str, Any], exc: BaseException) -> TaskOutcome:
    now = utc_now()
    return TaskOutcome(
        task_id=tid,
        status="failed",
        started=record.get("started") or now,
        finished=now,
        duration_s=0.0,
        worker="?",
        error=_error(type(exc).__name__, str(exc) or type(exc).__name__),
    )


def _execute(
    plan: RunPlan,
    client: Any,
    to_run: set[str],
    records: dict[str, dict[str, Any]],
    progress: bool,
    attempt: int,
    settings: Settings,
) -> None:
    from tqdm.auto import tqdm

    dd: Any = importlib.import_module("distributed")

    from chimera_lab.pipelines import walk_forward

    files = plan.code["files"]
    cancel = dd.Event(f"chimera-cancel-{plan.run_dir.name}-{uuid.uuid4().hex[:12]}", client=client)
    bar = tqdm(
        total=len(to_run),
        desc=plan.spec.name,
        unit="nb",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    futures: list[Any] = []
    by_key: dict[str, str] = {}

    def record_outcome(tid: str, future: Any) -> None:
        try:
            outcome: TaskOutcome = future.result()
        except Exception as exc:  # a worker died, the task was lost, ...
            outcome = _failed_outcome(tid, records[tid], exc)
        _apply(records[tid], outcome, attempt, files)
        log.info(
            "pipeline.task",
            task=tid,
            status=records[tid]["status"],
            duration_s=outcome.duration_s,
        )
        plan.manifest["updated"] = utc_now()
        write_manifest(plan.run_dir, plan.manifest)

    try:
        for step, ids in plan.steps:
            batch = [tid for tid in ids if tid in to_run]
            if not batch:
                continue
            futures = []
            for tid in batch:
                records[tid].update(status="running", error=None)
                task = dataclasses.replace(plan.tasks[tid], cancel_event=cancel.name)
                future = client.submit(
                    execute_task,
                    task,
                    key=f"{plan.run_dir.name}-{tid}-{records[tid].get('attempts', 0)}",
                    pure=False,
                    retries=0,
                )
                futures.append(future)
                by_key[future.key] = tid
            plan.manifest["updated"] = utc_now()
            write_manifest(plan.run_dir, plan.manifest)
            for future in dd.as_completed(futures):
                record_outcome(by_key[future.key], future)
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
    except KeyboardInterrupt:
        # Stop the notebooks where they run (also on remote workers), then record them.
        pending = [
            f for f in futures if f.key in by_key and records[by_key[f.key]]["status"] == "running"
        ]
        try:
            cancel.set()
            try:
                dd.wait(pending, timeout=settings.pipeline.cancel_grace_s)
            except TimeoutError:
                pass  # record what stopped; the rest is cancelled below
            for future in pending:
                if future.done():
                    record_outcome(by_key[future.key], future)
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: stop waiting
        finally:
            if futures:
                client.cancel(futures, force=True)
        raise
    except BaseException:
        if futures:
            try:
                cancel.set()
                client.cancel(futures, force=True)
            except Exception as exc:  # noqa: BLE001 - the cluster may be what failed
                log.warning("pipeline.cancel_failed", error=str(exc))
        raise
    finally:
        bar.close()
