"""Pipeline specs: which notebooks to run, on which data, over which folds, and where.

A spec is YAML (``chimera pipeline run pipelines/<name>.yaml``)::

    name: walk_forward_sma
    data:                       # the bars every step reads (optional)
      path: btcusdt_1m          # a file, or a bundled sample name; or symbol/timeframe/store
    folds:                      # optional: walk-forward folds (chimera_lab.validation)
      train: 7D
      test: 2D
      warmup: auto              # bars prepended to each window, or "auto" (recursive analysis)
    steps:                      # run in order; a step's notebooks run in parallel on Dask
      - name: fold
        template: notebooks/templates/walk_forward_fold.ipynb
        foreach: fold           # one notebook per fold
        parameters: {strategy: sma_cross, grid: {fast: [10, 20], slow: [60, 120]}}
      - name: report
        template: notebooks/templates/walk_forward_report.ipynb
    scheduling: {workers: null, scheduler: null, timeout_s: 1800}

Relative template, data and strategy-file (``strategy: my/strat.py:func``) paths are looked up
in the current directory, then next to the spec file, then in the project's source tree (so
the shipped specs run from anywhere), and recorded absolute.

Examples
--------
>>> spec = PipelineSpec.model_validate({
...     "name": "demo", "steps": [{"name": "hello", "template": "t.ipynb"}]})
>>> spec.steps[0].foreach is None, spec.scheduling.timeout_s
(True, 1800.0)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from chimera_lab.errors import ConfigError

__all__ = [
    "DataSpec",
    "FoldSpec",
    "PipelineSpec",
    "SchedulingSpec",
    "StepSpec",
    "load_spec",
    "project_root",
    "resolve_path",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def project_root() -> Path:
    """Return the source tree chimera_lab is installed from (holds notebooks/, pipelines/)."""
    return Path(__file__).resolve().parents[2]


def resolve_path(path: str | Path, *, base_dirs: tuple[Path, ...] = ()) -> Path:
    """Find a relative path in the cwd, then in each of ``base_dirs``, then the project root.

    Absolute paths are returned as they are. Returns the first existing candidate, or the
    cwd candidate when none exists (so error messages name the path the user meant).
    """
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    for base in (Path.cwd(), *base_dirs, project_root()):
        candidate = (base / p).resolve()
        if candidate.exists():
            return candidate
    return (Path.cwd() / p).resolve()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSpec(_Model):
    """The bars a pipeline reads: a file (or bundled sample) or a store series."""

    path: str | None = Field(None, description="A bars file, or a bundled sample name.")
    symbol: str | None = Field(None, description="Read this symbol from the store.")
    timeframe: str = "1m"
    store: str | None = Field(
        None, description="Store URL; default: the worker's CHIMERA_STORE__URL (no secrets here)."
    )
    start: str | None = None
    end: str | None = None
    lookback: str | None = Field(
        None, description="Keep only this much before the last bar, e.g. '30D' (latest data)."
    )
    resample: str | None = Field(
        None, description="Aggregate the bars to this timeframe (e.g. '15m', '1h')."
    )

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        if (self.path is None) == (self.symbol is None):
            raise ValueError("give exactly one of data.path (file or sample) or data.symbol")
        return self


class FoldSpec(_Model):
    """Walk-forward fold generation (see :func:`chimera_lab.validation.walk_forward_splits`)."""

    train: str | int
    test: str | int
    step: str | int | None = None
    anchored: bool = False
    embargo: str | int = "0min"
    partial: bool = False
    warmup: Literal["auto"] | int = Field(
        "auto", description="Bars before each window that indicators see but are not scored."
    )
    check_lookahead: bool = Field(
        True, description="Refuse to run a strategy that detect_lookahead flags."
    )

    @field_validator("warmup")
    @classmethod
    def _non_negative(cls, value: Literal["auto"] | int) -> Literal["auto"] | int:
        if isinstance(value, int) and value < 0:
            raise ValueError(f"warmup must be >= 0 bars or 'auto', got {value}")
        return value


class StepSpec(_Model):
    """One notebook step; with ``foreach: fold`` it runs once per fold."""

    name: str
    template: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    foreach: Literal["fold"] | None = None
    html: bool | None = Field(
        None, description="Export the executed notebook to HTML (default: steps without foreach)."
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"step name {value!r} must be letters, digits, '_', '.', '-'")
        return value

    @property
    def export_html(self) -> bool:
        """Whether the executed notebook is exported to HTML."""
        return self.foreach is None if self.html is None else self.html


class SchedulingSpec(_Model):
    """Where and how notebooks run. Command-line options override these hints."""

    workers: int | None = Field(None, ge=1, description="LocalCluster workers (default: cores).")
    scheduler: str | None = Field(None, description="tcp://host:8786 of an existing cluster.")
    timeout_s: float = Field(1800.0, gt=0, description="Per-cell execution timeout.")
    kernel: str | None = Field(None, description="Jupyter kernel (default: settings, python3).")
    cron: str | None = Field(None, description="Documentation: when this spec is meant to run.")


class PipelineSpec(_Model):
    """A whole pipeline: data, optional folds, ordered notebook steps, scheduling hints."""

    name: str
    description: str = ""
    data: DataSpec | None = None
    folds: FoldSpec | None = None
    steps: list[StepSpec] = Field(min_length=1)
    scheduling: SchedulingSpec = Field(default_factory=SchedulingSpec)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"pipeline name {value!r} must be letters, digits, '_', '.', '-'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PipelineSpec:
        names = [s.name for s in self.steps]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"step names must be unique, repeated: {dupes}")
        if any(s.foreach == "fold" for s in self.steps) and self.folds is None:
            raise ValueError("a step has foreach: fold but the spec has no 'folds' section")
        if self.folds is not None and self.data is None:
            raise ValueError("folds need data: add a 'data' section")
        return self

    def with_paths_resolved(self, *, base_dir: Path | None = None) -> PipelineSpec:
        """Return a copy whose template, data and strategy-file paths are absolute.

        A ``strategy: path/to/file.py:function`` parameter is resolved like a template (the
        notebooks run with their output folder as working directory, where a relative path
        would not be found).
        """
        from chimera_lab.data.samples import SAMPLES

        bases = (base_dir,) if base_dir is not None else ()
        steps = []
        for step in self.steps:
            update: dict[str, Any] = {"template": str(resolve_path(step.template, base_dirs=bases))}
            target = step.parameters.get("strategy")
            if isinstance(target, str) and _is_file_target(target):
                path, _, func = target.rpartition(":")
                resolved = f"{resolve_path(path, base_dirs=bases)}:{func}"
                update["parameters"] = {**step.parameters, "strategy": resolved}
            steps.append(step.model_copy(update=update))
        data = self.data
        if data is not None and data.path is not None and data.path not in SAMPLES:
            data = data.model_copy(update={"path": str(resolve_path(data.path, base_dirs=bases))})
        return self.model_copy(update={"steps": steps, "data": data})


def _is_file_target(text: str) -> bool:
    path, sep, func = text.rpartition(":")
    return bool(sep and func and path.endswith(".py"))


def load_spec(path: str | Path) -> PipelineSpec:
    """Read a YAML pipeline spec, validate it and resolve its paths.

    Raises
    ------
    ConfigError
        The file is not YAML, or a field is missing or invalid (the message names it).
    """
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: a pipeline spec is a YAML mapping, got {type(raw).__name__}")
    try:
        spec = PipelineSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{p}: invalid pipeline spec: {problems}") from None
    return spec.with_paths_resolved(base_dir=p.resolve().parent)
