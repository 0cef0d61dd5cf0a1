"""Portfolio VaR: single-asset consistency, Euler allocation, marginal VaR by finite differences."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from chimera_lab.errors import ConfigError, DataError
from chimera_lab.risk import portfolio_var, value_at_risk


@pytest.fixture(scope="module")
def rets() -> pd.DataFrame:
    # Three correlated fat-tailed assets (seed 21), 3,000 periods.
    rng = np.random.default_rng(21)
    corr = np.array([[1.0, 0.7, 0.3], [0.7, 1.0, 0.4], [0.3, 0.4, 1.0]])
    z = rng.standard_t(5, (3_000, 3)) @ np.linalg.cholesky(corr).T
    return pd.DataFrame(z * [0.03, 0.04, 0.02] + 0.0005, columns=["BTC", "ETH", "SOL"])


W = {"BTC": 0.5, "ETH": 0.3, "SOL": -0.2}


@pytest.mark.parametrize("method", ["historical", "parametric"])
def test_single_asset_portfolio_equals_value_at_risk(rets: pd.DataFrame, method: str) -> None:
    pv = portfolio_var(rets[["BTC"]], {"BTC": 1.0}, method=method, horizon=3)
    single = value_at_risk(rets["BTC"], method=method, horizon=3)
    assert pv.var == pytest.approx(single.var, rel=1e-12)
    assert pv.cvar == pytest.approx(single.cvar, rel=1e-12)


def test_historical_portfolio_is_var_of_portfolio_returns(rets: pd.DataFrame) -> None:
    pv = portfolio_var(rets, W)
    p = rets @ pd.Series(W)
    assert pv.var == pytest.approx(value_at_risk(p).var, rel=1e-12)
    assert pv.cvar == pytest.approx(value_at_risk(p).cvar, rel=1e-12)


@pytest.mark.parametrize("method", ["historical", "parametric", "monte_carlo"])
def test_components_sum_to_total(rets: pd.DataFrame, method: str) -> None:
    pv = portfolio_var(rets, W, method=method, n_sims=50_000, seed=3)
    assert pv.component_var.sum() == pytest.approx(pv.var, rel=1e-10)
    assert pv.component_cvar.sum() == pytest.approx(pv.cvar, rel=1e-10)
    np.testing.assert_allclose(pv.component_var, pv.weights * pv.marginal_var, rtol=1e-12)
    table = pv.table()
    assert list(table.columns) == [
        "weight",
        "marginal_var",
        "component_var",
        "component_cvar",
        "var_share",
    ]
    assert table["var_share"].sum() == pytest.approx(1.0)


def test_parametric_matches_closed_form_and_numeric_gradient(rets: pd.DataFrame) -> None:
    w = pd.Series(W)
    mu, cov = rets.mean(), rets.cov()
    z = stats.norm.ppf(0.01)
    h = 5
    sigma_p = math.sqrt(w @ cov @ w)
    pv = portfolio_var(rets, W, method="parametric", horizon=h)
    assert pv.var == pytest.approx(-(h * mu @ w + math.sqrt(h) * z * sigma_p), rel=1e-12)

    def total(weights: np.ndarray) -> float:
        return portfolio_var(rets, weights, method="parametric", horizon=h).var

    for i in range(3):
        e = np.zeros(3)
        e[i] = 1e-6
        numeric = (total(w.to_numpy() + e) - total(w.to_numpy() - e)) / 2e-6
        assert pv.marginal_var.iloc[i] == pytest.approx(numeric, rel=1e-6)


def test_cornish_fisher_components_sum_to_total(rets: pd.DataFrame) -> None:
    pv = portfolio_var(rets, W, method="parametric", cornish_fisher=True)
    p = rets @ pd.Series(W)
    assert pv.var == pytest.approx(value_at_risk(p, method="parametric", cornish_fisher=True).var)
    assert pv.component_var.sum() == pytest.approx(pv.var, rel=1e-6)


def test_historical_marginal_is_exact_derivative_of_the_estimator(rets: pd.DataFrame) -> None:
    # Tiny weight changes keep the scenario ordering: the finite difference equals the Euler
    # marginal exactly (up to float rounding).
    w = np.array(list(W.values()))
    pv = portfolio_var(rets, w, method="historical")
    for i in range(3):
        e = np.zeros(3)
        e[i] = 1e-9
        up = portfolio_var(rets, w + e).var
        down = portfolio_var(rets, w - e).var
        assert (up - down) / 2e-9 == pytest.approx(pv.marginal_var.iloc[i], rel=1e-5, abs=1e-8)


def test_monte_carlo_normal_portfolio_converges_to_parametric(rets: pd.DataFrame) -> None:
    mc = portfolio_var(rets, W, method="monte_carlo", distribution="normal", n_sims=400_000, seed=4)
    par = portfolio_var(rets, W, method="parametric")
    assert mc.var == pytest.approx(par.var, rel=0.02)
    np.testing.assert_allclose(mc.component_cvar, par.component_cvar, rtol=0.08, atol=1e-4)


def test_monte_carlo_t_portfolio_fits_df_and_horizon_paths(rets: pd.DataFrame) -> None:
    mc = portfolio_var(rets, W, method="monte_carlo", n_sims=50_000, seed=4)
    assert 3.5 < mc.details["df"] < 8  # data are t(5)
    h5 = portfolio_var(rets, W, method="monte_carlo", n_sims=50_000, seed=4, horizon=5)
    assert h5.var > mc.var
    assert h5.component_var.sum() == pytest.approx(h5.var, rel=1e-10)
    same = portfolio_var(rets, W, method="monte_carlo", n_sims=50_000, seed=4)
    assert same.var == mc.var


def test_positional_weights_and_array_input(rets: pd.DataFrame) -> None:
    a = portfolio_var(rets.to_numpy(), [0.5, 0.3, -0.2])
    b = portfolio_var(rets, W)
    assert a.var == b.var
    assert list(a.weights.index) == [0, 1, 2]


def test_missing_weight_names_are_zero_and_nan_rows_dropped(rets: pd.DataFrame) -> None:
    frame = rets.copy()
    frame.iloc[5, 1] = np.nan
    pv = portfolio_var(frame, {"BTC": 1.0})
    assert pv.weights["ETH"] == 0.0 and pv.n_obs == len(rets) - 1
    assert pv.component_var["ETH"] == 0.0


def test_portfolio_errors(rets: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="DOGE"):
        portfolio_var(rets, {"DOGE": 1.0})
    with pytest.raises(DataError, match="2 weights for 3 assets"):
        portfolio_var(rets, [0.5, 0.5])
    with pytest.raises(ConfigError, match="finite"):
        portfolio_var(rets, [0.5, np.nan, 0.1])
    with pytest.raises(DataError, match="complete rows"):
        portfolio_var(rets.iloc[:2], W, method="parametric")
    with pytest.raises(DataError, match="infinite"):
        portfolio_var(rets.replace(rets.iloc[0, 0], np.inf), W)


def test_to_dict_and_html(rets: pd.DataFrame) -> None:
    pv = portfolio_var(rets, W, method="parametric")
    d = pv.to_dict()
    assert set(d["assets"]) == {"BTC", "ETH", "SOL"}
    assert "<table" in pv._repr_html_()
