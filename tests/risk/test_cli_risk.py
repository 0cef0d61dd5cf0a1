"""`chimera var` and `chimera regime` on the bundled real BTC daily sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chimera_lab.cli import main

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


def test_var_json_is_one_document_with_every_method(capsys: pytest.CaptureFixture[str]) -> None:
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
        "--backtest",
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["horizon"] == 5 and doc["window"] == 500 and doc["confidence"] == 0.99
    assert set(doc["var"]) == {"historical", "parametric", "monte_carlo"}
    for res in doc["var"].values():
        assert 0 < res["var"] < res["cvar"] < 1
    bt = doc["backtest"]["methods"]["historical"]
    assert bt["n_obs"] == 2931 - 500
    assert bt["basel_zone"] in {"green", "yellow", "red"}
    assert doc["first"] == "2017-08-17T00:00:00Z"


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
