"""Kelly sizing against hand-computed values and numerical maximisation (scipy.optimize)."""

from __future__ import annotations

import enum
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize

from chimera_lab.config import RiskSettings
from chimera_lab.errors import ConfigError, DataError, DataQualityWarning
from chimera_lab.risk import (
    KellyPosition,
    continuous_kelly,
    kelly_fraction,
    kelly_growth_rate,
    kelly_inputs_from_trades,
    kelly_position_size,
    multi_asset_kelly,
    regime_multiplier,
)

# ------------------------------------------------------------------ kelly_fraction


def test_kelly_fraction_issue_example() -> None:
    # Issue #4: p=0.65, W=0.025, L=0.012 -> x* = 0.65/0.012 - 0.35/0.025 = 40.1666...
    assert kelly_fraction(0.65, 0.025, 0.012) == pytest.approx(0.65 / 0.012 - 0.35 / 0.025)
    assert round(kelly_fraction(0.65, 0.025, 0.012), 2) == 40.17


def test_kelly_fraction_even_money_is_classic_2p_minus_1_over_stake() -> None:
    # W = L = 1 is the textbook even-money bet: f* = 2p - 1.
    for p in (0.3, 0.5, 0.55, 0.9):
        assert kelly_fraction(p, 1.0, 1.0) == pytest.approx(2 * p - 1, abs=1e-15)


def test_kelly_fraction_fair_bet_is_zero_and_bad_bet_negative() -> None:
    assert kelly_fraction(0.5, 0.02, 0.02) == 0.0
    assert kelly_fraction(0.4, 0.01, 0.01) < 0


def _numeric_argmax(p: float, q: float, w: float, loss: float) -> float:
    lo, hi = -1.0 / w, 1.0 / loss
    eps = 1e-9 * (hi - lo)

    def neg(x: float) -> float:
        return -(p * math.log1p(x * w) + q * math.log1p(-x * loss))

    res = optimize.minimize_scalar(
        neg, bounds=(lo + eps, hi - eps), method="bounded", options={"xatol": 1e-12 * (hi - lo)}
    )
    return float(res.x)


@settings(max_examples=60, deadline=None)
@given(
    p=st.floats(0.05, 0.95),
    w=st.floats(0.002, 0.5),
    loss=st.floats(0.002, 0.5),
    scratch=st.floats(0.0, 0.5),
)
def test_kelly_fraction_maximises_expected_log_growth(
    p: float, w: float, loss: float, scratch: float
) -> None:
    # Independent reference: maximise p ln(1+xW) + q ln(1-xL) numerically, with a share of
    # scratch (zero-return) outcomes.
    pw, pl = p * (1 - scratch), (1 - p) * (1 - scratch)
    x_star = kelly_fraction(pw, w, loss, loss_probability=pl)
    x_num = _numeric_argmax(pw, pl, w, loss)
    span = 1 / w + 1 / loss
    assert x_star == pytest.approx(x_num, abs=1e-6 * span)
    # and it is a maximum: nearby exposures grow slower
    g = kelly_growth_rate(x_star, pw, w, loss, loss_probability=pl)
    for dx in (-1e-3 * span, 1e-3 * span):
        if -1 / w < x_star + dx < 1 / loss:
            assert kelly_growth_rate(x_star + dx, pw, w, loss, loss_probability=pl) <= g


def test_kelly_fraction_vectorised_matches_scalar_and_propagates_nan() -> None:
    p = np.array([0.4, 0.55, np.nan, 0.7])
    out = kelly_fraction(p, 0.02, 0.015)
    assert isinstance(out, np.ndarray)
    for i in (0, 1, 3):
        assert out[i] == kelly_fraction(float(p[i]), 0.02, 0.015)
    assert np.isnan(out[2])


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((1.2, 0.02, 0.01), {}, "win_probability"),
        ((-0.1, 0.02, 0.01), {}, "win_probability"),
        ((0.5, 0.0, 0.01), {}, "avg_win"),
        ((0.5, 0.02, -0.01), {}, "avg_loss"),
        ((0.5, 0.02, float("nan")), {}, "avg_loss"),
        ((0.6, 0.02, 0.01), {"loss_probability": 0.6}, r"\(0, 1\]"),
        ((0.0, 0.02, 0.01), {"loss_probability": 0.0}, r"\(0, 1\]"),
        (("x", 0.02, 0.01), {}, "number"),
        (([0.5, 1.5], 0.02, 0.01), {}, "1 element"),
    ],
)
def test_kelly_fraction_rejects_bad_inputs(args: tuple, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        kelly_fraction(*args, **kwargs)


def test_kelly_errors_are_value_errors() -> None:
    with pytest.raises(ValueError):
        kelly_fraction(2.0, 0.01, 0.01)


def test_growth_rate_is_minus_inf_past_ruin() -> None:
    assert kelly_growth_rate(1 / 0.01, 0.6, 0.01, 0.01) == -math.inf
    assert kelly_growth_rate(0.0, 0.6, 0.01, 0.01) == 0.0


# ------------------------------------------------------------------ kelly_position_size


def test_position_size_seed_call_shape_and_units() -> None:
    pos = kelly_position_size(
        "BTCUSDT",
        0.55,
        0.45,
        0.02,
        0.01,
        fraction=0.25,
        max_leverage=10.0,
        equity=20_000.0,
        price=40_000.0,
    )
    full = 0.55 / 0.01 - 0.45 / 0.02  # 32.5
    assert isinstance(pos, KellyPosition)
    assert pos.symbol == "BTCUSDT"
    assert pos.full_kelly == pytest.approx(full)
    assert pos.exposure == pytest.approx(0.25 * full)  # 8.125 < 10: not capped
    assert not pos.capped and pos.reasons == ()
    assert pos.notional == pytest.approx(20_000 * 8.125)
    assert pos.units == pytest.approx(20_000 * 8.125 / 40_000)
    assert pos.edge == pytest.approx(0.55 * 0.02 - 0.45 * 0.01)
    assert pos.growth_rate == pytest.approx(
        0.55 * math.log(1 + 8.125 * 0.02) + 0.45 * math.log(1 - 8.125 * 0.01)
    )


def test_position_size_caps_at_max_leverage() -> None:
    pos = kelly_position_size("BTCUSDT", 0.65, 0.35, 0.025, 0.012, max_leverage=2.0)
    assert pos.exposure == 2.0 and pos.capped
    assert any("capped" in r for r in pos.reasons)
    assert pos.units is None


def test_position_size_negative_edge_gives_zero() -> None:
    pos = kelly_position_size("BTCUSDT", 0.45, 0.55, 0.01, 0.01, equity=1000, price=10)
    assert pos.exposure == 0.0 and pos.notional == 0.0 and pos.units == 0.0
    assert pos.full_kelly < 0
    assert "no positive edge" in pos.reasons[0]


def test_position_size_fair_bet_gives_zero() -> None:
    assert kelly_position_size("X", 0.5, 0.5, 0.01, 0.01).exposure == 0.0


class _LocalRegime(enum.Enum):
    CRISIS = "crisis"
    VOLATILE = "volatile"


@pytest.mark.parametrize(
    ("regime", "expected"),
    [
        (None, 1.0),
        ("normal", 1.0),
        ("TRENDING", 1.0),
        ("volatile", 0.5),
        ("crisis", 0.0),
        (_LocalRegime.VOLATILE, 0.5),
        (_LocalRegime.CRISIS, 0.0),
    ],
)
def test_position_size_regime_multiplier_from_settings_defaults(
    regime: object, expected: float
) -> None:
    pos = kelly_position_size("BTCUSDT", 0.65, 0.35, 0.025, 0.012, max_leverage=1.0, regime=regime)  # type: ignore[arg-type]
    assert pos.exposure == pytest.approx(expected)
    assert pos.regime_multiplier == expected
    defaults = RiskSettings().regime_limits
    if regime is not None:
        key = regime.value if isinstance(regime, enum.Enum) else str(regime).lower()
        assert expected == defaults[key].exposure_multiplier


def test_position_size_custom_regime_multipliers() -> None:
    settings = RiskSettings(regime_limits={"volatile": {"exposure_multiplier": 0.3}})
    mults = {k: v.exposure_multiplier for k, v in settings.regime_limits.items()}
    pos = kelly_position_size(
        "BTCUSDT",
        0.65,
        0.35,
        0.025,
        0.012,
        regime="volatile",
        regime_multipliers=mults,
        equity=100.0,
    )
    assert pos.exposure == pytest.approx(0.3)
    assert pos.notional == pytest.approx(30.0)
    assert pos.regime == "volatile"


def test_unknown_regime_suggests_close_match() -> None:
    with pytest.raises(ConfigError, match="did you mean 'volatile'"):
        regime_multiplier("volatil")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fraction": 0.0}, "fraction"),
        ({"fraction": 1.5}, "fraction"),
        ({"max_leverage": -1.0}, "max_leverage"),
        ({"equity": -5.0}, "equity"),
        ({"price": 0.0}, "price"),
    ],
)
def test_position_size_rejects_bad_options(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        kelly_position_size("BTCUSDT", 0.6, 0.4, 0.02, 0.01, **kwargs)


def test_position_size_to_dict_round_trip() -> None:
    d = kelly_position_size("ETHUSDT", 0.6, None, 0.02, 0.01, regime="volatile").to_dict()
    assert d["symbol"] == "ETHUSDT" and d["regime"] == "volatile"
    assert isinstance(d["reasons"], list)


# ------------------------------------------------------------------ continuous / multi-asset


def test_continuous_kelly_is_mu_over_sigma_squared() -> None:
    assert continuous_kelly(0.08, 0.4) == pytest.approx(0.5)
    assert continuous_kelly(0.08, 0.4, risk_free=0.02) == pytest.approx(0.375)
    assert continuous_kelly(-0.08, 0.4, max_leverage=0.2) == -0.2


def test_continuous_kelly_is_limit_of_symmetric_binary_kelly() -> None:
    # A +-s bet with p = (1 + mu/s)/2 has mean mu, sd ~ s, and binary x* = mu / s^2 exactly.
    mu, s = 0.001, 0.02
    p = 0.5 * (1 + mu / s)
    assert kelly_fraction(p, s, s) == pytest.approx(mu / s**2, rel=1e-12)
    sd = s * math.sqrt(1 - (mu / s) ** 2)
    assert continuous_kelly(mu, sd) == pytest.approx(mu / s**2, rel=1e-2)


def test_continuous_kelly_rejects_zero_sigma() -> None:
    with pytest.raises(ConfigError, match="sigma"):
        continuous_kelly(0.1, 0.0)


def test_multi_asset_kelly_matches_inverse_covariance() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=(4, 4))
    cov = a @ a.T / 4 + 0.01 * np.eye(4)
    mu = rng.normal(0.01, 0.02, size=4)
    w = multi_asset_kelly(mu, cov, fraction=0.5)
    np.testing.assert_allclose(w.to_numpy(), 0.5 * np.linalg.inv(cov) @ mu, rtol=1e-10)
    assert list(w.index) == [0, 1, 2, 3]


def test_multi_asset_kelly_maximises_gaussian_growth() -> None:
    cov = np.array([[0.04, 0.01, 0.0], [0.01, 0.09, 0.02], [0.0, 0.02, 0.16]])
    mu = np.array([0.01, 0.015, -0.005])
    w = multi_asset_kelly(mu, cov).to_numpy()
    res = optimize.minimize(lambda x: -(x @ mu - 0.5 * x @ cov @ x), np.zeros(3), tol=1e-14)
    np.testing.assert_allclose(w, res.x, atol=1e-6)


def test_multi_asset_kelly_single_asset_equals_continuous() -> None:
    w = multi_asset_kelly(
        pd.Series([0.01], index=["BTC"]), pd.DataFrame([[0.04]], ["BTC"], ["BTC"])
    )
    assert w["BTC"] == pytest.approx(continuous_kelly(0.01, 0.2))


def test_multi_asset_kelly_aligns_names_and_caps_gross_exposure() -> None:
    mu = pd.Series({"BTC": 0.02, "ETH": 0.01})
    cov = pd.DataFrame([[0.09, 0.0], [0.0, 0.04]], index=["ETH", "BTC"], columns=["ETH", "BTC"])
    raw = multi_asset_kelly(mu, cov)
    assert raw["BTC"] == pytest.approx(0.5) and raw["ETH"] == pytest.approx(0.01 / 0.09)
    capped = multi_asset_kelly(mu, cov, max_leverage=0.3)
    assert capped.abs().sum() == pytest.approx(0.3)
    assert capped["BTC"] / capped["ETH"] == pytest.approx(raw["BTC"] / raw["ETH"])


def test_multi_asset_kelly_singular_covariance_is_a_clear_error() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 2))
    frame = pd.DataFrame({"BTC": x[:, 0], "ETH": x[:, 1], "BTC2": 2 * x[:, 0]})
    with pytest.raises(DataError, match=r"singular.*'BTC2'.*shrinkage"):
        multi_asset_kelly(frame.mean(), frame.cov())
    # shrinkage toward the diagonal makes it invertible
    w = multi_asset_kelly(frame.mean(), frame.cov(), shrinkage=0.2)
    assert np.isfinite(w).all()


@pytest.mark.parametrize(
    ("mu", "cov", "match"),
    [
        ([0.1, 0.2], [[1.0]], "2x2"),
        ([0.1], [[np.nan]], "finite"),
        ([0.1, 0.1], [[1.0, 0.5], [0.2, 1.0]], "symmetric"),
        ([], np.zeros((0, 0)), "empty"),
    ],
)
def test_multi_asset_kelly_rejects_bad_inputs(mu: list, cov: object, match: str) -> None:
    with pytest.raises(DataError, match=match):
        multi_asset_kelly(mu, cov)  # type: ignore[arg-type]


# ------------------------------------------------------------------ estimation from trades


def test_inputs_from_trades_hand_computed() -> None:
    trades = pd.DataFrame({"return": [0.02, -0.01, 0.03, -0.01, 0.01, 0.0, 0.04, -0.02]})
    with pytest.warns(DataQualityWarning, match="only 8 trades"):
        est = kelly_inputs_from_trades(trades)
    assert (est.n_trades, est.n_wins, est.n_losses, est.n_flat) == (8, 4, 3, 1)
    assert est.win_probability == pytest.approx(4 / 8)
    assert est.loss_probability == pytest.approx(3 / 8)
    assert est.avg_win == pytest.approx(0.025)
    assert est.avg_loss == pytest.approx(0.04 / 3)
    # flats drop out: p' = 4/7, q' = 3/7
    assert est.kelly_fraction == pytest.approx((4 / 7) / (0.04 / 3) - (3 / 7) / 0.025)
    assert est.mean_return == pytest.approx(0.06 / 8)
    # delta-method SE by hand
    pp, w, lo = 4 / 7, 0.025, 0.04 / 3
    var = (
        (1 / lo + 1 / w) ** 2 * pp * (1 - pp) / 7
        + ((1 - pp) / w**2) ** 2 * np.var([0.02, 0.03, 0.01, 0.04], ddof=1) / 4
        + (pp / lo**2) ** 2 * np.var([0.01, 0.01, 0.02], ddof=1) / 3
    )
    assert est.kelly_std_error == pytest.approx(math.sqrt(var))
    lo_ci, hi_ci = est.win_probability_ci
    assert lo_ci < pp < hi_ci
    assert "8 trades" in est.summary()


def test_wilson_interval_matches_statsmodels() -> None:
    from statsmodels.stats.proportion import proportion_confint

    rets = np.r_[np.full(37, 0.01), np.full(63, -0.01)]
    est = kelly_inputs_from_trades(rets)
    ref = proportion_confint(37, 100, alpha=0.05, method="wilson")
    np.testing.assert_allclose(est.win_probability_ci, ref, rtol=1e-9)


def test_delta_method_std_error_matches_sampling_spread() -> None:
    # Simulate many trade samples from a known distribution; the spread of x* across samples
    # should match the average delta-method SE (within 15%, a loose sampling tolerance).
    rng = np.random.default_rng(11)
    n, reps = 400, 1500
    xs, ses = [], []
    for _ in range(reps):
        win = rng.random(n) < 0.55
        r = np.where(win, rng.exponential(0.02, n), -rng.exponential(0.015, n))
        est = kelly_inputs_from_trades(r)
        xs.append(est.kelly_fraction)
        ses.append(est.kelly_std_error)
    assert np.std(xs) == pytest.approx(np.mean(ses), rel=0.15)


def test_inputs_from_trades_position_size_passthrough() -> None:
    rets = pd.Series(np.r_[np.full(60, 0.02), np.full(40, -0.015)])
    est = kelly_inputs_from_trades(rets)
    pos = est.position_size("BTCUSDT", equity=1_000.0, max_leverage=5.0)
    assert pos.full_kelly == pytest.approx(0.6 / 0.015 - 0.4 / 0.02)
    assert pos.exposure == pytest.approx(min(0.25 * pos.full_kelly, 5.0))


def test_inputs_from_trades_errors() -> None:
    with pytest.raises(DataError, match="did you mean column='return_pct'"):
        kelly_inputs_from_trades(pd.DataFrame({"return_pct": [0.1, -0.1]}))
    with pytest.raises(DataError, match="row 2"):
        kelly_inputs_from_trades(pd.DataFrame({"return": [0.1, np.nan, -0.1]}))
    with pytest.raises(DataError, match="no losing trade"):
        kelly_inputs_from_trades([0.01] * 40)
    with pytest.raises(DataError, match="no winning trade"):
        kelly_inputs_from_trades([-0.01] * 40)
