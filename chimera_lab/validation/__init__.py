"""Time-safe validation: walk-forward splits, a temporal validator, look-ahead detection.

Pure numerics: frames in, values out (no I/O, clock or network).

- :func:`walk_forward_splits` — rolling or anchored folds from durations or bar counts, with
  an embargo between train and test.
- :class:`TemporalValidator` — raises :class:`~chimera_lab.errors.LookAheadError` (with the
  offending timestamps) when a fold or feature frame can see the future.
- :func:`detect_lookahead` — recompute a strategy on hidden-future data (:class:`BiasReport`).
- :func:`detect_recursive_bias` — the warm-up bars a strategy needs (:class:`RecursiveBiasReport`).
"""

from __future__ import annotations

from chimera_lab.errors import LookAheadError, TimestampLeakError
from chimera_lab.validation.bias import (
    BiasCheck,
    BiasReport,
    RecursiveBiasReport,
    StrategyFn,
    detect_lookahead,
    detect_recursive_bias,
    early_cuts,
    strategy_name,
)
from chimera_lab.validation.splits import (
    Fold,
    WindowLike,
    as_time_index,
    parse_window,
    to_utc,
    walk_forward_splits,
)
from chimera_lab.validation.temporal import TemporalValidator

__all__ = [
    "BiasCheck",
    "BiasReport",
    "Fold",
    "LookAheadError",
    "RecursiveBiasReport",
    "StrategyFn",
    "TemporalValidator",
    "TimestampLeakError",
    "WindowLike",
    "as_time_index",
    "detect_lookahead",
    "detect_recursive_bias",
    "early_cuts",
    "parse_window",
    "strategy_name",
    "to_utc",
    "walk_forward_splits",
]
