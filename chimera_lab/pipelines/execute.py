"""One notebook execution: the unit of work a Dask worker runs.

:func:`execute_task` runs a template with papermill into the run folder, with the task's own
output directory as the kernel's working directory, and never raises for a failing notebook:
it returns a :class:`TaskOutcome` with the status, timings and the error (exception type,
message, failing cell). Papermill saves the notebook after every cell, so a failed task leaves
its executed notebook up to (and including) the failing cell.

The kernel inherits the worker's environment; that is how credentials reach a step.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chimera_lab.errors import PipelineError
from chimera_lab.pipelines.manifest import utc_now

__all__ = ["NotebookTask", "TaskOutcome", "execute_task", "export_html", "template_parameters"]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_TRACEBACK_LINES = 40


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


@dataclass(frozen=True)
class TaskOutcome:
    """What happened to a task (returned by the worker, recorded in the manifest)."""

    task_id: str
    status: str  # "ok" or "failed"
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


def export_html(notebook: str | Path, html: str | Path) -> Path:
    """Export an executed notebook to a self-contained HTML page without input cells."""
    exporter_cls: Any = importlib.import_module("nbconvert").HTMLExporter
    exporter = exporter_cls(exclude_input=True, exclude_input_prompt=True)
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_filename(str(notebook))
    target = Path(html)
    target.write_text(body, encoding="utf-8")
    return target


def execute_task(task: NotebookTask) -> TaskOutcome:
    """Execute one notebook task; return its outcome (never raises for a failing notebook)."""
    import papermill

    started, t0 = utc_now(), time.perf_counter()
    out_dir = Path(task.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    Path(task.notebook).parent.mkdir(parents=True, exist_ok=True)
    error: dict[str, Any] | None = None
    try:
        papermill.execute_notebook(
            task.template,
            task.notebook,
            parameters=task.parameters,
            kernel_name=task.kernel_name,
            cwd=str(out_dir),
            progress_bar=False,
            log_output=False,
            start_timeout=int(task.start_timeout_s),
            execution_timeout=task.timeout_s,
            # The kernel's own start-up chatter (transport warnings) is not the run's output.
            extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
        )
    except Exception as exc:
        error = _error_from(exc)
    if task.html and Path(task.notebook).is_file():
        try:
            export_html(task.notebook, task.html)
        except Exception as exc:
            if error is None:
                error = _error_from(exc)
                error["message"] = f"HTML export failed: {error['message']}"
    result: dict[str, Any] | None = None
    result_file = out_dir / "result.json"
    if result_file.is_file():
        try:
            loaded = json.loads(result_file.read_text(encoding="utf-8"))
            result = loaded if isinstance(loaded, dict) else None
        except (OSError, json.JSONDecodeError):
            result = None
    return TaskOutcome(
        task_id=task.task_id,
        status="failed" if error else "ok",
        started=started,
        finished=utc_now(),
        duration_s=round(time.perf_counter() - t0, 3),
        worker=f"{socket.gethostname()}:{os.getpid()}",
        error=error,
        result=result,
    )
