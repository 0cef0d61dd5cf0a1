"""Risk charts render headless and mark what they claim to."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chimera_lab.data.synthetic import make_ohlcv
from chimera_lab.errors import DataError
from chimera_lab.risk import RegimeDetector, plot_regimes, plot_var_exceedances, rolling_var


def test_plot_regimes_shades_non_normal_runs() -> None:
    bars = make_ohlcv(800, seed=4, timeframe="1d", volatility=0.04)
    labels = RegimeDetector().fit(bars).predict(bars)
    fig = plot_regimes(bars, labels, title="demo")
    ax = fig.axes[0]
    runs = (labels != labels.shift()).cumsum()[labels != "normal"].nunique()
    assert len(ax.patches) == runs  # one axvspan per non-NORMAL run
    assert ax.get_yscale() == "log" and ax.get_title() == "demo"
    with pytest.raises(DataError, match="same index"):
        plot_regimes(bars, labels.iloc[:-1])


def test_plot_var_exceedances_marks_every_exceedance() -> None:
    r = pd.Series(
        np.random.default_rng(1).standard_t(3, 600) * 0.01,
        index=pd.date_range("2024-01-01", periods=600, freq="D", tz="UTC"),
    )
    v = rolling_var(r, 100)
    fig = plot_var_exceedances(
        r, {"historical": v, "parametric": rolling_var(r, 100, "parametric")}
    )
    ax = fig.axes[0]
    marked = ax.collections[0].get_offsets()
    assert len(marked) == int((r < -v).sum())
    assert "exceedance" in ax.get_legend_handles_labels()[1][-1]
    with pytest.raises(DataError):
        plot_var_exceedances(r, {})
