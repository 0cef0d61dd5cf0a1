"""`chimera var` and `chimera regime` on the bundled real BTC daily sample."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from chimera_lab.cli import main
from chimera_lab.data import load_ohlcv
from chimera_lab.risk import rolling_var, value_at_risk, var_backtest

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


def test_regime_prints_shares_and_current(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "regime", "--csv", str(DAILY))
    assert code == 0, err
    for name in ("normal", "trending", "volatile", "crisis"):
        assert name in out
    assert "current:" in out and "crisis episodes:" in out


def test_regime_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "regime", "--csv", str(DAILY), "--json")
    assert code == 0
    doc = json.loads(out)
    assert sum(doc["shares"].values()) == pytest.approx(1.0)
    assert doc["shares"]["crisis"] <= 0.05
    assert doc["current"]["regime"] in doc["shares"]
    assert "2020-03-12T00:00:00Z" in doc["crisis_episodes"] or any(
        e.startswith("2020-03-1") for e in doc["crisis_episodes"]
    )
