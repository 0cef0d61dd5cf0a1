"""Look-ahead and recursive-bias detection for strategies.

A strategy is any callable ``f(data, **params) -> pandas.Series`` of target exposure indexed
like ``data`` (the value at bar ``t`` is decided with bar ``t``'s close and traded at ``t+1``).

:func:`detect_lookahead` recomputes the signal on data **truncated** at random cut points and
compares it with the full-history signal at every timestamp up to each cut. A causal strategy
gives identical values; any difference means the full-history value at that time used data
from after it. Truncation alone misses leaks that happen to agree at the cut (a
``future_return > 1%`` rule gives 0 both when the future is unknown and when it was flat), so
each cut is also checked with the future **shocked**: prices (and volume) after the cut scaled
by ``1.5`` and by ``0.5``. For a causal strategy the prefix cannot change either way; the
history's bug (``target = 1 if future_return > 0.01``) is caught at every cut.

Besides the random cuts, a geometric ladder of **early cuts** (keeping 2, 4, 8, ... bars, up to
``min_history``) is always checked: a leak confined to the first bars of the history (an
indicator's warm-up NaNs back-filled with a later value, ``rolling(200).mean().bfill()``)
changes nothing after bar 200 and would be missed by cuts drawn from the whole range. A
strategy that **raises** on a truncated or shocked history (after running on the full one) is
a finding too (:attr:`BiasReport.errors`): a live strategy sees exactly such histories.

:func:`detect_recursive_bias` recomputes the signal from later start offsets and reports how
many bars each restart needs before its values agree with the full-history signal from then
on: the warm-up a fold needs so that its first scored bar is computed as it would be live (the
freqtrade "recursive analysis"). A strategy whose values never agree (a cumulative state
started at the first bar) is reported as not converging. Discrete signals add one wrinkle:
where two indicators tie exactly (``sign(fast - slow)`` over a flat stretch of prices), the
sign is decided by floating-point rounding, which differs with the start of the history, so
a restart can disagree at an isolated bar long after it has warmed up. Such a bar disagrees
at the same timestamp for several restarts, whereas warm-up disagreements sit at the same
distance from each restart; trailing disagreements shared by at least two restarts (at most
``max(5, 0.1%)`` of the bars) are reported as ``tie_timestamps`` instead of extending the
warm-up.

Values agree when ``|a - b| <= atol + rtol * |b|`` (defaults 1e-9 both: exposures from the same
arithmetic on the same bars are equal to the last bit, the slack only absorbs summation order);
two NaNs agree; NaN against a number is a difference of size ``inf``.

Examples
--------
>>> import pandas as pd
>>> from chimera_lab.data.synthetic import make_ohlcv
>>> bars = make_ohlcv(600, seed=1)
>>> def leaky(data):
...     future = data["close"].shift(-5) / data["close"] - 1
...     return (future > 0.001).astype(float)
>>> detect_lookahead(leaky, bars, n_checks=5).lookahead
True
>>> def sma(data, window=20):
...     return (data["close"] > data["close"].rolling(window).mean()).astype(float)
>>> detect_lookahead(sma, bars, n_checks=5).lookahead
False
>>> detect_recursive_bias(sma, bars, params={"window": 20}).warmup_bars
19
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from chimera_lab.errors import ChimeraError, ConfigError, DataError
from chimera_lab.frames import OHLCV_COLUMNS, exposure_values
from chimera_lab.validation.splits import _iso, as_time_index

__all__ = [
    "BiasCheck",
    "BiasReport",
    "RecursiveBiasReport",
    "StrategyFn",
    "detect_lookahead",
    "detect_recursive_bias",
    "early_cuts",
    "strategy_name",
]

StrategyFn = Callable[..., Any]
"""A strategy: ``f(data, **params) -> Series`` of target exposure indexed like ``data``."""

SHOCKS: tuple[float, ...] = (1.5, 0.5)
"""Factors applied to prices and volume after a cut point (future shocked up, then down)."""


def strategy_name(strategy: StrategyFn) -> str:
    """Return a readable name for a strategy callable (registry name, function name, repr)."""
    for attr in ("name", "__name__", "__qualname__"):
        value = getattr(strategy, attr, None)
        if isinstance(value, str) and value:
            return value
    return repr(strategy)


def _check_data(data: Any) -> pd.DataFrame:
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a DataFrame of bars, got {type(data).__name__}")
    as_time_index(data, name="data")
    if len(data) < 3:
        raise DataError(f"need at least 3 bars to test a strategy, got {len(data)}")
    return data


def _signal(
    strategy: StrategyFn,
    data: pd.DataFrame,
    params: Mapping[str, Any],
    *,
    what: str,
    fresh: bool = False,
) -> np.ndarray:
    # The strategy gets a copy so it cannot mutate the caller's frame; ``fresh`` frames were
    # built for this one call (shocked variants) and are passed as they are.
    name = strategy_name(strategy)
    try:
        out = strategy(data if fresh else data.copy(), **params)
    except ChimeraError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"strategy {name!r} failed on {what} ({len(data)} bars, {data.index[0]} .. "
            f"{data.index[-1]}) with params {dict(params)}: {type(exc).__name__}: {exc}"
        ) from exc
    return exposure_values(
        out, data.index, name=f"strategy {name!r}", error=ConfigError, allow_array=False
    )


def _differences(
    reference: np.ndarray, values: np.ndarray, *, atol: float, rtol: float
) -> tuple[np.ndarray, np.ndarray]:
    # Returns (mask of disagreeing positions, absolute difference with inf for NaN mismatch).
    ref_nan, val_nan = np.isnan(reference), np.isnan(values)
    with np.errstate(invalid="ignore"):
        diff = np.abs(values - reference)
    diff[ref_nan & val_nan] = 0.0
    diff[ref_nan ^ val_nan] = np.inf
    with np.errstate(invalid="ignore"):
        bad = diff > atol + rtol * np.abs(np.nan_to_num(reference))
    return bad, diff


@dataclass(frozen=True)
class BiasCheck:
    """One comparison of :func:`detect_lookahead`: a cut point and how the future was hidden."""

    cut: pd.Timestamp
    method: str  # "truncate", "shock x1.5", "shock x0.5"
    n_compared: int
    n_differences: int
    first_offending_timestamp: pd.Timestamp | None
    difference_at_first: float
    max_abs_difference: float
    error: str | None = None  # the strategy raised on this history (a finding, not a skip)


def _html_table(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in rows
    )
    return f"<table>{body}</table>"


@dataclass(frozen=True, eq=False)
class BiasReport:
    """The verdict of :func:`detect_lookahead`.

    Attributes
    ----------
    strategy : str
        Name of the strategy tested.
    params : dict
        Parameters it was called with.
    n_bars : int
        Bars in the full history.
    checks : tuple of BiasCheck
        Every comparison made (each cut point, truncated and shocked).
    atol, rtol : float
        The agreement tolerance.
    """

    strategy: str
    params: dict[str, Any]
    n_bars: int
    checks: tuple[BiasCheck, ...]
    atol: float
    rtol: float
    cuts: tuple[pd.Timestamp, ...] = field(default=())

    @property
    def offending(self) -> tuple[BiasCheck, ...]:
        """The checks that found a difference."""
        return tuple(c for c in self.checks if c.n_differences)

    @property
    def lookahead(self) -> bool:
        """Whether any check found the strategy using future data."""
        return bool(self.offending)

    @property
    def errors(self) -> tuple[BiasCheck, ...]:
        """The checks on which the strategy raised (truncated or shocked history)."""
        return tuple(c for c in self.checks if c.error is not None)

    @property
    def passed(self) -> bool:
        """No look-ahead found and the strategy ran on every truncated and shocked history."""
        return not self.lookahead and not self.errors

    @property
    def first_offending_timestamp(self) -> pd.Timestamp | None:
        """Earliest timestamp whose full-history value changed when the future was hidden."""
        stamps = [c.first_offending_timestamp for c in self.offending]
        return min(s for s in stamps if s is not None) if stamps else None

    @property
    def max_abs_difference(self) -> float:
        """Largest absolute difference seen (``inf`` when a NaN met a number; 0 if clean)."""
        return max((c.max_abs_difference for c in self.offending), default=0.0)

    def to_frame(self) -> pd.DataFrame:
        """Return one row per check."""
        return pd.DataFrame([c.__dict__ for c in self.checks])

    def to_dict(self) -> dict[str, Any]:
        """Return the verdict as plain values (timestamps as ISO-8601 UTC, ``Z`` suffix)."""
        first = self.first_offending_timestamp
        return {
            "strategy": self.strategy,
            "params": dict(self.params),
            "lookahead": self.lookahead,
            "first_offending_timestamp": None if first is None else _iso(first),
            "max_abs_difference": self.max_abs_difference,
            "n_bars": self.n_bars,
            "n_cuts": len(self.cuts),
            "n_checks": len(self.checks),
            "n_offending_checks": len(self.offending),
            "n_errors": len(self.errors),
            "first_error": self.errors[0].error if self.errors else None,
            "passed": self.passed,
        }

    def summary(self) -> str:
        """Return a short human-readable verdict."""
        errors = ""
        if self.errors:
            e = self.errors[0]
            errors = (
                f"; the strategy RAISED on {len(self.errors)} of {len(self.checks)} truncated or "
                f"shocked histories (first: {e.method} at {_iso(e.cut)}: {e.error})"
            )
        if not self.lookahead:
            verdict = "no look-ahead found" if not self.errors else "no difference found"
            return (
                f"{self.strategy}: {verdict} ({len(self.cuts)} cut points, "
                f"{len(self.checks)} checks, {self.n_bars} bars){errors}"
            )
        first = self.first_offending_timestamp
        return (
            f"{self.strategy}: LOOK-AHEAD — {len(self.offending)} of {len(self.checks)} checks "
            f"changed past signals when the future was hidden; first offending timestamp "
            f"{_iso(first) if first is not None else '?'}, largest difference "
            f"{self.max_abs_difference:g}{errors}"
        )

    def _repr_html_(self) -> str:
        d = self.to_dict()
        return _html_table([(k, str(v)) for k, v in d.items()])


def early_cuts(n_bars: int, below: int) -> list[int]:
    """Return the geometric ladder of early cut positions: keep 2, 4, 8, ... bars.

    A cut at position ``c`` keeps rows ``0..c``; the ladder stops before position ``below``
    (and before the last bar, which has no future to hide).

    >>> early_cuts(10_000, 100)
    [1, 3, 7, 15, 31, 63]
    """
    out, keep = [], 2
    while keep - 1 < min(below, n_bars - 1):
        out.append(keep - 1)
        keep *= 2
    return out


def detect_lookahead(
    strategy: StrategyFn,
    data: pd.DataFrame,
    *,
    n_checks: int = 20,
    params: Mapping[str, Any] | None = None,
    min_history: int | None = None,
    random_state: int = 0,
    shocks: Sequence[float] = SHOCKS,
    atol: float = 1e-9,
    rtol: float = 1e-9,
    include_early: bool = True,
) -> BiasReport:
    """Test a strategy for look-ahead by hiding the future at random and early cut points.

    Parameters
    ----------
    strategy : callable
        ``f(data, **params) -> Series`` of target exposure indexed like ``data``.
    data : DataFrame
        Bars (OHLCV convention; extra columns are passed through).
    n_checks : int
        Number of random cut points at or after ``min_history`` (each is tested truncated
        and once per shock).
    params : mapping, optional
        Keyword parameters for the strategy.
    min_history : int, optional
        Fewest bars kept at a random cut (default: a tenth of the data, at least 2).
    random_state : int
        Seed for the cut points.
    shocks : sequence of float
        Factors applied to prices and volume after each cut; ``()`` tests truncation only.
    atol, rtol : float
        Agreement tolerance (see the module notes).
    include_early : bool
        Also check the early ladder of cuts keeping 2, 4, 8, ... bars, up to ``min_history``
        (:func:`early_cuts`; default on: leaks confined to the first bars hide there).

    Returns
    -------
    BiasReport
        ``lookahead``, ``first_offending_timestamp``, ``max_abs_difference``, ``errors`` and
        every check.

    Raises
    ------
    ConfigError
        The strategy fails on the **full** history or returns something other than one
        exposure per bar there (failures on truncated or shocked histories are recorded in
        the report instead).
    DataError
        ``data`` is not a frame of at least 3 time-indexed bars.
    """
    data = _check_data(data)
    params = dict(params or {})
    if n_checks < 1:
        raise ConfigError(f"n_checks must be >= 1, got {n_checks}")
    n = len(data)
    keep = max(2, n // 10) if min_history is None else int(min_history)
    if keep < 1 or keep > n - 1:
        raise ConfigError(
            f"min_history must be between 1 and {n - 1} (bars kept at a cut), got {keep}"
        )
    if any(not np.isfinite(f) or f <= 0 or f == 1 for f in shocks):
        raise ConfigError(f"shocks must be positive factors other than 1, got {list(shocks)}")
    full = _signal(strategy, data, params, what="the full history")
    rng = np.random.default_rng(random_state)
    candidates = np.arange(keep - 1, n - 1)  # cut c keeps rows 0..c, so c <= n - 2
    random_cuts = rng.choice(candidates, size=min(n_checks, candidates.size), replace=False)
    ladder = early_cuts(n, keep - 1) if include_early else []
    cuts = np.unique(np.concatenate([np.asarray(ladder, dtype=np.int64), random_cuts]))
    columns = [c for c in OHLCV_COLUMNS if c in data.columns] or [
        c for c in data.columns if pd.api.types.is_float_dtype(data[c])
    ]
    index = data.index
    checks: list[BiasCheck] = []
    for c in (int(x) for x in cuts):
        reference = full[: c + 1]
        variants: list[tuple[str, pd.DataFrame, bool]] = [("truncate", data.iloc[: c + 1], False)]
        for factor in shocks:
            shocked = data.copy()
            for col in columns:
                values = shocked[col].to_numpy(dtype=np.float64, copy=True)
                values[c + 1 :] *= factor
                shocked[col] = values
            variants.append((f"shock x{factor:g}", shocked, True))
        for method, frame, is_shock in variants:
            what = "truncated history" if not is_shock else f"history with a {method[6:]} future"
            try:
                out = _signal(strategy, frame, params, what=what, fresh=is_shock)
            except ChimeraError as exc:
                checks.append(BiasCheck(index[c], method, c + 1, 0, None, 0.0, 0.0, error=str(exc)))
                continue
            bad, diff = _differences(reference, out[: c + 1], atol=atol, rtol=rtol)
            hits = np.flatnonzero(bad)
            first = int(hits[0]) if hits.size else None
            checks.append(
                BiasCheck(
                    cut=index[c],
                    method=method,
                    n_compared=c + 1,
                    n_differences=int(hits.size),
                    first_offending_timestamp=None if first is None else index[first],
                    difference_at_first=0.0 if first is None else float(diff[first]),
                    max_abs_difference=float(diff[bad].max()) if hits.size else 0.0,
                )
            )
    return BiasReport(
        strategy=strategy_name(strategy),
        params=params,
        n_bars=n,
        checks=tuple(checks),
        atol=atol,
        rtol=rtol,
        cuts=tuple(index[int(c)] for c in cuts),
    )


@dataclass(frozen=True, eq=False)
class RecursiveBiasReport:
    """The result of :func:`detect_recursive_bias`.

    Attributes
    ----------
    strategy : str
        Name of the strategy tested.
    params : dict
        Parameters it was called with.
    n_bars : int
        Bars in the full history.
    offsets : tuple of int
        Start positions the signal was recomputed from.
    warmups : tuple of int or None
        Per offset, bars until the restarted signal agrees with the full one for good
        (``None``: it still disagreed in the second half of the remaining data).
    tie_timestamps : tuple of Timestamp
        Isolated late disagreements shared by several restarts (rounding at exact ties),
        not counted as warm-up.
    """

    strategy: str
    params: dict[str, Any]
    n_bars: int
    offsets: tuple[int, ...]
    warmups: tuple[int | None, ...]
    tie_timestamps: tuple[pd.Timestamp, ...] = ()

    @property
    def converged(self) -> bool:
        """Whether the restarted signals agreed with the full one at every offset."""
        return all(w is not None for w in self.warmups)

    @property
    def warmup_bars(self) -> int | None:
        """Warm-up bars needed (the largest over offsets), or ``None`` if not converging."""
        if not self.converged:
            return None
        return max((w for w in self.warmups if w is not None), default=0)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as plain values."""
        return {
            "strategy": self.strategy,
            "params": dict(self.params),
            "converged": self.converged,
            "warmup_bars": self.warmup_bars,
            "offsets": list(self.offsets),
            "warmups": list(self.warmups),
            "tie_timestamps": [_iso(t) for t in self.tie_timestamps],
            "n_bars": self.n_bars,
        }

    def summary(self) -> str:
        """Return a short human-readable result."""
        if not self.converged:
            return (
                f"{self.strategy}: signals restarted at later bars never agree with the full "
                "history (a recursive/cumulative state); give folds an explicit warm-up or "
                "make the state window-bounded"
            )
        ties = (
            f"; {len(self.tie_timestamps)} isolated tie bar(s) decided by rounding ignored"
            if self.tie_timestamps
            else ""
        )
        return (
            f"{self.strategy}: needs {self.warmup_bars} warm-up bar(s) before its values agree "
            f"with the full-history signal (restarted at {len(self.offsets)} offsets){ties}"
        )

    def _repr_html_(self) -> str:
        return _html_table([(k, str(v)) for k, v in self.to_dict().items()])


def detect_recursive_bias(
    strategy: StrategyFn,
    data: pd.DataFrame,
    *,
    params: Mapping[str, Any] | None = None,
    offsets: Sequence[int] | None = None,
    atol: float = 1e-9,
    rtol: float = 1e-9,
) -> RecursiveBiasReport:
    """Measure how many warm-up bars a strategy needs before its values are reliable.

    Parameters
    ----------
    strategy : callable
        ``f(data, **params) -> Series`` of target exposure indexed like ``data``.
    data : DataFrame
        Bars; the longer, the more trustworthy the verdict.
    params : mapping, optional
        Keyword parameters for the strategy.
    offsets : sequence of int, optional
        Start positions to restart from (default: 8 offsets from 5% to 40% into the data;
        several, because a binary signal can agree with the full one by chance, and because
        rounding ties are recognised by being shared between restarts).
    atol, rtol : float
        Agreement tolerance (see the module notes).

    Returns
    -------
    RecursiveBiasReport
        ``warmup_bars`` (max over offsets), ``converged`` and ``tie_timestamps``.
    """
    data = _check_data(data)
    params = dict(params or {})
    n = len(data)
    if offsets is None:
        offsets = sorted({max(1, int(n * f)) for f in np.linspace(0.05, 0.4, 8)})
    offsets = [int(s) for s in offsets]
    if not offsets or any(s < 1 or s > n - 2 for s in offsets):
        raise ConfigError(f"offsets must be between 1 and {n - 2}, got {offsets}")
    full = _signal(strategy, data, params, what="the full history")
    disagree: dict[int, np.ndarray] = {}
    for s in offsets:
        restarted = _signal(strategy, data.iloc[s:], params, what=f"history from bar {s}")
        bad, _ = _differences(full[s:], restarted, atol=atol, rtol=rtol)
        disagree[s] = np.flatnonzero(bad) + s  # absolute positions
    shared = np.zeros(n, dtype=np.int64)
    for positions in disagree.values():
        shared[positions] += 1
    warmups: list[int | None] = []
    ties: set[int] = set()
    for s in offsets:
        positions = disagree[s]
        limit = max(5, (n - s) // 1000)
        k = len(positions)
        while k and shared[positions[k - 1]] >= 2 and len(positions) - k < limit:
            k -= 1
        if k and len(positions) - k >= limit and shared[positions[k - 1]] >= 2:
            k = len(positions)  # too many to be rounding ties: a real disagreement
        ties.update(int(p) for p in positions[k:])
        warmup = int(positions[k - 1]) - s + 1 if k else 0
        warmups.append(warmup if warmup <= (n - s) // 2 else None)
    return RecursiveBiasReport(
        strategy=strategy_name(strategy),
        params=params,
        n_bars=n,
        offsets=tuple(offsets),
        warmups=tuple(warmups),
        tie_timestamps=tuple(data.index[sorted(ties)])
        if all(w is not None for w in warmups)
        else (),
    )
