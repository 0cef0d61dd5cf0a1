"""Shared statistics for the VaR modules (private): input checks, quantiles, fits, scenarios."""

from __future__ import annotations

import difflib
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import optimize, special, stats

from chimera_lab.errors import ConfigError, DataError, DataQualityWarning
from chimera_lab.risk._kernels import INTERPOLATIONS, quantile_rank, quantile_value

__all__: list[str] = []

FloatArray = npt.NDArray[np.float64]
FloatOrArray = TypeVar("FloatOrArray", float, FloatArray)

METHODS = ("historical", "parametric", "monte_carlo")
_METHOD_ALIASES = {
    "historical": "historical",
    "hist": "historical",
    "parametric": "parametric",
    "gaussian": "parametric",
    "variance-covariance": "parametric",
    "monte_carlo": "monte_carlo",
    "monte-carlo": "monte_carlo",
    "montecarlo": "monte_carlo",
    "mc": "monte_carlo",
}
DISTRIBUTIONS = ("normal", "t")


def check_method(method: str, allowed: Sequence[str] = METHODS) -> str:
    key = str(method).strip().lower().replace(" ", "_")
    canonical = _METHOD_ALIASES.get(key, key)
    if canonical not in allowed:
        close = difflib.get_close_matches(key, list(allowed), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"method must be one of {list(allowed)}, got {method!r}{hint}")
    return canonical


def check_confidence(confidence: float) -> float:
    try:
        c = float(confidence)
    except (TypeError, ValueError):
        raise ConfigError(f"confidence must be a number in (0.5, 1), got {confidence!r}") from None
    if not (0.5 < c < 1.0):
        raise ConfigError(f"confidence must be in (0.5, 1), e.g. 0.99, got {confidence!r}")
    return c


def check_horizon(horizon: int) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ConfigError(f"horizon must be a whole number of periods >= 1, got {horizon!r}")
    return int(horizon)


def check_interpolation(interpolation: str) -> int:
    if interpolation not in INTERPOLATIONS:
        close = difflib.get_close_matches(str(interpolation), list(INTERPOLATIONS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"interpolation must be one of {list(INTERPOLATIONS)}, got {interpolation!r}{hint}"
        )
    return INTERPOLATIONS[interpolation]


def check_distribution(distribution: str) -> str:
    d = str(distribution).strip().lower()
    d = {"gaussian": "normal", "student-t": "t", "student_t": "t", "student": "t"}.get(d, d)
    if d not in DISTRIBUTIONS:
        raise ConfigError(f"distribution must be 'normal' or 't', got {distribution!r}")
    return d


def check_n_sims(n_sims: int) -> int:
    if isinstance(n_sims, bool) or not isinstance(n_sims, int | np.integer) or n_sims < 100:
        raise ConfigError(f"n_sims must be an integer >= 100, got {n_sims!r}")
    return int(n_sims)


def as_float_array(values: Any, name: str = "returns") -> tuple[FloatArray, pd.Index | None]:
    """Return (values as float64 1-D array with NaN kept, index or None); inf is an error."""
    index: pd.Index | None = None
    if isinstance(values, pd.DataFrame):
        if values.shape[1] != 1:
            raise DataError(
                f"{name} must be one column of returns, got a frame with columns "
                f"{list(values.columns)}; select one, or use portfolio_var for several"
            )
        values = values.iloc[:, 0]
    if isinstance(values, pd.Series):
        index = values.index
        try:
            arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            raise DataError(f"{name} must be numeric, got dtype {values.dtype}") from None
    else:
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"{name} must be numeric returns") from None
        if arr.ndim != 1:
            raise DataError(f"{name} must be one-dimensional, got shape {arr.shape}")
    bad = np.flatnonzero(np.isinf(arr))
    if bad.size:
        where = f" at {index[bad[0]]}" if index is not None else ""
        raise DataError(
            f"{name} has an infinite value{where} ({bad.size} in all); a zero or missing price "
            "produces these: clean the prices first",
            row=int(bad[0]) + 1,
        )
    return np.ascontiguousarray(arr), index


def aggregate(
    returns: FloatArray, horizon: int, *, index: pd.Index | None = None, name: str = "returns"
) -> FloatArray:
    """Compound simple returns over overlapping windows of ``horizon`` periods (NaN kept).

    A return <= -1 (wealth wiped out or negative) cannot be compounded: it is a
    :class:`DataError` naming the bar, not a silently dropped window.
    """
    if horizon == 1:
        return returns
    ruin = np.flatnonzero(returns <= -1.0)
    if ruin.size:
        pos = int(ruin[0])
        where = f" at {index[pos]}" if index is not None else f" at position {pos}"
        raise DataError(
            f"{name} has a return of {returns[pos]:g}{where} ({ruin.size} <= -1 in all); "
            f"{horizon}-period returns compound 1 + r, which must stay positive. Check the "
            "prices (a zero or negative price), or use horizon=1",
            row=pos + 1,
        )
    if returns.size < horizon:
        return np.empty(0, dtype=np.float64)
    logs = np.lib.stride_tricks.sliding_window_view(np.log1p(returns), horizon).sum(axis=1)
    return np.asarray(np.expm1(logs), dtype=np.float64)


def finite(values: FloatArray, *, name: str, need: int) -> FloatArray:
    out = values[~np.isnan(values)]
    if out.size < need:
        raise DataError(
            f"{name} has {out.size} usable observation(s); at least {need} are needed. "
            "Pass a longer history (or a shorter horizon)"
        )
    return out


def warn_thin_tail(n_obs: int, confidence: float, what: str) -> None:
    if n_obs * (1.0 - confidence) < 1.0:
        warnings.warn(
            f"{what}: {n_obs} observations hold fewer than one expected tail event at "
            f"{confidence:.2%} confidence; the VaR is the sample minimum or an extrapolation. "
            "Use a longer history or a lower confidence",
            DataQualityWarning,
            stacklevel=3,
        )


def tail_quantile(values: FloatArray, q: float, interpolation: int) -> tuple[float, float]:
    """Return (quantile, mean of the values <= quantile) with a partial sort (O(n)).

    The quantile is :func:`~chimera_lab.risk._kernels.quantile_rank` /
    :func:`~chimera_lab.risk._kernels.quantile_value` (pandas' definition), as everywhere.
    """
    n = values.size
    k, f = quantile_rank(n, q, interpolation)
    kth = [k, k + 1] if f != 0.0 else [k]
    part = np.partition(values, kth)
    vlow = float(part[k])
    quant = quantile_value(vlow, float(part[k + 1]) if f != 0.0 else vlow, f, interpolation)
    tail = values[values <= quant]
    return quant, float(tail.mean())


# ---------------------------------------------------------------- Gaussian and Cornish-Fisher


def cornish_fisher_z(z: float, skew: FloatOrArray, excess_kurtosis: FloatOrArray) -> FloatOrArray:
    """Cornish-Fisher adjusted standard quantile (third-order expansion); arrays work too."""
    s, k = skew, excess_kurtosis
    return (
        z
        + (z * z - 1.0) * s / 6.0
        + (z**3 - 3.0 * z) * k / 24.0
        - (2.0 * z**3 - 5.0 * z) * s * s / 36.0
    )


def cornish_fisher_tail_mean(z: float, alpha: float, skew: float, excess_kurtosis: float) -> float:
    """E[z_cf(Z) | Z <= z] for standard normal Z: the Cornish-Fisher expected shortfall factor.

    Integrates the Cornish-Fisher quantile function over the tail in closed form with the
    truncated-normal moments ``int_{-inf}^{c} x^k phi(x) dx``.
    """
    s, k = skew, excess_kurtosis
    phi = math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return -(phi / alpha) * (
        1.0 + z * s / 6.0 + (z * z - 1.0) * k / 24.0 + (1.0 - 2.0 * z * z) * s * s / 36.0
    )


def cornish_fisher_slope(
    z: float, skew: FloatOrArray, excess_kurtosis: FloatOrArray
) -> FloatOrArray:
    """Return the slope of the Cornish-Fisher map at ``z`` (<= 0: the expansion is invalid)."""
    s, k = skew, excess_kurtosis
    return 1.0 + z * s / 3.0 + (3.0 * z * z - 3.0) * k / 24.0 - (6.0 * z * z - 5.0) * s * s / 36.0


def warn_cornish_fisher(
    z: float,
    skew: float | FloatArray,
    excess_kurtosis: float | FloatArray,
    *,
    labels: pd.Index | None = None,
    stacklevel: int = 3,
) -> None:
    """Warn (DataQualityWarning) where the Cornish-Fisher map is not monotone at ``z``.

    Scalars describe one estimate; arrays one estimate per rolling window (NaN: none), with
    ``labels`` naming them.
    """
    sk = np.atleast_1d(np.asarray(skew, dtype=np.float64))
    ku = np.atleast_1d(np.asarray(excess_kurtosis, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(cornish_fisher_slope(z, sk, ku) <= 0.0)
    if bad.size == 0:
        return
    first = int(bad[0])
    stats_text = f"skew {sk[first]:.3g}, excess kurtosis {ku[first]:.3g}"
    if sk.size == 1:
        where = f"at this confidence ({stats_text}); its quantile is unreliable"
    else:
        at = labels[first] if labels is not None and len(labels) == sk.size else first
        where = (
            f"at this confidence on {bad.size} of {int(np.isfinite(sk).sum())} rolling windows "
            f"(the first ends at {at}: {stats_text}); the forecasts they make are unreliable"
        )
    warnings.warn(
        f"Cornish-Fisher expansion is not monotone {where}. Prefer historical or Monte Carlo "
        "(t) VaR for such fat tails",
        DataQualityWarning,
        stacklevel=stacklevel + 1,
    )


def sample_moments(x: FloatArray) -> tuple[float, float, float, float]:
    """Mean, std (ddof=1), bias-corrected skew and excess kurtosis (as pandas .skew()/.kurt())."""
    mu = float(x.mean())
    sd = float(x.std(ddof=1))
    if x.size >= 4 and sd > 0:
        skew = float(stats.skew(x, bias=False))
        kurt = float(stats.kurtosis(x, fisher=True, bias=False))
    else:
        skew, kurt = 0.0, 0.0
    return mu, sd, skew, kurt


# ---------------------------------------------------------------- Student-t fits and scenarios

DF_BOUNDS = (2.05, 1000.0)


def fit_t_df(standardized: FloatArray) -> float:
    """Profile-MLE degrees of freedom of a unit-variance Student t for standardized data.

    The data ``y = (x - mean) / std`` are modelled as ``t_nu * sqrt((nu - 2) / nu)`` (unit
    variance), so only ``nu`` is free; the log-likelihood is maximised over ``nu`` in
    [2.05, 1000] (1000 is effectively Gaussian).
    """
    y2 = standardized * standardized
    n = y2.size

    def nll(nu: float) -> float:
        scale2 = (nu - 2.0) / nu
        ll = n * (
            special.gammaln(0.5 * (nu + 1.0))
            - special.gammaln(0.5 * nu)
            - 0.5 * math.log(nu * math.pi * scale2)
        ) - 0.5 * (nu + 1.0) * float(np.log1p(y2 / (nu * scale2)).sum())
        return -float(ll)

    return _minimise_df(nll)


def _minimise_df(nll: Callable[[float], float]) -> float:
    # Degrees of freedom minimising ``nll`` inside DF_BOUNDS (searched on a log scale).
    res = optimize.minimize_scalar(
        lambda log_nu: nll(math.exp(log_nu)),
        bounds=(math.log(DF_BOUNDS[0]), math.log(DF_BOUNDS[1])),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return math.exp(float(res.x))


def fit_mvt_df(mahalanobis2: FloatArray, n_assets: int) -> float:
    """Profile-MLE degrees of freedom of a multivariate t with a given covariance.

    ``mahalanobis2`` are ``(x - mu)' inv(Sigma) (x - mu)``; the scale matrix is
    ``Sigma (nu - 2) / nu`` so that ``Sigma`` stays the covariance.
    """
    d2 = mahalanobis2
    n = d2.size
    p = n_assets

    def nll(nu: float) -> float:
        ll = n * (
            special.gammaln(0.5 * (nu + p))
            - special.gammaln(0.5 * nu)
            - 0.5 * p * math.log((nu - 2.0) * math.pi)
        ) - 0.5 * (nu + p) * float(np.log1p(d2 / (nu - 2.0)).sum())
        return -float(ll)

    return _minimise_df(nll)


def rng_from(seed: int | np.random.Generator | None) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def standard_innovations(
    rng: np.random.Generator, size: tuple[int, ...], distribution: str, df: float
) -> FloatArray:
    """Unit-variance innovations: standard normal, or Student t scaled by sqrt((nu-2)/nu)."""
    z = rng.standard_normal(size)
    if distribution == "normal":
        return z
    # t = Z / sqrt(chi2_nu / nu); unit variance: multiply by sqrt((nu - 2) / nu)
    chi2 = rng.chisquare(df, size=size)
    return np.asarray(z * np.sqrt((df - 2.0) / chi2), dtype=np.float64)
