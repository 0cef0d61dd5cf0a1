"""VaR backtests: hand-computed cases, scipy references, edge cases and the Basel table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from chimera_lab.errors import DataError
from chimera_lab.risk import rolling_var
from chimera_lab.risk.var_backtest import (
    basel_zone,
    christoffersen_test,
    coverage_table,
    kupiec_test,
    var_backtest,
)


def test_kupiec_hand_computed() -> None:
    # n=250, x=5, p=0.01: LR = -2[245 ln(.99/.98) + 5 ln(.01/.02)] = 1.95680...
    lr, pval = kupiec_test(5, 250, 0.99)
    expected = -2 * (245 * math.log(0.99 / 0.98) + 5 * math.log(0.5))
    assert lr == pytest.approx(expected, rel=1e-12)
    assert lr == pytest.approx(1.9568, abs=1e-4)
    assert pval == pytest.approx(stats.chi2.sf(expected, 1), rel=1e-12)


@pytest.mark.parametrize("n", [1, 10, 250, 1000])
def test_kupiec_matches_binomial_likelihood_ratio_for_every_count(n: int) -> None:
    p = 0.05
    for x in range(n + 1):
        ref = 2 * (stats.binom.logpmf(x, n, x / n) - stats.binom.logpmf(x, n, p))
        lr, pval = kupiec_test(x, n, 0.95)
        assert lr == pytest.approx(max(ref, 0.0), rel=1e-9, abs=1e-10)
        assert pval == pytest.approx(stats.chi2.sf(max(ref, 0.0), 1), rel=1e-8, abs=1e-15)


def test_kupiec_zero_and_all_exceedances_use_0_log_0_convention() -> None:
    lr0, _ = kupiec_test(0, 250, 0.99)
    assert lr0 == pytest.approx(-2 * 250 * math.log(0.99))
    lr_all, p_all = kupiec_test(250, 250, 0.99)
    assert lr_all == pytest.approx(-2 * 250 * math.log(0.01))
    assert p_all < 1e-100


def _christoffersen_reference(hits: list[int]) -> float:
    # Straightforward Markov-chain likelihood ratio with explicit 0*log(0) = 0 handling.
    counts = {(i, j): 0 for i in (0, 1) for j in (0, 1)}
    for a, b in zip(hits[:-1], hits[1:], strict=False):
        counts[(a, b)] += 1

    def ll(k: int, prob: float) -> float:
        return 0.0 if k == 0 else k * math.log(prob)

    n00, n01, n10, n11 = counts[(0, 0)], counts[(0, 1)], counts[(1, 0)], counts[(1, 1)]
    pi = (n01 + n11) / (n00 + n01 + n10 + n11)
    pi01 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi11 = n11 / (n10 + n11) if n10 + n11 else 0.0
    l0 = ll(n00 + n10, 1 - pi) + ll(n01 + n11, pi)
    l1 = ll(n00, 1 - pi01) + ll(n01, pi01) + ll(n10, 1 - pi11) + ll(n11, pi11)
    return -2 * (l0 - l1)


def test_christoffersen_hand_computed() -> None:
    hits = [0, 1, 1, 0, 0, 0, 0, 1, 1, 0]
    # n00=3, n01=2, n10=2, n11=2; pi=4/9, pi01=2/5, pi11=1/2
    expected = -2 * (
        5 * math.log(5 / 9)
        + 4 * math.log(4 / 9)
        - 3 * math.log(0.6)
        - 2 * math.log(0.4)
        - 4 * math.log(0.5)
    )
    lr, pval = christoffersen_test(hits)
    assert lr == pytest.approx(expected, rel=1e-12)
    assert lr == pytest.approx(0.0900, abs=1e-4)
    assert pval == pytest.approx(stats.chi2.sf(expected, 1))


def test_christoffersen_matches_reference_on_random_sequences() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        hits = (rng.random(rng.integers(2, 300)) < rng.uniform(0.01, 0.5)).astype(int).tolist()
        lr, _ = christoffersen_test(hits)
        assert lr == pytest.approx(max(_christoffersen_reference(hits), 0.0), abs=1e-9)


def test_christoffersen_detects_clustering() -> None:
    clustered = np.zeros(500, dtype=bool)
    clustered[100:105] = clustered[300:305] = True
    spread = np.zeros(500, dtype=bool)
    spread[::50] = True
    assert christoffersen_test(clustered)[1] < 1e-4
    assert christoffersen_test(spread)[1] > 0.3


@pytest.mark.parametrize("hits", [np.zeros(100, bool), np.ones(100, bool), np.array([True])])
def test_christoffersen_degenerate_sequences_are_zero(hits: np.ndarray) -> None:
    assert christoffersen_test(hits) == (0.0, 1.0)


def test_basel_table_at_99_percent_250_days() -> None:
    zones = [basel_zone(x, 250, 0.99) for x in range(15)]
    assert zones == ["green"] * 5 + ["yellow"] * 5 + ["red"] * 5


def test_var_backtest_aligns_series_and_drops_warm_up() -> None:
    idx = pd.date_range("2024-01-01", periods=300, freq="D", tz="UTC")
    r = pd.Series(0.0, index=idx)
    r.iloc[[120, 121, 250]] = -0.05
    v = pd.Series(0.03, index=idx)
    v.iloc[:100] = np.nan
    bt = var_backtest(r, v.iloc[::-1], confidence=0.99)  # order of the forecasts does not matter
    assert bt.n_obs == 200
    assert bt.n_exceedances == 3
    assert list(bt.exceedance_dates) == [idx[120], idx[121], idx[250]]
    assert bt.expected_exceedances == pytest.approx(2.0)
    assert bt.observed_rate == pytest.approx(3 / 200)
    assert bt.kupiec_lr == pytest.approx(kupiec_test(3, 200, 0.99)[0])
    assert bt.cc_lr == pytest.approx(bt.kupiec_lr + bt.christoffersen_lr)
    assert bt.cc_pvalue == pytest.approx(stats.chi2.sf(bt.cc_lr, 2))
    assert (bt.basel_obs, bt.basel_exceedances, bt.basel_zone) == (200, 3, "green")
    d = bt.to_dict()
    assert d["exceedance_dates"][0].startswith("2024-04-30")
    assert "3 exceedances in 200" in bt.summary()


def test_exceedance_is_strictly_beyond_var() -> None:
    bt = var_backtest(np.array([-0.03, -0.0300001, 0.0]), np.array([0.03, 0.03, 0.03]))
    assert bt.n_exceedances == 1


def test_kupiec_size_is_close_to_nominal_under_a_correct_model() -> None:
    # True VaR of N(0,1) returns: the 5% test should reject roughly 5% of the time.
    rng = np.random.default_rng(3)
    q = -stats.norm.ppf(0.01)
    rejections = 0
    for _ in range(600):
        r = rng.standard_normal(750)
        rejections += var_backtest(r, np.full(750, q), 0.99).kupiec_pvalue < 0.05
    assert 0.02 < rejections / 600 < 0.09


def test_rolling_var_backtest_end_to_end_and_coverage_table() -> None:
    r = pd.Series(np.random.default_rng(4).standard_t(4, 3_000) * 0.01)
    tests = {
        m: var_backtest(r, rolling_var(r, 500, method=m, seed=0, n_sims=5_000), 0.99)
        for m in ("historical", "parametric", "monte_carlo")
    }
    table = coverage_table(tests)
    assert list(table.index) == ["historical", "parametric", "monte_carlo"]
    assert {"exceedances", "expected", "kupiec_p", "christoffersen_p", "basel"} <= set(table)
    # fat tails: Gaussian VaR is exceeded more often than historical VaR
    assert tests["parametric"].n_exceedances > tests["historical"].n_exceedances


def test_var_backtest_errors() -> None:
    with pytest.raises(DataError, match="differ in length"):
        var_backtest(np.zeros(3), np.zeros(4))
    with pytest.raises(DataError, match="no period"):
        var_backtest(np.zeros(3), np.full(3, np.nan))
    a = pd.Series([0.0, 0.1], index=pd.date_range("2024-01-01", periods=2, tz="UTC"))
    b = pd.Series([0.1, 0.1], index=pd.date_range("2025-01-01", periods=2, tz="UTC"))
    with pytest.raises(DataError, match="share no index"):
        var_backtest(a, b)
