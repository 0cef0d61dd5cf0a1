"""Child process of :func:`chimera_lab.pipelines.execute.execute_task`: one papermill run.

``python -m chimera_lab.pipelines._child SPEC.json`` executes the notebook described by the
JSON file (see :func:`~chimera_lab.pipelines.execute.run_papermill`) and writes
``{"error": ...}`` to the spec's ``outcome`` path. It is started in its own session by a Dask
worker thread, which kills it (and its kernel) when the run is cancelled. If it is terminated
on its own (SIGTERM), or its parent goes away (the worker died), it terminates its kernel and
exits, so no kernel outlives the worker that ran it.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from chimera_lab.pipelines.execute import kill_process_tree, run_papermill

__all__ = ["main"]

_WATCH_S = 0.5


def _end_kernel_and_exit(status: int) -> None:
    psutil = importlib.import_module("psutil")
    for child in psutil.Process().children(recursive=True):
        kill_process_tree(child.pid, timeout_s=2.0)
    os._exit(status)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _end_kernel_and_exit(128 + signum)


def _watch_parent(parent: int) -> None:
    stop = threading.Event()
    while not stop.wait(_WATCH_S):
        if os.getppid() != parent:
            _end_kernel_and_exit(3)


def main(argv: list[str]) -> int:
    """Run the spec file ``argv[0]``; return 0 once the outcome file is written."""
    # jsonschema compiles an IRI grammar when the optional rfc3987_syntax is importable (0.9 s
    # of every notebook's start here); nbformat validates without format checks, so papermill
    # does not need it. This only affects this short-lived process.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    signal.signal(signal.SIGTERM, _on_sigterm)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    error = run_papermill(spec)
    Path(spec["outcome"]).write_text(json.dumps({"error": error}, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
