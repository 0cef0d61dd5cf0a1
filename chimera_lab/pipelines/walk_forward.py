"""Walk-forward specifics of a pipeline: warm-up, the look-ahead gate, and OOS stitching.

Before any notebook runs, :func:`prepare` looks at the fold step's ``strategy`` and ``grid``:

- ``folds.warmup: auto`` sets each fold's warm-up to the largest
  :func:`~chimera_lab.validation.detect_recursive_bias` warm-up over the grid plus one bar
  (the position on a window's first bar is decided at the bar before it), measured on the
  first 50,000 bars (an estimate: each fold verifies it on its own test window and extends it
  when it is not enough, see :mod:`chimera_lab.pipelines.folds`);
- ``folds.check_lookahead`` (default on) runs
  :func:`~chimera_lab.validation.detect_lookahead` for **every** valid grid point and refuses
  to run a strategy one of whose points uses future data (each fold checks its chosen point
  again on its own train window, :mod:`chimera_lab.pipelines.folds`);
- the objective must be a numeric stats key (checked before any notebook runs).

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
    "check_objective",
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
    fee_bps: float | None = None,
    slippage_bps: float | None = None,
) -> PipelineSpec:
    """Return the walk-forward pipeline (fold template per fold, then the report).

    This is what ``chimera walk-forward`` runs; ``pipelines/walk_forward_sma.yaml`` is the
    same spec written out. ``fee_bps``/``slippage_bps`` default to the settings'
    (``CHIMERA_BACKTEST__*``) when the run is planned.
    """
    templates = project_root() / "notebooks" / "templates"
    fold_params: dict[str, Any] = {
        "strategy": strategy,
        "objective": objective,
        # Empty means the strategy's registered grid (the template's default is a demo grid).
        "grid": {k: list(v) for k, v in grid.items()} if grid else "",
    }
    if fee_bps is not None:
        fold_params["fee_bps"] = float(fee_bps)
    if slippage_bps is not None:
        fold_params["slippage_bps"] = float(slippage_bps)
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


def _strategy_and_grid(spec: Any) -> tuple[Any, list[dict[str, Any]], str] | None:
    params = _fold_step_parameters(spec)
    if "strategy" not in params:
        return None
    from chimera_lab.backtest import resolve_strategy

    strategy = resolve_strategy(params["strategy"])
    grid = parse_grid(params.get("grid"))
    if not grid:
        default = getattr(strategy, "grid", None)
        grid = parse_grid(dict(default)) if default else {}
    return strategy, grid_points(grid), str(params.get("objective") or "sharpe")


def _valid_points(
    strategy: Any, points: list[dict[str, Any]], sample: pd.DataFrame
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split the grid into points the strategy accepts and invalid combinations.

    A point is invalid (skipped, as :func:`chimera_lab.backtest.optimize` skips it) when its
    parameters fail the strategy's signature check or the strategy rejects it with a
    :class:`~chimera_lab.errors.ChimeraError` on the full sample (``fast >= slow``). Any other
    exception on the full sample is a bug in the strategy and stops the run. What a point
    does on truncated or shocked histories is the checks' business, not a reason to skip.
    """
    valid, skipped = [], []
    for point in points:
        try:
            strategy.check_params(point)
        except ChimeraError as exc:
            skipped.append({"params": point, "reason": str(exc)})
            continue
        try:
            strategy(sample.copy(), **point)
        except ChimeraError as exc:
            skipped.append({"params": point, "reason": str(exc)})
            continue
        except Exception as exc:
            raise PipelineError(
                f"strategy {strategy_name(strategy)} with {point} fails on the bars: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        valid.append(point)
    if not valid:
        first = skipped[0]["reason"] if skipped else "empty grid"
        raise PipelineError(
            f"no grid point of {strategy_name(strategy)} could be evaluated; first reason: {first}"
        )
    return valid, skipped


def check_objective(
    strategy: Any, objective: str, bars: pd.DataFrame, point: Mapping[str, Any]
) -> None:
    """Fail fast on an objective that is not a numeric stats key (with close matches).

    The keys come from a backtest of ``point`` on ``bars`` (what the folds will optimise).

    Raises
    ------
    ConfigError
        Unknown key (``did you mean ...``), or a key whose value is not a number.
    """
    import difflib

    from chimera_lab.backtest import run

    key = objective[1:] if objective.startswith("-") else objective
    stats = run(bars, strategy, **point).stats
    if key not in stats:
        numeric = [k for k, v in stats.items() if _numeric(v)]
        close = difflib.get_close_matches(key, numeric, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"unknown objective {objective!r}{hint} (any numeric stats key, '-key' to minimise: "
            f"{', '.join(sorted(numeric))})"
        )
    if not _numeric(stats[key]):
        raise ConfigError(
            f"objective {objective!r} is not a number ({type(stats[key]).__name__}); choose a "
            "numeric stats key such as sharpe, cagr, calmar or -max_drawdown"
        )


def _numeric(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int | float | np.integer | np.floating | pd.Timedelta)


def prepare(spec: Any, bars: pd.DataFrame) -> dict[str, Any]:
    """Resolve the folds' warm-up and run the look-ahead gate for a walk-forward spec.

    Every grid point is checked (the check is cheap next to a fold): a leak hidden behind
    one parameter value (``mode="confirm"`` using ``close.shift(-5)``) cannot slip through
    because the optimiser might pick it. Invalid combinations are skipped (see
    :func:`_valid_points`); a strategy that raises on a truncated or shocked history is a
    finding, like a difference. The objective is validated here, before any notebook runs.

    Returns
    -------
    dict
        ``warmup_bars`` and ``checks`` (what was measured, for the manifest).

    Raises
    ------
    LookAheadError
        A grid point of the fold step's strategy uses future data, or raises when the future
        is hidden or shocked (``folds.check_lookahead``).
    ConfigError
        The objective is not a numeric stats key.
    PipelineError
        ``warmup: auto`` without a strategy, a strategy whose state never converges, or no
        valid grid point.
    """
    folds = spec.folds
    resolved = _strategy_and_grid(spec)
    checks: dict[str, Any] = {}
    sample = bars.iloc[:_MAX_BIAS_BARS]
    valid: list[dict[str, Any]] = []
    if resolved is not None:
        strategy, points, objective = resolved
        valid, skipped = _valid_points(strategy, points, sample)
        check_objective(strategy, objective, sample, valid[0])
        checks["grid"] = {
            "n_points": len(points),
            "n_valid": len(valid),
            "skipped": skipped,
            "objective": objective,
        }
    if resolved is not None and folds.check_lookahead:
        strategy = resolved[0]
        verdicts, flagged = [], []
        for point in valid:
            report = detect_lookahead(strategy, sample, n_checks=5, params=point)
            verdicts.append(report.to_dict())
            if not report.passed:
                flagged.append(report)
        checks["lookahead"] = {
            "lookahead": any(r.lookahead for r in flagged),
            "passed": not flagged,
            "checked": verdicts,
            "n_flagged": len(flagged),
        }
        if flagged:
            shown = "; ".join(f"{r.params}: {r.summary()}" for r in flagged[:3])
            more = f" (and {len(flagged) - 3} more)" if len(flagged) > 3 else ""
            raise LookAheadError(
                f"refusing to run: {len(flagged)} of {len(valid)} grid point(s) of "
                f"{strategy_name(strategy)} fail the look-ahead check: {shown}{more}; fix the "
                "strategy (features at t may use data <= t only, and it must run on any prefix "
                "of its data) or set folds.check_lookahead: false to study it anyway"
            )
    if folds.warmup == "auto":
        if resolved is None:
            raise PipelineError(
                "folds.warmup: auto needs the fold step's 'strategy' parameter to measure the "
                "warm-up; set folds.warmup to a number of bars"
            )
        strategy = resolved[0]
        measured = []
        for point in valid:
            try:
                rep = detect_recursive_bias(strategy, sample, params=point)
            except ChimeraError as exc:
                raise PipelineError(
                    f"cannot measure the warm-up of {strategy_name(strategy)} {point}: {exc}; "
                    "set folds.warmup to a number of bars"
                ) from exc
            if rep.warmup_bars is None:
                raise PipelineError(
                    f"{rep.summary()} (params {point}); set folds.warmup to a number of bars"
                )
            measured.append((point, rep.warmup_bars))
        # The signal needs `w` bars before its values are reliable; the position held on a
        # window's first bar is decided by the signal of the bar before it: one bar more.
        signal_warmup = max(w for _, w in measured)
        warmup = signal_warmup + 1
        checks["warmup"] = {
            "method": "auto",
            "warmup_bars": warmup,
            "signal_warmup_bars": signal_warmup,
            "measured_on_bars": len(sample),
            "per_params": [{"params": p, "warmup_bars": w} for p, w in measured],
        }
    else:
        warmup = int(folds.warmup)
        checks["warmup"] = {"method": "explicit", "warmup_bars": warmup}
    log.info("pipeline.warmup", warmup_bars=warmup, method=checks["warmup"]["method"])
    return {"warmup_bars": warmup, "checks": checks}


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
