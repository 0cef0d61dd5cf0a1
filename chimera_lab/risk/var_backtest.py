r"""Statistical backtests of VaR forecasts: Kupiec, Christoffersen, Basel traffic light.

An **exceedance** (violation, "hit") at ``t`` is a realised return below the negative of the
VaR forecast for ``t``: ``r_t < -VaR_t``. With ``n`` forecasts, ``x`` exceedances and the
nominal rate ``p = 1 - confidence``:

- **Kupiec proportion of failures** (POF): does the rate match ``p``?

  .. math:: LR_{pof} = -2\ln\frac{(1-p)^{n-x}p^x}{(1-\hat\pi)^{n-x}\hat\pi^x},
     \quad \hat\pi = x/n, \quad LR_{pof} \sim \chi^2_1.

- **Christoffersen independence**: are exceedances clustered? With ``n_ij`` the number of
  transitions from state ``i`` to ``j`` (1 = exceedance) in the hit sequence,
  :math:`\pi_{01} = n_{01}/(n_{00}+n_{01})`, :math:`\pi_{11} = n_{11}/(n_{10}+n_{11})` and
  :math:`\pi = (n_{01}+n_{11})/(n-1)`:

  .. math:: LR_{ind} = -2\ln\frac{(1-\pi)^{n_{00}+n_{10}}\pi^{n_{01}+n_{11}}}
     {(1-\pi_{01})^{n_{00}}\pi_{01}^{n_{01}}(1-\pi_{11})^{n_{10}}\pi_{11}^{n_{11}}}
     \sim \chi^2_1.

- **Conditional coverage**: :math:`LR_{cc} = LR_{pof} + LR_{ind} \sim \chi^2_2`.

Convention: :math:`0 \ln 0 = 0` (a term whose count is zero contributes nothing), so zero
exceedances give :math:`LR_{pof} = -2n\ln(1-p)` and all exceedances :math:`-2n\ln p`, and
:math:`LR_{ind} = 0` whenever one of the transition rows is empty.

- **Basel traffic light** (BCBS 1996): over the most recent 250 observations at 99%, green for
  0-4 exceedances, yellow for 5-9, red for 10 or more. In general the zone is green while the
  binomial probability of that many or fewer exceedances is below 95%, yellow below 99.99%, red
  otherwise (this reproduces the table at 99%/250 and extends it to other levels/lengths).

Examples
--------
>>> import numpy as np, pandas as pd
>>> r = pd.Series(np.r_[np.zeros(245), [-0.05] * 5])
>>> bt = var_backtest(r, pd.Series(0.03, index=r.index), confidence=0.99)
>>> bt.n_exceedances, bt.basel_zone, round(bt.kupiec_pvalue, 4)
(5, 'yellow', 0.1619)
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from chimera_lab.errors import ConfigError, DataError
from chimera_lab.risk import _stats as S

__all__ = [
    "VaRBacktest",
    "basel_zone",
    "christoffersen_test",
    "coverage_table",
    "kupiec_test",
    "var_backtest",
]

BASEL_WINDOW = 250
"""Observations in the Basel backtesting window."""


def _xlogy(x: float, y: float) -> float:
    # x * ln(y) with 0 * ln(0) = 0.
    return 0.0 if x == 0 else x * math.log(y)


def kupiec_test(n_exceedances: int, n_obs: int, confidence: float) -> tuple[float, float]:
    """Return Kupiec's proportion-of-failures LR statistic and its chi-square(1) p-value.

    Examples
    --------
    >>> lr, p = kupiec_test(0, 250, 0.99)
    >>> round(lr, 4), round(p, 4)
    (5.0252, 0.025)
    """
    n, x = int(n_obs), int(n_exceedances)
    if n < 1 or not 0 <= x <= n:
        raise ConfigError(f"need 0 <= n_exceedances <= n_obs and n_obs >= 1, got {x}, {n}")
    p = 1.0 - S.check_confidence(confidence)
    pi = x / n
    null = _xlogy(n - x, 1.0 - p) + _xlogy(x, p)
    alt = _xlogy(n - x, 1.0 - pi) + _xlogy(x, pi)
    lr = max(-2.0 * (null - alt), 0.0)
    return lr, float(stats.chi2.sf(lr, 1))


def _transitions(hits: npt.NDArray[np.bool_]) -> tuple[int, int, int, int]:
    prev, nxt = hits[:-1], hits[1:]
    n01 = int(np.count_nonzero(~prev & nxt))
    n11 = int(np.count_nonzero(prev & nxt))
    n00 = int(np.count_nonzero(~prev & ~nxt))
    n10 = int(np.count_nonzero(prev & ~nxt))
    return n00, n01, n10, n11


def christoffersen_test(hits: npt.ArrayLike) -> tuple[float, float]:
    """Return Christoffersen's independence LR statistic and its chi-square(1) p-value.

    Parameters
    ----------
    hits : array-like of bool
        Exceedance indicators in time order.

    Examples
    --------
    >>> lr, p = christoffersen_test([0, 1, 1, 0, 0, 0, 0, 1, 1, 0])
    >>> round(lr, 4), round(p, 4)
    (0.09, 0.7642)
    """
    h = np.asarray(hits, dtype=bool)
    if h.size < 2:
        return 0.0, 1.0
    n00, n01, n10, n11 = _transitions(h)
    total = n00 + n01 + n10 + n11
    pi = (n01 + n11) / total
    pi01 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi11 = n11 / (n10 + n11) if n10 + n11 else 0.0
    null = _xlogy(n00 + n10, 1.0 - pi) + _xlogy(n01 + n11, pi)
    alt = _xlogy(n00, 1.0 - pi01) + _xlogy(n01, pi01) + _xlogy(n10, 1.0 - pi11) + _xlogy(n11, pi11)
    lr = max(-2.0 * (null - alt), 0.0)
    return lr, float(stats.chi2.sf(lr, 1))


def basel_zone(n_exceedances: int, n_obs: int = BASEL_WINDOW, confidence: float = 0.99) -> str:
    """Return the Basel traffic-light zone, ``"green"``, ``"yellow"`` or ``"red"``.

    Examples
    --------
    >>> [basel_zone(x) for x in (4, 5, 9, 10)]
    ['green', 'yellow', 'yellow', 'red']
    """
    p = 1.0 - S.check_confidence(confidence)
    cdf = float(stats.binom.cdf(int(n_exceedances), int(n_obs), p))
    # Compare at the table's printed precision (BCBS quotes 95.00% and 99.99% boundaries).
    cdf = round(cdf, 8)
    if cdf < 0.95:
        return "green"
    if cdf < 0.9999:
        return "yellow"
    return "red"


@dataclass(frozen=True)
class VaRBacktest:
    """Coverage statistics of VaR forecasts against realised returns.

    Attributes
    ----------
    confidence : float
    n_obs : int
        Forecast/return pairs compared (both finite).
    n_exceedances : int
    exceedance_dates : Index
        Where ``r_t < -VaR_t``.
    expected_exceedances : float
        ``n_obs * (1 - confidence)``.
    observed_rate, expected_rate : float
    kupiec_lr, kupiec_pvalue : float
        Proportion of failures (unconditional coverage), chi-square(1).
    christoffersen_lr, christoffersen_pvalue : float
        Independence of exceedances, chi-square(1).
    cc_lr, cc_pvalue : float
        Conditional coverage ``kupiec_lr + christoffersen_lr``, chi-square(2).
    basel_zone : str
        Traffic light over the last ``basel_obs`` observations.
    basel_exceedances, basel_obs : int
    """

    confidence: float
    n_obs: int
    n_exceedances: int
    exceedance_dates: pd.Index
    expected_exceedances: float
    observed_rate: float
    expected_rate: float
    kupiec_lr: float
    kupiec_pvalue: float
    christoffersen_lr: float
    christoffersen_pvalue: float
    cc_lr: float
    cc_pvalue: float
    basel_zone: str
    basel_exceedances: int
    basel_obs: int

    def to_dict(self) -> dict[str, Any]:
        """Return the statistics as a JSON-friendly dict (dates as ISO strings)."""
        out: dict[str, Any] = {
            k: getattr(self, k) for k in self.__dataclass_fields__ if k != "exceedance_dates"
        }
        out["exceedance_dates"] = [str(d) for d in self.exceedance_dates]
        return out

    def row(self) -> dict[str, Any]:
        """Return the coverage-table row: counts, rates, p-values and zone."""
        return {
            "n_obs": self.n_obs,
            "exceedances": self.n_exceedances,
            "expected": self.expected_exceedances,
            "rate": self.observed_rate,
            "kupiec_p": self.kupiec_pvalue,
            "christoffersen_p": self.christoffersen_pvalue,
            "cc_p": self.cc_pvalue,
            "basel": self.basel_zone,
        }

    def summary(self) -> str:
        """One line: exceedances vs expected, p-values and zone."""
        return (
            f"VaR({self.confidence:.2%}) backtest: {self.n_exceedances} exceedances in "
            f"{self.n_obs} (expected {self.expected_exceedances:.1f}, rate "
            f"{self.observed_rate:.2%}); Kupiec p={self.kupiec_pvalue:.3f}, Christoffersen "
            f"p={self.christoffersen_pvalue:.3f}, CC p={self.cc_pvalue:.3f}; Basel "
            f"{self.basel_zone} ({self.basel_exceedances}/{self.basel_obs})"
        )

    def _repr_html_(self) -> str:
        cells = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(_fmt(v))}</td></tr>"
            for k, v in self.row().items()
        )
        return f"<table>{cells}</table>"


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def coverage_table(backtests: dict[str, VaRBacktest]) -> pd.DataFrame:
    """Stack several backtests (by method name) into one coverage table."""
    return pd.DataFrame({k: v.row() for k, v in backtests.items()}).T.rename_axis("method")


def var_backtest(
    returns: pd.Series | npt.ArrayLike,
    var_forecasts: pd.Series | npt.ArrayLike,
    confidence: float = 0.99,
) -> VaRBacktest:
    """Backtest VaR forecasts against realised returns (formulas in the module docstring).

    Parameters
    ----------
    returns : Series or array-like
        Realised simple returns.
    var_forecasts : Series or array-like
        VaR forecast for each period (positive loss fraction), e.g. from
        :func:`chimera_lab.risk.rolling_var`. Two Series are aligned on their index; pairs
        with a NaN on either side (warm-up) are dropped.
    confidence : float, default 0.99
        The VaR level the forecasts were made at.

    Returns
    -------
    VaRBacktest

    Raises
    ------
    DataError
        Length mismatch of unindexed inputs, infinite values, or no comparable pair.

    Examples
    --------
    >>> import numpy as np
    >>> r = np.random.default_rng(0).normal(0, 0.01, 1_000)
    >>> bt = var_backtest(r, np.full(1_000, 0.0233), confidence=0.99)
    >>> bt.n_exceedances, bt.basel_zone
    (14, 'green')
    """
    c = S.check_confidence(confidence)
    r_arr, r_idx = S.as_float_array(returns, "returns")
    v_arr, v_idx = S.as_float_array(var_forecasts, "var_forecasts")
    if r_idx is not None and v_idx is not None:
        r_s = pd.Series(r_arr, index=r_idx)
        v_s = pd.Series(v_arr, index=v_idx).reindex(r_idx)
        if v_s.notna().sum() == 0 and v_arr.size:
            raise DataError(
                "returns and var_forecasts share no index labels; build the forecasts from the "
                "same series (e.g. rolling_var(returns, ...))"
            )
        index: pd.Index = r_idx
        r_arr = np.asarray(r_s.to_numpy(), dtype=np.float64)
        v_arr = np.asarray(v_s.to_numpy(), dtype=np.float64)
    else:
        if r_arr.size != v_arr.size:
            raise DataError(
                f"returns ({r_arr.size}) and var_forecasts ({v_arr.size}) differ in length"
            )
        given = r_idx if r_idx is not None else v_idx
        index = given if given is not None else pd.RangeIndex(r_arr.size)
    ok = ~(np.isnan(r_arr) | np.isnan(v_arr))
    n = int(ok.sum())
    if n == 0:
        raise DataError("no period has both a return and a VaR forecast; check the warm-up")
    r_ok, v_ok = r_arr[ok], v_arr[ok]
    hits = r_ok < -v_ok
    x = int(hits.sum())
    p = 1.0 - c
    k_lr, k_p = kupiec_test(x, n, c)
    i_lr, i_p = christoffersen_test(hits)
    cc = k_lr + i_lr
    tail_hits = hits[-BASEL_WINDOW:]
    b_obs, b_x = int(tail_hits.size), int(tail_hits.sum())
    return VaRBacktest(
        confidence=c,
        n_obs=n,
        n_exceedances=x,
        exceedance_dates=index[ok][hits],
        expected_exceedances=n * p,
        observed_rate=x / n,
        expected_rate=p,
        kupiec_lr=k_lr,
        kupiec_pvalue=k_p,
        christoffersen_lr=i_lr,
        christoffersen_pvalue=i_p,
        cc_lr=cc,
        cc_pvalue=float(stats.chi2.sf(cc, 2)),
        basel_zone=basel_zone(b_x, b_obs, c),
        basel_exceedances=b_x,
        basel_obs=b_obs,
    )
