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
- **NORMAL**: otherwise.

**Warm-up.** A bar whose features are not all defined yet (the first
``warmup_bars_`` bars: ``max(vol, shock) + min_percentile - 1`` or ``trend`` windows) gets no
label: ``None``, not NORMAL. :func:`regime_shares` counts those bars as ``warm_up``, and when
they are more than 10% of the bars :meth:`RegimeDetector.predict` warns
(:class:`~chimera_lab.errors.DataQualityWarning`) with the bars needed and given. Risk limits
for an unknown regime are NORMAL's (``MarketState(regime=None)``).

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
>>> bars = make_ohlcv(1_500, seed=1, timeframe="1d")
>>> det = RegimeDetector().fit(bars)
>>> labels = det.predict(bars)
>>> labels.iloc[-1] in set(Regime), labels.iloc[0] is None, det.warmup_bars_
(True, True, 79)
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
import numpy.typing as npt
import pandas as pd

from chimera_lab.config import RiskSettings, Settings
from chimera_lab.errors import ConfigError, DataError, DataQualityWarning, NotFittedError
from chimera_lab.frames import validate_ohlcv
from chimera_lab.timeframes import infer_bar_spacing, infer_timeframe, periods_per_year

__all__ = [
    "WARMUP",
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


WARMUP = "warm_up"
"""Key of the bars without a label (features still warming up) in :func:`regime_shares`."""

WARMUP_WARN_SHARE = 0.10
"""``predict`` warns when more than this share of the bars has no label."""


def regime_shares(labels: pd.Series) -> pd.Series:
    """Return the share of bars in each regime, and of bars without a label (``warm_up``).

    All four regimes and ``warm_up`` are listed, in a fixed order; the shares sum to 1.
    Missing labels (``None``/NaN: features not yet defined) are counted as ``warm_up``,
    never as NORMAL.

    Examples
    --------
    >>> regime_shares(pd.Series([None, Regime.CRISIS, Regime.NORMAL, "normal"]))
    normal      0.50
    trending    0.00
    volatile    0.00
    crisis      0.25
    warm_up     0.25
    Name: share, dtype: float64
    """
    if len(labels) == 0:
        raise DataError("no labels to summarise")
    missing = pd.isna(pd.Series(labels, dtype=object)).to_numpy()
    counts = pd.Series([Regime(v) for v in np.asarray(labels, dtype=object)[~missing]])
    by_regime = counts.value_counts()
    n = len(labels)
    shares = [float(by_regime.get(r, 0)) / n for r in _ORDER] + [float(missing.sum()) / n]
    index = pd.Index([r.value for r in _ORDER] + [WARMUP])
    return pd.Series(shares, index=index, name="share")


def _warn_warmup(what: str, n_missing: int, n: int, need: int, how: str, advice: str) -> None:
    # The DataQualityWarning of a labelling where too many bars have no label.
    if n == 0 or n_missing / n <= WARMUP_WARN_SHARE:
        return
    warnings.warn(
        f"{what}: {n_missing:,} of {n:,} bars ({n_missing / n:.1%}) have no regime label: "
        f"the first label needs {need:,} bars of history ({how}) and {n:,} were given. "
        f"They are reported as warm-up (None), not NORMAL. Pass a longer history or {advice}",
        DataQualityWarning,
        stacklevel=3,
    )


def _check_ohlcv(ohlcv: pd.DataFrame, need: int) -> pd.DataFrame:
    # validate_ohlcv also guarantees positive closes, so log returns are defined.
    df = validate_ohlcv(ohlcv, name="ohlcv")
    if len(df) < need:
        raise DataError(f"ohlcv has {len(df)} bars; at least {need} are needed")
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
    warmup_bars_ : int
        Bars without a label at the start of any history (the first label is at this
        position): ``max(max(vol, shock) + min_percentile - 1, trend)`` windows in bars.
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
        w = self.windows_
        self.warmup_bars_ = max(
            max(w["vol"], w["shock"]) + w["min_percentile"] - 1, w["trend"], w["shock"]
        )
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
        annual = math.sqrt(periods_per_year(self.bar_spacing_))
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
                # a window without any move has no drift: 0, not undefined
                "trend_z": trend_z.where(rms_trend > 0, 0.0).where(rms_trend.notna()),
            },
            index=df.index,
        )

    def predict(self, ohlcv: pd.DataFrame) -> pd.Series:
        """Label every bar with a :class:`Regime` (a Series named ``"regime"``).

        Bars whose features are not all defined yet (the first ``warmup_bars_``) are
        ``None``; more than 10% of them is a :class:`~chimera_lab.errors.DataQualityWarning`.
        """
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
        out = lookup[labels]
        undefined = f[list(_RULE_FEATURES)].isna().any(axis=1).to_numpy()
        out[undefined] = None
        w = self.windows_
        _warn_warmup(
            "RegimeDetector",
            int(undefined.sum()),
            len(out),
            self.warmup_bars_ + 1,
            f"{self.timeframe_ or self.bar_spacing_} bars; windows in bars: vol {w['vol']:,}, "
            f"min_percentile {w['min_percentile']:,}, shock {w['shock']:,}, "
            f"trend {w['trend']:,}",
            "shorter windows (e.g. min_percentile_days, vol_window_days)",
        )
        return pd.Series(out, index=f.index, name="regime", dtype=object)


_RULE_FEATURES = ("vol_percentile", "shock_vol_percentile", "fall", "drawdown", "trend_z")


class MarkovRegimeDetector(_Detector):
    """Markov-switching regimes of log returns (statsmodels), mapped to :class:`Regime`.

    Two ways to label, chosen by ``refit_every``:

    - ``None`` (default): **in-sample parameters**. ``fit`` estimates the model on all the
      bars it is given and ``predict`` reports filtered probabilities ``P(state_t | data <= t)``
      with those parameters. The filter itself is causal, but the parameters come from the
      whole sample, so a label at t depends on data after t through them: good for
      describing history, not a forecast and not free of look-ahead.
    - ``k`` bars: **out-of-sample (expanding window)**. ``predict`` refits the model at bars
      ``min_train_bars, min_train_bars + k, ...`` (positions in the data given to
      ``predict``) on the returns up to and including that bar, and labels each bar with the
      filtered probabilities of the latest fit made at or before it. A label at t then uses
      data <= t only (the truncation contract holds). Bars before ``min_train_bars`` have no
      label (``None``, counted as ``warm_up`` by :func:`regime_shares`). Each refit costs one
      statsmodels fit, so ``k`` trades freshness for time.

    Parameters
    ----------
    k_regimes : {2, 3}, default 2
        Variance states. Ordered by variance they are labelled NORMAL, VOLATILE (, CRISIS).
    switching_mean : bool, default True
        Whether the mean switches with the state too (the variance always does).
    max_iter : int, default 50
        EM iterations before the likelihood optimisation (statsmodels ``em_iter``).
    refit_every : int, optional
        Bars between expanding-window refits in ``predict``; ``None`` for in-sample
        parameters.
    min_train_bars : int, default 250
        Bars in the first expanding-window fit (``refit_every`` only).

    Attributes
    ----------
    params_ : ndarray
        Parameters fitted by ``fit`` on all its bars (returns scaled by 100); the in-sample
        parameters, also kept for inspection when ``refit_every`` is set.
    state_means_, state_variances_ : ndarray
        Per state, of returns in percent, in statsmodels' state order.
    state_regimes_ : list of Regime
        The label of each statsmodels state.
    transition_matrix_ : ndarray
        ``P[i, j]`` = probability of moving from state ``i`` to ``j``.
    log_likelihood_ : float
    bar_spacing_ : Timedelta
    """

    def __init__(
        self,
        *,
        k_regimes: int = 2,
        switching_mean: bool = True,
        max_iter: int = 50,
        refit_every: int | None = None,
        min_train_bars: int = 250,
    ) -> None:
        self.k_regimes = k_regimes
        self.switching_mean = switching_mean
        self.max_iter = max_iter
        self.refit_every = refit_every
        self.min_train_bars = min_train_bars

    @property
    def in_sample(self) -> bool:
        """True when labels use parameters fitted on the whole sample (``refit_every=None``)."""
        return self.refit_every is None

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

    def _validate_params(self) -> None:
        if self.k_regimes not in (2, 3):
            raise ConfigError(f"k_regimes must be 2 or 3, got {self.k_regimes!r}")
        if not isinstance(self.max_iter, int) or self.max_iter < 0:
            raise ConfigError(f"max_iter must be a non-negative integer, got {self.max_iter!r}")
        if self.refit_every is not None and (
            isinstance(self.refit_every, bool)
            or not isinstance(self.refit_every, int | np.integer)
            or self.refit_every < 1
        ):
            raise ConfigError(
                f"refit_every must be a whole number of bars >= 1 or None, got {self.refit_every!r}"
            )
        need = 30 * self.k_regimes
        if (
            isinstance(self.min_train_bars, bool)
            or not isinstance(self.min_train_bars, int | np.integer)
            or self.min_train_bars < need
        ):
            raise ConfigError(
                f"min_train_bars must be a whole number >= {need} (30 per state), got "
                f"{self.min_train_bars!r}"
            )

    def _estimate(self, returns: np.ndarray) -> tuple[Any, Any, list[str]]:
        # One statsmodels fit: (model, results, problems); problems name a non-clean fit.
        if float(np.std(returns)) == 0.0:
            raise DataError("returns are constant; a switching-variance model cannot be fitted")
        model = self._model(returns)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = model.fit(disp=False, em_iter=self.max_iter, search_reps=0)
        converged = bool(res.mle_retvals.get("converged", True)) if res.mle_retvals else True
        problems = [str(w.message)[:80] for w in caught]
        if not converged and not problems:
            problems = ["optimizer"]
        return model, res, problems

    def _variances(self, params: np.ndarray, names: list[str]) -> npt.NDArray[np.float64]:
        return np.array([params[names.index(f"sigma2[{i}]")] for i in range(self.k_regimes)])

    @staticmethod
    def _state_regimes(variances: npt.NDArray[np.float64]) -> list[Regime]:
        # States ordered by variance get NORMAL, VOLATILE (, CRISIS).
        k = len(variances)
        ladder = [Regime.NORMAL, Regime.VOLATILE, Regime.CRISIS][:k]
        out: list[Regime] = [Regime.NORMAL] * k
        for rank, state in enumerate(np.argsort(variances)):
            out[int(state)] = ladder[rank]
        return out

    def fit(self, ohlcv: pd.DataFrame) -> MarkovRegimeDetector:
        """Fit the Markov-switching model on ``ohlcv``'s log returns; return ``self``."""
        self._validate_params()
        df = _check_ohlcv(ohlcv, need=30 * self.k_regimes)
        returns = self._returns(df)
        model, res, problems = self._estimate(returns)
        if problems:
            warnings.warn(
                "the Markov-switching fit did not converge cleanly "
                f"({'; '.join(problems)}); labels may be unreliable: try more data or "
                "k_regimes=2",
                DataQualityWarning,
                stacklevel=2,
            )
        params = np.asarray(res.params, dtype=np.float64)
        names = list(model.param_names)
        k = self.k_regimes
        variances = self._variances(params, names)
        if self.switching_mean:
            means = np.array([params[names.index(f"const[{i}]")] for i in range(k)])
        else:
            means = np.full(k, params[names.index("const")])
        self.params_ = params
        self.state_means_ = means
        self.state_variances_ = variances
        self.state_regimes_ = self._state_regimes(variances)
        self.transition_matrix_ = np.asarray(model.regime_transition_matrix(params))[:, :, 0].T
        self.log_likelihood_ = float(res.llf)
        self.bar_spacing_ = infer_bar_spacing(pd.DatetimeIndex(df.index))
        return self

    def _filtered(
        self, model: Any, params: np.ndarray, state_regimes: list[Regime]
    ) -> npt.NDArray[np.float64]:
        # Filtered probabilities per return, columns in regime order (NORMAL, VOLATILE, ...).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            filtered = model.filter(params)
        probs = np.asarray(filtered.filtered_marginal_probabilities, dtype=np.float64)
        if probs.shape[0] != model.nobs:
            probs = probs.T
        initial = np.asarray(model.initial_probabilities(params), dtype=np.float64)
        full = np.vstack([initial[None, :], probs])
        order = [state_regimes.index(r) for r in self._ladder()]
        return full[:, order]

    def _ladder(self) -> list[Regime]:
        return [Regime.NORMAL, Regime.VOLATILE, Regime.CRISIS][: self.k_regimes]

    def predict_proba(self, ohlcv: pd.DataFrame) -> pd.DataFrame:
        """Return filtered state probabilities ``P(state_t | data up to t)`` per bar.

        Columns are the regimes the states map to (``normal``, ``volatile`` (, ``crisis``)).
        With in-sample parameters the first bar (no return yet) gets the model's steady-state
        probabilities; with ``refit_every`` the bars before ``min_train_bars`` are NaN.
        """
        self._check_fitted()
        df = _check_ohlcv(ohlcv, need=2)
        self._check_spacing(df)
        returns = self._returns(df)
        cols = [r.value for r in self._ladder()]
        if self.in_sample:
            model = self._model(returns)
            full = self._filtered(model, self.params_, self.state_regimes_)
            return pd.DataFrame(full, index=df.index, columns=cols)
        return pd.DataFrame(self._expanding(returns), index=df.index, columns=cols)

    def _expanding(self, returns: np.ndarray) -> npt.NDArray[np.float64]:
        # Out-of-sample probabilities: bar t (return t - 1) uses the fit on bars <= r_j, the
        # latest refit point r_j <= t, and the causal filter over returns up to t.
        n = returns.size + 1
        every, first = int(self.refit_every or 1), int(self.min_train_bars)
        out = np.full((n, self.k_regimes), np.nan)
        failed: list[str] = []
        points = list(range(first, n, every))
        for j, r in enumerate(points):
            stop = points[j + 1] if j + 1 < len(points) else n
            model, res, problems = self._estimate(returns[:r])
            if problems:
                failed.append(f"bar {r}: {problems[0]}")
            params = np.asarray(res.params, dtype=np.float64)
            regimes = self._state_regimes(self._variances(params, list(model.param_names)))
            # Filter up to the last bar this fit labels; the row of bar t is return t - 1.
            probs = self._filtered(self._model(returns[: stop - 1]), params, regimes)
            out[r:stop] = probs[r:stop]
        if failed:
            warnings.warn(
                f"{len(failed)} of {len(points)} expanding-window Markov fits did not converge "
                f"cleanly ({'; '.join(failed[:3])}); labels may be unreliable",
                DataQualityWarning,
                stacklevel=4,
            )
        return out

    def predict(self, ohlcv: pd.DataFrame) -> pd.Series:
        """Label every bar by its most likely state given data up to that bar.

        See the class notes: with ``refit_every=None`` the parameters are in-sample.
        """
        proba = self.predict_proba(ohlcv)
        values = proba.to_numpy()
        undefined = np.isnan(values).any(axis=1)
        lookup = np.array(self._ladder(), dtype=object)
        out = lookup[np.where(undefined, 0, np.nan_to_num(values).argmax(axis=1))]
        out[undefined] = None
        if not self.in_sample:
            _warn_warmup(
                "MarkovRegimeDetector",
                int(undefined.sum()),
                len(out),
                int(self.min_train_bars) + 1,
                f"min_train_bars={self.min_train_bars}",
                "a smaller min_train_bars",
            )
        return pd.Series(out, index=proba.index, name="regime", dtype=object)
