"""The walk-forward report: what ``notebooks/templates/walk_forward_report.ipynb`` shows.

A :class:`WalkForwardRun` gathers a run's folds (``result.json`` of each fold, plus the
manifest's status and errors), the stitched out-of-sample returns and the bars. The report's
sections are functions of it, so they are tested here and the notebook stays thin:

- :func:`equity_curves` — OOS equity of the strategy against buy-and-hold over the same bars;
- :func:`fold_table` — one row per fold: windows, chosen parameters, IS and OOS stats, status;
- :func:`parameter_stability` — how often the chosen parameters change across folds;
- :func:`sharpe_gap` — in-sample vs out-of-sample Sharpe per fold (the overfitting gap);
- :func:`var_coverage` — rolling VaR forecasts of the OOS returns backtested against them
  (Kupiec, Christoffersen; the Basel traffic light only for daily or coarser bars, where its
  250-observation window means a trading year; a one-line verdict per method;
  :mod:`chimera_lab.risk`).

:func:`demo_walk_forward` builds a small run in-process (no papermill, no Dask) from the bundled
sample, so the report template has something to show under nbval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chimera_lab.errors import DataError, PipelineError
from chimera_lab.pipelines.data import load_bars, source_parameters
from chimera_lab.pipelines.manifest import iso_utc, read_manifest
from chimera_lab.pipelines.spec import DataSpec
from chimera_lab.pipelines.walk_forward import OOS_RETURNS

__all__ = [
    "WalkForwardRun",
    "coverage_frame",
    "coverage_verdict",
    "demo_walk_forward",
    "equity_curves",
    "fold_table",
    "load_walk_forward",
    "oos_summary",
    "parameter_stability",
    "plot_equity",
    "plot_parameter_stability",
    "plot_sharpe_gap",
    "sharpe_gap",
    "var_coverage",
]

_VAR_METHODS = ("historical", "parametric", "monte_carlo")


@dataclass(frozen=True, eq=False)
class WalkForwardRun:
    """A walk-forward run as the report sees it.

    Attributes
    ----------
    name : str
        Run id (or ``demo``).
    folds : list of dict
        One record per fold: ``fold``, ``status``, ``error`` and, for finished folds, the
        content of its ``result.json`` (windows, ``best_params``, ``is_stats``, ``oos_stats``).
    oos_returns : Series
        Stitched out-of-sample returns of the successful folds (time-ordered).
    bars : DataFrame
        The bars of the run (for buy-and-hold).
    objective : str
        The optimisation objective.
    """

    name: str
    folds: list[dict[str, Any]]
    oos_returns: pd.Series
    bars: pd.DataFrame
    objective: str = "sharpe"
    manifest: dict[str, Any] | None = None

    def describe(self) -> str:
        """Return what was run: strategy, grid, costs, windows, checks, data, code."""
        first = self.ok_folds[0] if self.ok_folds else {}
        grid = first.get("grid") or {}
        n_points = math.prod(len(v) for v in grid.values()) if grid else None
        costs = first.get("cost_model") or {}
        cost_line = (
            f"costs: fee {costs['fee_bps']:g} bps and slippage {costs['slippage_bps']:g} bps per "
            "fill"
            + (
                "; each fold closes its position at the end of its test window (the exit pays "
                "fee and slippage)"
                if costs.get("exit_at_end")
                else ""
            )
            if costs
            else "costs: unknown (no finished fold)"
        )
        short = [f["fold"] for f in self.ok_folds if f.get("warmup_short")]
        extended = [
            f["fold"] for f in self.ok_folds if (f.get("warmup_check") or {}).get("extended")
        ]
        # Backtests the optimiser ran: the valid grid points of every finished fold.
        candidates = sum(
            int(f.get("n_valid_candidates") or f.get("n_candidates") or 0) for f in self.ok_folds
        )
        if self.manifest is None:
            return "\n".join(
                [
                    f"in-process demo: {first.get('strategy', '?')}, {len(self.folds)} folds on "
                    f"{len(self.bars)} bars {iso_utc(self.bars.index[0])} .. "
                    f"{iso_utc(self.bars.index[-1])}",
                    f"grid {_grid_text(grid)}: {n_points} candidates per fold, "
                    f"{candidates} backtests in all",
                    cost_line,
                    _warmup_line(short, extended),
                ]
            )
        m = self.manifest
        spec, env = m["spec"], m.get("environment", {})
        step = next(s for s in spec["steps"] if s.get("foreach") == "fold")
        params = step.get("parameters", {})
        f = spec.get("folds") or {}
        checks = m.get("checks") or {}
        warm = checks.get("warmup", {})
        gate = checks.get("lookahead")
        git = env.get("git") or {}
        data = m.get("data") or {}
        lines = [
            f"run {m['run_id']}, created {m['created']}: {len(self.ok_folds)} of "
            f"{len(self.folds)} folds finished",
            f"strategy {params.get('strategy')}, objective {params.get('objective', 'sharpe')}, "
            f"grid {_grid_text(grid) if grid else params.get('grid') or '(the strategy default)'}"
            + (f" ({'given' if params.get('grid') else 'the strategy default'})" if grid else ""),
            f"candidates: {n_points} grid points per fold"
            + (
                f" ({(checks.get('grid') or {}).get('n_valid')} valid)"
                if checks.get("grid")
                else ""
            )
            + f", {candidates} in-sample backtests over {len(self.ok_folds)} folds",
            cost_line,
            f"folds: train {f.get('train')}, test {f.get('test')}, "
            f"step {f.get('step') or f.get('test')}, "
            f"{'anchored' if f.get('anchored') else 'rolling'}, embargo {f.get('embargo')}, "
            f"warm-up {warm.get('warmup_bars')} bars ({warm.get('method')})",
            _warmup_line(short, extended),
            "look-ahead gate: "
            + (
                f"every one of {len(gate.get('checked', []))} grid points passed; each fold "
                "re-checked its chosen point on its train window"
                if gate
                else "off (folds.check_lookahead: false)"
            ),
            f"data: {data.get('n_bars')} bars {data.get('first')} .. {data.get('last')}, "
            f"sha256 {str(data.get('fingerprint'))[:16]}",
            f"code: chimera_lab {env.get('chimera_lab')}"
            + (
                f", git {git.get('commit', '')[:12]}" + (" (dirty)" if git.get("dirty") else "")
                if git
                else ", no git checkout"
            )
            + (
                f"; {len(m.get('attempts', []))} attempts"
                + (", some with other code (--force)" if _forced(m) else "")
                if len(m.get("attempts", [])) > 1
                else ""
            ),
        ]
        return "\n".join(lines)

    @property
    def ok_folds(self) -> list[dict[str, Any]]:
        """Folds that finished."""
        return [f for f in self.folds if f["status"] == "ok"]

    def summary(self) -> str:
        """One paragraph: folds, OOS performance, buy-and-hold, the Sharpe gap."""
        s = oos_summary(self)
        gap = sharpe_gap(self)
        failed = len(self.folds) - len(self.ok_folds)
        return (
            f"{self.name}: {len(self.ok_folds)} of {len(self.folds)} folds finished"
            + (f" ({failed} failed)" if failed else "")
            + f"; out-of-sample {s['n_bars']} bars {s['start']} .. {s['end']}: total return "
            f"{s['total_return']:+.2%} (buy & hold {s['buy_and_hold_return']:+.2%}), Sharpe "
            f"{s['sharpe']:.2f}, max drawdown {s['max_drawdown']:.2%}; mean in-sample Sharpe "
            f"{gap['is_sharpe'].mean():.2f} vs out-of-sample {gap['oos_sharpe'].mean():.2f}."
        )


def _grid_text(grid: Mapping[str, Sequence[Any]]) -> str:
    return ", ".join(f"{k} {list(v)}" for k, v in grid.items()) or "(empty)"


def _warmup_line(short: Sequence[int], extended: Sequence[int]) -> str:
    if not short and not extended:
        return "warm-up verified in every fold: the test positions are those of twice the history"
    parts = []
    if extended:
        parts.append(f"extended (the estimate was too short) in fold(s) {list(extended)}")
    if short:
        parts.append(
            f"fold(s) {list(short)} had fewer warm-up bars than needed or could not verify them "
            "(their first test bars may differ from a live run)"
        )
    return "warm-up: " + "; ".join(parts)


def _forced(manifest: Mapping[str, Any]) -> bool:
    return any(a.get("forced") for a in manifest.get("attempts", []))


def load_walk_forward(run_dir: str | Path) -> WalkForwardRun:
    """Read a walk-forward run folder (manifest, fold results, stitched OOS returns, bars).

    Raises
    ------
    PipelineError
        Not a run folder, or no fold finished.
    """
    import json

    run = Path(run_dir)
    manifest = read_manifest(run)
    spec = manifest["spec"]
    fold_step = next((s for s in spec["steps"] if s.get("foreach") == "fold"), None)
    if fold_step is None:
        raise PipelineError(f"{run} is not a walk-forward run (no foreach: fold step)")
    folds: list[dict[str, Any]] = []
    for task in manifest["tasks"]:
        if task["step"] != fold_step["name"]:
            continue
        record: dict[str, Any] = {
            "fold": task["fold"],
            "status": task["status"],
            "error": task.get("error"),
            "notebook": task["notebook"],
        }
        window = manifest["folds"][task["fold"]]
        record.update(
            {k: window[k] for k in ("train_start", "train_end", "test_start", "test_end")}
        )
        result_file = run / task["output_dir"] / "result.json"
        if task["status"] == "ok" and result_file.is_file():
            record.update(json.loads(result_file.read_text(encoding="utf-8")))
        folds.append(record)
    stitched = run / OOS_RETURNS
    if not stitched.is_file():
        raise PipelineError(f"{run} has no {OOS_RETURNS}: no fold finished")
    returns = pd.read_parquet(stitched)["returns"]
    bars = load_bars(**source_parameters(DataSpec.model_validate(spec["data"])))
    objective = str(fold_step.get("parameters", {}).get("objective", "sharpe"))
    return WalkForwardRun(manifest["run_id"], folds, returns, bars, objective, manifest)


def demo_walk_forward(
    *,
    sample: str = "btcusdt_1m",
    strategy: str = "sma_cross",
    grid: Mapping[str, Sequence[Any]] | None = None,
    days: int = 5,
    train: str = "2D",
    test: str = "1D",
    warmup_bars: int = 120,
) -> WalkForwardRun:
    """Run a small walk-forward in this process (no papermill, no Dask) on a bundled sample."""
    from chimera_lab.pipelines.folds import evaluate_fold
    from chimera_lab.validation import walk_forward_splits

    bars = load_bars(data_path=sample)
    bars = bars.loc[bars.index < bars.index[0] + pd.Timedelta(days=days)]
    grid = grid or {"fast": [10, 30], "slow": [60, 120]}
    folds, parts = [], []
    for fold in walk_forward_splits(bars, train=train, test=test):
        res = evaluate_fold(
            bars,
            strategy=strategy,
            grid=grid,
            train_start=fold.train_start,
            train_end=fold.train_end,
            test_start=fold.test_start,
            test_end=fold.test_end,
            warmup_bars=warmup_bars,
            fold=fold.number,
        )
        folds.append({"status": "ok", "error": None, **res.to_dict()})
        parts.append(res.oos_returns)
    return WalkForwardRun("demo", folds, pd.concat(parts).sort_index(), bars)


def _bh_returns(run: WalkForwardRun) -> pd.Series:
    close = run.bars["close"]
    return close.pct_change().reindex(run.oos_returns.index).fillna(0.0)


def equity_curves(run: WalkForwardRun) -> pd.DataFrame:
    """Return OOS equity (from 1.0) of the strategy and of buy-and-hold on the same bars.

    Buy-and-hold earns each OOS bar's close-to-close return (no costs); between folds (when
    ``step > test``) neither is invested.
    """
    if run.oos_returns.empty:
        raise DataError("no out-of-sample returns to plot")
    return pd.DataFrame(
        {
            "strategy": (1.0 + run.oos_returns).cumprod(),
            "buy_and_hold": (1.0 + _bh_returns(run)).cumprod(),
        }
    )


def oos_summary(run: WalkForwardRun) -> dict[str, Any]:
    """Return headline statistics of the stitched OOS returns and of buy-and-hold."""
    from chimera_lab.backtest import metrics

    r = run.oos_returns
    eq = (1.0 + r).cumprod()
    bh = _bh_returns(run)
    return {
        "n_bars": len(r),
        "start": iso_utc(r.index[0]) if len(r) else None,
        "end": iso_utc(r.index[-1]) if len(r) else None,
        "total_return": float(eq.iloc[-1] - 1.0) if len(r) else math.nan,
        "sharpe": metrics.sharpe_ratio(r) if len(r) > 2 else math.nan,
        "max_drawdown": metrics.max_drawdown(eq, initial=1.0) if len(r) else math.nan,
        "buy_and_hold_return": float(np.prod(1.0 + bh.to_numpy(dtype=np.float64)) - 1.0),
        "buy_and_hold_sharpe": metrics.sharpe_ratio(bh) if len(bh) > 2 else math.nan,
    }


def fold_table(run: WalkForwardRun) -> pd.DataFrame:
    """Return one row per fold: test window, status, chosen parameters, IS and OOS stats.

    ``warmup`` is the number of warm-up bars the test window got, ``warmup_note`` says
    ``extended`` (the estimate was too short and the fold doubled it until the positions
    agreed), ``SHORT`` (fewer bars than needed, or not verifiable) or nothing. Timestamps are
    ISO-8601 ``Z``; integer parameters stay integers (a failed fold leaves them empty).
    """
    rows = []
    for f in run.folds:
        row: dict[str, Any] = {
            "fold": f["fold"],
            "status": f["status"],
            "test_start": _z(f.get("test_start")),
            "test_end": _z(f.get("test_end")),
        }
        params = f.get("best_params") or {}
        row.update({f"param_{k}": v for k, v in params.items()})
        is_s, oos_s = f.get("is_stats") or {}, f.get("oos_stats") or {}
        warm = f.get("warmup_check") or {}
        row.update(
            is_sharpe=is_s.get("sharpe"),
            oos_sharpe=oos_s.get("sharpe"),
            is_return=is_s.get("total_return"),
            oos_return=oos_s.get("total_return"),
            oos_max_drawdown=oos_s.get("max_drawdown"),
            oos_trades=oos_s.get("n_trades"),
            warmup=f.get("warmup_used_test"),
            warmup_note="SHORT"
            if f.get("warmup_short")
            else ("extended" if warm.get("extended") else ""),
            error="" if f["status"] == "ok" else (f.get("error") or {}).get("message"),
        )
        rows.append(row)
    table = pd.DataFrame(rows).set_index("fold")
    for column in table.columns:
        raw = [r.get(column) for r in rows if r.get(column) is not None]
        if raw and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in raw):
            table[column] = pd.array([r.get(column) for r in rows], dtype="Int64")
    return table


def _z(value: Any) -> Any:
    return iso_utc(value) if value else value


def parameter_stability(run: WalkForwardRun) -> pd.DataFrame:
    """Return, per parameter, how stable the chosen value is across folds.

    Columns: the value chosen in each fold (``fold_<n>``), ``n_distinct``, ``mode``,
    ``mode_share`` (fraction of folds choosing the mode), ``changes`` (fold-to-fold switches)
    and, for numeric parameters, ``cv`` (coefficient of variation).
    """
    chosen = pd.DataFrame.from_records(
        [f.get("best_params") or {} for f in run.ok_folds],
        index=[f["fold"] for f in run.ok_folds],
    ).sort_index()
    if chosen.empty:
        return pd.DataFrame()
    rows = {}
    for name in chosen.columns:
        values = chosen[name]
        mode = values.mode(dropna=True)
        numeric = pd.to_numeric(values, errors="coerce")
        row: dict[str, Any] = {f"fold_{k}": v for k, v in values.items()}
        row.update(
            n_distinct=int(values.nunique()),
            mode=mode.iloc[0] if len(mode) else None,
            mode_share=float((values == mode.iloc[0]).mean()) if len(mode) else math.nan,
            changes=int((values != values.shift()).iloc[1:].sum()),
            cv=float(numeric.std(ddof=0) / abs(numeric.mean()))
            if numeric.notna().all() and numeric.mean() != 0
            else math.nan,
        )
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("parameter")


def sharpe_gap(run: WalkForwardRun) -> pd.DataFrame:
    """Return in-sample vs out-of-sample Sharpe per finished fold and their gap (IS - OOS)."""
    rows = {
        f["fold"]: {
            "is_sharpe": (f.get("is_stats") or {}).get("sharpe"),
            "oos_sharpe": (f.get("oos_stats") or {}).get("sharpe"),
        }
        for f in run.ok_folds
    }
    table = pd.DataFrame(rows).T.astype("float64").rename_axis("fold")
    if table.empty:
        return pd.DataFrame(columns=["is_sharpe", "oos_sharpe", "gap"], dtype="float64")
    table["gap"] = table["is_sharpe"] - table["oos_sharpe"]
    return table


def coverage_verdict(row: Mapping[str, Any], *, alpha: float = 0.05) -> str:
    r"""Return a one-line verdict on one VaR method's coverage row (tests at level ``alpha``).

    >>> print(coverage_verdict({"exceedances": 371, "expected": 302.4, "kupiec_p": 1e-4,
    ...                         "christoffersen_p": 0.3}).replace("; ", "\n"))
    VaR too LOW: 371 exceedances vs 302.4 expected (Kupiec p=0.0001)
    no clustering (Christoffersen p=0.3)
    """
    x, e = int(row["exceedances"]), float(row["expected"])
    kp, cp = float(row["kupiec_p"]), float(row["christoffersen_p"])
    if kp < alpha:
        side = "too LOW" if x > e else "too HIGH (conservative)"
        head = f"VaR {side}: {x} exceedances vs {e:.1f} expected (Kupiec p={kp:.2g})"
    else:
        head = f"coverage OK: {x} exceedances vs {e:.1f} expected (Kupiec p={kp:.2g})"
    tail = (
        f"exceedances CLUSTER (Christoffersen p={cp:.2g})"
        if cp < alpha
        else f"no clustering (Christoffersen p={cp:.2g})"
    )
    return f"{head}; {tail}"


def coverage_frame(backtests: Mapping[str, Any], *, bar_spacing: pd.Timedelta) -> pd.DataFrame:
    """Return the coverage table of several VaR backtests, with a verdict per method.

    Columns: ``n_obs``, ``exceedances``, ``expected``, ``rate``, ``kupiec_p``,
    ``christoffersen_p``, ``cc_p``, ``verdict`` and, for bars of one day or longer only,
    ``basel`` with ``basel_exceedances``/``basel_obs``: the Basel traffic light counts
    exceedances over the last 250 **daily** observations; over 250 one-minute bars it would
    judge four hours, next to a test of the whole sample that may say the opposite.
    """
    rows = {}
    daily = bar_spacing >= pd.Timedelta(days=1)
    for method, bt in backtests.items():
        row: dict[str, Any] = {
            "n_obs": bt.n_obs,
            "exceedances": bt.n_exceedances,
            "expected": bt.expected_exceedances,
            "rate": bt.observed_rate,
            "kupiec_p": bt.kupiec_pvalue,
            "christoffersen_p": bt.christoffersen_pvalue,
            "cc_p": bt.cc_pvalue,
        }
        if daily:
            row.update(
                basel=bt.basel_zone,
                basel_exceedances=bt.basel_exceedances,
                basel_obs=bt.basel_obs,
            )
        row["verdict"] = coverage_verdict(row)
        rows[method] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("method")


def var_coverage(
    run: WalkForwardRun,
    *,
    confidence: float = 0.99,
    window_bars: int = 1440,
    methods: Sequence[str] = _VAR_METHODS,
) -> pd.DataFrame:
    """Backtest rolling VaR forecasts of the OOS returns against the realised OOS returns.

    The window shrinks to a third of the OOS bars when they are too few (the table's
    ``window`` column says which was used). See :func:`coverage_frame` for the columns
    (no Basel zone for intraday bars).
    """
    from chimera_lab.risk import rolling_var, var_backtest
    from chimera_lab.timeframes import infer_bar_spacing

    r = run.oos_returns.astype("float64")
    window = int(min(window_bars, max(2, len(r) // 3)))
    if len(r) < 3 * 2:
        raise DataError(f"too few OOS returns ({len(r)}) for a VaR coverage test")
    results = {}
    for method in methods:
        forecast = rolling_var(r, window, method, confidence, seed=0)
        results[method] = var_backtest(r, forecast, confidence)
    table = coverage_frame(results, bar_spacing=infer_bar_spacing(pd.DatetimeIndex(run.bars.index)))
    table["window"] = window
    table["confidence"] = confidence
    return table


def plot_equity(run: WalkForwardRun) -> Any:
    """Plot OOS equity vs buy-and-hold, shading each fold's test window."""
    import matplotlib.pyplot as plt

    curves = equity_curves(run)
    fig, ax = plt.subplots(figsize=(11, 4.5))
    ax.plot(curves.index, curves["strategy"], label="strategy (out-of-sample)", lw=1.4)
    ax.plot(curves.index, curves["buy_and_hold"], label="buy & hold", lw=1.0, alpha=0.8)
    for i, f in enumerate(run.ok_folds):
        ax.axvspan(
            pd.Timestamp(f["test_start"]),  # type: ignore[arg-type]  # matplotlib takes dates
            pd.Timestamp(f["test_end"]),  # type: ignore[arg-type]
            color="grey",
            alpha=0.08 if i % 2 else 0.16,
            lw=0,
        )
    ax.axhline(1.0, color="black", lw=0.6)
    ax.set_ylabel("equity (start = 1)")
    ax.set_title(f"{run.name}: stitched out-of-sample equity (shaded: fold test windows)")
    ax.legend(loc="best")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def plot_parameter_stability(run: WalkForwardRun) -> Any:
    """Plot the chosen value of each parameter per fold."""
    import matplotlib.pyplot as plt

    chosen = pd.DataFrame.from_records(
        [f.get("best_params") or {} for f in run.ok_folds],
        index=[f["fold"] for f in run.ok_folds],
    )
    n = max(1, chosen.shape[1])
    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 3.2), squeeze=False)
    for ax, name in zip(axes[0], chosen.columns, strict=False):
        ax.step(chosen.index, pd.to_numeric(chosen[name], errors="coerce"), where="mid", marker="o")
        ax.set_title(name)
        ax.set_xlabel("fold")
    fig.suptitle("chosen parameters per fold")
    fig.tight_layout()
    return fig


def plot_sharpe_gap(run: WalkForwardRun) -> Any:
    """Bar chart of in-sample vs out-of-sample Sharpe per fold."""
    import matplotlib.pyplot as plt

    table = sharpe_gap(run)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    x = np.arange(len(table))
    ax.bar(x - 0.2, table["is_sharpe"], width=0.4, label="in-sample")
    ax.bar(x + 0.2, table["oos_sharpe"], width=0.4, label="out-of-sample")
    ax.set_xticks(x, [str(i) for i in table.index])
    ax.set_xlabel("fold")
    ax.set_ylabel("Sharpe (annualised)")
    ax.axhline(0.0, color="black", lw=0.6)
    ax.legend()
    ax.set_title("in-sample vs out-of-sample Sharpe (the gap is the overfitting)")
    fig.tight_layout()
    return fig
