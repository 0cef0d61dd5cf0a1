"""`chimera var` and `chimera regime` on the bundled real BTC daily sample."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chimera_lab.cli import main
from chimera_lab.data import load_ohlcv
from chimera_lab.errors import DataQualityWarning
from chimera_lab.risk import (
    MarkovRegimeDetector,
    Regime,
    RegimeDetector,
    regime_shares,
    rolling_var,
    value_at_risk,
    var_backtest,
)

DAILY = (
    Path(__file__).resolve().parents[2]
    / "data"
    / "samples"
    / "btcusdt_1d_binance_20170817_20250826.csv"
)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_var_backtest_prints_a_coverage_table_for_all_three_methods(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "var", "--csv", str(DAILY), "--window", "250", "--backtest")
    assert code == 0, err
    assert "VaR at 99.00%, horizon 1 bar, from the last 250 returns" in out
    table = out.split("Coverage of rolling 1-bar VaR forecasts")[1]
    for method in ("historical", "parametric", "monte_carlo"):
        assert method in table
    assert "Kupiec p" in table and "Christ. p" in table and "Basel" in table
    assert "refitted every 12 bars" in out


@pytest.fixture(scope="module")
def daily_returns() -> pd.Series:
    # What the CLI computes from the file: close-to-close simple returns.
    bars = load_ohlcv(DAILY)
    return bars["close"].pct_change().iloc[1:]


def test_var_json_equals_the_library_on_the_same_returns(
    capsys: pytest.CaptureFixture[str], daily_returns: pd.Series
) -> None:
    code, out, _ = run(
        capsys,
        "var",
        "--csv",
        str(DAILY),
        "--json",
        "--horizon",
        "5",
        "--window",
        "500",
        "--n-sims",
        "20000",
        "--seed",
        "3",
        "--backtest",
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["horizon"] == 5 and doc["window"] == 500 and doc["confidence"] == 0.99
    assert doc["first"] == "2017-08-17T00:00:00Z" and doc["bars"] == 2932
    assert set(doc["var"]) == {"historical", "parametric", "monte_carlo"}
    sample = daily_returns.iloc[-500:]
    for method, got in doc["var"].items():
        kw = {"n_sims": 20_000, "seed": 3} if method == "monte_carlo" else {}
        want = value_at_risk(sample, method=method, confidence=0.99, horizon=5, **kw)
        assert got["var"] == pytest.approx(want.var, rel=1e-12), method
        assert got["cvar"] == pytest.approx(want.cvar, rel=1e-12), method
        assert got["n_obs"] == want.n_obs == 500
    # the coverage tests: rolling one-bar forecasts from the 500 returns before each bar
    every = doc["backtest"]["monte_carlo_refit_every"]
    assert every == 25
    for method, got in doc["backtest"]["methods"].items():
        kw = {"n_sims": 10_000, "refit_every": every, "seed": 3}
        forecasts = rolling_var(daily_returns, 500, method, 0.99, **kw)
        want = var_backtest(daily_returns, forecasts, 0.99).to_dict()
        assert got["n_obs"] == want["n_obs"] == 2931 - 500
        for key in ("n_exceedances", "exceedance_dates", "basel_zone", "basel_exceedances"):
            assert got[key] == want[key], (method, key)
        for key in ("kupiec_lr", "kupiec_pvalue", "christoffersen_pvalue", "cc_pvalue"):
            assert got[key] == pytest.approx(want[key], rel=1e-9), (method, key)


def test_var_single_method_and_bad_window(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "var", "--csv", str(DAILY), "--method", "parametric", "--cornish-fisher"
    )
    assert code == 0 and "Cornish-Fisher" in out and "historical" not in out
    code, _, err = run(capsys, "var", "--csv", str(DAILY), "--window", "5")
    assert code == 2 and err.startswith("error:") and "--window" in err


def test_var_needs_a_source(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "var")
    assert code == 2 and "--csv" in err


CRISIS_EPISODES = [  # first day of each run of CRISIS days on the daily sample (defaults)
    "2017-12-22", "2017-12-30", "2018-01-16", "2018-02-05", "2018-11-19", "2018-11-24",
    "2018-11-26", "2019-07-16", "2019-09-24", "2020-03-09", "2020-03-12", "2021-01-21",
    "2021-05-12", "2021-05-14", "2021-05-19", "2021-05-21", "2021-05-23", "2022-01-21",
    "2022-05-09", "2022-06-13", "2022-06-18", "2022-08-19", "2022-11-08", "2024-08-05",
    "2025-02-26",
]  # fmt: skip


def test_regime_prints_shares_warm_up_and_current(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "regime", "--csv", str(DAILY))
    assert code == 0, err
    assert err == ""  # 79 warm-up bars of 2,932 (2.7%) are below the warning level
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if "%" in line}
    assert rows["normal"] == ["75.6%", "2,217"] and rows["crisis"] == ["1.5%", "43"]
    assert rows["warm-up"] == ["2.7%", "79"]
    assert "current: normal since 2025-07-23 00:00 (35 bars)" in out
    assert "crisis episodes: 25 (most recent: 2022-06-18, 2022-08-19, 2022-11-08, " in out


def test_regime_json_equals_the_detector_on_the_same_bars(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "regime", "--csv", str(DAILY), "--json")
    assert code == 0
    doc = json.loads(out)
    labels = RegimeDetector().fit(load_ohlcv(DAILY)).predict(load_ohlcv(DAILY))
    assert doc["shares"] == pytest.approx(regime_shares(labels).to_dict(), rel=1e-12)
    assert sum(doc["shares"].values()) == pytest.approx(1.0)
    assert doc["bars_per_regime"] == {
        "normal": 2217, "trending": 101, "volatile": 492, "crisis": 43, "warm_up": 79
    }  # fmt: skip
    assert doc["warm_up_bars"] == int(labels.isna().sum()) == 79
    # the exact crisis episodes: starts of the runs of CRISIS labels
    crisis = (labels == Regime.CRISIS).to_numpy()
    starts = labels.index[crisis & ~np.r_[False, crisis[:-1]]]
    assert [e[:10] for e in doc["crisis_episodes"]] == [f"{t:%Y-%m-%d}" for t in starts]
    assert [e[:10] for e in doc["crisis_episodes"]] == CRISIS_EPISODES
    assert doc["current"] == {
        "regime": "normal",
        "since": "2025-07-23T00:00:00Z",
        "bars": 35,
        "limits": {"exposure_multiplier": 1.0, "max_leverage": 2.0, "var_limit": 0.05},
    }
    assert doc["parameters"].startswith("rules: each label uses data up to its bar only")


def test_regime_on_too_short_a_history_shows_warm_up_not_normal(
    capsys: pytest.CaptureFixture[str], samples_dir: Path
) -> None:
    minute = samples_dir / "btcusdt_1m_binance_20240726_20240825.csv.gz"
    code, out, err = run(capsys, "regime", "--csv", str(minute))
    assert code == 0
    assert err.startswith("warning: RegimeDetector: 43,209 of 43,209 bars (100.0%) have no regime")
    assert "the first label needs 115,200 bars of history" in err
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if "%" in line}
    assert rows["normal"] == ["0.0%", "0"] and rows["warm-up"] == ["100.0%", "43,209"]
    assert "current: warm-up (no label: the history is too short)" in out
    code, out, _ = run(capsys, "regime", "--csv", str(minute), "--json")
    doc = json.loads(out)
    assert doc["shares"]["warm_up"] == 1.0 and doc["current"]["regime"] is None
    assert doc["warnings"][0].startswith("RegimeDetector: 43,209 of 43,209 bars")


def test_regime_markov_says_in_sample_and_refits_out_of_sample(
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = ["regime", "--csv", str(DAILY), "--end", "2019-05-31", "--detector", "markov"]
    code, out, err = run(capsys, *base)
    assert code == 0, err
    assert "labels: in-sample: fitted on all bars, so a label at t depends on later data" in out
    code, out, err = run(capsys, *base, "--refit-every", "200", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["parameters"].startswith("out-of-sample: expanding-window refit every 200 bars")
    assert doc["warm_up_bars"] == 250  # bars before the first fit have no label
    bars = load_ohlcv(DAILY).loc[:"2019-05-31"]
    det = MarkovRegimeDetector(refit_every=200, min_train_bars=250).fit(bars)
    with pytest.warns(DataQualityWarning):  # 250 of 652 bars without a label
        labels = det.predict(bars)
    assert doc["shares"] == pytest.approx(regime_shares(labels).to_dict(), rel=1e-12)
    code, _, err = run(capsys, "regime", "--csv", str(DAILY), "--refit-every", "5")
    assert code == 2 and "--refit-every" in err
