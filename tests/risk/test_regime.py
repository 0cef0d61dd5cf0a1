"""Regime detectors: the estimator contract, rules on constructed paths, limits and shares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from chimera_lab.config import RiskSettings, Settings
from chimera_lab.data import load_ohlcv
from chimera_lab.data.synthetic import make_ohlcv
from chimera_lab.errors import ConfigError, DataError, NotFittedError
from chimera_lab.risk import (
    MarkovRegimeDetector,
    Regime,
    RegimeDetector,
    RegimeLimits,
    regime_limits,
    regime_shares,
)

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


@pytest.fixture(scope="module")
def daily() -> pd.DataFrame:
    # Real Binance BTC/USDT daily bars 2017-08-17..2025-08-26 (bundled sample, MIT).
    return load_ohlcv(SAMPLES / "btcusdt_1d_binance_20170817_20250826.csv")


def _bars_from_closes(closes: np.ndarray, freq: str = "1D") -> pd.DataFrame:
    idx = pd.date_range("2020-01-01", periods=len(closes), freq=freq, tz="UTC", name="timestamp")
    c = np.asarray(closes, dtype=np.float64)
    o = np.r_[c[0], c[:-1]]
    return pd.DataFrame(
        {"open": o, "high": np.maximum(o, c), "low": np.minimum(o, c), "close": c, "volume": 1.0},
        index=idx,
    )


DETECTORS: list[Any] = [
    pytest.param(lambda: RegimeDetector(), id="rules"),
    pytest.param(lambda: MarkovRegimeDetector(k_regimes=2), id="markov2"),
]


@pytest.mark.parametrize("make", DETECTORS)
def test_detector_contract(make: Any, daily: pd.DataFrame) -> None:
    data = daily.iloc[:1200]
    det = make()
    # unfitted
    with pytest.raises(NotFittedError, match="fit"):
        det.predict(data)
    # __init__ stores parameters only; fit returns self and sets *_ attributes
    assert not [k for k in vars(det) if k.endswith("_")]
    assert det.fit(data) is det
    assert [k for k in vars(det) if k.endswith("_")]
    labels = det.predict(data)
    assert labels.index.equals(data.index) and labels.name == "regime"
    assert set(labels) <= set(Regime)
    # deterministic
    again = make().fit(data).predict(data)
    assert labels.equals(again)
    # refit on other data, then back: same as a fresh fit
    det.fit(daily.iloc[1200:2400])
    assert det.fit(data).predict(data).equals(labels)
    # no look-ahead: predictions on truncated history are the prefix of the full predictions
    for cut in (150, 600, 1000, 1199):
        assert det.predict(data.iloc[:cut]).equals(labels.iloc[:cut]), cut
    # parameters round-trip through get_params (scikit-learn style)
    clone = type(det)(**det.get_params())
    assert repr(clone) == repr(det)


def test_flat_market_is_normal() -> None:
    bars = _bars_from_closes(np.full(400, 100.0))
    labels = RegimeDetector().fit(bars).predict(bars)
    assert (labels == Regime.NORMAL).all()


def test_constructed_paths_get_the_expected_regimes() -> None:
    rng = np.random.default_rng(0)
    calm = rng.normal(0.0, 0.01, 500)
    trend = 0.004 + rng.normal(0.0, 0.006, 60)  # steady drift, low volatility
    wild = rng.normal(0.0, 0.05, 60)  # volatility burst, no crash
    crash = np.array([-0.08, -0.10, -0.12])  # fast, deep fall
    r = np.r_[calm, trend, calm[:120], wild, calm[:120], crash, calm[:30]]
    bars = _bars_from_closes(100 * np.exp(np.cumsum(r)))
    det = RegimeDetector().fit(bars)
    labels = det.predict(bars)
    t0 = 500
    assert (labels.iloc[t0 + 40 : t0 + 60] == Regime.TRENDING).mean() > 0.8
    w0 = t0 + 60 + 120
    burst = labels.iloc[w0 + 20 : w0 + 60]
    # a 5%-a-day random burst is VOLATILE, and CRISIS where it happens to fall fast and deep
    assert burst.isin([Regime.VOLATILE, Regime.CRISIS]).all()
    assert (burst == Regime.VOLATILE).mean() > 0.5
    c0 = w0 + 60 + 120
    assert labels.iloc[c0 + 2] == Regime.CRISIS
    assert (labels.iloc[:t0] == Regime.CRISIS).sum() == 0


def test_features_by_hand() -> None:
    closes = np.r_[np.full(100, 100.0), 90.0, 80.0, 70.0, 72.0]
    bars = _bars_from_closes(closes)
    det = RegimeDetector(shock_window_days=3, drawdown_window_days=90).fit(bars)
    f = det.features(bars)
    assert f["fall"].iloc[102] == pytest.approx(70 / 100 - 1)
    assert f["drawdown"].iloc[103] == pytest.approx(72 / 100 - 1)
    r = np.diff(np.log(closes))
    assert f["vol"].iloc[103] == pytest.approx(np.sqrt(np.mean(r[-20:] ** 2) * 365))
    assert list(f.columns) == [
        "log_return",
        "vol",
        "vol_percentile",
        "shock_vol_percentile",
        "fall",
        "drawdown",
        "trend_z",
    ]


def test_hourly_windows_are_scaled_from_days() -> None:
    bars = make_ohlcv(2_000, seed=3, timeframe="1h")
    det = RegimeDetector().fit(bars)
    assert det.bars_per_day_ == 24.0 and det.timeframe_ == "1h"
    assert det.windows_["vol"] == 480 and det.windows_["shock"] == 72


def test_predicting_another_timeframe_is_an_error() -> None:
    det = RegimeDetector().fit(make_ohlcv(500, seed=1, timeframe="1h"))
    with pytest.raises(DataError, match="fit it on this timeframe"):
        det.predict(make_ohlcv(500, seed=1, timeframe="1d"))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"crisis_fall": 1.5}, "crisis_fall"),
        ({"vol_window_days": 0}, "vol_window_days"),
        ({"volatile_percentile": 0.0}, "volatile_percentile"),
        ({"min_percentile_days": 400}, "min_percentile_days"),
    ],
)
def test_bad_parameters_fail_at_fit(kwargs: dict, match: str) -> None:
    det = RegimeDetector(**kwargs)  # __init__ does not validate (scikit-learn convention)
    with pytest.raises(ConfigError, match=match):
        det.fit(make_ohlcv(300, seed=1))


def test_bad_data_is_rejected(daily: pd.DataFrame) -> None:
    with pytest.raises(DataError):
        RegimeDetector().fit(daily[["close"]])
    with pytest.raises(DataError, match="OHLCV DataFrame"):
        RegimeDetector().fit(daily["close"])  # type: ignore[arg-type]


def test_markov_orders_states_by_variance_and_probabilities_sum_to_one() -> None:
    rng = np.random.default_rng(5)
    r = np.r_[rng.normal(0, 0.01, 400), rng.normal(0, 0.05, 200), rng.normal(0, 0.01, 400)]
    bars = _bars_from_closes(100 * np.exp(np.cumsum(r)))
    det = MarkovRegimeDetector(k_regimes=2).fit(bars)
    assert sorted(det.state_regimes_) == sorted([Regime.NORMAL, Regime.VOLATILE])
    hi = int(np.argmax(det.state_variances_))
    assert det.state_regimes_[hi] == Regime.VOLATILE
    assert np.sqrt(det.state_variances_[hi]) == pytest.approx(5.0, rel=0.15)  # percent
    proba = det.predict_proba(bars)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(det.transition_matrix_.sum(axis=1), 1.0, rtol=1e-12)
    labels = det.predict(bars)
    assert (labels.iloc[450:600] == Regime.VOLATILE).mean() > 0.9
    assert (labels.iloc[50:400] == Regime.NORMAL).mean() > 0.9


@pytest.mark.slow
def test_markov_three_states_label_crashes_crisis(daily: pd.DataFrame) -> None:
    det = MarkovRegimeDetector(k_regimes=3).fit(daily)
    labels = det.predict(daily)
    for day in ("2020-03-12", "2021-05-19", "2022-11-09"):
        assert labels.loc[pd.Timestamp(day, tz="UTC")] == Regime.CRISIS


def test_markov_parameter_checks() -> None:
    with pytest.raises(ConfigError, match="k_regimes"):
        MarkovRegimeDetector(k_regimes=4).fit(make_ohlcv(300, seed=1))
    with pytest.raises(DataError, match="constant"):
        MarkovRegimeDetector().fit(_bars_from_closes(np.full(200, 5.0)))


def test_regime_limits_follow_settings() -> None:
    limits = regime_limits()
    assert limits[Regime.CRISIS] == RegimeLimits(0.0, 0.5, 0.02)
    assert limits[Regime.VOLATILE].exposure_multiplier == 0.5
    custom = Settings(
        _env_file=None,
        risk={
            "regime_limits": {
                "volatile": {"exposure_multiplier": 0.3, "max_leverage": 0.8, "var_limit": 0.01}
            }
        },
    )
    assert regime_limits(custom)[Regime.VOLATILE] == RegimeLimits(0.3, 0.8, 0.01)
    assert regime_limits(RiskSettings())[Regime.NORMAL].max_leverage == 2.0
    with pytest.raises(ConfigError):
        regime_limits("nope")  # type: ignore[arg-type]


def test_regime_is_a_string_enum() -> None:
    assert Regime.CRISIS == "crisis" and Regime("volatile") is Regime.VOLATILE
    shares = regime_shares(pd.Series([Regime.CRISIS, Regime.NORMAL]))
    assert shares.to_dict() == {"normal": 0.5, "trending": 0.0, "volatile": 0.0, "crisis": 0.5}
    with pytest.raises(DataError):
        regime_shares(pd.Series([], dtype=object))
