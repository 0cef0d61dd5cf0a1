"""Walk-forward specifics of a pipeline: warm-up, the look-ahead gate, and OOS stitching.

Before any notebook runs, :func:`prepare` looks at the fold step's ``strategy`` and ``grid``:

- ``folds.warmup: auto`` sets each fold's warm-up to the largest
  :func:`~chimera_lab.validation.detect_recursive_bias` warm-up over the grid, so the first
  scored bar of every window is computed as it would be live;
- ``folds.check_lookahead`` (default on) runs
  :func:`~chimera_lab.validation.detect_lookahead` for a few grid points and refuses to run a
  strategy that uses future data.

After the fold step, :func:`stitch_run` concatenates each fold's ``oos_returns.parquet`` into
the run's ``oos_returns.parquet`` and ``oos_equity.parquet`` (equity compounds from 1.0).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chimera_lab.errors import ChimeraError, ConfigError, LookAheadError, PipelineError
from chimera_lab.logging import get_logger
from chimera_lab.pipelines.spec import DataSpec, PipelineSpec, project_root
from chimera_lab.validation import detect_lookahead, detect_recursive_bias, strategy_name

__all__ = [
    "OOS_EQUITY",
    "OOS_RETURNS",
    "grid_points",
    "parse_grid",
    "prepare",
    "stitch_run",
    "walk_forward_spec",
]

log = get_logger(__name__)

OOS_RETURNS = "oos_returns.parquet"
OOS_EQUITY = "oos_equity.parquet"
_MAX_BIAS_BARS = 50_000  # the bias checks look at the first bars only (enough to warm up)
_LOOKAHEAD_POINTS = 4  # grid points checked for look-ahead (first, last, two in between)


def parse_grid(grid: str | Mapping[str, Any] | None) -> dict[str, list[Any]]:
    """Return a parameter grid from JSON text or a mapping; scalars become one-value lists.

    >>> parse_grid('{"fast": [10, 20], "slow": 50}')
    {'fast': [10, 20], 'slow': [50]}
    """
    if grid is None or grid == "":
        return {}
    if isinstance(grid, str):
        try:
            loaded = json.loads(grid)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f'grid is not valid JSON ({exc.msg}); e.g. \'{{"fast": [10, 20], "slow": [50]}}\''
            ) from None
    else:
        loaded = dict(grid)
    if not isinstance(loaded, dict):
        raise ConfigError(f"grid must be a JSON object of parameter lists, got {loaded!r}")
    out: dict[str, list[Any]] = {}
    for key, values in loaded.items():
        seq = list(values) if isinstance(values, list | tuple) else [values]
        if not seq:
            raise ConfigError(f"grid parameter {key!r} has no values")
        out[str(key)] = seq
    return out


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Return every combination of a grid (``[{}]`` for an empty grid).

    >>> grid_points({"fast": [1, 2], "slow": [5]})
    [{'fast': 1, 'slow': 5}, {'fast': 2, 'slow': 5}]
    """
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]


def walk_forward_spec(
    *,
    data: DataSpec,
    strategy: str,
    train: str | int,
    test: str | int,
    step: str | int | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    objective: str = "sharpe",
    anchored: bool = False,
    embargo: str | int = "0min",
    warmup: str | int = "auto",
    name: str | None = None,
    check_lookahead: bool = True,
    workers: int | None = None,
    scheduler: str | None = None,
) -> PipelineSpec:
    """Return the walk-forward pipeline (fold template per fold, then the report).

    This is what ``chimera walk-forward`` runs; ``pipelines/walk_forward_sma.yaml`` is the
    same spec written out.
    """
    templates = project_root() / "notebooks" / "templates"
    fold_params: dict[str, Any] = {
        "strategy": strategy,
        "objective": objective,
        # Empty means the strategy's registered grid (the template's default is a demo grid).
        "grid": {k: list(v) for k, v in grid.items()} if grid else "",
    }
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(strategy.split(":")[-1]).stem)[:40] or "custom"
    return PipelineSpec.model_validate(
        {
            "name": name or f"walk_forward_{safe}",
            "description": f"Walk-forward optimisation of {strategy}",
            "data": data.model_dump(),
            "folds": {
                "train": train,
                "test": test,
                "step": step,
                "anchored": anchored,
                "embargo": embargo,
                "warmup": warmup,
                "check_lookahead": check_lookahead,
            },
            "steps": [
                {
                    "name": "fold",
                    "template": str(templates / "walk_forward_fold.ipynb"),
                    "foreach": "fold",
                    "parameters": fold_params,
                },
                {
                    "name": "report",
                    "template": str(templates / "walk_forward_report.ipynb"),
                    "parameters": {},
                },
            ],
            "scheduling": {"workers": workers, "scheduler": scheduler},
        }
    )


def _fold_step_parameters(spec: Any) -> dict[str, Any]:
    for step in spec.steps:
        if step.foreach == "fold":
            return dict(step.parameters)
    return {}


def _strategy_and_grid(spec: Any) -> tuple[Any, list[dict[str, Any]]] | None:
    params = _fold_step_parameters(spec)
    if "strategy" not in params:
        return None
    from chimera_lab.backtest import resolve_strategy

    strategy = resolve_strategy(params["strategy"])
    grid = parse_grid(params.get("grid"))
    if not grid:
        default = getattr(strategy, "grid", None)
        grid = parse_grid(dict(default)) if default else {}
    return strategy, grid_points(grid)


def _each_valid_point(
    strategy: Any, points: list[dict[str, Any]], check: Any
) -> tuple[list[Any], list[dict[str, Any]]]:
    # Grid points the strategy itself rejects (fast >= slow) are skipped, as optimize does.
    results, skipped = [], []
    for point in points:
        try:
            results.append((point, check(point)))
        except ChimeraError as exc:
            if isinstance(exc, LookAheadError):
                raise
            skipped.append({"params": point, "reason": str(exc)})
    if not results:
        first = skipped[0]["reason"] if skipped else "empty grid"
        raise PipelineError(
            f"no grid point of {strategy_name(strategy)} could be evaluated; first reason: {first}"
        )
    return results, skipped


def prepare(spec: Any, bars: pd.DataFrame) -> dict[str, Any]:
    """Resolve the folds' warm-up and run the look-ahead gate for a walk-forward spec.

    Returns
    -------
    dict
        ``warmup_bars`` and ``checks`` (what was measured, for the manifest).

    Raises
    ------
    LookAheadError
        The fold step's strategy uses future data (``folds.check_lookahead``).
    PipelineError
        ``warmup: auto`` without a strategy, or a strategy whose state never converges.
    """
    folds = spec.folds
    resolved = _strategy_and_grid(spec)
    checks: dict[str, Any] = {}
    sample = bars.iloc[:_MAX_BIAS_BARS]
    if resolved is not None and folds.check_lookahead:
        strategy, points = resolved

        def lookahead_check(point: dict[str, Any]) -> dict[str, Any]:
            report = detect_lookahead(strategy, sample, n_checks=5, params=point)
            if report.lookahead:
                raise LookAheadError(
                    f"refusing to run: {report.summary()}; fix the strategy (features at t may "
                    "use data <= t only) or set folds.check_lookahead: false to study it anyway"
                )
            return report.to_dict()

        done, skipped = _each_valid_point(
            strategy, _spread(points, _LOOKAHEAD_POINTS), lookahead_check
        )
        checks["lookahead"] = {
            "lookahead": False,
            "checked": [verdict for _, verdict in done],
            "skipped": skipped,
        }
    if folds.warmup == "auto":
        if resolved is None:
            raise PipelineError(
                "folds.warmup: auto needs the fold step's 'strategy' parameter to measure the "
                "warm-up; set folds.warmup to a number of bars"
            )
        strategy, points = resolved

        def warmup_of(point: dict[str, Any]) -> int:
            rep = detect_recursive_bias(strategy, sample, params=point)
            if rep.warmup_bars is None:
                raise PipelineError(
                    f"{rep.summary()} (params {point}); set folds.warmup to a number of bars"
                )
            return rep.warmup_bars

        measured, skipped = _each_valid_point(strategy, points, warmup_of)
        warmup = max(w for _, w in measured)
        checks["warmup"] = {
            "method": "auto",
            "warmup_bars": warmup,
            "per_params": [{"params": p, "warmup_bars": w} for p, w in measured],
            "skipped": skipped,
        }
    else:
        warmup = int(folds.warmup)
        checks["warmup"] = {"method": "explicit", "warmup_bars": warmup}
    log.info("pipeline.warmup", warmup_bars=warmup, method=checks["warmup"]["method"])
    return {"warmup_bars": warmup, "checks": checks}


def _spread(points: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    if len(points) <= k:
        return points
    picks = np.unique(np.linspace(0, len(points) - 1, k).round().astype(int))
    return [points[int(i)] for i in picks]


def stitch_run(run_dir: Path, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Concatenate the folds' ``oos_returns.parquet`` into the run's OOS returns and equity.

    Only successful folds are stitched; the result says which. Returns the manifest
    ``outputs`` entries (empty when no fold wrote OOS returns).

    Raises
    ------
    PipelineError
        Two folds' OOS returns overlap in time.
    """
    parts = []
    used = []
    for record in records:
        path = run_dir / record["output_dir"] / OOS_RETURNS
        if record["status"] != "ok" or not path.is_file():
            continue
        frame = pd.read_parquet(path)
        if "returns" not in frame.columns:
            raise PipelineError(f"{path} has no 'returns' column")
        frame = frame[["returns"]].assign(fold=int(record["fold"]))
        parts.append(frame)
        used.append(int(record["fold"]))
    if not parts:
        return {}
    oos = pd.concat(parts).sort_index()
    if oos.index.has_duplicates:
        dup = oos.index[oos.index.duplicated()][0]
        raise PipelineError(f"fold OOS returns overlap at {dup}; test windows must not overlap")
    oos.index.name = "timestamp"
    oos.to_parquet(run_dir / OOS_RETURNS)
    equity = (1.0 + oos["returns"]).cumprod().rename("equity").to_frame()
    equity["fold"] = oos["fold"]
    equity.to_parquet(run_dir / OOS_EQUITY)
    return {
        "oos_returns": OOS_RETURNS,
        "oos_equity": OOS_EQUITY,
        "oos_folds": used,
        "oos_bars": len(oos),
        "oos_total_return": float(equity["equity"].iloc[-1] - 1.0),
    }
