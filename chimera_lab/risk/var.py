r"""Value at Risk and expected shortfall by three methods, point and rolling.

Conventions
-----------
- Returns are simple returns per period (bar). ``VaR`` is a **positive loss fraction**: with
  confidence ``c`` the loss over ``horizon`` periods exceeds ``VaR`` with probability
  ``alpha = 1 - c``, i.e. ``VaR = -Q_alpha(R_h)``. ``CVaR`` (expected shortfall) is the mean
  loss beyond it, ``-E[R_h | R_h <= -VaR]``. Both may be negative for a strongly trending
  sample (the "loss" quantile is a gain).
- **historical**: the empirical ``alpha``-quantile of the returns, with pandas'/numpy's rank
  arithmetic ``idx = alpha * (n - 1)`` and an ``interpolation`` between the order statistics
  (default ``"linear"``; ``"lower"`` is the classic conservative order statistic). CVaR is the
  mean of the returns at or below that quantile. For ``horizon > 1`` the sample is the
  **overlapping** compounded ``h``-period returns ``prod(1 + r) - 1`` (n - h + 1 of them; they
  are autocorrelated, so the effective sample is smaller than it looks).
- **parametric**: Gaussian, ``VaR = -(h mu + sqrt(h) sigma z_alpha)`` and
  ``CVaR = -(h mu - sqrt(h) sigma phi(z_alpha) / alpha)`` (mean scaled by h, volatility by
  sqrt h). With ``cornish_fisher=True`` the quantile is the Cornish-Fisher expansion
  ``z + (z^2-1)S/6 + (z^3-3z)K/24 - (2z^3-5z)S^2/36`` with sample skew ``S`` and excess
  kurtosis ``K`` (scaled to the horizon as for i.i.d. sums, ``S/sqrt(h)``, ``K/h``), and CVaR
  integrates that quantile function over the tail in closed form.
- **monte_carlo**: ``r = mu + sigma * eps`` with unit-variance innovations, Gaussian or
  Student t with degrees of freedom fitted by profile maximum likelihood (``distribution``,
  default ``"t"``: crypto returns are fat-tailed); ``n_sims`` paths of ``horizon`` steps are
  compounded and the historical estimator is applied to the simulated ``h``-period returns.

:func:`rolling_var` gives forecasts: the value at ``t`` uses returns strictly before ``t``.
Its historical version equals ``-returns.shift(1).rolling(window).quantile(alpha,
interpolation=...)`` exactly (a numba order-statistic kernel, O(n log w)).

Examples
--------
>>> import numpy as np
>>> r = np.random.default_rng(0).normal(0.0, 0.01, 2_000)
>>> res = value_at_risk(r, method="parametric", confidence=0.99)
>>> round(res.var, 4), round(res.cvar, 4)
(0.0236, 0.0269)
>>> round(value_at_risk(r, method="historical").var, 4)
0.024
"""

from __future__ import annotations

import html
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from chimera_lab.errors import ConfigError, DataQualityWarning
from chimera_lab.risk import _stats as S
from chimera_lab.risk._kernels import rolling_quantile
from chimera_lab.risk.portfolio import PortfolioVaR, portfolio_var

__all__ = ["PortfolioVaR", "VaRResult", "portfolio_var", "rolling_var", "value_at_risk"]


@dataclass(frozen=True)
class VaRResult:
    """A VaR estimate.

    Attributes
    ----------
    var : float
        Value at Risk, a positive loss fraction over ``horizon`` periods.
    cvar : float
        Expected shortfall (CVaR) at the same level, ``>= var``.
    method : str
        ``"historical"``, ``"parametric"`` or ``"monte_carlo"``.
    confidence : float
    horizon : int
    n_obs : int
        Returns used (after dropping NaN), before horizon aggregation.
    details : mapping
        Fitted quantities: ``mu``, ``sigma``, ``skew``, ``excess_kurtosis``, ``df``,
        ``n_sims``, ``n_scenarios``, ``interpolation``, ``cornish_fisher``.
    """

    var: float
    cvar: float
    method: str
    confidence: float
    horizon: int
    n_obs: int = 0
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a plain dict (JSON-friendly)."""
        return {
            "method": self.method,
            "confidence": self.confidence,
            "horizon": self.horizon,
            "var": self.var,
            "cvar": self.cvar,
            "n_obs": self.n_obs,
            **dict(self.details),
        }

    def summary(self) -> str:
        """One line: method, level, VaR and CVaR in percent."""
        return (
            f"{self.method} VaR({self.confidence:.2%}, {self.horizon}p): {self.var:.2%}"
            f" | CVaR: {self.cvar:.2%} | n={self.n_obs}"
        )

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>"
            for k, v in self.to_dict().items()
        )
        return f"<table>{rows}</table>"


def _fmt(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def value_at_risk(
    returns: pd.Series | npt.ArrayLike,
    *,
    method: str = "historical",
    confidence: float = 0.99,
    horizon: int = 1,
    interpolation: str = "linear",
    cornish_fisher: bool = False,
    distribution: str = "t",
    n_sims: int = 100_000,
    seed: int | np.random.Generator | None = None,
) -> VaRResult:
    """Estimate VaR and CVaR of a return series by one method (see the module notes).

    Parameters
    ----------
    returns : Series or array-like
        Simple returns per period; NaN values are dropped (after horizon aggregation).
    method : {"historical", "parametric", "monte_carlo"}
        ``"monte-carlo"`` and ``"mc"`` are accepted too.
    confidence : float, default 0.99
        In (0.5, 1).
    horizon : int, default 1
        Periods; see the module notes for how each method scales.
    interpolation : {"linear", "lower", "higher", "nearest", "midpoint"}
        Quantile interpolation (historical and Monte Carlo), pandas' definitions.
    cornish_fisher : bool, default False
        Parametric only: skew/kurtosis-adjusted quantile.
    distribution : {"t", "normal"}, default "t"
        Monte Carlo innovations.
    n_sims : int, default 100000
        Monte Carlo paths.
    seed : int or Generator, optional
        Monte Carlo randomness; pass one for reproducible numbers.

    Returns
    -------
    VaRResult

    Raises
    ------
    ConfigError
        Unknown method, bad confidence, horizon, interpolation or distribution.
    DataError
        Non-numeric or infinite returns, or too few observations.

    Examples
    --------
    >>> import numpy as np
    >>> r = np.random.default_rng(1).standard_t(4, 3_000) * 0.01
    >>> mc = value_at_risk(r, method="monte_carlo", n_sims=20_000, seed=7)
    >>> mc.method, mc.var > 0, mc.cvar > mc.var
    ('monte_carlo', True, True)
    """
    m = S.check_method(method)
    c = S.check_confidence(confidence)
    h = S.check_horizon(horizon)
    interp = S.check_interpolation(interpolation)
    alpha = 1.0 - c
    raw, _ = S.as_float_array(returns)
    clean = S.finite(raw, name="returns", need=2)
    n_obs = int(clean.size)
    if cornish_fisher and m != "parametric":
        raise ConfigError("cornish_fisher=True applies to method='parametric' only")
    if m == "historical":
        agg = S.finite(S.aggregate(raw, h), name=f"{h}-period returns", need=1)
        S.warn_thin_tail(agg.size, c, "historical VaR")
        q, tail = S.tail_quantile(agg, alpha, interp)
        return VaRResult(
            var=-q,
            cvar=-tail,
            method=m,
            confidence=c,
            horizon=h,
            n_obs=n_obs,
            details={"n_scenarios": int(agg.size), "interpolation": interpolation},
        )
    mu, sigma, skew, kurt = S.sample_moments(clean)
    if m == "parametric":
        var, cvar = _parametric(mu, sigma, skew, kurt, alpha, h, cornish_fisher)
        details: dict[str, Any] = {"mu": mu, "sigma": sigma, "cornish_fisher": cornish_fisher}
        if cornish_fisher:
            details |= {"skew": skew, "excess_kurtosis": kurt}
        return VaRResult(var, cvar, m, c, h, n_obs, details)
    dist = S.check_distribution(distribution)
    sims = S.check_n_sims(n_sims)
    df = S.fit_t_df((clean - mu) / sigma) if dist == "t" and sigma > 0 else math.inf
    rng = S.rng_from(seed)
    growth = np.ones(sims)
    for _ in range(h):
        eps = S.standard_innovations(rng, (sims,), "normal" if math.isinf(df) else dist, df)
        growth *= 1.0 + (mu + sigma * eps)
    simulated = growth - 1.0
    q, tail = S.tail_quantile(simulated, alpha, interp)
    return VaRResult(
        var=-q,
        cvar=-tail,
        method=m,
        confidence=c,
        horizon=h,
        n_obs=n_obs,
        details={
            "mu": mu,
            "sigma": sigma,
            "distribution": dist,
            "df": df,
            "n_sims": sims,
            "interpolation": interpolation,
        },
    )


def _parametric(
    mu: float,
    sigma: float,
    skew: float,
    kurt: float,
    alpha: float,
    horizon: int,
    cornish_fisher: bool,
) -> tuple[float, float]:
    z = float(stats.norm.ppf(alpha))
    m_h, s_h = horizon * mu, math.sqrt(horizon) * sigma
    if not cornish_fisher:
        phi = float(stats.norm.pdf(z))
        return -(m_h + s_h * z), -(m_h - s_h * phi / alpha)
    sk, ku = skew / math.sqrt(horizon), kurt / horizon
    if not S.cornish_fisher_monotone(z, sk, ku):
        warnings.warn(
            f"Cornish-Fisher expansion is not monotone at this confidence (skew {sk:.3g}, "
            f"excess kurtosis {ku:.3g}); its quantile is unreliable. Prefer historical or "
            "Monte Carlo (t) VaR for such fat tails",
            DataQualityWarning,
            stacklevel=3,
        )
    zc = S.cornish_fisher_z(z, sk, ku)
    tail = S.cornish_fisher_tail_mean(z, alpha, sk, ku)
    return -(m_h + s_h * zc), -(m_h + s_h * tail)


def rolling_var(
    returns: pd.Series | npt.ArrayLike,
    window: int,
    method: str = "historical",
    confidence: float = 0.99,
    *,
    interpolation: str = "linear",
    min_periods: int | None = None,
    cornish_fisher: bool = False,
    distribution: str = "t",
    n_sims: int = 10_000,
    refit_every: int | None = None,
    seed: int | np.random.Generator | None = None,
) -> pd.Series:
    """Forecast one-period VaR on a rolling window: the value at ``t`` uses returns before ``t``.

    - ``historical``: exactly ``-returns.shift(1).rolling(window, min_periods).quantile(1 -
      confidence, interpolation=interpolation)`` (NaN skipped and counted against
      ``min_periods``, as pandas does), computed by a numba sliding-window order-statistic
      kernel in O(n log window).
    - ``parametric``: ``-(mu_t + sigma_t z)`` with the trailing mean and standard deviation
      (ddof=1) of the same window; ``cornish_fisher=True`` uses the trailing skew and kurtosis.
    - ``monte_carlo``: ``-(mu_t + sigma_t q_eps)`` where ``q_eps`` is the simulated quantile of
      ``n_sims`` unit-variance innovations (Student t with degrees of freedom fitted on the
      trailing window, or Gaussian). To stay tractable the innovations are re-fitted and
      re-simulated every ``refit_every`` bars (default ``max(1, window // 20)``) while the
      location and scale follow every bar.

    Parameters
    ----------
    returns : Series or array-like
        Simple returns; a Series keeps its index.
    window : int
        Trailing observations per forecast (>= 2).
    method : {"historical", "parametric", "monte_carlo"}
    confidence : float, default 0.99
    interpolation : str, default "linear"
        Historical and Monte Carlo quantile interpolation (pandas' names).
    min_periods : int, optional
        Minimum non-NaN observations in the window; default ``window``.
    cornish_fisher : bool, default False
    distribution : {"t", "normal"}, default "t"
    n_sims : int, default 10000
    refit_every : int, optional
    seed : int or Generator, optional

    Returns
    -------
    Series
        Named ``"var"``, same index as ``returns``; NaN until enough history.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> r = pd.Series(np.random.default_rng(0).normal(0, 0.01, 500))
    >>> v = rolling_var(r, window=250)
    >>> bool(np.array_equal(v, -r.shift(1).rolling(250).quantile(1 - 0.99), equal_nan=True))
    True
    """
    m = S.check_method(method)
    c = S.check_confidence(confidence)
    interp = S.check_interpolation(interpolation)
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 2:
        raise ConfigError(f"window must be an integer >= 2, got {window!r}")
    w = int(window)
    minp = w if min_periods is None else int(min_periods)
    if not 1 <= minp <= w:
        raise ConfigError(f"min_periods must be in [1, window={w}], got {min_periods!r}")
    if cornish_fisher and m != "parametric":
        raise ConfigError("cornish_fisher=True applies to method='parametric' only")
    raw, index = S.as_float_array(returns)
    alpha = 1.0 - c
    out = np.full(raw.size, np.nan)
    if m == "historical":
        q = rolling_quantile(raw, w, minp, alpha, interp)
        out[1:] = -q[:-1]
    else:
        series = pd.Series(raw)
        roll = series.rolling(w, min_periods=max(minp, 2))
        mu = roll.mean().to_numpy()
        sd = roll.std(ddof=1).to_numpy()
        if m == "parametric":
            z = float(stats.norm.ppf(alpha))
            if cornish_fisher:
                sk = roll.skew().to_numpy()
                ku = roll.kurt().to_numpy()
                zc = (
                    z
                    + (z * z - 1.0) * sk / 6.0
                    + (z**3 - 3.0 * z) * ku / 24.0
                    - (2.0 * z**3 - 5.0 * z) * sk * sk / 36.0
                )
                q = mu + sd * zc
            else:
                q = mu + sd * z
        else:
            q = _rolling_mc_quantile(
                raw, mu, sd, w, alpha, interp, distribution, n_sims, refit_every, seed
            )
        out[1:] = -q[:-1]
    return pd.Series(out, index=index, name="var")


def _rolling_mc_quantile(
    raw: npt.NDArray[np.float64],
    mu: npt.NDArray[np.float64],
    sd: npt.NDArray[np.float64],
    window: int,
    alpha: float,
    interp: int,
    distribution: str,
    n_sims: int,
    refit_every: int | None,
    seed: int | np.random.Generator | None,
) -> npt.NDArray[np.float64]:
    # q[t] = mu[t] + sd[t] * q_eps, where q_eps is re-estimated every `every` bars from
    # innovations simulated with the distribution fitted on the window ending at that bar.
    dist = S.check_distribution(distribution)
    sims = S.check_n_sims(n_sims)
    every = max(1, window // 20) if refit_every is None else int(refit_every)
    if every < 1:
        raise ConfigError(f"refit_every must be >= 1, got {refit_every!r}")
    rng = S.rng_from(seed)
    q = np.full(raw.size, np.nan)
    valid = np.flatnonzero(np.isfinite(mu) & np.isfinite(sd) & (sd > 0))
    q_eps = math.nan
    last_fit = -every
    for t in valid.tolist():
        if t - last_fit >= every or math.isnan(q_eps):
            win = raw[max(0, t - window + 1) : t + 1]
            win = win[~np.isnan(win)]
            if dist == "t":
                df = S.fit_t_df((win - mu[t]) / sd[t])
                eps = S.standard_innovations(rng, (sims,), "t", df)
            else:
                eps = rng.standard_normal(sims)
            q_eps, _ = S.tail_quantile(eps, alpha, interp)
            last_fit = t
        q[t] = mu[t] + sd[t] * q_eps
    return q
