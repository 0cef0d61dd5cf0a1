"""The daily risk report: its numbers against chimera_lab.risk, and the shipped spec on a store.

Data: the bundled Binance BTC/USDT daily and 1-minute samples (data/samples/README.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from chimera_lab.config import Settings
from chimera_lab.pipelines import load_bars, load_spec, run_pipeline
from chimera_lab.pipelines.daily_risk import risk_snapshot

REPO = Path(__file__).resolve().parents[2]


def test_risk_snapshot_composes_the_risk_toolkit(tmp_path: Path) -> None:
    from chimera_lab.risk import RegimeDetector, rolling_var, value_at_risk, var_backtest

    bars = load_bars(data_path="btcusdt_1d", lookback="1500D")
    settings = Settings(_env_file=None)
    snap = risk_snapshot(bars, confidence=0.99, window_bars=250, settings=settings)
    returns = bars["close"].pct_change().iloc[1:]
    assert snap.as_of == bars.index[-1] and snap.window_bars == 250
    for method in ("historical", "parametric", "monte_carlo"):
        ref = value_at_risk(returns.iloc[-250:], method=method, confidence=0.99, seed=0)
        assert snap.var_table.loc[method, "var"] == pytest.approx(ref.var, rel=1e-12)
        bt = var_backtest(returns, rolling_var(returns, 250, method, 0.99, seed=0), 0.99)
        assert snap.coverage.loc[method, "exceedances"] == bt.n_exceedances
    labels = RegimeDetector().fit(bars).predict(bars)
    assert snap.regime == labels.iloc[-1]
    assert (labels.loc[snap.regime_since :] == labels.iloc[-1]).all()
    assert snap.regime_shares.sum() == pytest.approx(1.0)
    assert snap.limits == settings.risk.regime_limits[snap.regime].model_dump()
    snap.write(tmp_path)
    summary = json.loads((tmp_path / "risk_summary.json").read_text())
    assert summary["regime"] == snap.regime and set(summary["var"]) == {
        "historical",
        "parametric",
        "monte_carlo",
    }
    assert "VaR(99%)" in snap.summary()
    # Daily bars: the Basel zone over the last 250 observations is shown, with its counts.
    assert set(snap.coverage["basel_obs"]) == {250}
    assert snap.coverage.loc["monte_carlo", "basel"] == bt.basel_zone  # bt: the last method


def test_shipped_daily_risk_spec_runs_on_a_store(tmp_path: Path, dask_client: Any) -> None:
    from chimera_lab.data import Store
    from chimera_lab.data.samples import import_sample

    store_path = tmp_path / "bars.duckdb"
    import_sample(Store(str(store_path)), "btcusdt_1m")
    spec = load_spec(REPO / "pipelines" / "daily_risk.yaml")
    assert spec.data is not None and spec.data.store is None  # the shipped spec reads the env
    spec = spec.model_copy(update={"data": spec.data.model_copy(update={"store": str(store_path)})})
    result = run_pipeline(spec, runs_dir=tmp_path / "runs", client=dask_client, progress=False)
    assert result.ok, result.failed_tasks
    run = result.run_dir
    assert (run / "risk.html").is_file() and (run / "risk.ipynb").is_file()
    summary = json.loads((run / "risk" / "risk_summary.json").read_text())
    # 30 days of 1-minute bars, aggregated to hours inside the store.
    regimes = pd.read_csv(run / "risk" / "regimes.csv")
    assert result.manifest["data"]["n_bars"] == len(regimes)
    assert summary["as_of"] == "2024-08-25T14:00:00Z"
    assert summary["window_bars"] == (result.manifest["data"]["n_bars"] - 1) // 3
    # 30 days of hours are too few for the regime detector: the regime is unknown.
    assert summary["regime"] == "warm_up"
    # Hourly bars: no Basel traffic light, a verdict per method.
    assert all("basel" not in row and row["verdict"] for row in summary["coverage"].values())


def test_too_little_history_for_a_regime_is_warm_up_with_normal_limits() -> None:
    from chimera_lab.errors import DataQualityWarning
    from chimera_lab.risk import Regime, regime_limits

    bars = load_bars(data_path="btcusdt_1m", resample="1h")
    settings = Settings(_env_file=None)
    with pytest.warns(DataQualityWarning, match="no regime label"):
        snap = risk_snapshot(bars, window_bars=100, settings=settings)
    assert snap.regime == "warm_up" and snap.regime_since == bars.index[0]
    normal = regime_limits(settings)[Regime.NORMAL]
    assert snap.limits == {
        "exposure_multiplier": normal.exposure_multiplier,
        "max_leverage": normal.max_leverage,
        "var_limit": normal.var_limit,
    }
    assert snap.regime_shares["warm_up"] == 1.0
    assert "basel" not in snap.coverage.columns and "WARM_UP" in snap.summary()
