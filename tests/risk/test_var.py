"""VaR/CVaR against independent references: pandas, numpy, scipy.stats, scipy.integrate."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from chimera_lab.errors import ConfigError, DataError, DataQualityWarning
from chimera_lab.risk import _stats as S
from chimera_lab.risk import rolling_var, value_at_risk
from chimera_lab.risk._kernels import INTERPOLATIONS, rolling_quantile

INTERPS = list(INTERPOLATIONS)


@pytest.fixture(scope="module")
def fat_returns() -> np.ndarray:
    # Student-t(4) daily-like returns, seed 5.
    return np.random.default_rng(5).standard_t(4, 4_000) * 0.02


# ------------------------------------------------------------------ rolling historical = pandas


@pytest.mark.parametrize("interpolation", INTERPS)
@pytest.mark.parametrize("confidence", [0.99, 0.95, 0.975])
def test_rolling_historical_equals_pandas_exactly(interpolation: str, confidence: float) -> None:
    r = pd.Series(np.random.default_rng(1).standard_t(3, 6_000) * 0.01)
    got = rolling_var(r, 500, confidence=confidence, interpolation=interpolation)
    ref = -r.shift(1).rolling(500).quantile(1 - confidence, interpolation=interpolation)
    assert np.array_equal(got.to_numpy(), ref.to_numpy(), equal_nan=True)
    assert got.name == "var" and got.index.equals(r.index)


@settings(max_examples=150, deadline=None)
@given(
    data=st.lists(
        st.one_of(
            st.sampled_from([np.nan, 0.0, 0.01, -0.01]),
            st.floats(-0.25, 0.25, allow_nan=False, width=32),
        ),
        min_size=1,
        max_size=120,
    ),
    window=st.integers(1, 30),
    minp_frac=st.floats(0.0, 1.0),
    q=st.sampled_from([0.0, 0.01, 0.05, 0.25, 0.5, 0.9, 1.0, 1 - 0.99]),
    interpolation=st.sampled_from(INTERPS),
)
def test_kernel_matches_pandas_with_nans_ties_and_min_periods(
    data: list[float], window: int, minp_frac: float, q: float, interpolation: str
) -> None:
    # NaNs are skipped and counted against min_periods; ties and zeros are common in 1m data.
    x = np.asarray(data, dtype=np.float64)
    minp = max(1, round(minp_frac * window))
    got = rolling_quantile(x, window, minp, q, INTERPOLATIONS[interpolation])
    ref = pd.Series(x).rolling(window, min_periods=minp).quantile(q, interpolation=interpolation)
    assert np.array_equal(got, ref.to_numpy(), equal_nan=True)


@pytest.mark.parametrize("interpolation", INTERPS)
def test_kernel_matches_pandas_with_nan_blocks_on_long_series(interpolation: str) -> None:
    rng = np.random.default_rng(8)
    x = np.round(rng.standard_t(3, 30_000) * 0.01, 4)  # rounding makes many ties
    for start in range(1_000, 30_000, 3_100):
        x[start : start + rng.integers(1, 400)] = np.nan
    x[rng.choice(30_000, 500, replace=False)] = np.nan
    for window, minp in ((300, 300), (300, 150), (1440, 700)):
        got = rolling_quantile(x, window, minp, 1 - 0.99, INTERPOLATIONS[interpolation])
        ref = (
            pd.Series(x)
            .rolling(window, min_periods=minp)
            .quantile(1 - 0.99, interpolation=interpolation)
        )
        assert np.array_equal(got, ref.to_numpy(), equal_nan=True)


def test_rolling_historical_on_real_minute_returns_equals_pandas(samples_dir: object) -> None:
    # Real Binance BTC/USDT 1m closes (bundled sample, 30 days incl. the 5 Aug 2024 crash):
    # many zero and tied returns.
    path = f"{samples_dir}/btcusdt_1m_binance_20240726_20240825.csv.gz"
    close = pd.read_csv(path, usecols=["close"])["close"]
    r = close.pct_change()
    got = rolling_var(r, 1440, min_periods=1000)
    ref = -r.shift(1).rolling(1440, min_periods=1000).quantile(1 - 0.99)
    assert np.array_equal(got.to_numpy(), ref.to_numpy(), equal_nan=True)
    assert got.notna().sum() > 40_000


def test_rolling_value_at_t_uses_only_returns_before_t() -> None:
    r = pd.Series(np.random.default_rng(2).normal(0, 0.01, 400))
    base = rolling_var(r, 100)
    shocked = r.copy()
    shocked.iloc[300] = -0.5  # a crash at t=300 cannot change the forecast for t=300
    after = rolling_var(shocked, 100)
    assert base.iloc[:301].equals(after.iloc[:301])
    assert after.iloc[301] > base.iloc[301]


def test_point_historical_equals_rolling_forecast_of_next_bar() -> None:
    r = np.random.default_rng(3).standard_t(5, 700) * 0.01
    roll = rolling_var(r, 250)
    for t in (250, 400, 699):
        point = value_at_risk(r[t - 250 : t], method="historical")
        assert point.var == roll.iloc[t]


@pytest.mark.parametrize("method", ["parametric", "monte_carlo"])
def test_rolling_parametric_and_mc_use_only_the_past(method: str) -> None:
    r = pd.Series(np.random.default_rng(4).normal(0, 0.01, 300))
    a = rolling_var(r, 60, method=method, seed=1, n_sims=2_000)
    r2 = r.copy()
    r2.iloc[200:] = 0.3
    b = rolling_var(r2, 60, method=method, seed=1, n_sims=2_000)
    np.testing.assert_array_equal(a.iloc[:201].to_numpy(), b.iloc[:201].to_numpy())


def test_rolling_parametric_matches_formula() -> None:
    r = pd.Series(np.random.default_rng(6).normal(0.001, 0.02, 500))
    got = rolling_var(r, 100, method="parametric", confidence=0.95)
    z = stats.norm.ppf(0.05)
    past = r.shift(1).rolling(100)
    ref = -(past.mean() + past.std() * z)
    np.testing.assert_allclose(got.to_numpy(), ref.to_numpy(), rtol=1e-12, equal_nan=True)
    cf = rolling_var(r, 100, method="parametric", cornish_fisher=True)
    sk, ku = past.skew(), past.kurt()
    z = stats.norm.ppf(1 - 0.99)
    zc = z + (z**2 - 1) * sk / 6 + (z**3 - 3 * z) * ku / 24 - (2 * z**3 - 5 * z) * sk**2 / 36
    np.testing.assert_allclose(
        cf.to_numpy(), -(past.mean() + past.std() * zc).to_numpy(), rtol=1e-10, equal_nan=True
    )


def test_rolling_mc_normal_tracks_parametric_and_is_deterministic() -> None:
    r = pd.Series(np.random.default_rng(7).normal(0, 0.01, 400))
    mc = rolling_var(
        r, 200, method="monte_carlo", distribution="normal", n_sims=200_000, refit_every=50, seed=3
    )
    par = rolling_var(r, 200, method="parametric")
    ok = par.notna()
    np.testing.assert_allclose(mc[ok], par[ok], rtol=0.02)  # 200k draws: ~1% sampling error
    again = rolling_var(
        r, 200, method="monte_carlo", distribution="normal", n_sims=200_000, refit_every=50, seed=3
    )
    assert mc.equals(again)


def test_rolling_var_validation() -> None:
    r = pd.Series([0.01, -0.02, 0.0])
    with pytest.raises(ConfigError, match="window"):
        rolling_var(r, 1)
    with pytest.raises(ConfigError, match="min_periods"):
        rolling_var(r, 2, min_periods=3)
    with pytest.raises(ConfigError, match="did you mean 'historical'"):
        rolling_var(r, 2, method="historic")
    with pytest.raises(DataError, match="infinite"):
        rolling_var(pd.Series([0.01, np.inf, 0.0]), 2)


# ------------------------------------------------------------------ point estimates


@pytest.mark.parametrize("interpolation", INTERPS)
def test_historical_matches_numpy_quantile(fat_returns: np.ndarray, interpolation: str) -> None:
    res = value_at_risk(fat_returns, confidence=0.99, interpolation=interpolation)
    q = np.quantile(fat_returns, 1 - 0.99, method=interpolation)
    assert res.var == pytest.approx(-q, rel=1e-14)
    assert res.cvar == pytest.approx(-fat_returns[fat_returns <= q].mean(), rel=1e-14)
    assert res.cvar >= res.var


def test_historical_hand_computed_small_sample() -> None:
    # 11 returns -10%..0%: at 90% the quantile index is 0.1 * 10 = 1 -> the 2nd smallest, -9%.
    r = np.linspace(-0.10, 0.0, 11)
    res = value_at_risk(r, confidence=0.90)
    assert res.var == pytest.approx(0.09)
    assert res.cvar == pytest.approx(0.095)  # mean of -10% and -9%


def test_historical_horizon_uses_overlapping_compounded_returns() -> None:
    r = np.array([0.01, -0.02, 0.03, -0.04, 0.05, 0.0, -0.01])
    agg = np.array([np.prod(1 + r[i : i + 3]) - 1 for i in range(len(r) - 2)])
    with pytest.warns(DataQualityWarning, match="fewer than one expected tail event"):
        res = value_at_risk(r, confidence=0.8, horizon=3)
    assert res.var == pytest.approx(-np.quantile(agg, 0.2), rel=1e-12)
    assert res.details["n_scenarios"] == 5


def test_parametric_gaussian_matches_scipy(fat_returns: np.ndarray) -> None:
    mu, sd = fat_returns.mean(), fat_returns.std(ddof=1)
    for h in (1, 10):
        res = value_at_risk(fat_returns, method="parametric", confidence=0.99, horizon=h)
        dist = stats.norm(h * mu, math.sqrt(h) * sd)
        q = dist.ppf(0.01)
        assert res.var == pytest.approx(-q, rel=1e-12)
        tail = dist.expect(lambda x: x, ub=q, conditional=True)
        assert res.cvar == pytest.approx(-tail, rel=1e-7)


def test_cornish_fisher_reduces_to_gaussian_without_skew_or_kurtosis() -> None:
    z = stats.norm.ppf(0.01)
    assert S.cornish_fisher_z(z, 0.0, 0.0) == z
    assert S.cornish_fisher_tail_mean(z, 0.01, 0.0, 0.0) == pytest.approx(
        -stats.norm.pdf(z) / 0.01, rel=1e-14
    )


@pytest.mark.parametrize(("skew", "kurt"), [(-0.5, 2.0), (0.3, 1.0), (-1.0, 4.0)])
def test_cornish_fisher_expected_shortfall_integrates_the_quantile(
    skew: float, kurt: float
) -> None:
    alpha = 0.01
    z = stats.norm.ppf(alpha)

    def q_cf(u: float) -> float:
        return S.cornish_fisher_z(float(stats.norm.ppf(u)), skew, kurt)

    numeric = integrate.quad(q_cf, 0, alpha, limit=200, epsabs=1e-13)[0] / alpha
    assert S.cornish_fisher_tail_mean(z, alpha, skew, kurt) == pytest.approx(numeric, rel=1e-7)


def test_cornish_fisher_var_uses_sample_skew_and_kurtosis(fat_returns: np.ndarray) -> None:
    x = fat_returns[:1000]
    res = value_at_risk(x, method="parametric", cornish_fisher=True, confidence=0.95)
    s, k = stats.skew(x, bias=False), stats.kurtosis(x, bias=False)
    z = stats.norm.ppf(0.05)
    zc = z + (z**2 - 1) * s / 6 + (z**3 - 3 * z) * k / 24 - (2 * z**3 - 5 * z) * s**2 / 36
    assert res.var == pytest.approx(-(x.mean() + x.std(ddof=1) * zc), rel=1e-12)
    assert res.details["skew"] == pytest.approx(s)


def test_cornish_fisher_warns_when_expansion_is_not_monotone() -> None:
    # Extreme kurtosis makes the CF map non-monotone in the far tail.
    x = np.r_[np.zeros(500), np.random.default_rng(0).standard_t(2.1, 40) * 0.2]
    with pytest.warns(DataQualityWarning, match="not monotone"):
        value_at_risk(x, method="parametric", cornish_fisher=True, confidence=0.999)


def test_monte_carlo_normal_converges_to_parametric(fat_returns: np.ndarray) -> None:
    mc = value_at_risk(
        fat_returns, method="monte_carlo", distribution="normal", n_sims=400_000, seed=11
    )
    par = value_at_risk(fat_returns, method="parametric")
    assert mc.var == pytest.approx(par.var, rel=0.02)
    assert mc.cvar == pytest.approx(par.cvar, rel=0.02)


def test_monte_carlo_t_fits_degrees_of_freedom_and_fattens_the_tail() -> None:
    x = np.random.default_rng(12).standard_t(4, 20_000) * 0.01
    mc = value_at_risk(x, method="monte_carlo", n_sims=200_000, seed=1)
    assert 3.3 < mc.details["df"] < 4.8
    # reference: the fitted unit-variance t scaled to the sample's mean/std, analytic quantile
    nu, mu, sd = mc.details["df"], x.mean(), x.std(ddof=1)
    q = mu + sd * math.sqrt((nu - 2) / nu) * stats.t.ppf(0.01, nu)
    assert mc.var == pytest.approx(-q, rel=0.03)
    hist = value_at_risk(x, method="historical")
    assert mc.var == pytest.approx(hist.var, rel=0.06)


def test_t_df_fit_matches_scipy_mle_with_fixed_location_and_scale() -> None:
    y = np.random.default_rng(8).standard_t(5, 5_000)
    y = (y - y.mean()) / y.std(ddof=1)
    nu = S.fit_t_df(y)

    def nll(n: float) -> float:
        return -stats.t.logpdf(y, n, scale=math.sqrt((n - 2) / n)).sum()

    grid = np.linspace(2.5, 15, 2_000)
    best = grid[np.argmin([nll(g) for g in grid])]
    assert nu == pytest.approx(best, abs=0.02)


def test_monte_carlo_is_reproducible_with_a_seed(fat_returns: np.ndarray) -> None:
    a = value_at_risk(fat_returns, method="mc", n_sims=10_000, seed=5, horizon=5)
    b = value_at_risk(fat_returns, method="monte-carlo", n_sims=10_000, seed=5, horizon=5)
    assert a == b and a.method == "monte_carlo"


def test_monte_carlo_horizon_compounds_paths() -> None:
    x = np.random.default_rng(9).normal(0.0, 0.01, 5_000)
    h1 = value_at_risk(x, method="monte_carlo", distribution="normal", seed=2)
    h10 = value_at_risk(x, method="monte_carlo", distribution="normal", seed=2, horizon=10)
    assert h10.var / h1.var == pytest.approx(math.sqrt(10), rel=0.05)


def test_result_is_frozen_and_serialises(fat_returns: np.ndarray) -> None:
    res = value_at_risk(fat_returns, method="parametric")
    d = res.to_dict()
    assert d["method"] == "parametric" and d["var"] == res.var and "sigma" in d
    assert "parametric VaR(99.00%, 1p)" in res.summary()
    assert "<table>" in res._repr_html_()
    with pytest.raises(AttributeError):
        res.var = 0.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"method": "montecarlo2"}, ConfigError, "did you mean"),
        ({"confidence": 1.0}, ConfigError, "confidence"),
        ({"confidence": 0.3}, ConfigError, "confidence"),
        ({"horizon": 0}, ConfigError, "horizon"),
        ({"interpolation": "cubic"}, ConfigError, "interpolation"),
        ({"method": "mc", "distribution": "cauchy"}, ConfigError, "distribution"),
        ({"method": "mc", "n_sims": 10}, ConfigError, "n_sims"),
        ({"cornish_fisher": True}, ConfigError, "parametric' only"),
    ],
)
def test_value_at_risk_rejects_bad_options(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        value_at_risk(np.linspace(-0.1, 0.1, 50), **kwargs)


def test_value_at_risk_rejects_bad_data() -> None:
    with pytest.raises(DataError, match="infinite"):
        value_at_risk(pd.Series([0.01, -np.inf, 0.02]))
    with pytest.raises(DataError, match="at least 2"):
        value_at_risk([np.nan, 0.01])
    with pytest.raises(DataError, match="numeric"):
        value_at_risk(pd.Series(["a", "b"]))
    with pytest.raises(DataError, match="one column"):
        value_at_risk(pd.DataFrame({"a": [0.1, 0.2], "b": [0.1, 0.2]}))
