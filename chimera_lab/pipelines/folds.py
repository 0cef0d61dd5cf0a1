"""One walk-forward fold: optimise on the train window, trade the winner on the test window.

This is the logic of ``notebooks/templates/walk_forward_fold.ipynb`` (the notebook only loads
bars, calls :func:`evaluate_fold`, writes and plots), so it is unit-tested and usable without
papermill. The time rules are enforced, not assumed:

- the optimisation sees bars up to the train end only, the evaluation bars up to the test end
  only (:meth:`TemporalValidator.validate_features` on the frames handed to the engine);
- every test bar is later than every train bar plus the embargo
  (:meth:`TemporalValidator.validate_fold`);
- ``warmup_bars`` before each window are seen by indicators but neither traded nor scored
  (``trade_start`` of :func:`chimera_lab.backtest.run`); the first fold, which has no history
  before its train window, warms up inside it and is scored from its first warm bar.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chimera_lab.errors import ConfigError, DataError, PipelineError
from chimera_lab.pipelines.data import window_bars
from chimera_lab.pipelines.manifest import fingerprint_bars
from chimera_lab.pipelines.walk_forward import OOS_RETURNS, parse_grid
from chimera_lab.validation import TemporalValidator, strategy_name

__all__ = ["FoldResult", "evaluate_fold", "output_path", "plot_fold"]

_STATS_SHOWN = ("sharpe", "total_return", "max_drawdown", "n_trades", "exposure")


def _utc(value: Any, name: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={value!r} is not a timestamp") from None
    if pd.isna(ts):
        raise ConfigError(f"{name} is required")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def output_path(output_dir: str) -> Path:
    """Return ``output_dir`` as a created directory; empty means a fresh temporary one."""
    path = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="chimera-fold-"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _clean_stats(stats: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in stats.items():
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float) and not np.isfinite(v):
            v = None
        if isinstance(v, int | float | str | bool) or v is None:
            out[str(k)] = v
    return out


@dataclass(frozen=True, eq=False)
class FoldResult:
    """The outcome of one fold (what ``result.json`` and ``oos_returns.parquet`` hold)."""

    fold: int
    strategy: str
    objective: str
    best_params: dict[str, Any]
    best_score: float
    is_stats: dict[str, Any]
    oos_stats: dict[str, Any]
    oos_returns: pd.Series
    oos_exposure: pd.Series | None
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp
    warmup_bars: int
    warmup_used_train: int
    warmup_used_test: int
    n_candidates: int
    data_fingerprint: str
    table: pd.DataFrame = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Return ``result.json``'s content (plain JSON values)."""
        return {
            "fold": self.fold,
            "strategy": self.strategy,
            "objective": self.objective,
            "best_params": self.best_params,
            "best_score": None if not np.isfinite(self.best_score) else self.best_score,
            "is_stats": self.is_stats,
            "oos_stats": self.oos_stats,
            "train_start": self.train_start.isoformat(),
            "train_end": self.train_end.isoformat(),
            "test_start": self.test_start.isoformat(),
            "test_end": self.test_end.isoformat(),
            "warmup_bars": self.warmup_bars,
            "warmup_used_train": self.warmup_used_train,
            "warmup_used_test": self.warmup_used_test,
            "n_candidates": self.n_candidates,
            "n_oos_bars": len(self.oos_returns),
            "data_fingerprint": self.data_fingerprint,
        }

    def summary_frame(self) -> pd.DataFrame:
        """Return the in-sample and out-of-sample headline stats side by side."""
        return pd.DataFrame(
            {
                "in_sample": [self.is_stats.get(k) for k in _STATS_SHOWN],
                "out_of_sample": [self.oos_stats.get(k) for k in _STATS_SHOWN],
            },
            index=pd.Index(_STATS_SHOWN, name="stat"),
        )

    def write(self, output_dir: str | Path) -> Path:
        """Write ``result.json``, ``oos_returns.parquet`` and ``is_table.csv``; return the dir."""
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False, default=str)
        (out / "result.json").write_text(text + "\n", encoding="utf-8")
        frame = self.oos_returns.rename("returns").to_frame()
        if self.oos_exposure is not None:
            frame["exposure"] = self.oos_exposure.reindex(frame.index)
        frame.index.name = "timestamp"
        frame.to_parquet(out / OOS_RETURNS)
        self.table.to_csv(out / "is_table.csv")
        return out


def evaluate_fold(
    bars: pd.DataFrame,
    *,
    strategy: Any,
    grid: str | Mapping[str, Sequence[Any]] | None,
    train_start: Any,
    train_end: Any,
    test_start: Any,
    test_end: Any,
    warmup_bars: int = 0,
    objective: str = "sharpe",
    embargo: str | pd.Timedelta = "0min",
    fold: int = 0,
    expected_fingerprint: str | None = None,
    run_kwargs: Mapping[str, Any] | None = None,
) -> FoldResult:
    """Optimise ``grid`` on the train window and evaluate the best point on the test window.

    Parameters
    ----------
    bars : DataFrame
        OHLCV bars covering the warm-up, train and test windows (more is fine).
    strategy : str or callable
        Registered name, ``file.py:func`` or callable (see
        :func:`chimera_lab.backtest.resolve_strategy`).
    grid : JSON str or mapping, optional
        Parameter grid; empty means the strategy's default grid.
    train_start, train_end, test_start, test_end : timestamp-like
        Inclusive window bounds (UTC).
    warmup_bars : int
        Bars before each window that indicators see but that are not traded or scored.
    objective : str
        Stat to maximise on the train window (``sharpe`` by default).
    embargo : str or Timedelta
        Required gap between the last train bar and the first test bar.
    fold : int
        Fold number (for the record).
    expected_fingerprint : str, optional
        Fingerprint the run recorded for these bars; a mismatch raises.
    run_kwargs : mapping, optional
        Extra keyword arguments for the backtest (fees, capital, ...).

    Raises
    ------
    LookAheadError
        The windows overlap / violate the embargo, or a frame reaches past its decision time.
    PipelineError
        The bars differ from the ones the run was planned on.
    """
    from chimera_lab.backtest import optimize, resolve_strategy, run

    t_train0, t_train1 = _utc(train_start, "train_start"), _utc(train_end, "train_end")
    t_test0, t_test1 = _utc(test_start, "test_start"), _utc(test_end, "test_end")
    if warmup_bars < 0:
        raise ConfigError(f"warmup_bars must be >= 0, got {warmup_bars}")
    fold_bars = window_bars(bars, t_train0, t_test1, warmup_bars=warmup_bars)
    fingerprint = fingerprint_bars(fold_bars)
    if expected_fingerprint and fingerprint != expected_fingerprint:
        raise PipelineError(
            f"fold {fold}: the bars read here (sha256 {fingerprint[:12]}) differ from the ones "
            f"the run was planned on ({expected_fingerprint[:12]}); the data changed"
        )
    train = bars.loc[(bars.index >= t_train0) & (bars.index <= t_train1)]
    test = bars.loc[(bars.index >= t_test0) & (bars.index <= t_test1)]
    if train.empty or test.empty:
        raise DataError(
            f"fold {fold}: no bars in the {'train' if train.empty else 'test'} window "
            f"({t_train0}..{t_train1} / {t_test0}..{t_test1})"
        )
    validator = TemporalValidator(embargo=pd.Timedelta(embargo))
    validator.validate_fold(train, test)

    fn = resolve_strategy(strategy)
    kwargs = dict(run_kwargs or {})
    grid_map = parse_grid(grid if isinstance(grid, str) or grid is None else dict(grid))
    if not grid_map:
        default = getattr(fn, "grid", None)
        grid_map = parse_grid(dict(default)) if default else {}
    if not grid_map:
        raise ConfigError(
            f"no parameter grid for {strategy_name(fn)}: pass grid (JSON) or register a default"
        )

    # In-sample: warm-up bars before the train window, then the train window, nothing later.
    is_data = window_bars(bars, t_train0, t_train1, warmup_bars=warmup_bars)
    used_train = int((is_data.index < t_train0).sum())
    is_trade_start = t_train0
    if used_train < warmup_bars:  # first fold: no history before it, warm up inside
        shortfall = min(warmup_bars - used_train, len(train) - 1)
        is_trade_start = train.index[shortfall]
    validator.validate_features(is_data, decision_time=t_train1)
    opt = optimize(is_data, fn, grid_map, objective=objective, trade_start=is_trade_start, **kwargs)
    best = dict(opt.best_params)
    is_result = run(is_data, fn, trade_start=is_trade_start, **kwargs, **best)

    # Out-of-sample: warm-up bars (the tail of the past) prepended, not traded, not scored.
    oos_data = window_bars(bars, t_test0, t_test1, warmup_bars=warmup_bars)
    used_test = int((oos_data.index < t_test0).sum())
    validator.validate_features(oos_data, decision_time=t_test1)
    oos_result = run(oos_data, fn, trade_start=t_test0, **kwargs, **best)
    returns = pd.Series(oos_result.returns, dtype="float64")
    returns = returns.loc[returns.index >= t_test0]
    exposure = getattr(oos_result, "exposure", None)
    if isinstance(exposure, pd.Series):
        exposure = exposure.loc[exposure.index >= t_test0].astype("float64")
    else:
        exposure = None
    return FoldResult(
        fold=int(fold),
        strategy=strategy_name(fn),
        objective=objective,
        best_params={str(k): _plain(v) for k, v in best.items()},
        best_score=float(opt.best_score),
        is_stats=_clean_stats(is_result.stats),
        oos_stats=_clean_stats(oos_result.stats),
        oos_returns=returns,
        oos_exposure=exposure,
        train_start=t_train0,
        train_end=t_train1,
        test_start=t_test0,
        test_end=t_test1,
        warmup_bars=int(warmup_bars),
        warmup_used_train=used_train,
        warmup_used_test=used_test,
        n_candidates=len(opt.table),
        data_fingerprint=fingerprint,
        table=opt.table,
    )


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def plot_fold(result: FoldResult, bars: pd.DataFrame) -> Any:
    """Plot a fold: OOS equity vs buy-and-hold, exposure, and the in-sample grid scores."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [2, 1]})
    ax = axes[0]
    r = result.oos_returns
    bh = bars["close"].pct_change().reindex(r.index).fillna(0.0)
    ax.plot(r.index, (1.0 + r).cumprod(), label=f"strategy {result.best_params}")
    ax.plot(r.index, (1.0 + bh).cumprod(), label="buy & hold", alpha=0.8)
    ax.axhline(1.0, color="black", lw=0.6)
    ax.set_title(
        f"fold {result.fold}: out-of-sample {result.test_start:%Y-%m-%d %H:%M} .. "
        f"{result.test_end:%Y-%m-%d %H:%M}"
    )
    ax.legend(loc="best", fontsize=8)
    if result.oos_exposure is not None:
        twin = ax.twinx()
        twin.fill_between(
            result.oos_exposure.index,
            result.oos_exposure,
            step="post",
            alpha=0.12,
            color="tab:green",
        )
        twin.set_ylabel("exposure")
    ax = axes[1]
    table = result.table
    params = list(result.best_params)
    valid = table[table["error"].isna()] if "error" in table else table
    if len(params) == 2 and not valid.empty:
        grid = valid.pivot_table(index=params[0], columns=params[1], values="score")
        im = ax.imshow(grid.to_numpy(dtype=float), cmap="viridis", aspect="auto")
        ax.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns])
        ax.set_yticks(range(grid.shape[0]), [str(i) for i in grid.index])
        ax.set_xlabel(params[1])
        ax.set_ylabel(params[0])
        fig.colorbar(im, ax=ax, label=result.objective)
    else:
        ax.bar(range(len(valid)), valid["score"].to_numpy(dtype=float))
        ax.set_xlabel("grid point (best first)")
        ax.set_ylabel(result.objective)
    ax.set_title(f"in-sample {result.objective} over the grid")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig
