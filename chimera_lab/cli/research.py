"""``chimera lookahead``, ``chimera walk-forward`` and ``chimera pipeline``: research commands."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from chimera_lab.cli._common import (
    SourceArgs,
    emit_json,
    get_settings,
    json_option,
    option_group,
    parse_params,
    require_one_source,
    source_options,
)

__all__ = ["lookahead", "pipeline", "walk_forward"]


def _resolve(strategy: str) -> Any:
    from chimera_lab.backtest import resolve_strategy

    return resolve_strategy(strategy)


@click.command("lookahead")
@source_options
@click.option("--strategy", required=True, metavar="NAME|FILE.py:FUNC", help="Strategy to check.")
@click.option("--param", "params", multiple=True, metavar="K=V", help="Strategy parameter.")
@click.option("--n-checks", default=20, show_default=True, help="Random cut points.")
@click.option("--seed", default=0, show_default=True, help="Seed for the cut points.")
@json_option
@click.pass_context
def lookahead(
    ctx: click.Context,
    source: SourceArgs,
    strategy: str,
    params: tuple[str, ...],
    n_checks: int,
    seed: int,
    as_json: bool,
) -> None:
    """Check a strategy for look-ahead and measure its warm-up.

    The signal is recomputed on history truncated at random cut points and at early ones
    (2, 4, 8, ... bars), and with the future shocked up and down, and compared with the
    full-history signal at every earlier bar: any difference is look-ahead, and a strategy
    that raises on such a history is reported too. The exit status is 0 either way: the
    verdict is data.
    """
    from chimera_lab.validation import detect_lookahead, detect_recursive_bias

    bars, origin = source.load(get_settings(ctx))
    fn = _resolve(strategy)
    kwargs = parse_params(params)
    report = detect_lookahead(fn, bars, n_checks=n_checks, params=kwargs, random_state=seed)
    recursive = detect_recursive_bias(fn, bars, params=kwargs)
    first = report.first_offending_timestamp
    if as_json:
        emit_json(
            {
                "lookahead": report.lookahead,
                "first_offending_timestamp": first,
                "recursive_warmup_bars": recursive.warmup_bars,
                "max_abs_difference": report.max_abs_difference if report.lookahead else 0.0,
                "strategy": report.strategy,
                "params": kwargs,
                "n_bars": report.n_bars,
                "n_cuts": len(report.cuts),
                "n_checks": len(report.checks),
                "n_offending_checks": len(report.offending),
                "n_errors": len(report.errors),
                "first_error": report.errors[0].error if report.errors else None,
                "passed": report.passed,
                "recursive_converged": recursive.converged,
                "source": origin.describe(),
            }
        )
        return
    click.echo(report.summary())
    if report.lookahead:
        worst = max(report.offending, key=lambda c: c.max_abs_difference)
        click.echo(
            f"  e.g. cut at {worst.cut.isoformat()} ({worst.method}): {worst.n_differences} "
            f"earlier value(s) changed, first at {worst.first_offending_timestamp}"
        )
    click.echo(recursive.summary())


def _quiet_dask(ctx: click.Context) -> None:
    # Dask narrates cluster start/stop at INFO; the CLI shows it only with --verbose/--debug.
    # Importing distributed applies its logging config (per-logger levels), so import first.
    if get_settings(ctx).logging.level not in {"DEBUG", "INFO"}:
        import distributed  # noqa: F401

        for name in ["distributed", *logging.root.manager.loggerDict]:
            if name.split(".")[0] == "distributed":
                logging.getLogger(name).setLevel(logging.ERROR)


def _print_run(result: Any, as_json: bool) -> int:
    m = result.manifest
    tasks = m["tasks"]
    n_ok = sum(t["status"] == "ok" for t in tasks)
    if as_json:
        emit_json(
            {
                "run_dir": str(result.run_dir),
                "status": m["status"],
                "tasks": [
                    {k: t[k] for k in ("id", "status", "duration_s", "notebook", "error")}
                    for t in tasks
                ],
                "outputs": m.get("outputs", {}),
            }
        )
        return 0 if result.ok else 1
    click.echo(f"run: {result.run_dir}")
    click.echo(f"status: {m['status']} ({n_ok}/{len(tasks)} notebooks ok)")
    outputs = m.get("outputs", {})
    if "oos_total_return" in outputs:
        click.echo(
            f"out-of-sample: {outputs['oos_bars']} bars in {len(outputs['oos_folds'])} folds, "
            f"total return {outputs['oos_total_return']:+.2%}"
        )
    for t in tasks:
        if t.get("html") and (result.run_dir / t["html"]).is_file():
            click.echo(f"{t['step']}: {result.run_dir / t['html']}")
    for t in tasks:
        if t["status"] != "ok":
            err = t.get("error") or {}
            where = f" (cell {err['cell_index']})" if err.get("cell_index") is not None else ""
            click.echo(
                f"FAILED {t['id']}{where}: {err.get('type', t['status'])}: "
                f"{err.get('message', '')}".rstrip()
            )
            click.echo(f"  notebook: {result.run_dir / t['notebook']}")
    if not result.ok:
        click.echo(f"rerun failed notebooks with: --resume {result.run_dir}")
    return 0 if result.ok else 1


@dataclass(frozen=True)
class _Scheduling:
    # Where and how a pipeline runs: the options `walk-forward` and `pipeline run` share.
    workers: int | None
    scheduler: str | None
    runs_dir: Path | None
    resume: Path | None
    force: bool
    progress: bool

    def __post_init__(self) -> None:
        if self.force and self.resume is None:
            raise click.UsageError("--force only applies to --resume")

    def run(self, ctx: click.Context, spec: Any, as_json: bool) -> int:
        """Run (or resume) ``spec`` on Dask, print the outcome, return the exit status."""
        from chimera_lab.pipelines import run_pipeline

        _quiet_dask(ctx)
        result = run_pipeline(spec, **asdict(self), settings=get_settings(ctx))
        return _print_run(result, as_json)


_scheduling_options = option_group(
    _Scheduling,
    "schedule",
    [
        click.option(
            "--workers",
            type=click.IntRange(min=1),
            default=None,
            help="LocalCluster worker processes (default: one per core).",
        ),
        click.option(
            "--scheduler",
            default=None,
            metavar="tcp://HOST:PORT",
            help="Use an existing Dask scheduler instead of a local cluster.",
        ),
        click.option(
            "--out",
            "runs_dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="Runs folder (default: data/runs).",
        ),
        click.option(
            "--resume",
            type=click.Path(exists=True, file_okay=False, path_type=Path),
            default=None,
            help="Re-run the failed or missing notebooks of a run folder.",
        ),
        click.option(
            "--force",
            is_flag=True,
            help="With --resume: accept code that differs from the run's (recorded).",
        ),
        click.option(
            "--progress/--no-progress",
            default=True,
            show_default=True,
            help="Progress bar over notebooks (stderr).",
        ),
    ],
)


# Options that plan a run: a resume takes all of them from the run's manifest.
_PLANNING = frozenset(
    "csv_path symbol timeframe start end store_url strategy train test step resample grid "
    "objective fee_bps slippage_bps anchored embargo warmup name no_lookahead_check "
    "runs_dir".split()
)


@click.command("walk-forward")
@source_options
@click.option("--strategy", default=None, metavar="NAME|FILE.py:FUNC", help="Strategy (required).")
@click.option("--train", default=None, help="Train window: duration (30D) or bars (5000).")
@click.option("--test", default=None, help="Test window: duration (7D) or bars.")
@click.option("--step", default=None, help="Distance between test windows (default: --test).")
@click.option("--resample", default=None, metavar="TF", help="Aggregate the bars first (15m, 1h).")
@click.option(
    "--grid",
    default=None,
    metavar="JSON",
    help='Parameter grid, e.g. \'{"fast":[10,20],"slow":[50,100]}\' '
    "(default: the strategy's own grid).",
)
@click.option(
    "--objective",
    default="sharpe",
    show_default=True,
    help="Stats key to maximise (-key minimises); checked before anything runs.",
)
@click.option(
    "--fee-bps",
    type=click.FloatRange(min=0),
    default=None,
    help="Fee per fill in basis points (default: CHIMERA_BACKTEST__FEE_BPS, 6).",
)
@click.option(
    "--slippage-bps",
    type=click.FloatRange(min=0),
    default=None,
    help="Slippage per fill in basis points (default: CHIMERA_BACKTEST__SLIPPAGE_BPS, 0).",
)
@click.option("--anchored", is_flag=True, help="Expanding train windows from the first bar.")
@click.option("--embargo", default="0min", show_default=True, help="Gap between train and test.")
@click.option(
    "--warmup",
    default="auto",
    show_default=True,
    help="Warm-up bars before each window, or 'auto' (recursive analysis).",
)
@click.option("--name", default=None, help="Run name (default: walk_forward_<strategy>).")
@click.option(
    "--no-lookahead-check",
    is_flag=True,
    help="Run even if the strategy fails the look-ahead check.",
)
@_scheduling_options
@json_option
@click.pass_context
def walk_forward(
    ctx: click.Context,
    source: SourceArgs,
    strategy: str | None,
    train: str | None,
    test: str | None,
    step: str | None,
    resample: str | None,
    grid: str | None,
    objective: str,
    fee_bps: float | None,
    slippage_bps: float | None,
    anchored: bool,
    embargo: str,
    warmup: str,
    name: str | None,
    no_lookahead_check: bool,
    schedule: _Scheduling,
    as_json: bool,
) -> int:
    """Walk-forward optimisation: one papermill notebook per fold, on Dask, then a report.

    Each fold optimises the grid on its train window and trades the best parameters on its
    test window (warm-up bars prepended, not scored). The run folder holds every executed
    notebook, manifest.json, the stitched out-of-sample returns and report.html.
    --strategy, --train and --test are required, except with --resume RUN_DIR, which takes
    everything from the run's manifest.
    """
    from chimera_lab.pipelines import DataSpec
    from chimera_lab.pipelines.walk_forward import parse_grid, walk_forward_spec

    if schedule.resume is not None:
        given = [
            param.opts[0]
            for param in ctx.command.params
            if param.name in _PLANNING
            and ctx.get_parameter_source(param.name) is click.core.ParameterSource.COMMANDLINE
        ]
        if given:
            raise click.UsageError(
                f"--resume takes the run's own spec from its manifest; drop {', '.join(given)}"
            )
        return schedule.run(ctx, None, as_json)
    for value, flag in ((strategy, "--strategy"), (train, "--train"), (test, "--test")):
        if value is None:
            raise click.UsageError(f"Missing option '{flag}' (or give --resume RUN_DIR).")
    assert strategy is not None and train is not None and test is not None
    require_one_source(source.csv_path, source.symbol)
    if warmup != "auto" and not warmup.isdigit():
        raise click.BadParameter("a number of bars or 'auto'", param_hint="--warmup")
    settings = get_settings(ctx)
    data = DataSpec(
        path=str(source.csv_path.resolve()) if source.csv_path is not None else None,
        symbol=source.symbol,
        timeframe=source.timeframe,
        store=source.store_url,
        start=source.start,
        end=source.end,
        resample=resample,
    )
    spec = walk_forward_spec(
        data=data,
        strategy=strategy,
        train=train,
        test=test,
        step=step,
        grid=parse_grid(grid) if grid else None,
        objective=objective,
        anchored=anchored,
        embargo=embargo,
        warmup="auto" if warmup == "auto" else int(warmup),
        name=name,
        check_lookahead=not no_lookahead_check,
        fee_bps=settings.backtest.fee_bps if fee_bps is None else fee_bps,
        slippage_bps=settings.backtest.slippage_bps if slippage_bps is None else slippage_bps,
    )
    return schedule.run(ctx, spec, as_json)


@click.group("pipeline")
def pipeline() -> None:
    """Run notebook pipeline specs (YAML) and inspect run folders."""


@pipeline.command("run")
@click.argument(
    "spec_path",
    metavar="SPEC.yaml",
    type=click.Path(dir_okay=False, path_type=Path),
    required=False,
)
@_scheduling_options
@json_option
@click.pass_context
def pipeline_run(
    ctx: click.Context, spec_path: Path | None, schedule: _Scheduling, as_json: bool
) -> int:
    """Run SPEC.yaml (e.g. pipelines/walk_forward_sma.yaml), or --resume a run folder."""
    if (spec_path is None) == (schedule.resume is None):
        raise click.UsageError("give SPEC.yaml or --resume RUN_FOLDER (one of them)")
    if spec_path is not None and not spec_path.is_file():
        raise click.BadParameter(f"no such file: {spec_path}", param_hint="SPEC.yaml")
    return schedule.run(ctx, spec_path, as_json)


@pipeline.command("status")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@json_option
def pipeline_status(run_dir: Path, as_json: bool) -> None:
    """Show a run folder's status from its manifest."""
    from chimera_lab.pipelines import read_manifest

    m = read_manifest(run_dir)
    if as_json:
        emit_json(m)
        return
    env = m.get("environment", {})
    git = env.get("git") or {}
    click.echo(f"run: {m['run_id']}  status: {m['status']}  updated: {m['updated']}")
    click.echo(
        f"code: chimera_lab {env.get('chimera_lab')}"
        + (
            f", git {git.get('commit', '')[:12]}{' (dirty)' if git.get('dirty') else ''}"
            if git
            else ""
        )
    )
    if m.get("data"):
        d = m["data"]
        click.echo(
            f"data: {d['n_bars']} bars {d['first']} .. {d['last']} sha256 {d['fingerprint'][:16]}"
        )
    attempts = m.get("attempts") or []
    if attempts:
        forced = [a["number"] for a in attempts if a.get("forced")]
        click.echo(
            f"attempts: {len(attempts)}"
            + (f" (with other code, --force: {forced})" if forced else "")
            + "; last: "
            + f"{attempts[-1].get('status')} {attempts[-1].get('started')}"
        )
    if m.get("error"):
        click.echo(f"error: {m['error'].get('type')}: {m['error'].get('message')}")
    for t in m["tasks"]:
        dur = f"{t['duration_s']:.1f}s" if t.get("duration_s") is not None else "-"
        err = t.get("error") or {}
        msg = f"  {err.get('type')}: {err.get('message')}" if err else ""
        click.echo(f"  {t['id']:<16} {t['status']:<10} {dur:>8}{msg}")
