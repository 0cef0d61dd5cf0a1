"""One walk-forward fold: optimise on the train window, trade the winner on the test window.

This is the logic of ``notebooks/templates/walk_forward_fold.ipynb`` (the notebook only loads
bars, calls :func:`evaluate_fold` and plots), so it is unit-tested and usable without
papermill. The time rules are enforced, not assumed:

- the optimisation sees bars up to the train end only, the evaluation bars up to the test end
  only (:meth:`TemporalValidator.validate_features` on the frames handed to the engine);
- every test bar is later than every train bar plus the embargo
  (:meth:`TemporalValidator.validate_fold`);
- the chosen parameters are checked for look-ahead on the train window
  (:func:`~chimera_lab.validation.detect_lookahead`, including the early cuts): the run's gate
  checked every grid point on the first bars of the data, this checks the point actually
  traded on the bars it was chosen on; a flagged fold fails with a
  :class:`~chimera_lab.errors.LookAheadError` and its ``result.json`` records the verdict;
- ``warmup_bars`` before each window are seen by indicators but neither traded nor scored
  (``trade_start`` of :func:`chimera_lab.backtest.run`); the first fold, which has no history
  before its train window, warms up inside it and is scored from its first warm bar;
- the warm-up of the test window is **verified**: the positions traded on the test window
  must be the same with ``W`` and with ``2W`` warm-up bars. If they differ the warm-up is
  doubled until they agree (or the history runs out), and ``result.json`` records what was
  requested, used and compared (``warmup_check``). ``warmup: auto`` measures ``W`` on the
  first bars of the data only, so this is what makes every fold's first scored bar the one a
  live run with all past data would trade;
- each window is traded **from flat to flat**: the target is set to 0 at the window's
  second-to-last bar, so the position is closed at the last bar's open and that exit pays
  fee and slippage (``exit_at_end``). Stitched folds therefore pay a round trip at each fold
  boundary, as a strategy restarted per fold would.
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from chimera_lab.errors import ConfigError, DataError, LookAheadError, PipelineError
from chimera_lab.pipelines.data import window_bars
from chimera_lab.pipelines.manifest import fingerprint_bars, iso_utc, sha256_file
from chimera_lab.pipelines.walk_forward import OOS_RETURNS, parse_grid
from chimera_lab.validation import TemporalValidator, detect_lookahead, strategy_name, to_utc

if TYPE_CHECKING:
    from chimera_lab.backtest import BacktestResult

__all__ = ["FoldResult", "evaluate_fold", "output_path", "plot_fold", "strategy_file"]

_STATS_SHOWN = ("sharpe", "total_return", "max_drawdown", "n_trades", "exposure")
_FOLD_LOOKAHEAD_CHECKS = 5  # random cuts of the per-fold check (plus the early ladder)
_ATOL = _RTOL = 1e-9  # targets agree as in chimera_lab.validation (summation-order slack only)


def strategy_file(strategy: Any) -> Path | None:
    """Return the file of a ``path/to/file.py:function`` strategy target, else ``None``."""
    if isinstance(strategy, str) and ":" in strategy:
        path = strategy.rpartition(":")[0]
        if path.endswith(".py"):
            return Path(path).expanduser()
    return None


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
    grid: dict[str, list[Any]] = field(default_factory=dict)
    n_valid_candidates: int = 0
    cost_model: dict[str, Any] = field(default_factory=dict)
    lookahead_check: dict[str, Any] | None = None
    warmup_check: dict[str, Any] = field(default_factory=dict)
    strategy_sha256: str | None = None

    @property
    def warmup_short(self) -> bool:
        """Whether the test window got fewer warm-up bars than requested or verified."""
        short = self.warmup_used_test < self.warmup_bars
        return short or self.warmup_check.get("agreed") is False

    def to_dict(self) -> dict[str, Any]:
        """Return ``result.json``'s content (plain JSON values, timestamps ISO-8601 ``Z``)."""
        return {
            "fold": self.fold,
            "status": "ok",
            "strategy": self.strategy,
            "strategy_sha256": self.strategy_sha256,
            "objective": self.objective,
            "grid": self.grid,
            "best_params": self.best_params,
            "best_score": None if not np.isfinite(self.best_score) else self.best_score,
            "is_stats": self.is_stats,
            "oos_stats": self.oos_stats,
            "train_start": iso_utc(self.train_start),
            "train_end": iso_utc(self.train_end),
            "test_start": iso_utc(self.test_start),
            "test_end": iso_utc(self.test_end),
            "warmup_bars": self.warmup_bars,
            "warmup_used_train": self.warmup_used_train,
            "warmup_used_test": self.warmup_used_test,
            "warmup_short": self.warmup_short,
            "warmup_check": self.warmup_check,
            "lookahead_check": self.lookahead_check,
            "cost_model": self.cost_model,
            "n_candidates": self.n_candidates,
            "n_valid_candidates": self.n_valid_candidates,
            "n_oos_bars": len(self.oos_returns),
            "data_fingerprint": self.data_fingerprint,
        }

    def describe(self) -> str:
        """Return what the fold did: choice, checks, warm-up and cost model (a few lines)."""
        c, w, la = self.cost_model, self.warmup_check, self.lookahead_check
        lines = [
            f"fold {self.fold}: {self.strategy} {self.best_params} chosen from "
            f"{self.n_valid_candidates} of {self.n_candidates} grid points (objective "
            f"{self.objective}); train {iso_utc(self.train_start)} .. {iso_utc(self.train_end)}, "
            f"test {iso_utc(self.test_start)} .. {iso_utc(self.test_end)}",
            f"costs: fee {c.get('fee_bps', 0):g} bps and slippage {c.get('slippage_bps', 0):g} "
            "bps per fill"
            + (
                "; the position is closed at the end of each window" if c.get("exit_at_end") else ""
            ),
        ]
        warm = (
            f"warm-up: {self.warmup_bars} bars requested; used {self.warmup_used_train} before "
            f"the train window, {self.warmup_used_test} before the test window"
        )
        if w.get("agreed"):
            warm += f" (verified: same positions with {w['steps'][-1]['compared_with']} bars)"
        elif w.get("agreed") is False:
            warm += " (NOT verified: the positions still depended on where the history started)"
        else:
            warm += " (not verified: no earlier bars to compare with)"
        if w.get("extended"):
            warm += f"; extended from {w['requested']}"
        lines.append(warm)
        if la is not None:
            lines.append(
                f"look-ahead check of the chosen parameters on the train window: "
                f"{'passed' if la.get('passed') else 'FAILED'} ({la.get('n_checks')} checks at "
                f"{la.get('n_cuts')} cut points)"
            )
        return "\n".join(lines)

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
        frame = self.oos_returns.rename("returns").to_frame()
        if self.oos_exposure is not None:
            frame["exposure"] = self.oos_exposure.reindex(frame.index)
        frame.index.name = "timestamp"
        frame.to_parquet(out / OOS_RETURNS)
        self.table.to_csv(out / "is_table.csv")
        _write_json(out / "result.json", self.to_dict())  # last: its presence means complete
        return out


def _write_json(path: Path, content: Mapping[str, Any]) -> None:
    text = json.dumps(dict(content), indent=2, allow_nan=False, default=str)
    path.write_text(text + "\n", encoding="utf-8")


def _flat_at_end(spec: Any) -> Any:
    """Return ``spec`` with its target forced to 0 on the last two bars of any window.

    The target of bar t trades at bar t+1's open, so a 0 on the second-to-last bar closes
    the position at the last bar's open, paying fee and slippage: the window ends flat.
    """
    from chimera_lab.backtest import StrategySpec

    func = spec.func

    @functools.wraps(func)
    def flat(data: pd.DataFrame, *args: Any, **kwargs: Any) -> Any:
        out = func(data, *args, **kwargs)
        if isinstance(out, pd.DataFrame) and out.shape[1] == 1:
            out = out.iloc[:, 0]
        if isinstance(out, pd.Series):
            out = out.astype("float64")  # a copy: the strategy's own series is left alone
            out.iloc[-2:] = 0.0
        elif isinstance(out, np.ndarray):
            out = out.astype(np.float64, copy=True)
            out[-2:] = 0.0
        return out  # anything else: the engine refuses it with its own message

    return StrategySpec(spec.name, flat, spec.grid, registered=False)


def _targets(result: Any, t0: pd.Timestamp) -> pd.Series:
    # The targets that decide the positions held in the test window: from the bar before t0.
    signal: pd.Series = result.signal
    first = max(int(signal.index.searchsorted(t0, side="left")) - 1, 0)
    return signal.iloc[first:].astype("float64")


def _verify_warmup(
    bars: pd.DataFrame,
    traded: Any,
    params: Mapping[str, Any],
    t0: pd.Timestamp,
    t1: pd.Timestamp,
    requested: int,
    kwargs: Mapping[str, Any],
) -> tuple[dict[str, Any], BacktestResult | None]:
    """Find the warm-up (>= ``requested``) whose test-window positions equal those of twice it.

    Doubles the warm-up while the positions traded in ``[t0, t1]`` (the targets from the bar
    before ``t0`` on, agreeing within ``1e-9 + 1e-9 |b|``) differ between ``W`` and ``2W`` bars
    of history (or ``W + 1`` for ``W = 0``), up to the bars available before
    ``t0``. Returns the record for ``result.json`` (``requested``, ``used``, ``available``,
    ``agreed`` and each comparison made) and the backtest with the warm-up settled on (``None``
    when no comparison was possible: the caller runs it).
    """
    from chimera_lab.backtest import run

    available = int(bars.index.searchsorted(t0, side="left"))

    def backtest(w: int) -> tuple[BacktestResult, pd.Series]:
        window = window_bars(bars, t0, t1, warmup_bars=w)
        result = run(window, traded, trade_start=t0, **kwargs, **params)
        return result, _targets(result, t0)

    w = min(requested, available)
    steps: list[dict[str, Any]] = []
    agreed: bool | None = None
    settled: BacktestResult | None = None
    if w < available:
        settled, current = backtest(w)
        while True:
            w2 = min(2 * w if w else 1, available)
            longer_result, longer = backtest(w2)
            a, b = current.to_numpy(), longer.to_numpy()
            n = min(len(a), len(b))
            a, b = a[-n:], b[-n:]
            with np.errstate(invalid="ignore"):
                close = np.abs(a - b) <= _ATOL + _RTOL * np.abs(np.nan_to_num(b))
            differ = ~(close | (np.isnan(a) & np.isnan(b)))
            where = np.flatnonzero(differ)
            steps.append(
                {
                    "warmup": w,
                    "compared_with": w2,
                    "n_different": int(where.size),
                    "first_different": iso_utc(longer.index[-n:][where[0]]) if where.size else None,
                }
            )
            if not where.size:
                agreed = True
                break
            w, current, settled = w2, longer, longer_result
            if w >= available:
                agreed = False  # all the history there is, and it still mattered
                break
    record = {
        "requested": int(requested),
        "used": int(w),
        "available": available,
        "agreed": agreed,
        "extended": w > requested,
        "steps": steps,
    }
    return record, settled


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
    check_lookahead: bool = True,
    verify_warmup: bool = True,
    exit_at_end: bool = True,
    output_dir: str | Path | None = None,
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
        Inclusive window bounds (naive means UTC).
    warmup_bars : int
        Bars before each window that indicators see but that are not traded or scored.
    objective : str
        Stat to maximise on the train window (``sharpe`` by default; ``-key`` minimises).
    embargo : str or Timedelta
        Required gap between the last train bar and the first test bar.
    fold : int
        Fold number (for the record).
    expected_fingerprint : str, optional
        Fingerprint the run recorded for these bars; a mismatch raises.
    run_kwargs : mapping, optional
        Backtest settings (``fee_bps``, ``slippage_bps``, ``initial_capital``, ...), the
        cost model recorded in the result.
    check_lookahead : bool
        Check the chosen parameters for look-ahead on the train window (see module notes).
    verify_warmup : bool
        Verify (and extend if needed) the test window's warm-up (see module notes).
    exit_at_end : bool
        Close the position at the last bar's open of each window (see module notes).
    output_dir : str or Path, optional
        Write ``result.json``, ``oos_returns.parquet`` and ``is_table.csv`` here; a fold
        refused for look-ahead writes a ``result.json`` with its verdict before raising.

    Raises
    ------
    LookAheadError
        The windows overlap / violate the embargo, a frame reaches past its decision time,
        or the chosen parameters use future data.
    PipelineError
        The bars differ from the ones the run was planned on.
    """
    from chimera_lab.backtest import optimize, resolve_strategy, run

    t_train0, t_train1 = (
        to_utc(train_start, name="train_start"),
        to_utc(train_end, name="train_end"),
    )
    t_test0, t_test1 = to_utc(test_start, name="test_start"), to_utc(test_end, name="test_end")
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
    source = strategy_file(strategy)
    source_sha = sha256_file(source) if source else None
    traded = _flat_at_end(fn) if exit_at_end else fn
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
    opt = optimize(
        is_data, traded, grid_map, objective=objective, trade_start=is_trade_start, **kwargs
    )
    best = dict(opt.best_params)
    plain_best = {str(k): _plain(v) for k, v in best.items()}

    verdict: dict[str, Any] | None = None
    if check_lookahead:
        report = detect_lookahead(
            fn, is_data, n_checks=_FOLD_LOOKAHEAD_CHECKS, params=best, random_state=int(fold)
        )
        verdict = report.to_dict()
        if not report.passed:
            message = (
                f"fold {fold}: the chosen parameters {plain_best} fail the look-ahead check on "
                f"the train window: {report.summary()}"
            )
            if output_dir is not None:
                out = Path(output_dir)
                out.mkdir(parents=True, exist_ok=True)
                _write_json(
                    out / "result.json",
                    {
                        "fold": int(fold),
                        "status": "refused",
                        "reason": message,
                        "strategy": strategy_name(fn),
                        "strategy_sha256": source_sha,
                        "best_params": plain_best,
                        "lookahead_check": verdict,
                        "data_fingerprint": fingerprint,
                    },
                )
            raise LookAheadError(message)
    is_result = run(is_data, traded, trade_start=is_trade_start, **kwargs, **best)

    # Out-of-sample: warm-up bars (the tail of the past) prepended, not traded, not scored.
    oos_result: BacktestResult | None = None
    if verify_warmup:
        warm, oos_result = _verify_warmup(bars, traded, best, t_test0, t_test1, warmup_bars, kwargs)
    else:
        available = int(bars.index.searchsorted(t_test0, side="left"))
        used = min(warmup_bars, available)
        warm = {"requested": warmup_bars, "used": used, "available": available, "agreed": None}
        warm.update(extended=False, steps=[])
    oos_data = window_bars(bars, t_test0, t_test1, warmup_bars=int(warm["used"]))
    used_test = int((oos_data.index < t_test0).sum())
    validator.validate_features(oos_data, decision_time=t_test1)
    if oos_result is None:  # the verification (if any) already ran this very backtest
        oos_result = run(oos_data, traded, trade_start=t_test0, **kwargs, **best)
    returns = pd.Series(oos_result.returns, dtype="float64")
    returns = returns.loc[returns.index >= t_test0]
    exposure = getattr(oos_result, "exposure", None)
    if isinstance(exposure, pd.Series):
        exposure = exposure.loc[exposure.index >= t_test0].astype("float64")
    else:
        exposure = None
    config = oos_result.config
    result = FoldResult(
        fold=int(fold),
        strategy=strategy_name(fn),
        objective=objective,
        best_params=plain_best,
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
        grid={k: [_plain(v) for v in vs] for k, vs in grid_map.items()},
        n_valid_candidates=int(opt.table["error"].isna().sum()),
        cost_model={
            "fee_bps": float(config["fee_bps"]),
            "slippage_bps": float(config["slippage_bps"]),
            "initial_capital": float(config["initial_capital"]),
            "leverage": float(config["leverage"]),
            "allow_short": bool(config["allow_short"]),
            "exit_at_end": bool(exit_at_end),
        },
        lookahead_check=verdict,
        warmup_check=warm,
        strategy_sha256=source_sha,
    )
    if output_dir is not None:
        result.write(output_dir)
    return result


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
