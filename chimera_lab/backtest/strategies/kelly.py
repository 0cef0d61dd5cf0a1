"""``kelly``: a base strategy's direction, sized by Kelly from its own closed trades.

The Kelly formula and its fractional/capped sizing come from the risk toolkit
(:func:`chimera_lab.risk.kelly_inputs_from_trades` and
:func:`chimera_lab.risk.kelly_position_size`); this module only decides *which* trades feed
it and *when* a size takes effect, so that nothing from the future is used.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from chimera_lab.backtest.strategies._registry import resolve_strategy, strategy
from chimera_lab.errors import ConfigError, DataError
from chimera_lab.risk.kelly import kelly_inputs_from_trades

__all__ = ["kelly", "kelly_sizes"]


def kelly_sizes(
    returns: np.ndarray,
    *,
    fraction: float,
    max_leverage: float,
    lookback_trades: int,
    min_trades: int,
    min_size: float,
) -> np.ndarray:
    """Return the exposure after each closed trade, from the trailing ``lookback_trades``.

    Element k uses the returns of trades ``k - lookback_trades + 1 .. k``. With fewer than
    ``min_trades`` of them it is ``min_size``; with no winner it is 0 (no edge can be
    estimated); with no loser it is ``max_leverage`` (full Kelly is unbounded, so the cap
    binds); otherwise ``kelly_position_size(..., fraction, max_leverage).exposure``.

    Examples
    --------
    >>> r = np.array([0.02, -0.01, 0.03, -0.01])
    >>> kelly_sizes(r, fraction=0.5, max_leverage=1.0, lookback_trades=4, min_trades=3,
    ...             min_size=0.1).round(3).tolist()
    [0.1, 0.1, 1.0, 1.0]
    """
    out = np.empty(returns.size)
    for k in range(returns.size):
        window = returns[max(0, k - lookback_trades + 1) : k + 1]
        if window.size < min_trades:
            out[k] = min_size
        elif not (window > 0).any():
            out[k] = 0.0
        elif not (window < 0).any():
            out[k] = max_leverage
        else:
            est = kelly_inputs_from_trades(window, min_trades=0)
            pos = est.position_size("", fraction=fraction, max_leverage=max_leverage)
            out[k] = pos.exposure
    return out


@strategy(grid={"fraction": [0.25, 0.5, 1.0], "lookback_trades": [20, 50, 100]})
def kelly(
    data: pd.DataFrame,
    base: str = "sma_cross",
    fraction: float = 0.5,
    max_leverage: float = 1.0,
    lookback_trades: int = 50,
    min_trades: int = 10,
    min_size: float = 0.1,
    base_params: dict[str, Any] | None = None,
    allow_short: bool = False,
    fee_bps: float = 0.0,
    slippage_bps: float = 0.0,
) -> pd.Series:
    """Trade a base strategy's direction with a Kelly size from its trailing closed trades.

    The base strategy's direction (sign of its exposure) is backtested on its own with the
    same costs, giving its trades. When the direction changes at bar t, the new position's
    size is fixed from the last ``lookback_trades`` base trades *closed at or before bar t*
    (their exit fill was at an open <= t): win probability, average win and average loss of
    their returns give full Kelly ``x*``, and the size is
    ``min(fraction * x*, max_leverage)``, 0 for no edge (see :func:`kelly_sizes` for thin
    samples). Until ``min_trades`` base trades have closed the size is ``min_size``
    (default 10% of equity). The size stays fixed while the direction is unchanged, so a
    position is not resized bar by bar.

    Parameters
    ----------
    data : DataFrame
        OHLCV bars.
    base : str
        The base strategy (registered name or ``file.py:function``; not ``kelly``).
    fraction : float
        Kelly fraction in (0, 1] (0.5 = half Kelly).
    max_leverage : float
        Cap on the size; keep it <= the engine's ``leverage``.
    lookback_trades : int
        Number of trailing closed trades for the estimate (>= 2).
    min_trades : int
        Closed trades needed before Kelly sizing starts (>= 2).
    min_size : float
        Size used until then (0 to stay out).
    base_params : dict, optional
        Parameters of the base strategy (CLI: ``--param "base_params={'fast': 10}"``).
    allow_short, fee_bps, slippage_bps
        As for the backtest; :func:`chimera_lab.backtest.run` passes its own values when
        they are not given, so the base trades are the ones the backtest would take.
    """
    if isinstance(base, str) and base == "kelly":
        raise ConfigError("kelly cannot use itself as its base strategy")
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"kelly needs 0 < fraction <= 1, got {fraction}")
    if not max_leverage >= 0.0:
        raise ConfigError(f"kelly needs max_leverage >= 0, got {max_leverage}")
    if not 0.0 <= min_size <= max_leverage:
        raise ConfigError(
            f"kelly needs 0 <= min_size <= max_leverage, got {min_size} > {max_leverage}"
        )
    for name, value in (("lookback_trades", lookback_trades), ("min_trades", min_trades)):
        if isinstance(value, bool) or value < 2:
            raise ConfigError(f"kelly needs {name} >= 2, got {value}")
    if min_trades > lookback_trades:
        raise ConfigError(
            f"kelly needs min_trades <= lookback_trades, got {min_trades} > {lookback_trades}"
        )
    from chimera_lab.backtest.engine import run  # the engine imports the registry

    spec = resolve_strategy(base)
    raw = spec(data, **(base_params or {}))
    values = raw.to_numpy(dtype=np.float64, na_value=np.nan) if isinstance(raw, pd.Series) else (
        np.asarray(raw, dtype=np.float64)
    )  # fmt: skip
    if values.shape != (len(data),):
        raise DataError(f"base strategy {spec.name!r} returned shape {values.shape}")
    direction = np.sign(np.nan_to_num(values, nan=0.0))
    if not allow_short:
        direction = np.maximum(direction, 0.0)

    base_run = run(
        data,
        pd.Series(direction, index=data.index),
        fee_bps=fee_bps,
        slippage_bps=slippage_bps,
        allow_short=allow_short,
    )
    trades = base_run.trades
    closed = trades[trades["exit_reason"] != "open"]
    exit_bar = closed["exit_bar"].to_numpy(dtype=np.int64)
    sizes = kelly_sizes(
        closed["return"].to_numpy(dtype=np.float64),
        fraction=fraction,
        max_leverage=max_leverage,
        lookback_trades=lookback_trades,
        min_trades=min_trades,
        min_size=min_size,
    )
    n = len(data)
    # Size known at the close of bar t: after the last trade whose exit bar is <= t.
    last = np.searchsorted(exit_bar, np.arange(n), side="right") - 1
    size_now = np.where(last >= 0, sizes[np.maximum(last, 0)], min_size)
    # Fix the size when the direction changes; hold it while the direction is unchanged.
    changed = np.empty(n, dtype=bool)
    changed[0] = True
    changed[1:] = direction[1:] != direction[:-1]
    locked = pd.Series(np.where(changed, size_now, np.nan)).ffill().to_numpy()
    return pd.Series(direction * locked, index=data.index, name="exposure")
