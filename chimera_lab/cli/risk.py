"""``chimera var`` and ``chimera regime``: Value at Risk with coverage tests, market regimes.

Both read bars from a file (``--csv FILE``) or the store (``--symbol S --timeframe T``) and
print a table, or one JSON document with ``--json``. Returns are close-to-close simple returns.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import click
import numpy as np
import pandas as pd

from chimera_lab.cli._common import (
    SourceArgs,
    emit_json,
    get_settings,
    json_option,
    source_options,
)
from chimera_lab.errors import ConfigError

__all__ = ["regime", "var"]

_METHODS = {"historical": "historical", "parametric": "parametric", "monte-carlo": "monte_carlo"}


def _pct(x: float) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.2%}"


def _p(x: float) -> str:
    return f"{x:.3f}" if x >= 0.001 else f"{x:.1e}"


def _span(df: pd.DataFrame) -> str:
    from chimera_lab.timeframes import infer_timeframe

    tf = infer_timeframe(pd.DatetimeIndex(df.index)) or "irregular"
    return f"{len(df):,} bars {df.index[0]:%Y-%m-%d %H:%M} .. {df.index[-1]:%Y-%m-%d %H:%M} ({tf})"


def _flush_warnings(caught: list[warnings.WarningMessage], as_json: bool) -> list[str]:
    lines = [str(w.message) for w in caught]
    if not as_json:
        for line in lines:
            click.echo(f"warning: {line}", err=True)
    return lines


@click.command("var")
@source_options
@click.option(
    "--method",
    type=click.Choice([*_METHODS, "all"]),
    default="all",
    show_default=True,
    help="VaR method.",
)
@click.option("--confidence", type=float, default=None, help="VaR level [default: settings, 0.99].")
@click.option("--horizon", type=int, default=1, show_default=True, help="Horizon in bars.")
@click.option(
    "--window",
    type=int,
    default=None,
    help="Returns per estimate [default: CHIMERA_RISK__VAR_WINDOW_BARS, at most half the data].",
)
@click.option("--backtest", is_flag=True, help="Coverage tests of rolling 1-bar forecasts.")
@click.option("--cornish-fisher", is_flag=True, help="Parametric: skew/kurtosis adjustment.")
@click.option(
    "--distribution",
    type=click.Choice(["t", "normal"]),
    default="t",
    show_default=True,
    help="Monte Carlo innovations (t: fitted degrees of freedom).",
)
@click.option("--n-sims", type=int, default=100_000, show_default=True, help="Monte Carlo paths.")
@click.option("--seed", type=int, default=0, show_default=True, help="Monte Carlo seed.")
@click.option(
    "--refit-every",
    type=int,
    default=None,
    help="Backtest, Monte Carlo: refit the t innovations every N bars [default: window/20].",
)
@json_option
def var(
    source: SourceArgs,
    method: str,
    confidence: float | None,
    horizon: int,
    window: int | None,
    backtest: bool,
    cornish_fisher: bool,
    distribution: str,
    n_sims: int,
    seed: int,
    refit_every: int | None,
    as_json: bool,
) -> None:
    """Value at Risk and expected shortfall by historical, parametric and Monte Carlo methods.

    VaR and CVaR are positive loss fractions over HORIZON bars, estimated from the last WINDOW
    returns. With --backtest, each method also makes a rolling one-bar forecast for every bar
    (from the WINDOW returns before it) and the forecasts are scored against the realised
    returns: exceedances against expected, Kupiec and Christoffersen p-values, Basel zone.
    Monte Carlo forecasts stay tractable by refitting the t innovations every --refit-every
    bars (10,000 draws) while their location and scale follow every bar.
    """
    from chimera_lab.risk import coverage_table, rolling_var, value_at_risk, var_backtest

    settings = get_settings()
    c = settings.risk.var_confidence if confidence is None else confidence
    bars, src = source.load(settings)
    returns = bars["close"].pct_change().iloc[1:]
    n = len(returns)
    if n < 20:
        raise ConfigError(f"{n} returns is too few for VaR; pass at least 20 bars more")
    w = window if window is not None else min(settings.risk.var_window_bars, n // 2)
    if w < 10 or w > n:
        raise click.BadParameter(
            f"must be in [10, {n}] (returns available), got {w}", param_hint="--window"
        )
    methods = list(_METHODS.values()) if method == "all" else [_METHODS[method]]
    sample = returns.iloc[-w:]
    out: dict[str, Any] = {
        "source": src.describe(),
        "bars": len(bars),
        "first": bars.index[0],
        "last": bars.index[-1],
        "confidence": c,
        "horizon": horizon,
        "window": w,
        "var": {},
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for m in methods:
            res = value_at_risk(
                sample,
                method=m,
                confidence=c,
                horizon=horizon,
                cornish_fisher=cornish_fisher and m == "parametric",
                distribution=distribution,
                n_sims=n_sims,
                seed=seed,
            )
            out["var"][m] = res.to_dict()
        tests = {}
        if backtest:
            every = max(1, w // 20) if refit_every is None else refit_every
            for m in methods:
                forecasts = rolling_var(
                    returns,
                    w,
                    method=m,
                    confidence=c,
                    cornish_fisher=cornish_fisher and m == "parametric",
                    distribution=distribution,
                    n_sims=10_000,
                    refit_every=every,
                    seed=seed,
                )
                tests[m] = var_backtest(returns, forecasts, c)
            out["backtest"] = {
                "forecast": "rolling 1-bar, window before each bar",
                "monte_carlo_refit_every": every,
                "monte_carlo_draws": 10_000,
                "methods": {m: t.to_dict() for m, t in tests.items()},
            }
    out["warnings"] = _flush_warnings(caught, as_json)
    if as_json:
        emit_json(out)
        return
    click.echo(f"{src.describe()}: {_span(bars)}")
    click.echo(
        f"VaR at {c:.2%}, horizon {horizon} bar{'s' if horizon > 1 else ''}, "
        f"from the last {w:,} returns"
    )
    click.echo(f"{'method':<13}{'VaR':>9}{'CVaR':>9}  notes")
    for m, d in out["var"].items():
        click.echo(f"{m:<13}{_pct(d['var']):>9}{_pct(d['cvar']):>9}  {_notes(d)}")
    if tests:
        table = coverage_table(tests)
        click.echo(
            f"\nCoverage of rolling 1-bar VaR forecasts ({w:,}-bar window, exceedance = "
            "return < -VaR):"
        )
        head = (
            f"{'method':<13}{'n':>7}{'exceed':>8}{'expected':>10}{'rate':>8}"
            f"{'Kupiec p':>10}{'Christ. p':>11}{'CC p':>8}  Basel (last 250)"
        )
        click.echo(head)
        for key, row in table.iterrows():
            t = tests[str(key)]
            click.echo(
                f"{key!s:<13}{int(row['n_obs']):>7}{int(row['exceedances']):>8}"
                f"{float(row['expected']):>10.1f}{_pct(float(row['rate'])):>8}"
                f"{_p(float(row['kupiec_p'])):>10}{_p(float(row['christoffersen_p'])):>11}"
                f"{_p(float(row['cc_p'])):>8}  {t.basel_zone} ({t.basel_exceedances})"
            )
        if "monte_carlo" in tests:
            click.echo(
                f"Monte Carlo forecasts: innovations refitted every "
                f"{out['backtest']['monte_carlo_refit_every']} bars (10,000 draws); location "
                "and scale follow every bar."
            )


def _notes(d: dict[str, Any]) -> str:
    parts = []
    if "mu" in d:
        parts.append(f"mu={d['mu']:.3g} sigma={d['sigma']:.3g}")
    if d.get("cornish_fisher"):
        parts.append(f"Cornish-Fisher skew={d['skew']:.2f} exkurt={d['excess_kurtosis']:.2f}")
    if d.get("distribution") == "t":
        parts.append(f"t df={d['df']:.2f}")
    if "n_sims" in d:
        parts.append(f"{d['n_sims']:,} paths")
    if "n_scenarios" in d:
        parts.append(f"{d['n_scenarios']:,} scenarios, {d['interpolation']} interpolation")
    return ", ".join(parts)


@click.command("regime")
@source_options
@click.option(
    "--detector",
    type=click.Choice(["rules", "markov"]),
    default="rules",
    show_default=True,
    help="RegimeDetector (rules) or MarkovRegimeDetector.",
)
@click.option(
    "--states", type=click.IntRange(2, 3), default=2, show_default=True, help="Markov states."
)
@click.option(
    "--refit-every",
    type=click.IntRange(min=1),
    default=None,
    help="Markov: out-of-sample labels, refitting on an expanding window every N bars "
    "[default: in-sample parameters].",
)
@click.option(
    "--min-train-bars",
    type=int,
    default=250,
    show_default=True,
    help="Markov with --refit-every: bars in the first fit.",
)
@json_option
def regime(
    source: SourceArgs,
    detector: str,
    states: int,
    refit_every: int | None,
    min_train_bars: int,
    as_json: bool,
) -> None:
    """Market regimes: the share of time in each regime and the current regime with its limits.

    Rules: each bar's label uses data up to that bar only; bars whose features are still
    warming up have no label and are counted as warm-up (not NORMAL). Markov: by default the
    parameters are fitted on the whole history (in-sample: a label depends on later data
    through them); --refit-every N labels out of sample from expanding-window fits. Limits per
    regime come from the settings (CHIMERA_RISK__REGIME_LIMITS__<REGIME>__...); without a
    label NORMAL limits apply.
    """
    from chimera_lab.risk import (
        WARMUP,
        MarkovRegimeDetector,
        Regime,
        RegimeDetector,
        regime_limits,
        regime_shares,
    )

    if detector == "rules" and refit_every is not None:
        raise click.BadParameter("applies to --detector markov only", param_hint="--refit-every")
    settings = get_settings()
    bars, src = source.load(settings)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        det: RegimeDetector | MarkovRegimeDetector = (
            RegimeDetector()
            if detector == "rules"
            else MarkovRegimeDetector(
                k_regimes=states, refit_every=refit_every, min_train_bars=min_train_bars
            )
        )
        labels = det.fit(bars).predict(bars)
    shares = regime_shares(labels)
    n = len(labels)
    codes = np.array([WARMUP if pd.isna(v) else Regime(v).value for v in labels], dtype=object)
    counts = {k: int(np.count_nonzero(codes == k)) for k in shares.index}
    last = labels.iloc[-1]
    current = None if pd.isna(last) else Regime(last)
    change = np.flatnonzero(codes != codes[-1])
    first = int(change[-1]) + 1 if change.size else 0
    since = labels.index[first]
    crisis = codes == Regime.CRISIS.value
    starts = crisis & ~np.r_[False, crisis[:-1]]
    episodes = labels.index[starts]
    limits = regime_limits(settings)[current or Regime.NORMAL]
    if isinstance(det, MarkovRegimeDetector):
        parameters = (
            "in-sample: fitted on all bars, so a label at t depends on later data through them"
            if det.in_sample
            else f"out-of-sample: expanding-window refit every {refit_every} bars from bar "
            f"{min_train_bars}, each label uses data up to its bar only"
        )
    else:
        parameters = "rules: each label uses data up to its bar only"
    out = {
        "source": src.describe(),
        "bars": len(bars),
        "first": bars.index[0],
        "last": bars.index[-1],
        "detector": repr(det),
        "parameters": parameters,
        "shares": shares.to_dict(),
        "bars_per_regime": counts,
        "warm_up_bars": counts[WARMUP],
        "current": {
            "regime": None if current is None else current.value,
            "since": since,
            "bars": n - first,
            "limits": vars(limits),
        },
        "crisis_episodes": list(episodes),
        "warnings": _flush_warnings(caught, as_json),
    }
    if as_json:
        emit_json(out)
        return
    click.echo(f"{src.describe()}: {_span(bars)}")
    click.echo(f"detector: {det!r}")
    click.echo(f"labels: {parameters}")
    click.echo(f"{'regime':<10}{'share':>8}{'bars':>8}")
    for name, share in shares.items():
        label = "warm-up" if name == WARMUP else str(name)
        click.echo(f"{label:<10}{share:>8.1%}{counts[str(name)]:>8,}")
    cur = out["current"]
    limits_text = (
        f"exposure x{limits.exposure_multiplier:g}, max leverage {limits.max_leverage:g}, "
        f"VaR limit {limits.var_limit:.2%}"
    )
    if current is None:
        click.echo(
            f"current: warm-up (no label: the history is too short) since "
            f"{since:%Y-%m-%d %H:%M} ({cur['bars']:,} bars); NORMAL limits apply: {limits_text}"
        )
    else:
        click.echo(
            f"current: {current.value} since {since:%Y-%m-%d %H:%M} ({cur['bars']:,} bars); "
            f"limits: {limits_text}"
        )
    if len(episodes):
        recent = ", ".join(f"{ts:%Y-%m-%d}" for ts in episodes[-5:])
        click.echo(f"crisis episodes: {len(episodes)} (most recent: {recent})")
