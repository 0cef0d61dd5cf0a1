"""Notebook pipelines: parametrized templates executed by papermill on Dask, archived runs.

- :func:`run_pipeline` — run a :class:`PipelineSpec` (or a YAML file, :func:`load_spec`) or
  resume a run folder; returns a :class:`RunResult`.
- :func:`load_bars` / :func:`window_bars` — how notebooks read a pipeline's bars.
- :func:`fingerprint_bars`, :func:`read_manifest` — run provenance.
- :mod:`chimera_lab.pipelines.walk_forward` — warm-up, look-ahead gate, OOS stitching;
  :mod:`chimera_lab.pipelines.folds` — what a walk-forward fold notebook does;
  :mod:`chimera_lab.pipelines.report` — the walk-forward report's tables and figures.
"""

from __future__ import annotations

from chimera_lab.pipelines.data import load_bars, resolve_data_path, window_bars
from chimera_lab.pipelines.execute import NotebookTask, TaskOutcome, execute_task, export_html
from chimera_lab.pipelines.manifest import fingerprint_bars, read_manifest
from chimera_lab.pipelines.runner import RunResult, dask_client, run_pipeline
from chimera_lab.pipelines.safety import assert_no_secrets
from chimera_lab.pipelines.spec import (
    DataSpec,
    FoldSpec,
    PipelineSpec,
    SchedulingSpec,
    StepSpec,
    load_spec,
)
from chimera_lab.pipelines.walk_forward import grid_points, parse_grid, stitch_run

__all__ = [
    "DataSpec",
    "FoldSpec",
    "NotebookTask",
    "PipelineSpec",
    "RunResult",
    "SchedulingSpec",
    "StepSpec",
    "TaskOutcome",
    "assert_no_secrets",
    "dask_client",
    "execute_task",
    "export_html",
    "fingerprint_bars",
    "grid_points",
    "load_bars",
    "load_spec",
    "parse_grid",
    "read_manifest",
    "resolve_data_path",
    "run_pipeline",
    "stitch_run",
    "window_bars",
]
