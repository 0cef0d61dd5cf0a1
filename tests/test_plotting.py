"""plot_ohlcv: candle widths follow the bar spacing (headless, Agg)."""

from __future__ import annotations

import matplotlib
import pytest

from chimera_lab.data.synthetic import make_ohlcv
from chimera_lab.plotting import plot_ohlcv

matplotlib.use("Agg")


@pytest.mark.parametrize(("timeframe", "days"), [("1m", 1 / 1440), ("1h", 1 / 24), ("1d", 1.0)])
def test_candle_width_is_seven_tenths_of_the_median_bar_spacing(
    timeframe: str, days: float
) -> None:
    bars = make_ohlcv(40, seed=3, timeframe=timeframe)
    bars = bars.drop(bars.index[10:15])  # a gap does not widen the candles
    fig = plot_ohlcv(bars)
    price, volume = fig.axes
    widths = {round(p.get_width(), 12) for ax in (price, volume) for p in ax.patches}
    assert widths == {round(0.7 * days, 12)}
    assert len(price.patches) == len(volume.patches) == 35


def test_a_single_bar_gets_a_one_minute_candle() -> None:
    fig = plot_ohlcv(make_ohlcv(1, seed=3, timeframe="1d"), volume=False)
    (ax,) = fig.axes
    assert [round(p.get_width(), 12) for p in ax.patches] == [round(0.7 / 1440, 12)]
