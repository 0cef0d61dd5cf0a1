"""One notebook execution: the unit of work a Dask worker runs.

:func:`execute_task` runs a template with papermill into the run folder, with the task's own
output directory as the kernel's working directory, and never raises for a failing notebook:
it returns a :class:`TaskOutcome` with the status, timings and the error (exception type,
message, failing cell). Papermill saves the notebook after every cell, so a failed task leaves
its executed notebook up to (and including) the failing cell.

Each attempt is isolated and can be stopped:

- papermill runs in a **child process in its own session** (``python -m
  chimera_lab.pipelines._child``), which starts the kernel; the worker thread waits for it
  and polls the run's cancel event (a ``distributed.Event`` named in the task). When the
  driver sets it (Ctrl-C), the child and the kernel are terminated (then killed) and the task
  returns ``cancelled``. The child also ends itself and its kernel if the worker process dies.
- the attempt writes into hidden temporary siblings of its output folder and notebook
  (``.fold-000.attempt-<id>``); they are moved into place when the notebook finishes (ok or
  failed), and discarded when it is cancelled. A cancelled or killed attempt therefore never
  leaves half-written outputs, and cannot overwrite the outputs of a later attempt.

The kernel inherits the worker's environment; that is how credentials reach a step.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chimera_lab.errors import PipelineError
from chimera_lab.pipelines.manifest import utc_now

__all__ = [
    "NotebookTask",
    "TaskOutcome",
    "execute_task",
    "export_html",
    "kill_process_tree",
    "run_papermill",
    "template_parameters",
]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_TRACEBACK_LINES = 40
_POLL_S = 0.5  # how often a running task checks the cancel event


@dataclass(frozen=True)
class NotebookTask:
    """Everything a worker needs to execute one notebook (plain, picklable values)."""

    task_id: str
    template: str
    notebook: str
    output_dir: str
    parameters: dict[str, Any]
    kernel_name: str = "python3"
    timeout_s: float = 1800.0
    html: str | None = None
    start_timeout_s: float = 120.0
    cancel_event: str | None = None  # name of the run's distributed.Event (None: not cancellable)


@dataclass(frozen=True)
class TaskOutcome:
    """What happened to a task (returned by the worker, recorded in the manifest)."""

    task_id: str
    status: str  # "ok", "failed" or "cancelled"
    started: str
    finished: str
    duration_s: float
    worker: str
    error: dict[str, Any] | None = None
    result: dict[str, Any] | None = field(default=None)


def template_parameters(template: str | Path) -> dict[str, dict[str, Any]]:
    """Return the parameters a template declares: name -> ``{type, default, help}``.

    Raises
    ------
    PipelineError
        The template is missing, unreadable or has no cell tagged ``parameters``.
    """
    import papermill

    path = Path(template)
    if not path.is_file():
        raise PipelineError(f"notebook template {path} not found")
    try:
        declared = papermill.inspect_notebook(str(path))
    except Exception as exc:  # papermill/nbformat raise many kinds for a bad file
        raise PipelineError(f"cannot read notebook template {path}: {exc}") from exc
    if not declared:
        raise PipelineError(
            f"{path} has no cell tagged 'parameters'; tag the first code cell so a pipeline "
            "can set its values"
        )
    unparsed = sorted(_assigned_names(path) - set(declared))
    if unparsed:
        # papermill skips lines it cannot parse (e.g. quotes in the help comment); their
        # values would silently stay at the template's defaults.
        raise PipelineError(
            f"papermill cannot read the parameter(s) {', '.join(unparsed)} in {path}; write "
            "each as `name: type = value  # help` on one line, without quotes in the comment"
        )
    return {
        name: {
            "type": info.get("inferred_type_name"),
            "default": info.get("default"),
            "help": info.get("help", ""),
        }
        for name, info in declared.items()
    }


def _assigned_names(path: Path) -> set[str]:
    import ast

    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.get("cell_type") == "code" and "parameters" in cell.get("metadata", {}).get(
            "tags", []
        ):
            try:
                tree = ast.parse(cell["source"])
            except SyntaxError as exc:
                raise PipelineError(
                    f"the parameters cell of {path} is not valid Python: {exc}"
                ) from None
            names: set[str] = set()
            for node in tree.body:
                if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                    names.add(node.target.id)
                elif isinstance(node, ast.Assign):
                    names.update(t.id for t in node.targets if isinstance(t, ast.Name))
            return names
    return set()


def _error_from(exc: BaseException) -> dict[str, Any]:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        tb = [_ANSI.sub("", line) for line in exc.traceback or []]
        return {
            "type": exc.ename,
            "message": _ANSI.sub("", str(exc.evalue)),
            "cell_index": exc.cell_index,
            "execution_count": exc.exec_count,
            "cell_source": str(exc.source)[:2000],
            "traceback": "\n".join(tb)[-8000:].splitlines()[-_TRACEBACK_LINES:],
        }
    return {
        "type": type(exc).__name__,
        "message": _ANSI.sub("", str(exc)) or type(exc).__name__,
        "cell_index": None,
        "execution_count": None,
        "traceback": [],
    }


def export_html(notebook: str | Path, html: str | Path, *, title: str | None = None) -> Path:
    """Export an executed notebook to a self-contained HTML page without input cells."""
    nbformat = importlib.import_module("nbformat")
    exporter_cls: Any = importlib.import_module("nbconvert").HTMLExporter
    exporter = exporter_cls(exclude_input=True, exclude_input_prompt=True)
    exporter.exclude_output_prompt = True
    nb = nbformat.read(str(notebook), as_version=4)
    # The page title; without it nbconvert would use the temporary attempt file's name.
    name = title or Path(html).stem
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": name}})
    target = Path(html)
    target.write_text(body, encoding="utf-8")
    return target


def run_papermill(spec: dict[str, Any]) -> dict[str, Any] | None:
    """Execute one notebook as described by ``spec`` (in this process); return the error.

    ``spec`` holds ``template``, ``notebook``, ``cwd``, ``parameters``, ``kernel_name``,
    ``timeout_s``, ``start_timeout_s`` and ``html`` (or ``None``). Returns ``None`` on
    success, else the error record (see :func:`execute_task`). This is what the child process
    of :func:`execute_task` runs.
    """
    import papermill

    error: dict[str, Any] | None = None
    try:
        papermill.execute_notebook(
            spec["template"],
            spec["notebook"],
            parameters=spec["parameters"],
            kernel_name=spec["kernel_name"],
            cwd=spec["cwd"],
            progress_bar=False,
            log_output=False,
            start_timeout=int(spec["start_timeout_s"]),
            execution_timeout=spec["timeout_s"],
            # The kernel's own start-up chatter (transport warnings) is not the run's output.
            extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
        )
    except Exception as exc:
        error = _error_from(exc)
    if spec.get("html") and Path(spec["notebook"]).is_file():
        try:
            export_html(spec["notebook"], spec["html"], title=spec.get("title"))
        except Exception as exc:
            if error is None:
                error = _error_from(exc)
                error["message"] = f"HTML export failed: {error['message']}"
    return error


def kill_process_tree(pid: int, *, timeout_s: float = 5.0) -> list[int]:
    """Terminate a process and all its descendants (then kill what is left); return the pids.

    Descendants are collected first, so processes in their own session (a Jupyter kernel)
    are found too. Bounded: at most ``2 * timeout_s``.
    """
    psutil: Any = importlib.import_module("psutil")  # a dependency of distributed
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    for proc in family:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(family, timeout=timeout_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=timeout_s)
    return [p.pid for p in family]


def _cancel_probe(name: str | None) -> Callable[[], bool]:
    # A callable telling whether the run was cancelled; never set outside a Dask worker.
    if not name:
        return lambda: False
    try:
        dd: Any = importlib.import_module("distributed")
        dd.get_worker()
        event = dd.Event(name)
    except (ImportError, ValueError):
        return lambda: False

    def is_set() -> bool:
        try:
            return bool(event.is_set())
        except Exception:  # noqa: BLE001 - a scheduler hiccup is not a cancellation
            return False

    return is_set


def _attempt_paths(task: NotebookTask, token: str) -> dict[str, Path]:
    out, nb = Path(task.output_dir), Path(task.notebook)
    paths = {
        "out": out.with_name(f".{out.name}.attempt-{token}"),  # same depth: ../.. still works
        "notebook": nb.with_name(f".{nb.stem}.attempt-{token}{nb.suffix}"),
        "spec": out.with_name(f".{out.name}.attempt-{token}.json"),
        "outcome": out.with_name(f".{out.name}.attempt-{token}.outcome.json"),
        "log": out.with_name(f".{out.name}.attempt-{token}.log"),
    }
    if task.html:
        html = Path(task.html)
        paths["html"] = html.with_name(f".{html.stem}.attempt-{token}{html.suffix}")
    return paths


def _discard(paths: dict[str, Path]) -> None:
    for key, path in paths.items():
        if key == "out":
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = _ANSI.sub("", path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def _launch(spec: Path, log: Path) -> subprocess.Popen[bytes]:
    # The papermill child: a fresh interpreter in its own session, output to the log file.
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "chimera_lab.pipelines._child", str(spec)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # signals to the worker's group (a terminal's Ctrl-C) skip it
        )


def execute_task(task: NotebookTask) -> TaskOutcome:
    """Execute one notebook task; return its outcome (never raises for a failing notebook).

    See the module notes: papermill runs in a child process in its own session, the attempt
    writes into temporary siblings moved into place at the end, and the run's cancel event
    stops it (status ``cancelled``, nothing moved into place).
    """
    started, t0 = utc_now(), time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    cancelled = _cancel_probe(task.cancel_event)

    def outcome(
        status: str, error: dict[str, Any] | None = None, result: Any = None
    ) -> TaskOutcome:
        return TaskOutcome(
            task_id=task.task_id,
            status=status,
            started=started,
            finished=utc_now(),
            duration_s=round(time.perf_counter() - t0, 3),
            worker=worker,
            error=error,
            result=result,
        )

    if cancelled():
        return outcome("cancelled")
    token = uuid.uuid4().hex[:12]
    paths = _attempt_paths(task, token)
    paths["out"].mkdir(parents=True, exist_ok=True)
    paths["notebook"].parent.mkdir(parents=True, exist_ok=True)
    spec = {
        "template": task.template,
        "notebook": str(paths["notebook"]),
        "cwd": str(paths["out"]),
        "parameters": task.parameters,
        "kernel_name": task.kernel_name,
        "timeout_s": task.timeout_s,
        "start_timeout_s": task.start_timeout_s,
        "html": str(paths["html"]) if "html" in paths else None,
        "title": f"{Path(task.notebook).parent.name} · {Path(task.notebook).stem}",
        "outcome": str(paths["outcome"]),
    }
    paths["spec"].write_text(json.dumps(spec, default=str), encoding="utf-8")
    try:
        proc = _launch(paths["spec"], paths["log"])
        try:
            while True:
                try:
                    code = proc.wait(timeout=_POLL_S)
                    break
                except subprocess.TimeoutExpired:
                    if cancelled():
                        kill_process_tree(proc.pid)
                        proc.wait(timeout=10)
                        return outcome("cancelled")
        except BaseException:
            kill_process_tree(proc.pid)  # the worker thread itself is being torn down
            raise
        if cancelled():
            return outcome("cancelled")  # finished just as the run was cancelled: discard
        error: dict[str, Any] | None
        try:
            error = json.loads(paths["outcome"].read_text(encoding="utf-8"))["error"]
        except (OSError, ValueError, KeyError):
            error = {
                "type": "ProcessError",
                "message": f"the papermill process ended with status {code} without a "
                f"result: {_log_tail(paths['log']) or 'no output'}",
                "cell_index": None,
                "execution_count": None,
                "traceback": [],
            }
        _move_into_place(task, paths)
    finally:
        _discard(paths)
    result: dict[str, Any] | None = None
    result_file = Path(task.output_dir) / "result.json"
    if result_file.is_file():
        try:
            loaded = json.loads(result_file.read_text(encoding="utf-8"))
            result = loaded if isinstance(loaded, dict) else None
        except (OSError, json.JSONDecodeError):
            result = None
    return outcome("failed" if error else "ok", error, result)


def _move_into_place(task: NotebookTask, paths: dict[str, Path]) -> None:
    # The attempt is complete: its folder, notebook and page replace the previous ones.
    final = Path(task.output_dir)
    if final.exists():
        shutil.rmtree(final)
    os.replace(paths["out"], final)
    if paths["notebook"].is_file():
        os.replace(paths["notebook"], task.notebook)
    if task.html and paths["html"].is_file():
        os.replace(paths["html"], task.html)
