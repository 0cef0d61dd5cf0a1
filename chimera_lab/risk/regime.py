"""Market regimes: a rule-based detector, a Markov-switching detector and per-regime limits.

:class:`RegimeDetector` labels each bar NORMAL, VOLATILE, TRENDING or CRISIS from features that
use data up to that bar only (all windows are trailing; windows are given in days and turned
into bars from the bar spacing seen in ``fit``, so the same detector works on 1d and 1h bars):

==========================  ===============================================================
feature                     definition (log returns ``r``, closes ``c``)
==========================  ===============================================================
``vol``                     realised volatility, ``sqrt(mean(r^2))`` over ``vol_window_days``,
                            annualised (365-day years)
``vol_percentile``          percentile rank of ``vol`` within the trailing
                            ``percentile_window_days`` (at least ``min_percentile_days``)
``shock_vol_percentile``    the same for the realised volatility over ``shock_window_days``:
                            a fast volatility spike
``fall``                    ``c_t / c_{t-k} - 1`` over ``shock_window_days``: the speed of a fall
``drawdown``                ``c_t / max(c over drawdown_window_days) - 1``
``trend_z``                 ``sum(r) / (rms(r) sqrt(n))`` over ``trend_window_days``: the
                            z-score of the drift (t-statistic of the mean log return). A
                            regression of log price on time is not used: for a random walk its
                            t-statistic grows with the window (spurious regression).
==========================  ===============================================================

Rules, first match wins:

- **CRISIS**: a fast, deep, high-volatility fall: ``fall <= -crisis_fall`` and
  ``drawdown <= -crisis_drawdown`` and ``shock_vol_percentile >= crisis_vol_percentile``.
- **VOLATILE**: ``vol_percentile >= volatile_percentile``.
- **TRENDING**: ``|trend_z| >= trend_threshold`` (at moderate volatility, since VOLATILE
  came first).
- **NORMAL**: otherwise, including the warm-up bars where a feature is not yet defined.

Defaults were chosen on BTC/USDT daily and hourly history 2017-2026 and are stable around
their values (e.g. ``crisis_fall`` 0.10-0.15 and ``crisis_vol_percentile`` 0.90-0.95 all label
the 2020-03-12, 2021-05-19 and 2022-11-09 crashes CRISIS with 1-2% of days CRISIS).

:class:`MarkovRegimeDetector` fits a Markov-switching model of log returns with a switching
mean and variance (statsmodels ``MarkovRegression``) and labels each bar by the most likely
state given data up to that bar (filtered, not smoothed, probabilities), states ordered by
variance: NORMAL, VOLATILE (and CRISIS with three states).

Examples
--------
>>> from chimera_lab.data.synthetic import make_ohlcv
>>> bars = make_ohlcv(3_000, seed=1, timeframe="1h")
>>> det = RegimeDetector().fit(bars)
>>> labels = det.predict(bars)
>>> labels.iloc[-1] in set(Regime)
True
>>> round(float(regime_shares(labels).sum()), 6)
1.0
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from chimera_lab.config import RiskSettings, Settings
from chimera_lab.errors import ConfigError, DataError, DataQualityWarning, NotFittedError
from chimera_lab.frames import validate_ohlcv
from chimera_lab.timeframes import infer_bar_spacing, infer_timeframe

__all__ = [
    "MarkovRegimeDetector",
    "Regime",
    "RegimeDetector",
    "RegimeLimits",
    "regime_limits",
    "regime_shares",
]


class Regime(StrEnum):
    """Market regime labels (string-valued: ``Regime.CRISIS == "crisis"``)."""

    NORMAL = "normal"
    VOLATILE = "volatile"
    TRENDING = "trending"
    CRISIS = "crisis"


_ORDER = (Regime.NORMAL, Regime.TRENDING, Regime.VOLATILE, Regime.CRISIS)


@dataclass(frozen=True)
class RegimeLimits:
    """Risk limits that apply in one regime.

    Attributes
    ----------
    exposure_multiplier : float
        Scales position sizes (Kelly exposure, max exposure).
    max_leverage : float
        Cap on gross exposure / equity.
    var_limit : float
        Max one-period VaR of the book as a fraction of equity.
    """

    exposure_multiplier: float
    max_leverage: float
    var_limit: float


def _risk_settings(settings: Settings | RiskSettings | None) -> RiskSettings:
    if settings is None:
        return RiskSettings()
    if isinstance(settings, Settings):
        return settings.risk
    if isinstance(settings, RiskSettings):
        return settings
    raise ConfigError(f"expected Settings or RiskSettings, got {type(settings).__name__}")


def regime_limits(settings: Settings | RiskSettings | None = None) -> dict[Regime, RegimeLimits]:
    """Return the configured :class:`RegimeLimits` of every regime.

    Parameters
    ----------
    settings : Settings or RiskSettings, optional
        Default: ``RiskSettings()`` defaults (no environment is read).

    Examples
    --------
    >>> regime_limits()[Regime.CRISIS].exposure_multiplier
    0.0
    """
    risk = _risk_settings(settings)
    return {
        Regime(name): RegimeLimits(v.exposure_multiplier, v.max_leverage, v.var_limit)
        for name, v in risk.regime_limits.items()
    }


def regime_shares(labels: pd.Series) -> pd.Series:
    """Return the share of bars in each regime (all four, in a fixed order).

    Examples
    --------
    >>> regime_shares(pd.Series([Regime.NORMAL, Regime.CRISIS, Regime.NORMAL, "normal"]))
    normal      0.75
    trending    0.00
    volatile    0.00
    crisis      0.25
    Name: share, dtype: float64
    """
    if len(labels) == 0:
        raise DataError("no labels to summarise")
    counts = pd.Series([Regime(v) for v in labels]).value_counts()
    shares = [float(counts.get(r, 0)) / len(labels) for r in _ORDER]
    return pd.Series(shares, index=pd.Index([r.value for r in _ORDER]), name="share")


def _check_ohlcv(ohlcv: pd.DataFrame, need: int) -> pd.DataFrame:
    if not isinstance(ohlcv, pd.DataFrame):
        raise DataError(f"ohlcv must be an OHLCV DataFrame, got {type(ohlcv).__name__}")
    df = validate_ohlcv(ohlcv, name="ohlcv")
    if len(df) < need:
        raise DataError(f"ohlcv has {len(df)} bars; at least {need} are needed")
    if (df["close"] <= 0).any():
        row = int(np.flatnonzero((df["close"] <= 0).to_numpy())[0]) + 1
        raise DataError("close must be positive to take log returns", row=row, column="close")
    return df


class _Detector:
    # Shared estimator plumbing: parameter access, repr and the fitted check.

    _fitted_attr = "bar_spacing_"
    bar_spacing_: pd.Timedelta

    def get_params(self) -> dict[str, Any]:
        """Return the hyperparameters (as passed to ``__init__``)."""
        return {k: getattr(self, k) for k in self._param_names()}

    @classmethod
    def _param_names(cls) -> list[str]:
        import inspect

        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    def _check_fitted(self) -> None:
        if not hasattr(self, self._fitted_attr):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call .fit(ohlcv) first"
            )

    def _check_spacing(self, df: pd.DataFrame) -> None:
        spacing = infer_bar_spacing(pd.DatetimeIndex(df.index))
        fitted = self.bar_spacing_
        if spacing != fitted:
            raise DataError(
                f"bars are spaced {spacing}, but the detector was fitted on {fitted} bars; "
                "fit it on this timeframe first"
            )


class RegimeDetector(_Detector):
    """Rule-based regime detector (see the module notes for features and rules).

    Parameters
    ----------
    vol_window_days : float, default 20
        Realised-volatility window.
    percentile_window_days : float, default 365
        Trailing window for volatility percentiles.
    min_percentile_days : float, default 60
        History needed before percentiles are defined.
    shock_window_days : float, default 3
        Window of the fall and of the short (shock) volatility.
    drawdown_window_days : float, default 90
        Window of the rolling peak.
    trend_window_days : float, default 30
        Window of the drift z-score.
    crisis_fall : float, default 0.12
        CRISIS needs a fall of at least this fraction over the shock window...
    crisis_drawdown : float, default 0.20
        ...a drawdown of at least this fraction from the rolling peak...
    crisis_vol_percentile : float, default 0.90
        ...and a shock volatility at or above this percentile.
    volatile_percentile : float, default 0.80
        VOLATILE at or above this volatility percentile.
    trend_threshold : float, default 2.0
        TRENDING when ``|trend_z|`` reaches this.

    Attributes
    ----------
    bar_spacing_ : Timedelta
        Median bar spacing of the fitted data.
    timeframe_ : str or None
        Its timeframe name, when standard.
    bars_per_day_ : float
    windows_ : dict of str to int
        Window lengths in bars.
    n_bars_ : int
        Bars seen in ``fit``.
    """

    def __init__(
        self,
        *,
        vol_window_days: float = 20.0,
        percentile_window_days: float = 365.0,
        min_percentile_days: float = 60.0,
        shock_window_days: float = 3.0,
        drawdown_window_days: float = 90.0,
        trend_window_days: float = 30.0,
        crisis_fall: float = 0.12,
        crisis_drawdown: float = 0.20,
        crisis_vol_percentile: float = 0.90,
        volatile_percentile: float = 0.80,
        trend_threshold: float = 2.0,
    ) -> None:
        self.vol_window_days = vol_window_days
        self.percentile_window_days = percentile_window_days
        self.min_percentile_days = min_percentile_days
        self.shock_window_days = shock_window_days
        self.drawdown_window_days = drawdown_window_days
        self.trend_window_days = trend_window_days
        self.crisis_fall = crisis_fall
        self.crisis_drawdown = crisis_drawdown
        self.crisis_vol_percentile = crisis_vol_percentile
        self.volatile_percentile = volatile_percentile
        self.trend_threshold = trend_threshold

    def _validate_params(self) -> None:
        for name in (
            "vol_window_days",
            "percentile_window_days",
            "min_percentile_days",
            "shock_window_days",
            "drawdown_window_days",
            "trend_window_days",
            "trend_threshold",
        ):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{name} must be a positive number, got {value!r}")
        for name in ("crisis_fall", "crisis_drawdown"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 < value < 1:
                raise ConfigError(f"{name} must be a fraction in (0, 1), e.g. 0.12, got {value!r}")
        for name in ("crisis_vol_percentile", "volatile_percentile"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 < value <= 1:
                raise ConfigError(f"{name} must be in (0, 1], got {value!r}")
        if self.min_percentile_days > self.percentile_window_days:
            raise ConfigError("min_percentile_days must not exceed percentile_window_days")

    def fit(self, ohlcv: pd.DataFrame) -> RegimeDetector:
        """Learn the bar spacing and window lengths in bars; return ``self``."""
        self._validate_params()
        df = _check_ohlcv(ohlcv, need=2)
        index = pd.DatetimeIndex(df.index)
        spacing = infer_bar_spacing(index)
        bars_per_day = pd.Timedelta(days=1) / spacing

        def bars(days: float) -> int:
            return max(2, round(days * bars_per_day))

        self.windows_ = {
            "vol": bars(self.vol_window_days),
            "percentile": bars(self.percentile_window_days),
            "min_percentile": bars(self.min_percentile_days),
            "shock": bars(self.shock_window_days),
            "drawdown": bars(self.drawdown_window_days),
            "trend": bars(self.trend_window_days),
        }
        self.bars_per_day_ = float(bars_per_day)
        self.timeframe_ = infer_timeframe(index)
        self.n_bars_ = len(df)
        self.bar_spacing_ = spacing
        return self

    def features(self, ohlcv: pd.DataFrame) -> pd.DataFrame:
        """Return the features of every bar (each uses data up to that bar only)."""
        self._check_fitted()
        df = _check_ohlcv(ohlcv, need=2)
        self._check_spacing(df)
        w = self.windows_
        close = df["close"]
        r = pd.Series(np.log(close.to_numpy()), index=df.index).diff()
        r2 = r * r
        annual = math.sqrt(365.0 * self.bars_per_day_)
        vol = np.sqrt(r2.rolling(w["vol"]).mean()) * annual
        shock_vol = np.sqrt(r2.rolling(w["shock"]).mean()) * annual
        pct_roll = {"window": w["percentile"], "min_periods": w["min_percentile"]}
        n_trend = w["trend"]
        rms_trend = np.sqrt(r2.rolling(n_trend).mean())
        trend_z = r.rolling(n_trend).sum() / (rms_trend * math.sqrt(n_trend))
        peak = close.rolling(w["drawdown"], min_periods=1).max()
        return pd.DataFrame(
            {
                "log_return": r,
                "vol": vol,
                "vol_percentile": vol.rolling(**pct_roll).rank(pct=True),
                "shock_vol_percentile": shock_vol.rolling(**pct_roll).rank(pct=True),
                "fall": close / close.shift(w["shock"]) - 1.0,
                "drawdown": close / peak - 1.0,
                "trend_z": trend_z.where(rms_trend > 0),
            },
            index=df.index,
        )

    def predict(self, ohlcv: pd.DataFrame) -> pd.Series:
        """Label every bar with a :class:`Regime` (a Series named ``"regime"``)."""
        f = self.features(ohlcv)
        crisis = (
            (f["fall"] <= -self.crisis_fall)
            & (f["drawdown"] <= -self.crisis_drawdown)
            & (f["shock_vol_percentile"] >= self.crisis_vol_percentile)
        )
        volatile = f["vol_percentile"] >= self.volatile_percentile
        trending = f["trend_z"].abs() >= self.trend_threshold
        labels = np.select(
            [crisis.to_numpy(), volatile.to_numpy(), trending.to_numpy()],
            [3, 2, 1],
            default=0,
        )
        lookup = np.array(
            [Regime.NORMAL, Regime.TRENDING, Regime.VOLATILE, Regime.CRISIS], dtype=object
        )
        return pd.Series(lookup[labels], index=f.index, name="regime", dtype=object)


class MarkovRegimeDetector(_Detector):
    """Markov-switching regimes of log returns (statsmodels), mapped to :class:`Regime`.

    Parameters
    ----------
    k_regimes : {2, 3}, default 2
        Variance states. Ordered by variance they are labelled NORMAL, VOLATILE (, CRISIS).
    switching_mean : bool, default True
        Whether the mean switches with the state too (the variance always does).
    max_iter : int, default 50
        EM iterations before the likelihood optimisation (statsmodels ``em_iter``).

    Attributes
    ----------
    params_ : ndarray
        Fitted statsmodels parameters (returns scaled by 100).
    state_means_, state_variances_ : ndarray
        Per state, of returns in percent, in statsmodels' state order.
    state_regimes_ : list of Regime
        The label of each statsmodels state.
    transition_matrix_ : ndarray
        ``P[i, j]`` = probability of moving from state ``i`` to ``j``.
    log_likelihood_ : float
    bar_spacing_ : Timedelta
    """

    def __init__(self, *, k_regimes: int = 2, switching_mean: bool = True, max_iter: int = 50):
        self.k_regimes = k_regimes
        self.switching_mean = switching_mean
        self.max_iter = max_iter

    def _model(self, returns: np.ndarray) -> Any:
        from statsmodels.tsa.regime_switching.markov_regression import MarkovRegression

        return MarkovRegression(
            returns,
            k_regimes=self.k_regimes,
            trend="c",
            switching_trend=self.switching_mean,
            switching_variance=True,
        )

    @staticmethod
    def _returns(df: pd.DataFrame) -> np.ndarray:
        # Percent log returns: statsmodels' optimiser is better conditioned away from 1e-4.
        return np.asarray(np.diff(np.log(df["close"].to_numpy())) * 100.0, dtype=np.float64)

    def fit(self, ohlcv: pd.DataFrame) -> MarkovRegimeDetector:
        """Fit the Markov-switching model on ``ohlcv``'s log returns; return ``self``."""
        if self.k_regimes not in (2, 3):
            raise ConfigError(f"k_regimes must be 2 or 3, got {self.k_regimes!r}")
        if not isinstance(self.max_iter, int) or self.max_iter < 0:
            raise ConfigError(f"max_iter must be a non-negative integer, got {self.max_iter!r}")
        df = _check_ohlcv(ohlcv, need=30 * self.k_regimes)
        returns = self._returns(df)
        if float(np.std(returns)) == 0.0:
            raise DataError("returns are constant; a switching-variance model cannot be fitted")
        model = self._model(returns)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = model.fit(disp=False, em_iter=self.max_iter, search_reps=0)
        converged = bool(res.mle_retvals.get("converged", True)) if res.mle_retvals else True
        if not converged or caught:
            warnings.warn(
                "the Markov-switching fit did not converge cleanly "
                f"({'; '.join(str(w.message)[:80] for w in caught) or 'optimizer'}); "
                "labels may be unreliable: try more data or k_regimes=2",
                DataQualityWarning,
                stacklevel=2,
            )
        params = np.asarray(res.params, dtype=np.float64)
        names = list(model.param_names)
        k = self.k_regimes
        variances = np.array([params[names.index(f"sigma2[{i}]")] for i in range(k)])
        if self.switching_mean:
            means = np.array([params[names.index(f"const[{i}]")] for i in range(k)])
        else:
            means = np.full(k, params[names.index("const")])
        order = np.argsort(variances)
        ladder = [Regime.NORMAL, Regime.VOLATILE, Regime.CRISIS][:k]
        state_regimes: list[Regime] = [Regime.NORMAL] * k
        for rank, state in enumerate(order):
            state_regimes[int(state)] = ladder[rank]
        self.params_ = params
        self.state_means_ = means
        self.state_variances_ = variances
        self.state_regimes_ = state_regimes
        self.transition_matrix_ = np.asarray(model.regime_transition_matrix(params))[:, :, 0].T
        self.log_likelihood_ = float(res.llf)
        self.bar_spacing_ = infer_bar_spacing(pd.DatetimeIndex(df.index))
        return self

    def predict_proba(self, ohlcv: pd.DataFrame) -> pd.DataFrame:
        """Return filtered state probabilities ``P(state_t | data up to t)`` per bar.

        Columns are ``state0, state1, ...`` (statsmodels order); the first bar (no return yet)
        gets the model's steady-state probabilities.
        """
        self._check_fitted()
        df = _check_ohlcv(ohlcv, need=2)
        self._check_spacing(df)
        returns = self._returns(df)
        model = self._model(returns)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            filtered = model.filter(self.params_)
        probs = np.asarray(filtered.filtered_marginal_probabilities, dtype=np.float64)
        if probs.shape[0] != returns.size:
            probs = probs.T
        initial = np.asarray(model.initial_probabilities(self.params_), dtype=np.float64)
        full = np.vstack([initial[None, :], probs])
        cols = [f"state{i}" for i in range(self.k_regimes)]
        return pd.DataFrame(full, index=df.index, columns=cols)

    def predict(self, ohlcv: pd.DataFrame) -> pd.Series:
        """Label every bar by its most likely state given data up to that bar."""
        proba = self.predict_proba(ohlcv)
        states = proba.to_numpy().argmax(axis=1)
        lookup = np.array(self.state_regimes_, dtype=object)
        return pd.Series(lookup[states], index=proba.index, name="regime", dtype=object)
