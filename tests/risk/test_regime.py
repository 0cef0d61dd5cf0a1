"""Regime detectors: the estimator contract, rules on constructed paths, limits and shares."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from chimera_lab.config import RiskSettings, Settings
from chimera_lab.data import load_ohlcv
from chimera_lab.data.synthetic import make_ohlcv
from chimera_lab.errors import ConfigError, DataError, DataQualityWarning, NotFittedError
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
    pytest.param(lambda: RegimeDetector(), 1200, id="rules"),
    # out-of-sample Markov labels: expanding-window refits every 200 bars from bar 250
    pytest.param(
        lambda: MarkovRegimeDetector(k_regimes=2, refit_every=200, min_train_bars=250),
        700,
        id="markov2-expanding",
    ),
]


@pytest.mark.parametrize(("make", "n"), DETECTORS)
def test_detector_contract(make: Any, n: int, daily: pd.DataFrame) -> None:
    data = daily.iloc[:n]
    det = make()
    # unfitted
    with pytest.raises(NotFittedError, match="fit"):
        det.predict(data)
    # __init__ stores parameters only; fit returns self and sets *_ attributes
    assert not [k for k in vars(det) if k.endswith("_")]
    assert det.fit(data) is det
    assert [k for k in vars(det) if k.endswith("_")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)  # warm-up shares, checked elsewhere
        labels = det.predict(data)
        assert labels.index.equals(data.index) and labels.name == "regime"
        assert set(labels.dropna()) <= set(Regime) and labels.notna().mean() > 0.5
        # deterministic
        assert labels.equals(make().fit(data).predict(data))
        # no look-ahead, the strict form: a detector fitted *and* run on the history up to a
        # cut gives the prefix of the labels computed on the full history
        cuts = (150, 600, 1000, 1199) if n == 1200 else (300, 451, 699)
        for cut in cuts:
            part = make().fit(data.iloc[:cut]).predict(data.iloc[:cut])
            assert part.equals(labels.iloc[:cut]), cut
    # parameters round-trip through get_params (scikit-learn style)
    clone = type(det)(**det.get_params())
    assert repr(clone) == repr(det)


def test_markov_in_sample_labels_look_ahead_through_the_parameters(daily: pd.DataFrame) -> None:
    # The default Markov detector fits on the whole sample: refitting on a truncated history
    # changes past labels, which is why it is documented as in-sample and why
    # refit_every exists. (With the parameters held fixed, the filter alone is causal.)
    data = daily.iloc[:700]
    full = MarkovRegimeDetector().fit(data)
    labels = full.predict(data)
    assert full.predict(data.iloc[:400]).equals(labels.iloc[:400])  # same parameters: causal
    refit = MarkovRegimeDetector().fit(data.iloc[:400]).predict(data.iloc[:400])
    assert not refit.equals(labels.iloc[:400])
    assert MarkovRegimeDetector().in_sample
    assert not MarkovRegimeDetector(refit_every=50).in_sample


def test_markov_expanding_labels_use_the_latest_fit_on_data_up_to_the_refit_bar(
    daily: pd.DataFrame,
) -> None:
    from statsmodels.tsa.regime_switching.markov_regression import MarkovRegression

    data = daily.iloc[:560]
    det = MarkovRegimeDetector(refit_every=150, min_train_bars=250).fit(data)
    proba = det.predict_proba(data)
    assert proba.iloc[:250].isna().all().all() and proba.iloc[250:].notna().all().all()
    assert list(proba.columns) == ["normal", "volatile"]
    # bar 480 is labelled by the fit at bar 400 (returns of bars 1..400), filtered to bar 480
    r = np.diff(np.log(data["close"].to_numpy())) * 100
    res = MarkovRegression(r[:400], k_regimes=2, trend="c", switching_variance=True).fit(
        disp=False, em_iter=50, search_reps=0
    )
    model = MarkovRegression(r[:480], k_regimes=2, trend="c", switching_variance=True)
    filt = np.asarray(model.filter(res.params).filtered_marginal_probabilities)
    filt = filt if filt.shape[0] == 480 else filt.T
    names = list(model.param_names)
    calm = int(np.argmin([res.params[names.index(f"sigma2[{i}]")] for i in range(2)]))
    assert proba.iloc[480]["normal"] == pytest.approx(filt[479, calm], abs=1e-9)
    with pytest.warns(DataQualityWarning, match=r"250 of 560 bars .*\(min_train_bars=250\)"):
        labels = det.predict(data)
    assert labels.iloc[:250].isna().all()
    assert labels.iloc[480] == (Regime.NORMAL if filt[479, calm] >= 0.5 else Regime.VOLATILE)


def test_markov_refit_parameters_are_checked() -> None:
    bars = make_ohlcv(300, seed=1)
    for kwargs, match in (
        ({"refit_every": 0}, "refit_every"),
        ({"refit_every": 2.5}, "refit_every"),
        ({"refit_every": 10, "min_train_bars": 20}, "min_train_bars"),
    ):
        with pytest.raises(ConfigError, match=match):
            MarkovRegimeDetector(**kwargs).fit(bars)  # type: ignore[arg-type]


def test_flat_market_is_normal_after_the_warm_up() -> None:
    bars = _bars_from_closes(np.full(400, 100.0))
    det = RegimeDetector().fit(bars)
    with pytest.warns(DataQualityWarning, match="79 of 400 bars"):
        labels = det.predict(bars)
    assert labels.iloc[: det.warmup_bars_].isna().all()
    assert (labels.iloc[det.warmup_bars_ :] == Regime.NORMAL).all()


@pytest.mark.parametrize(
    ("timeframe", "kwargs"),
    [
        ("1d", {}),
        ("1d", {"trend_window_days": 120}),
        ("1h", {"vol_window_days": 5, "min_percentile_days": 10, "percentile_window_days": 20}),
        ("1h", {"shock_window_days": 8, "vol_window_days": 2, "min_percentile_days": 3}),
    ],
)
def test_warm_up_bars_have_no_label(timeframe: str, kwargs: dict[str, float]) -> None:
    bars = make_ohlcv(1_600, seed=2, timeframe=timeframe, volatility=0.02)
    det = RegimeDetector(**kwargs).fit(bars)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        labels = det.predict(bars)
    features = det.features(bars)
    defined = features.drop(columns=["log_return", "vol"]).notna().all(axis=1)
    # warmup_bars_ is where the first label is; from there every bar has one
    assert int(np.flatnonzero(defined.to_numpy())[0]) == det.warmup_bars_
    assert labels.isna().to_numpy().tolist() == (~defined).to_numpy().tolist()
    assert labels.iloc[: det.warmup_bars_].isna().all()
    assert labels.iloc[det.warmup_bars_ :].notna().all()


def test_too_short_a_history_warns_with_bars_needed_and_given(samples_dir: Path) -> None:
    # 30 days of 1-minute bars: the default windows (60 days of percentile history on top of
    # 20 days of volatility) cannot be computed; the 5 Aug 2024 crash is not called NORMAL.
    bars = load_ohlcv(samples_dir / "btcusdt_1m_binance_20240726_20240825.csv.gz")
    det = RegimeDetector().fit(bars)
    msg = r"43,209 of 43,209 bars \(100.0%\) have no regime label: the first label needs 115,200"
    with pytest.warns(DataQualityWarning, match=msg):
        labels = det.predict(bars)
    assert labels.isna().all()
    assert labels.loc["2024-08-05"].isna().all()
    shares = regime_shares(labels)
    assert shares["warm_up"] == 1.0 and shares["normal"] == 0.0
    # a long enough history has no warning (warnings are errors in this suite)
    short = RegimeDetector(
        vol_window_days=0.5,
        shock_window_days=0.5,
        min_percentile_days=2,
        percentile_window_days=10,
        trend_window_days=2,
    )
    assert short.fit(bars).predict(bars).loc["2024-08-05"].notna().all()


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
    assert shares.to_dict() == {
        "normal": 0.5,
        "trending": 0.0,
        "volatile": 0.0,
        "crisis": 0.5,
        "warm_up": 0.0,
    }
    with_gaps = regime_shares(pd.Series([None, "crisis", np.nan, Regime.NORMAL], dtype=object))
    assert with_gaps["warm_up"] == 0.5 and with_gaps.sum() == 1.0
    with pytest.raises(DataError):
        regime_shares(pd.Series([], dtype=object))
