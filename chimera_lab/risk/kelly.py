r"""Kelly sizing: the growth-optimal fraction, fractional and capped, scaled by regime.

Conventions
-----------
*Exposure* ``x`` is the position's notional as a fraction of equity (``x = 2`` is 2x leverage).
A trade returns ``+W`` on the notional with probability ``p`` and ``-L`` with probability
``q``; the remaining probability ``1 - p - q`` (if any) is a scratch trade returning 0. The
expected log growth per trade is

.. math:: g(x) = p \ln(1 + xW) + q \ln(1 - xL),

maximised by :math:`x^* = p'/L - q'/W` with :math:`p' = p/(p+q)`, :math:`q' = q/(p+q)`
(scratch trades change the growth rate, not the optimum). For ``p + q = 1`` this is the
classic :math:`x^* = p/L - q/W`.

Raw Kelly is often absurd (a 65% win rate with +2.5%/-1.2% outcomes gives ``x* ≈ 40``), and the
inputs are estimates with large errors, so :func:`kelly_position_size` applies a fraction
(quarter Kelly by default), a leverage cap and a regime multiplier, and gives zero for a
negative edge. :func:`continuous_kelly` and :func:`multi_asset_kelly` are the Gaussian
(continuous-time) versions ``mu / sigma**2`` and ``inv(Sigma) @ mu``.
:func:`kelly_inputs_from_trades` estimates the inputs from a trades table and reports the
sample size and the standard error of ``x*``.

Examples
--------
>>> round(kelly_fraction(0.65, avg_win=0.025, avg_loss=0.012), 2)
40.17
>>> pos = kelly_position_size("BTCUSDT", 0.55, 0.45, 0.02, 0.02, equity=10_000, price=50_000)
>>> round(pos.exposure, 4), round(pos.notional, 2), round(pos.units, 6)
(1.0, 10000.0, 0.2)
"""

from __future__ import annotations

import difflib
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, overload

import numpy as np
import numpy.typing as npt
import pandas as pd

from chimera_lab.errors import ConfigError, DataError, DataQualityWarning

__all__ = [
    "KellyEstimate",
    "KellyPosition",
    "continuous_kelly",
    "kelly_fraction",
    "kelly_growth_rate",
    "kelly_inputs_from_trades",
    "kelly_position_size",
    "multi_asset_kelly",
    "regime_multiplier",
]

_REGIMES = ("normal", "trending", "volatile", "crisis")


# --------------------------------------------------------------------------------------------
# validation helpers (private)


def _check_scalar(
    name: str,
    value: object,
    *,
    lo: float | None = None,
    lo_open: bool = False,
    hi: float | None = None,
    hint: str = "",
) -> float:
    # A finite float within [lo, hi] (lo exclusive when lo_open), else a ConfigError that says
    # what was expected and what was received.
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}{hint}") from None
    if not math.isfinite(v):
        raise ConfigError(f"{name} must be finite, got {v!r}{hint}")
    if lo is not None and (v <= lo if lo_open else v < lo):
        rel = ">" if lo_open else ">="
        raise ConfigError(f"{name} must be {rel} {lo}, got {v!r}{hint}")
    if hi is not None and v > hi:
        raise ConfigError(f"{name} must be <= {hi}, got {v!r}{hint}")
    return v


def _regime_key(regime: str | Enum) -> str:
    raw = regime.value if isinstance(regime, Enum) else regime
    if not isinstance(raw, str):
        raise ConfigError(f"regime must be a string or a Regime, got {regime!r}")
    return raw.strip().lower()


def regime_multiplier(
    regime: str | Enum | None, multipliers: Mapping[str, float] | None = None
) -> float:
    """Return the exposure multiplier of ``regime``.

    Parameters
    ----------
    regime : str, Enum or None
        ``"normal"``, ``"trending"``, ``"volatile"`` or ``"crisis"`` (any case), or a member of
        :class:`chimera_lab.risk.Regime`. ``None`` means no regime scaling (multiplier 1).
    multipliers : mapping of str to float, optional
        Regime name to multiplier. Default: the ``exposure_multiplier`` of each regime in
        :class:`chimera_lab.config.RiskSettings` (normal 1, trending 1, volatile 0.5, crisis 0).

    Returns
    -------
    float

    Raises
    ------
    ConfigError
        For an unknown regime or a negative multiplier.

    Examples
    --------
    >>> regime_multiplier("VOLATILE")
    0.5
    >>> regime_multiplier("crisis", {"crisis": 0.25})
    0.25
    """
    if regime is None:
        return 1.0
    key = _regime_key(regime)
    if multipliers is None:
        from chimera_lab.config import RiskSettings  # pure pydantic model; reads no environment

        table: dict[str, float] = {
            k: v.exposure_multiplier for k, v in RiskSettings().regime_limits.items()
        }
    else:
        table = {_regime_key(k): float(v) for k, v in multipliers.items()}
    if key not in table:
        close = difflib.get_close_matches(key, list(table) or list(_REGIMES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"no exposure multiplier for regime {key!r}; known: {sorted(table)}{hint}"
        )
    return _check_scalar(f"multiplier of regime {key!r}", table[key], lo=0.0)


# --------------------------------------------------------------------------------------------
# the binary-outcome Kelly fraction


@overload
def kelly_fraction(
    win_probability: float,
    avg_win: float,
    avg_loss: float,
    *,
    loss_probability: float | None = None,
) -> float: ...


@overload
def kelly_fraction(
    win_probability: npt.ArrayLike,
    avg_win: npt.ArrayLike,
    avg_loss: npt.ArrayLike,
    *,
    loss_probability: npt.ArrayLike | None = None,
) -> float | npt.NDArray[np.float64]: ...


def kelly_fraction(
    win_probability: npt.ArrayLike,
    avg_win: npt.ArrayLike,
    avg_loss: npt.ArrayLike,
    *,
    loss_probability: npt.ArrayLike | None = None,
) -> float | npt.NDArray[np.float64]:
    r"""Return the full-Kelly exposure ``x* = p'/L - q'/W`` (fraction of equity, may be < 0).

    ``x*`` maximises the expected log growth
    :math:`p \ln(1 + xW) + q \ln(1 - xL)` of a trade that returns ``+W`` with probability
    ``p`` and ``-L`` with probability ``q``. With ``p + q < 1`` the rest is a scratch (0) trade,
    which leaves the optimum at ``p'/L - q'/W`` with ``p' = p/(p+q)`` and ``q' = q/(p+q)``. A
    negative value means the bet has a negative edge. ``x*`` is always below ``1/L`` (the
    exposure at which a loss wipes out the equity) when ``q > 0``.

    Parameters
    ----------
    win_probability : float or array-like
        ``p`` in [0, 1].
    avg_win : float or array-like
        ``W > 0``: the average winning return on the position's notional (0.025 = +2.5%).
    avg_loss : float or array-like
        ``L > 0``: the average losing return's magnitude (0.012 = -1.2%).
    loss_probability : float or array-like, optional
        ``q``; default ``1 - p``. ``p + q`` must be in (0, 1].

    Returns
    -------
    float or ndarray
        A float for scalar inputs; an array (broadcast shape) otherwise, where NaN inputs give
        NaN (useful for rolling estimates with a warm-up).

    Raises
    ------
    ConfigError
        For probabilities outside [0, 1], ``p + q`` outside (0, 1], non-positive ``W`` or ``L``,
        or NaN scalar inputs.

    Examples
    --------
    >>> round(kelly_fraction(0.65, 0.025, 0.012), 4)
    40.1667
    >>> kelly_fraction(0.5, 0.01, 0.01)
    0.0
    >>> kelly_fraction([0.4, 0.6], 0.02, 0.01)
    array([10., 40.])
    """
    given = (win_probability, avg_win, avg_loss, loss_probability)
    if all(np.ndim(v) == 0 for v in given if v is not None):
        pf = _check_scalar("win_probability", win_probability, lo=0.0, hi=1.0)
        wf = _check_scalar(
            "avg_win",
            avg_win,
            lo=0.0,
            lo_open=True,
            hint="; pass the average win as a positive fraction, e.g. 0.02",
        )
        lf = _check_scalar(
            "avg_loss",
            avg_loss,
            lo=0.0,
            lo_open=True,
            hint="; pass the average loss's magnitude, e.g. 0.01 for -1%",
        )
        qf = (
            1.0 - pf
            if loss_probability is None
            else _check_scalar("loss_probability", loss_probability, lo=0.0, hi=1.0)
        )
        total = pf + qf
        if total <= 0.0 or total > 1.0 + 1e-12:
            raise ConfigError(
                f"win_probability + loss_probability must be in (0, 1], got {pf} + {qf} = {total}"
            )
        return pf / (total * lf) - qf / (total * wf)
    try:
        p = np.asarray(win_probability, dtype=np.float64)
        w = np.asarray(avg_win, dtype=np.float64)
        lo = np.asarray(avg_loss, dtype=np.float64)
        q = 1.0 - p if loss_probability is None else np.asarray(loss_probability, np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"kelly_fraction inputs must be numbers or arrays of numbers: {exc}"
        ) from None
    with np.errstate(invalid="ignore"):
        bad = (
            (p < 0)
            | (p > 1)
            | (q < 0)
            | (q > 1)
            | (w <= 0)
            | (lo <= 0)
            | (p + q <= 0)
            | (p + q > 1 + 1e-12)
        )
    if np.any(bad):
        raise ConfigError(
            "kelly_fraction needs 0 <= p, q <= 1, 0 < p + q <= 1, avg_win > 0 and avg_loss > 0; "
            f"{int(np.count_nonzero(bad))} element(s) violate it"
        )
    both = p + q
    return np.asarray(p / (both * lo) - q / (both * w), dtype=np.float64)


def kelly_growth_rate(
    exposure: float,
    win_probability: float,
    avg_win: float,
    avg_loss: float,
    *,
    loss_probability: float | None = None,
) -> float:
    r"""Return the expected log growth per trade, :math:`p \ln(1 + xW) + q \ln(1 - xL)`.

    Returns ``-inf`` when a loss (or, for a short exposure, a win) would wipe out the equity.

    Examples
    --------
    >>> x = kelly_fraction(0.6, 0.01, 0.01)
    >>> round(kelly_growth_rate(x, 0.6, 0.01, 0.01), 6)
    0.020136
    >>> kelly_growth_rate(101.0, 0.6, 0.01, 0.01)
    -inf
    """
    x = _check_scalar("exposure", exposure)
    p = _check_scalar("win_probability", win_probability, lo=0.0, hi=1.0)
    q = (
        1.0 - p
        if loss_probability is None
        else _check_scalar("loss_probability", loss_probability, lo=0.0, hi=1.0)
    )
    up, down = 1.0 + x * avg_win, 1.0 - x * avg_loss
    if (p > 0 and up <= 0) or (q > 0 and down <= 0):
        return -math.inf
    return (p * math.log(up) if p > 0 else 0.0) + (q * math.log(down) if q > 0 else 0.0)


# --------------------------------------------------------------------------------------------
# position sizing


@dataclass(frozen=True)
class KellyPosition:
    """A Kelly-sized position: exposure (fraction of equity), notional and units.

    Attributes
    ----------
    symbol : str
    full_kelly : float
        The raw ``x*`` from :func:`kelly_fraction` (may be negative or huge).
    fraction : float
        The Kelly fraction applied (0.25 = quarter Kelly).
    exposure : float
        Final exposure: ``min(fraction * x*, max_leverage) * regime_multiplier``, 0 when the
        edge is not positive.
    notional : float
        ``exposure * equity`` (quote currency).
    units : float or None
        ``notional / price`` (base currency), ``None`` when no price was given.
    edge : float
        Expected return per unit of exposure, ``p W - q L``.
    growth_rate : float
        Expected log growth per trade at ``exposure``.
    regime : str or None
        The regime's name, lowercase.
    regime_multiplier : float
    capped : bool
        True if ``max_leverage`` cut the fractional Kelly exposure.
    reasons : tuple of str
        Why the exposure is below ``fraction * x*`` (negative edge, cap, regime).
    """

    symbol: str
    full_kelly: float
    fraction: float
    exposure: float
    notional: float
    units: float | None
    edge: float
    growth_rate: float
    regime: str | None
    regime_multiplier: float
    capped: bool
    reasons: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain dict (for tables and JSON)."""
        return {
            "symbol": self.symbol,
            "full_kelly": self.full_kelly,
            "fraction": self.fraction,
            "exposure": self.exposure,
            "notional": self.notional,
            "units": self.units,
            "edge": self.edge,
            "growth_rate": self.growth_rate,
            "regime": self.regime,
            "regime_multiplier": self.regime_multiplier,
            "capped": self.capped,
            "reasons": list(self.reasons),
        }


def kelly_position_size(
    symbol: str,
    win_probability: float,
    loss_probability: float | None,
    avg_win: float,
    avg_loss: float,
    *,
    fraction: float = 0.25,
    max_leverage: float = 1.0,
    equity: float = 1.0,
    price: float | None = None,
    regime: str | Enum | None = None,
    regime_multipliers: Mapping[str, float] | None = None,
) -> KellyPosition:
    """Size a long position by fractional Kelly, capped, and scaled by the regime.

    ``exposure = min(fraction * x*, max_leverage) * regime_multiplier`` where ``x*`` is
    :func:`kelly_fraction`; a non-positive edge (``x* <= 0``) gives zero. The call shape is the
    seed project's ``kelly_position_size(symbol, win_probability, loss_probability, avg_win,
    avg_loss)``.

    Parameters
    ----------
    symbol : str
        Instrument (carried into the result).
    win_probability, loss_probability : float
        ``p`` and ``q`` (``q=None`` means ``1 - p``); ``p + q <= 1``, the rest are scratch trades.
    avg_win, avg_loss : float
        ``W > 0`` and ``L > 0`` as fractions of the notional (0.02 = 2%).
    fraction : float, default 0.25
        Kelly fraction in (0, 1]; quarter Kelly keeps about 44% of the growth rate with a
        quarter of the volatility, and is robust to overestimated edges.
    max_leverage : float, default 1.0
        Cap on ``fraction * x*`` (exposure, as a multiple of equity).
    equity : float, default 1.0
        Account equity in quote currency; the notional is ``exposure * equity``.
    price : float, optional
        Price of one unit; when given, ``units = notional / price``.
    regime : str or Regime, optional
        Current market regime; its exposure multiplier scales the capped exposure.
    regime_multipliers : mapping, optional
        Regime name to multiplier; default from :class:`chimera_lab.config.RiskSettings`
        (see :func:`regime_multiplier`). Pass ``{k: v.exposure_multiplier for k, v in
        settings.risk.regime_limits.items()}`` to use configured limits.

    Returns
    -------
    KellyPosition

    Raises
    ------
    ConfigError
        For invalid probabilities, payoffs, fraction, cap, equity, price or regime.

    Examples
    --------
    >>> pos = kelly_position_size("BTCUSDT", 0.65, 0.35, 0.025, 0.012, max_leverage=3.0)
    >>> round(pos.full_kelly, 2), pos.exposure, pos.capped
    (40.17, 3.0, True)
    >>> kelly_position_size("BTCUSDT", 0.65, 0.35, 0.025, 0.012, regime="volatile").exposure
    0.5
    >>> kelly_position_size("BTCUSDT", 0.40, 0.60, 0.01, 0.01).exposure
    0.0
    """
    frac = _check_scalar(
        "fraction", fraction, lo=0.0, lo_open=True, hi=1.0, hint="; 0.25 is quarter Kelly"
    )
    cap = _check_scalar("max_leverage", max_leverage, lo=0.0)
    eq = _check_scalar("equity", equity, lo=0.0)
    px = None if price is None else _check_scalar("price", price, lo=0.0, lo_open=True)
    full = kelly_fraction(win_probability, avg_win, avg_loss, loss_probability=loss_probability)
    p = float(win_probability)
    q = 1.0 - p if loss_probability is None else float(loss_probability)
    edge = p * float(avg_win) - q * float(avg_loss)
    mult = regime_multiplier(regime, regime_multipliers)
    regime_name = None if regime is None else _regime_key(regime)
    reasons: list[str] = []
    capped = False
    if full <= 0.0:
        exposure = 0.0
        reasons.append(f"no positive edge (full Kelly {full:.4g}, edge {edge:.4g}): no position")
    else:
        exposure = frac * full
        if exposure > cap:
            reasons.append(f"fractional Kelly {exposure:.4g} capped at max_leverage {cap:g}")
            exposure, capped = cap, True
        if mult != 1.0:
            reasons.append(f"regime {regime_name!r} multiplier {mult:g}")
            exposure *= mult
    notional = exposure * eq
    growth = kelly_growth_rate(exposure, p, float(avg_win), float(avg_loss), loss_probability=q)
    return KellyPosition(
        symbol=symbol,
        full_kelly=full,
        fraction=frac,
        exposure=exposure,
        notional=notional,
        units=None if px is None else notional / px,
        edge=edge,
        growth_rate=growth,
        regime=regime_name,
        regime_multiplier=mult,
        capped=capped,
        reasons=tuple(reasons),
    )


# --------------------------------------------------------------------------------------------
# continuous (Gaussian) Kelly


def continuous_kelly(
    mu: float,
    sigma: float,
    *,
    risk_free: float = 0.0,
    fraction: float = 1.0,
    max_leverage: float | None = None,
) -> float:
    r"""Return the continuous-time Kelly exposure ``fraction * (mu - r) / sigma**2``, capped.

    For log-normal prices with drift :math:`\mu` and volatility :math:`\sigma` (per period, same
    units), the growth rate :math:`r + x(\mu - r) - x^2\sigma^2/2` is maximised by
    :math:`x^* = (\mu - r)/\sigma^2`. The result may be negative (a short); with
    ``max_leverage`` it is clipped to ``[-max_leverage, max_leverage]``.

    Parameters
    ----------
    mu : float
        Expected (arithmetic) return per period.
    sigma : float
        Standard deviation of returns per period, > 0.
    risk_free : float, default 0
        Risk-free return per period.
    fraction : float, default 1
        Kelly fraction in (0, 1].
    max_leverage : float, optional
        Cap on ``|exposure|``.

    Examples
    --------
    >>> round(continuous_kelly(0.10, 0.50), 6)
    0.4
    >>> continuous_kelly(0.30, 0.20, fraction=0.5, max_leverage=2.0)
    2.0
    """
    m = _check_scalar("mu", mu)
    s = _check_scalar("sigma", sigma, lo=0.0, lo_open=True)
    r = _check_scalar("risk_free", risk_free)
    frac = _check_scalar("fraction", fraction, lo=0.0, lo_open=True, hi=1.0)
    x = frac * (m - r) / (s * s)
    if max_leverage is not None:
        cap = _check_scalar("max_leverage", max_leverage, lo=0.0)
        x = min(max(x, -cap), cap)
    return x


def multi_asset_kelly(
    mean_returns: pd.Series | Sequence[float] | npt.NDArray[np.float64],
    covariance: pd.DataFrame | npt.ArrayLike,
    *,
    risk_free: float = 0.0,
    fraction: float = 1.0,
    max_leverage: float | None = None,
    shrinkage: float = 0.0,
) -> pd.Series:
    r"""Return the multi-asset Kelly weights ``fraction * inv(Sigma) @ (mu - r)``, capped.

    The Gaussian growth rate :math:`w^\top(\mu - r) - \tfrac12 w^\top\Sigma w` is maximised by
    :math:`w^* = \Sigma^{-1}(\mu - r)`. Weights are exposures (fractions of equity, negative is
    short). With ``max_leverage`` the whole vector is scaled down so that the gross exposure
    ``sum(|w|)`` is at most the cap (directions are kept). ``shrinkage`` blends the covariance
    toward its diagonal, ``(1 - s) Sigma + s diag(Sigma)``, which tames noisy correlations.

    Parameters
    ----------
    mean_returns : Series or array-like
        Expected returns per period; a Series' index names the assets.
    covariance : DataFrame or array-like
        Covariance of returns per period, symmetric positive definite.
    risk_free : float, default 0
    fraction : float, default 1
    max_leverage : float, optional
        Cap on gross exposure.
    shrinkage : float, default 0
        In [0, 1].

    Returns
    -------
    Series
        Weights indexed by asset (``0..n-1`` when no names are given).

    Raises
    ------
    DataError
        Shape mismatch, NaN, non-symmetric or singular/indefinite covariance (the message
        names the near-collinear assets and suggests ``shrinkage`` or dropping one).

    Examples
    --------
    >>> w = multi_asset_kelly([0.01, 0.02], [[0.04, 0.0], [0.0, 0.09]])
    >>> [round(v, 4) for v in w]
    [0.25, 0.2222]
    """
    frac = _check_scalar("fraction", fraction, lo=0.0, lo_open=True, hi=1.0)
    shrink = _check_scalar("shrinkage", shrinkage, lo=0.0, hi=1.0)
    r = _check_scalar("risk_free", risk_free)
    if isinstance(mean_returns, pd.Series):
        names = list(mean_returns.index)
        mu = mean_returns.to_numpy(dtype=np.float64)
    else:
        mu = np.asarray(mean_returns, dtype=np.float64).ravel()
        names = (
            list(covariance.columns)
            if isinstance(covariance, pd.DataFrame)
            else list(range(mu.size))
        )
    if isinstance(covariance, pd.DataFrame):
        if isinstance(mean_returns, pd.Series) and list(covariance.columns) != names:
            try:
                covariance = covariance.loc[names, names]
            except KeyError:
                raise DataError(
                    f"covariance columns {list(covariance.columns)} do not match mean_returns "
                    f"index {names}"
                ) from None
        cov = covariance.to_numpy(dtype=np.float64)
    else:
        cov = np.asarray(covariance, dtype=np.float64)
    n = mu.size
    if cov.shape != (n, n):
        raise DataError(f"covariance must be {n}x{n} to match mean_returns, got {cov.shape}")
    if n == 0:
        raise DataError("mean_returns is empty; pass at least one asset")
    if not (np.isfinite(mu).all() and np.isfinite(cov).all()):
        raise DataError("mean_returns and covariance must be finite (no NaN/inf)")
    scale = float(np.max(np.abs(cov))) or 1.0
    if not np.allclose(cov, cov.T, rtol=1e-8, atol=1e-12 * scale):
        raise DataError("covariance is not symmetric; pass a covariance matrix (e.g. df.cov())")
    cov = 0.5 * (cov + cov.T)
    if shrink > 0.0:
        cov = (1.0 - shrink) * cov + shrink * np.diag(np.diag(cov))
    eigval, eigvec = np.linalg.eigh(cov)
    if eigval[-1] <= 0.0 or eigval[0] <= eigval[-1] * 1e-12:
        v = eigvec[:, 0]
        involved = [str(names[i]) for i in np.argsort(-np.abs(v))[:2] if abs(v[i]) > 1e-6]
        raise DataError(
            f"covariance is singular or not positive definite (smallest eigenvalue "
            f"{eigval[0]:.3g}, largest {eigval[-1]:.3g}); assets {involved} are (nearly) "
            "collinear or constant. Drop one of them, or pass shrinkage=0.1 or similar"
        )
    weights = frac * np.linalg.solve(cov, mu - r)
    if max_leverage is not None:
        cap = _check_scalar("max_leverage", max_leverage, lo=0.0)
        gross = float(np.abs(weights).sum())
        if gross > cap:
            weights = weights * (cap / gross)
    return pd.Series(weights, index=pd.Index(names), name="kelly_weight", dtype=np.float64)


# --------------------------------------------------------------------------------------------
# estimation from a trades table


@dataclass(frozen=True)
class KellyEstimate:
    """Kelly inputs estimated from closed trades, with the sample size and standard errors.

    Attributes
    ----------
    n_trades, n_wins, n_losses, n_flat : int
        Sample sizes (a flat trade returned exactly 0).
    win_probability, loss_probability : float
        ``n_wins / n_trades`` and ``n_losses / n_trades``.
    avg_win, avg_loss : float
        Mean winning return and mean losing return's magnitude (both > 0).
    kelly_fraction : float
        Full Kelly ``x*`` from these inputs.
    kelly_std_error : float
        Delta-method standard error of ``x*`` (sampling error of p, W and L).
    win_probability_ci : tuple of float
        95% Wilson interval of the win share among non-flat trades.
    mean_return : float
        Mean return per trade (the edge, all trades).
    """

    n_trades: int
    n_wins: int
    n_losses: int
    n_flat: int
    win_probability: float
    loss_probability: float
    avg_win: float
    avg_loss: float
    kelly_fraction: float
    kelly_std_error: float
    win_probability_ci: tuple[float, float]
    mean_return: float

    def position_size(self, symbol: str, **kwargs: Any) -> KellyPosition:
        """Call :func:`kelly_position_size` with these inputs (keyword options pass through)."""
        return kelly_position_size(
            symbol,
            self.win_probability,
            self.loss_probability,
            self.avg_win,
            self.avg_loss,
            **kwargs,
        )

    def summary(self) -> str:
        """Return a short text summary."""
        lo, hi = self.win_probability_ci
        return (
            f"Kelly from {self.n_trades} trades ({self.n_wins} wins, {self.n_losses} losses, "
            f"{self.n_flat} flat): p={self.win_probability:.3f} [95% {lo:.3f}, {hi:.3f}], "
            f"W={self.avg_win:.4g}, L={self.avg_loss:.4g}, "
            f"x*={self.kelly_fraction:.3g} ± {self.kelly_std_error:.2g}"
        )


def _trade_returns(trades: pd.DataFrame | pd.Series | npt.ArrayLike, column: str) -> np.ndarray:
    if isinstance(trades, pd.DataFrame):
        if column not in trades.columns:
            cols = [str(c) for c in trades.columns]
            close = difflib.get_close_matches(column, cols, n=1, cutoff=0.4)
            hint = f"; did you mean column={close[0]!r}?" if close else ""
            raise DataError(
                f"trades table has no column {column!r} (columns: {cols}){hint}", column=column
            )
        values = trades[column].to_numpy(dtype=np.float64, na_value=np.nan)
    elif isinstance(trades, pd.Series):
        values = trades.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        values = np.asarray(trades, dtype=np.float64).ravel()
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataError(
            f"trade return is {values[bad[0]]!r}; every closed trade needs a finite return "
            f"({bad.size} bad value(s))",
            row=int(bad[0]) + 1,
            column=column if isinstance(trades, pd.DataFrame) else None,
        )
    return values


def kelly_inputs_from_trades(
    trades: pd.DataFrame | pd.Series | npt.ArrayLike,
    *,
    column: str = "return",
    min_trades: int = 30,
) -> KellyEstimate:
    """Estimate ``p``, ``q``, ``W``, ``L`` and ``x*`` from closed trades' returns.

    Each trade's return is on its own notional (``+0.02`` = the position gained 2%). Wins are
    returns > 0, losses < 0, flat == 0. The standard error of ``x* = p'/L - q'/W`` (``p'`` the
    win share among non-flat trades) is the delta-method combination of
    ``Var(p') = p'(1-p')/n'``, ``Var(W) = s_W^2/n_wins`` and ``Var(L) = s_L^2/n_losses``; read
    it before trusting ``x*`` (a few dozen trades rarely pin it down).

    Parameters
    ----------
    trades : DataFrame, Series or array-like
        A trades table (use ``column``) or the returns themselves.
    column : str, default "return"
        Column of ``trades`` holding each trade's return.
    min_trades : int, default 30
        Below this many trades a :class:`~chimera_lab.errors.DataQualityWarning` says the
        estimate is noisy.

    Returns
    -------
    KellyEstimate

    Raises
    ------
    DataError
        Missing column, non-finite returns, or no winning or no losing trade (then ``W`` or
        ``L`` cannot be estimated and Kelly is undefined).

    Examples
    --------
    >>> est = kelly_inputs_from_trades([0.02, -0.01, 0.03, -0.01, 0.01, 0.0], min_trades=5)
    >>> est.n_trades, est.n_wins, est.n_losses, est.n_flat
    (6, 3, 2, 1)
    >>> round(est.avg_win, 4), round(est.avg_loss, 4), round(est.kelly_fraction, 2)
    (0.02, 0.01, 40.0)
    """
    values = _trade_returns(trades, column)
    n = int(values.size)
    wins, losses = values[values > 0], -values[values < 0]
    n_w, n_l = int(wins.size), int(losses.size)
    if n_w == 0 or n_l == 0:
        missing = "winning" if n_w == 0 else "losing"
        raise DataError(
            f"no {missing} trade among {n}: avg_{'win' if n_w == 0 else 'loss'} cannot be "
            "estimated, so Kelly is undefined; collect more trades"
        )
    if n < min_trades:
        warnings.warn(
            f"Kelly inputs estimated from only {n} trades (< min_trades={min_trades}); "
            "the estimate is very noisy, see kelly_std_error",
            DataQualityWarning,
            stacklevel=2,
        )
    p, q = n_w / n, n_l / n
    w_mean, l_mean = float(wins.mean()), float(losses.mean())
    x = kelly_fraction(p, w_mean, l_mean, loss_probability=q)
    n_eff = n_w + n_l
    pp = n_w / n_eff
    var_p = pp * (1.0 - pp) / n_eff
    var_w = float(wins.var(ddof=1)) / n_w if n_w > 1 else 0.0
    var_l = float(losses.var(ddof=1)) / n_l if n_l > 1 else 0.0
    # x = p'/L - (1 - p')/W: dx/dp' = 1/L + 1/W, dx/dW = (1 - p')/W^2, dx/dL = -p'/L^2.
    d_p = 1.0 / l_mean + 1.0 / w_mean
    d_w = (1.0 - pp) / w_mean**2
    d_l = -pp / l_mean**2
    se = math.sqrt(d_p**2 * var_p + d_w**2 * var_w + d_l**2 * var_l)
    return KellyEstimate(
        n_trades=n,
        n_wins=n_w,
        n_losses=n_l,
        n_flat=n - n_eff,
        win_probability=p,
        loss_probability=q,
        avg_win=w_mean,
        avg_loss=l_mean,
        kelly_fraction=x,
        kelly_std_error=se,
        win_probability_ci=_wilson(n_w, n_eff),
        mean_return=float(values.mean()),
    )


def _wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    # Wilson score interval for a binomial proportion k/n (95% by default).
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))
