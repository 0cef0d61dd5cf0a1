"""The kelly strategy: sizes come from base trades closed before the bar, via risk.kelly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chimera_lab.backtest import run, strategies
from chimera_lab.backtest.strategies.kelly import kelly_sizes
from chimera_lab.data.synthetic import make_ohlcv
from chimera_lab.errors import ConfigError
from chimera_lab.risk import kelly_inputs_from_trades, kelly_position_size

PARAMS = {
    "base_params": {"fast": 3, "slow": 12},
    "fraction": 0.25,
    "lookback_trades": 15,
    "min_trades": 5,
}


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    # A random walk: the base strategy's trailing edge comes and goes, so sizes vary.
    return make_ohlcv(1_500, seed=3, volatility=0.004)


def test_each_entry_is_sized_from_base_trades_closed_at_or_before_it(data: pd.DataFrame) -> None:
    target = strategies.get("kelly")(data, fee_bps=6.0, **PARAMS)
    direction = np.sign(strategies.sma_cross(data, fast=3, slow=12).clip(lower=0))
    base = run(data, pd.Series(direction, index=data.index), fee_bps=6.0)
    closed = base.trades[base.trades["exit_reason"] != "open"]
    changes = np.flatnonzero(np.diff(direction.to_numpy()) != 0) + 1
    checked = kelly_sized = 0
    for t in changes:
        if direction.iloc[t] == 0:
            assert target.iloc[t] == 0
            continue
        known = closed[closed["exit_bar"] <= t]["return"].to_numpy()[-15:]
        if len(known) < 5:
            want = 0.1  # min_size until min_trades base trades have closed
        elif (known > 0).any() and (known < 0).any():
            est = kelly_inputs_from_trades(known, min_trades=0)
            want = kelly_position_size(
                "", est.win_probability, est.loss_probability, est.avg_win, est.avg_loss,
                fraction=0.25, max_leverage=1.0,
            ).exposure  # fmt: skip
            kelly_sized += 1
        else:
            continue
        assert target.iloc[t] == pytest.approx(want, rel=1e-12), t
        # held unchanged until the direction changes again
        nxt = changes[changes > t]
        end = nxt[0] if nxt.size else len(target)
        assert (target.iloc[t:end] == target.iloc[t]).all()
        checked += 1
    assert checked > 20 and kelly_sized > 10
    assert target[target > 0].nunique() > 3, "sizes should vary with the trade statistics"


def test_kelly_sizes_edge_cases() -> None:
    common = {"fraction": 0.5, "max_leverage": 2.0, "lookback_trades": 3, "min_trades": 2}
    r = np.array([0.01, -0.01, 0.03, 0.02, 0.02, -0.01, -0.02, -0.03])
    sizes = kelly_sizes(r, min_size=0.2, **common)
    assert sizes[0] == 0.2  # one trade < min_trades
    assert sizes[4] == 2.0  # last three all winners: unbounded Kelly, capped
    assert sizes[7] == 0.0  # last three all losers: no edge
    est = kelly_inputs_from_trades(r[1:4], min_trades=0)
    assert sizes[3] == pytest.approx(min(0.5 * est.kelly_fraction, 2.0))


def test_long_only_backtest_sizes_from_long_base_trades_only(data: pd.DataFrame) -> None:
    long_only = run(data, "kelly", **PARAMS)
    assert long_only.params["allow_short"] is False and long_only.params["fee_bps"] == 6.0
    assert (long_only.signal >= 0).all()
    both = run(data, "kelly", allow_short=True, **PARAMS)
    assert both.params["allow_short"] is True
    assert (both.trades["side"] == "short").any()


def test_bad_kelly_parameters() -> None:
    data = make_ohlcv(300, seed=1)
    with pytest.raises(ConfigError, match="itself"):
        run(data, "kelly", base="kelly")
    with pytest.raises(ConfigError, match="fraction"):
        run(data, "kelly", fraction=1.5)
    with pytest.raises(ConfigError, match="min_trades <= lookback_trades"):
        run(data, "kelly", min_trades=60, lookback_trades=50)
    with pytest.raises(ConfigError, match="did you mean"):
        run(data, "kelly", base="sma_crss")
