"""``kelly``: a base strategy's direction, sized by Kelly from its own closed trades.

The Kelly formula and its fractional/capped sizing come from the risk toolkit
(:func:`chimera_lab.risk.kelly_inputs_from_trades` and
:func:`chimera_lab.risk.kelly_position_size`); this module only decides *which* trades feed
it and *when* a size takes effect, so that nothing from the future is used. With ``risk=``
the targets then pass the toolkit's pre-trade checks
(:meth:`chimera_lab.risk.RiskManager.check_order`, see
:mod:`chimera_lab.backtest.strategies._risk`).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from chimera_lab.backtest.strategies._registry import resolve_strategy, strategy
from chimera_lab.backtest.strategies._risk import apply_risk, manager_from
from chimera_lab.config import RiskSettings, Settings
from chimera_lab.errors import ConfigError, DataError, DataQualityWarning
from chimera_lab.frames import exposure_values
from chimera_lab.risk.kelly import kelly_fraction
from chimera_lab.risk.limits import RiskManager
from chimera_lab.risk.regime import RegimeDetector
from chimera_lab.risk.var import rolling_var

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
    r = np.asarray(returns, dtype=np.float64)
    if not np.isfinite(r).all():
        bad = int(np.flatnonzero(~np.isfinite(r))[0])
        raise DataError(f"trade return {r[bad]!r} at trade {bad + 1} is not finite")
    n, look = r.size, int(lookback_trades)
    # Window k holds trades max(0, k - look + 1) .. k: counts from cumulative sums (exact).
    lo = np.maximum(np.arange(1, n + 1) - look, 0)
    wins_c = np.concatenate([[0], np.cumsum(r > 0)])
    losses_c = np.concatenate([[0], np.cumsum(r < 0)])
    n_w, n_l = wins_c[1:] - wins_c[lo], losses_c[1:] - losses_c[lo]
    size = np.arange(1, n + 1) - lo
    out = np.where(size < min_trades, float(min_size), np.where(n_w == 0, 0.0, max_leverage))
    rows = np.flatnonzero((size >= min_trades) & (n_w > 0) & (n_l > 0))
    if rows.size:
        # The inputs kelly_inputs_from_trades estimates, per window (p and q over all its
        # trades, W and L the mean win and the mean loss magnitude), then the sizing rule of
        # kelly_position_size. Window sums are summed per window (not differences of running
        # sums, which lose digits over a long history), a block of windows at a time.
        padded = np.concatenate([np.zeros(look - 1), r])  # zeros: neither wins nor losses
        windows = np.lib.stride_tricks.sliding_window_view(padded, look)
        win_sum, loss_sum = np.empty(rows.size), np.empty(rows.size)
        step = max(1, 2**20 // look)
        for i in range(0, rows.size, step):
            block = windows[rows[i : i + step]]
            win_sum[i : i + step] = np.where(block > 0, block, 0.0).sum(axis=1)
            loss_sum[i : i + step] = -np.where(block < 0, block, 0.0).sum(axis=1)
        w_n, l_n, m = n_w[rows], n_l[rows], size[rows]
        full = np.asarray(
            kelly_fraction(w_n / m, win_sum / w_n, loss_sum / l_n, loss_probability=l_n / m)
        )
        out[rows] = np.where(full <= 0.0, 0.0, np.minimum(fraction * full, max_leverage))
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
    risk: bool | RiskManager | RiskSettings | Settings | None = None,
    risk_regime: bool = False,
    risk_var_window: int | None = None,
    initial_capital: float = 100_000.0,
    trade_start: str | pd.Timestamp | None = None,
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
    risk : bool, RiskManager, RiskSettings or Settings, optional
        Pre-trade risk checks (default off). When on, every new target is passed through
        :meth:`chimera_lab.risk.RiskManager.check_order` against a shadow account of this
        strategy's own targets (same costs as the backtest), and the drawdown kill switch
        watches that account at every close: exposure and leverage caps, the VaR limit,
        regime limits, the max order notional and the kill switch (flat and locked for the
        rest of the backtest) then act in the backtest as they would live. ``True`` uses
        ``RiskSettings()`` defaults (``chimera backtest --param risk=True``: the
        environment's ``CHIMERA_RISK__*`` settings); see
        :mod:`chimera_lab.backtest.strategies._risk`.
    risk_regime : bool
        With ``risk``: label each bar with :class:`chimera_lab.risk.RegimeDetector` (data up
        to the bar); the regime's exposure multiplier scales the Kelly size, its limits apply
        in ``check_order``, and a regime change is a new decision. Warm-up bars (no label)
        get NORMAL limits.
    risk_var_window : int, optional
        With ``risk``: the one-bar historical VaR (``RiskSettings.var_confidence``) of the
        last ``risk_var_window`` close-to-close returns up to each decision bar feeds the VaR
        check (skipped until that many returns exist; a negative VaR counts as 0).
    initial_capital, trade_start
        As for the backtest (passed by :func:`~chimera_lab.backtest.run`): the shadow
        account starts flat with this capital at ``trade_start``.
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
    manager = manager_from(risk)
    if manager is None and (risk_regime or risk_var_window is not None):
        raise ConfigError("risk_regime and risk_var_window need risk=True (or a RiskManager)")
    if risk_var_window is not None and (
        isinstance(risk_var_window, bool)
        or not isinstance(risk_var_window, int | np.integer)
        or risk_var_window < 10
    ):
        raise ConfigError(f"risk_var_window must be a whole number >= 10, got {risk_var_window!r}")
    from chimera_lab.backtest.engine import _start_position, run  # the engine imports us

    spec = resolve_strategy(base)
    raw = spec(data, **(base_params or {}))
    values = exposure_values(raw, data.index, name=f"base strategy {spec.name!r}")
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
    if sizes.size:
        size_now = np.where(last >= 0, sizes[np.maximum(last, 0)], min_size)
    else:  # no base trade has closed yet
        size_now = np.full(n, float(min_size))
    # Fix the size when the direction changes; hold it while the direction is unchanged.
    changed = np.empty(n, dtype=bool)
    changed[0] = True
    changed[1:] = direction[1:] != direction[:-1]
    locked = pd.Series(np.where(changed, size_now, np.nan)).ffill().to_numpy()
    target = direction * locked
    if manager is not None:
        target = _with_risk(
            data,
            target,
            changed,
            manager,
            regime=risk_regime,
            var_window=risk_var_window,
            fee_bps=fee_bps,
            slippage_bps=slippage_bps,
            initial_capital=initial_capital,
            start=_start_position(trade_start, pd.DatetimeIndex(data.index)),
            cap=max_leverage,
        )
    return pd.Series(target, index=data.index, name="exposure")


def _with_risk(
    data: pd.DataFrame,
    target: np.ndarray,
    changed: np.ndarray,
    manager: RiskManager,
    *,
    regime: bool,
    var_window: int | None,
    fee_bps: float,
    slippage_bps: float,
    initial_capital: float,
    start: int,
    cap: float,
) -> np.ndarray:
    # Inputs known at each bar's close: regime labels (causal features) and the VaR of the
    # returns up to that bar; then the overlay replays the targets through check_order.
    regimes = None
    if regime:
        with warnings.catch_warnings():
            # a short history has unlabelled warm-up bars: they get NORMAL limits, as documented
            warnings.simplefilter("ignore", DataQualityWarning)
            labels = RegimeDetector().fit(data).predict(data)
        regimes = labels.to_numpy(dtype=object)
    var = None
    if var_window is not None:
        returns = data["close"].pct_change()
        # rolling_var's value at t uses returns before t: shift by one bar so that the value
        # at t covers the returns up to and including t (known at t's close)
        padded = pd.concat([returns, pd.Series([np.nan])], ignore_index=True)
        forecast = rolling_var(padded, var_window, "historical", manager.settings.var_confidence)
        var = forecast.to_numpy()[1:]
    return apply_risk(
        data,
        target,
        changed,
        manager,
        regimes=regimes,
        var=var,
        fee_rate=float(fee_bps) / 1e4,
        slip_rate=float(slippage_bps) / 1e4,
        initial_capital=float(initial_capital),
        start=start,
        cap=float(max(cap, 1e-12)),
    )
