"""Each fill rule of the engine on hand-made bars, with hand-computed expectations.

Expected values are written as the arithmetic a person would do (units = cash / (price x
(1 + fee)), ...) and compared with a 1e-9 relative tolerance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from bt_helpers import bars, signal

from chimera_lab.backtest import run
from chimera_lab.errors import ConfigError, DataError

REL = 1e-9


def approx(x: float) -> object:
    return pytest.approx(x, rel=REL, abs=1e-9)


def test_signal_at_close_fills_at_next_open_with_fees_on_both_sides() -> None:
    data = bars([100, 101, 102, 103], [100.5, 101.5, 102.5, 103.5])
    res = run(data, signal(data, [1, 1, 0, 0]), initial_capital=10_000, fee_bps=10)
    units = 10_000 / (101 * 1.001)  # all-in at bar 1's open, the fee paid from the same cash
    final = units * 103 * (1 - 0.001)  # sold at bar 3's open, fee on the sale
    assert res.equity.tolist() == [
        approx(10_000),
        approx(units * 101.5),
        approx(units * 102.5),
        approx(final),
    ]
    (trade,) = res.trades.to_dict("records")
    assert trade["entry_time"] == data.index[1] and trade["exit_time"] == data.index[3]
    assert trade["entry_price"] == 101 and trade["exit_price"] == 103
    assert trade["fees"] == approx(units * 101 * 0.001 + units * 103 * 0.001)
    assert trade["pnl"] == approx(final - 10_000)
    assert trade["return"] == approx((final - 10_000) / (units * 101))
    assert trade["bars_held"] == 2 and trade["exit_reason"] == "signal"
    assert res.stats["final_equity"] == approx(final)
    assert res.stats["fees"] == approx(trade["fees"])


def test_open_trade_counts_bars_held_like_a_closed_trade() -> None:
    # Bought at bar 1's open and held at the closes of bars 1, 2, 3. Closed at bar 4's open it
    # is a 3-bar trade; still open at bar 3's close (the last bar), it is a 3-bar trade too.
    data = bars([100, 101, 102, 103, 104], [100.5, 101.5, 102.5, 103.5, 104.5])
    closed = run(data, signal(data, [1, 1, 1, 0, 0]), fee_bps=0).trades.iloc[0]
    assert (closed["exit_reason"], closed["exit_bar"], closed["bars_held"]) == ("signal", 4, 3)
    cut = data.iloc[:4]
    still = run(cut, signal(cut, [1, 1, 1, 1]), fee_bps=0).trades.iloc[0]
    assert (still["exit_reason"], still["exit_bar"], still["bars_held"]) == ("open", 3, 3)


def test_slippage_moves_buys_up_and_sells_down() -> None:
    data = bars([100, 100, 100, 100], [100, 100, 100, 100])
    res = run(data, signal(data, [1, 0, 0, 0]), fee_bps=0, slippage_bps=50)
    trade = res.trades.iloc[0]
    assert trade["entry_price"] == approx(100 * 1.005)
    assert trade["exit_price"] == approx(100 * 0.995)
    # Short side: sells first (lower price), buys back higher.
    res = run(data, signal(data, [-1, 0, 0, 0]), fee_bps=0, slippage_bps=50, allow_short=True)
    trade = res.trades.iloc[0]
    assert trade["side"] == "short"
    assert trade["entry_price"] == approx(100 * 0.995)
    assert trade["exit_price"] == approx(100 * 1.005)
    assert trade["pnl"] < 0


def test_exposure_after_the_fill_equals_target_net_of_costs() -> None:
    data = bars([100, 100, 100], [100, 100, 100])
    res = run(
        data, signal(data, [0.5, 0.5, 0.5]), initial_capital=1_000, fee_bps=20, slippage_bps=10
    )
    units = res.positions.iloc[1]
    # equity after the fill, marked at the open (= close here)
    assert units * 100 == approx(0.5 * res.equity.iloc[1])
    cost = units * 100 * 0.001 + units * 100 * 1.001 * 0.002  # slippage + fee
    assert res.equity.iloc[1] == approx(1_000 - cost)


def test_unchanged_target_is_not_retraded_unless_drift_exceeds_tolerance() -> None:
    data = bars([100, 100, 150, 150, 150], [100, 150, 150, 150, 150])
    target = signal(data, [0.5, 0.5, 0.5, 0.5, 0.5])
    held = run(data, target, fee_bps=0)
    assert len(held.trades) == 1
    assert (
        held.positions.iloc[1:] == held.positions.iloc[1]
    ).all()  # never resized as the price rose 50%
    rebalanced = run(data, target, fee_bps=0, rebalance_tolerance=0.05)
    # At bar 2's open: 500 units x 150 / (50,000 cash + 75,000) = 0.6 > 0.5 + 0.05: trimmed.
    units = rebalanced.positions
    assert units.iloc[2] < units.iloc[1]
    assert units.iloc[2] * 150 == approx(0.5 * rebalanced.equity.iloc[2])
    assert len(rebalanced.trades) == 1  # a resize is part of the same trade
    assert units.iloc[3] == units.iloc[2]  # back within tolerance: left alone


@pytest.mark.parametrize(
    ("bar2", "price", "reason"),
    [
        # (open, high, low, close) of the bar after entry at 100 with SL 5% / TP 10%
        ((99.0, 101.0, 94.0, 96.0), 95.0, "stop_loss"),  # low crosses the stop
        ((101.0, 111.0, 100.0, 105.0), 110.0, "take_profit"),  # high crosses the target
        ((99.0, 111.0, 94.0, 100.0), 95.0, "stop_loss"),  # both inside the bar: the worse one
        ((90.0, 92.0, 88.0, 91.0), 90.0, "stop_loss"),  # gap through the stop: fill at open
        ((112.0, 115.0, 111.0, 113.0), 112.0, "take_profit"),  # gap through the target
    ],
)
def test_long_stop_and_target_intrabar(
    bar2: tuple[float, float, float, float], price: float, reason: str
) -> None:
    o2, h2, l2, c2 = bar2
    data = bars([100, 100, o2, 100], [100, 100, c2, 100], [100, 100, h2, 100], [100, 100, l2, 100])
    res = run(data, signal(data, [1, 1, 1, 1]), fee_bps=0, stop_loss=0.05, take_profit=0.10)
    (trade,) = res.trades.to_dict("records")
    assert trade["exit_reason"] == reason
    assert trade["exit_price"] == approx(price)
    assert trade["exit_bar"] == 2
    # Stopped out and the target is unchanged: no re-entry.
    assert res.positions.iloc[-1] == 0


def test_short_stop_is_above_entry_and_exits_pay_slippage() -> None:
    data = bars(
        [100, 100, 101, 100], [100, 100, 103, 100], [100, 100, 107, 100], [100, 100, 100, 100]
    )
    res = run(
        data,
        signal(data, [-1, -1, -1, -1]),
        allow_short=True,
        fee_bps=0,
        slippage_bps=10,
        stop_loss=0.05,
    )
    (trade,) = res.trades.to_dict("records")
    entry = 100 * 0.999
    assert trade["entry_price"] == approx(entry)
    assert trade["exit_reason"] == "stop_loss"
    assert trade["exit_price"] == approx(entry * 1.05 * 1.001)


def test_stop_out_re_enters_only_when_target_changes() -> None:
    data = bars(
        [100, 100, 99, 99, 99, 99], [100, 100, 99, 99, 99, 99], lows=[100, 100, 90, 99, 99, 99]
    )
    res = run(data, signal(data, [1, 1, 1, 0.5, 0.5, 0.5]), fee_bps=0, stop_loss=0.05)
    assert res.trades["exit_reason"].tolist() == ["stop_loss", "open"]
    assert res.trades["entry_bar"].tolist() == [1, 4]


def test_funding_long_pays_positive_rates_short_receives() -> None:
    # Funding at bar 2's open (price 120) on a 1,000-unit position bought or sold at 100.
    data = bars([100, 100, 120, 120], [100, 120, 120, 120], freq="8h")
    rate = pd.Series([0.001], index=pd.DatetimeIndex([data.index[2]]))
    long = run(data, signal(data, [1, 1, 1, 1]), fee_bps=0, funding=rate)
    assert long.positions.iloc[1] == approx(1_000.0)
    assert long.stats["funding"] == approx(1_000 * 120 * 0.001)  # paid: units x price x rate
    assert long.trades["funding"].iloc[0] == approx(120.0)
    assert long.stats["final_equity"] == approx(100_000 + 1_000 * 20 - 120)
    short = run(data, signal(data, [-1, -1, -1, -1]), fee_bps=0, funding=rate, allow_short=True)
    assert short.positions.iloc[1] == approx(-1_000.0)
    assert short.stats["funding"] == approx(-1_000 * 120 * 0.001)  # received 120
    assert short.trades["funding"].iloc[0] == approx(-120.0)
    assert short.stats["final_equity"] == approx(100_000 - 1_000 * 20 + 120)
    assert short.trades["pnl"].iloc[0] == approx(-20_000 + 120)
    flat = run(data, signal(data, [0, 0, 0, 0]), fee_bps=0, funding=rate)
    assert flat.stats["funding"] == 0


def test_funding_between_bar_opens_is_charged_at_the_next_open() -> None:
    data = bars([100, 100, 110, 100], [100, 100, 110, 100], freq="1D")
    # 08:00 on day 1: charged at day 2's open (110) on the position held through day 1.
    rate = pd.Series([0.01], index=pd.DatetimeIndex([data.index[1] + pd.Timedelta(hours=8)]))
    res = run(data, signal(data, [1, 1, 1, 1]), fee_bps=0, funding=rate)
    assert res.stats["funding"] == approx(res.positions.iloc[1] * 110 * 0.01)


def test_warm_up_bars_are_seen_but_not_traded() -> None:
    data = bars([100, 100, 100, 105, 110], [100, 100, 100, 105, 110])
    res = run(data, signal(data, [1, 1, 1, 1, 1]), fee_bps=0, trade_start=data.index[3])
    assert res.equity.index[0] == data.index[3]
    assert res.equity.iloc[0] == approx(100_000)  # entered at bar 3's open (105), closed at 105
    assert res.trades["entry_bar"].tolist() == [3]
    assert res.returns.iloc[0] == 0
    assert res.stats["n_bars"] == 2
    assert res.equity.iloc[-1] == approx(100_000 * 110 / 105)


def test_negative_targets_are_flat_when_long_only() -> None:
    data = bars([100, 100, 100], [100, 100, 100])
    res = run(data, signal(data, [-1, -1, -1]))
    assert res.trades.empty
    assert (res.signal == 0).all()


def test_nan_targets_are_flat() -> None:
    data = bars([100, 100, 100], [100, 100, 100])
    res = run(data, signal(data, [np.nan, 1, np.nan]))
    assert res.signal.tolist() == [0.0, 1.0, 0.0]


def test_exposure_beyond_leverage_is_an_error_naming_the_bar() -> None:
    data = bars([100, 100, 100], [100, 100, 100])
    with pytest.raises(DataError, match=r"exposure 1\.5 at bar 2024-01-01 00:01"):
        run(data, signal(data, [0, 1.5, 0]))
    assert run(data, signal(data, [0, 1.5, 0]), leverage=2).trades["size"].iloc[0] > 0


def test_misaligned_strategy_output_is_an_error() -> None:
    data = bars([100, 100, 100], [100, 100, 100])
    with pytest.raises(DataError, match="index differs"):
        run(data, lambda d: pd.Series(1.0, index=d.index[:-1]))


def test_bankruptcy_closes_the_position_and_stops_trading() -> None:
    data = bars([100, 100, 60, 60, 60], [100, 100, 40, 60, 60])
    res = run(data, signal(data, [2, 2, 2, 2, 2]), fee_bps=0, leverage=2)
    # 2x long from 100: equity at 40 is 200k*0.4 - 100k... = 2000 units*40 - 100k < 0
    assert res.trades["exit_reason"].tolist() == ["bankrupt"]
    assert res.equity.iloc[2] < 0
    assert res.equity.iloc[3] == res.equity.iloc[2] == res.equity.iloc[4]
    assert (res.positions.iloc[2:] == 0).all()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.assign(low=d["open"] + 1), "low above"),
        (lambda d: d.assign(close=np.nan), "missing"),
        (lambda d: d.tz_localize(None), "tz-aware"),
        (lambda d: d.iloc[::-1], "not strictly increasing"),
        (lambda d: d.iloc[[0, 1, 1]], "drop duplicate timestamps"),
        (lambda d: d.drop(columns="high"), "lacks column"),
    ],
)
def test_bad_bars_raise_data_error(mutate: object, message: str) -> None:
    data = bars([100, 100, 100], [100, 100, 100])
    with pytest.raises(DataError, match=message):
        run(mutate(data), "sma_cross", fast=1, slow=2)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial_capital": 0}, "initial_capital"),
        ({"fee_bps": -1}, "fee_bps"),
        ({"leverage": 0}, "leverage"),
        ({"stop_loss": -0.1}, r"stop_loss must be a fraction of the entry price \(0, 1\)"),
        ({"stop_loss": 1.0}, r"stop_loss .* \(0, 1\)"),
        ({"stop_loss": 1.5}, r"stop_loss .* \(0, 1\)"),
        ({"stop_loss": "2%"}, "stop_loss"),
        ({"take_profit": 0.0}, "take_profit .* > 0"),
        ({"take_profit": float("nan")}, "take_profit"),
        ({"allow_short": "no"}, "allow_short must be True or False"),
        ({"allow_short": 1}, "allow_short must be True or False"),
        ({"trade_start": "2030-01-01"}, "trade_start"),
    ],
)
def test_bad_settings_raise_config_error(kwargs: dict[str, object], message: str) -> None:
    data = bars([100, 100, 100], [100, 100, 100])
    with pytest.raises(ConfigError, match=message):
        run(data, signal(data, [0, 0, 0]), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("trade_start", "message"),
    [("NaT", "trade_start must be a date/time, got NaT"), ("", "trade_start is required")],
)
def test_empty_or_nat_trade_start_is_named_as_such(trade_start: str, message: str) -> None:
    # Regression: these used to fail as "after the last bar" (NaT sorts past every bar).
    data = bars([100, 100, 100], [100, 100, 100])
    with pytest.raises(ConfigError, match=message):
        run(data, signal(data, [0, 0, 0]), trade_start=trade_start)


def test_engine_has_no_look_ahead_truncated_history_gives_the_same_prefix(
    small_ohlcv: pd.DataFrame,
) -> None:
    full = run(small_ohlcv, "sma_cross", fast=5, slow=20, stop_loss=0.002)
    cut = run(small_ohlcv.iloc[:300], "sma_cross", fast=5, slow=20, stop_loss=0.002)
    np.testing.assert_allclose(cut.equity.to_numpy(), full.equity.iloc[:300].to_numpy(), rtol=1e-12)
    closed = cut.trades[cut.trades["exit_reason"] != "open"]
    pd.testing.assert_frame_equal(closed, full.trades.iloc[: len(closed)])


def test_trade_pnl_adds_up_to_the_equity_change(small_ohlcv: pd.DataFrame) -> None:
    res = run(small_ohlcv, "bollinger_reversion", allow_short=True, fee_bps=6, slippage_bps=2)
    assert res.trades["pnl"].sum() == pytest.approx(
        res.stats["final_equity"] - res.stats["initial_capital"], rel=1e-9
    )
    assert res.trades["fees"].sum() == pytest.approx(res.stats["fees"], rel=1e-9)


@pytest.mark.parametrize("unit", ["s", "ms", "us"])
def test_any_index_resolution_gives_the_same_backtest(unit: str) -> None:
    from chimera_lab.data.synthetic import make_ohlcv

    data = make_ohlcv(600, seed=4, timeframe="1h")
    funding_times = pd.date_range("2024-01-01", periods=80, freq="8h", tz="UTC")
    funding = pd.Series(0.0001, index=funding_times)
    want = run(data, "sma_cross", fast=5, slow=20, funding=funding)
    other = data.copy()
    other.index = other.index.as_unit(unit)
    got = run(
        other, "sma_cross", fast=5, slow=20, funding=funding.set_axis(funding_times.as_unit(unit))
    )
    np.testing.assert_array_equal(got.equity.to_numpy(), want.equity.to_numpy())
    for key in ("funding", "max_drawdown_duration", "periods_per_year", "cagr"):
        assert got.stats[key] == want.stats[key]
    assert want.stats["funding"] > 0
