"""detect_lookahead / detect_recursive_bias on leaky and causal test strategies.

Real data: the bundled Binance BTC/USDT 1-minute sample (data/samples/README.md).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import biased_strategies as bs
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chimera_lab.data.synthetic import make_ohlcv
from chimera_lab.errors import ConfigError, DataError
from chimera_lab.validation import BiasReport, detect_lookahead, detect_recursive_bias, early_cuts

SAMPLE = (
    Path(__file__).resolve().parents[2] / "data/samples/btcusdt_1m_binance_20240726_20240825.csv.gz"
)


@pytest.fixture(scope="module")
def btc() -> pd.DataFrame:
    df = pd.read_csv(SAMPLE, index_col="date", parse_dates=["date"])
    df.index = pd.DatetimeIndex(df.index, name="timestamp").as_unit("ns")
    return df.astype("float64")


def test_the_history_bug_is_flagged_on_real_data(btc: pd.DataFrame) -> None:
    report = detect_lookahead(bs.future_peek, btc, n_checks=20)
    assert report.lookahead
    # Hiding the future and shocking it both way catch the leak at every cut point.
    assert {c.cut for c in report.offending} == set(report.cuts)
    ladder = early_cuts(len(btc), len(btc) // 10 - 1)  # keep 2, 4, ..., 4096 bars
    assert ladder == [2**k - 1 for k in range(1, 13)]
    assert len(report.cuts) == 20 + len(ladder)
    assert set(btc.index[ladder]) <= set(report.cuts)
    first = report.first_offending_timestamp
    assert first is not None and first == min(c.first_offending_timestamp for c in report.offending)
    assert report.max_abs_difference == 1.0  # exposures flip between 0 and 1
    # An offending timestamp is never later than its cut, and within the 60-bar horizon of it.
    for check in report.offending:
        assert check.first_offending_timestamp <= check.cut
        assert check.cut - check.first_offending_timestamp < pd.Timedelta(minutes=60)
    assert "LOOK-AHEAD" in report.summary()
    assert report.to_dict()["lookahead"] is True


@pytest.mark.parametrize(
    "strategy",
    [bs.next_bar_sign, bs.global_zscore, bs.centered_ma, partial(bs.future_peek, horizon=1)],
)
def test_other_leaks_are_flagged(btc: pd.DataFrame, strategy: object) -> None:
    report = detect_lookahead(strategy, btc.iloc[:5000], n_checks=8)  # type: ignore[arg-type]
    assert report.lookahead, report.summary()


@pytest.mark.parametrize(
    ("strategy", "params"),
    [
        (bs.sma_cross, {"fast": 10, "slow": 50}),
        (bs.sma_distance, {"window": 30}),
        (bs.momentum, {"lookback": 30}),
        (bs.anchored_to_first_bar, {}),
    ],
)
def test_causal_strategies_are_cleared(
    btc: pd.DataFrame, strategy: object, params: dict[str, int]
) -> None:
    report = detect_lookahead(strategy, btc, n_checks=20, params=params)  # type: ignore[arg-type]
    assert not report.lookahead, report.summary()
    assert report.first_offending_timestamp is None and report.max_abs_difference == 0.0
    assert len(report.checks) == len(report.cuts) * 3  # truncated + two shocks per cut
    assert len(report.cuts) == 20 + 12  # the random cuts and the early ladder
    assert report.passed and not report.errors
    assert "no look-ahead" in report.summary()


def test_report_is_deterministic_and_renders(ohlcv: pd.DataFrame) -> None:
    a = detect_lookahead(bs.future_peek, ohlcv, n_checks=4, params={"threshold": 0.001})
    b = detect_lookahead(bs.future_peek, ohlcv, n_checks=4, params={"threshold": 0.001})
    assert isinstance(a, BiasReport)
    assert a.to_frame().equals(b.to_frame())
    assert "<table>" in a._repr_html_()
    c = detect_lookahead(bs.future_peek, ohlcv, n_checks=4, random_state=1)
    assert a.cuts != c.cuts


@settings(max_examples=15, deadline=None)
@given(horizon=st.integers(1, 30), threshold=st.floats(0.0, 0.003), seed=st.integers(0, 100))
def test_any_future_threshold_leak_is_flagged(horizon: int, threshold: float, seed: int) -> None:
    bars = make_ohlcv(800, seed=seed)
    report = detect_lookahead(
        bs.future_peek, bars, n_checks=3, params={"horizon": horizon, "threshold": threshold}
    )
    assert report.lookahead


@settings(max_examples=15, deadline=None)
@given(window=st.integers(2, 120), seed=st.integers(0, 100))
def test_rolling_window_strategies_are_never_flagged(window: int, seed: int) -> None:
    bars = make_ohlcv(800, seed=seed)
    assert not detect_lookahead(
        bs.sma_distance, bars, n_checks=3, params={"window": window}
    ).lookahead


def test_recursive_warmup_of_a_window_strategy_is_its_window(btc: pd.DataFrame) -> None:
    # sma_distance is continuous: NaN for the first window-1 bars, exact after.
    for window in (5, 30, 240):
        report = detect_recursive_bias(bs.sma_distance, btc, params={"window": window})
        assert report.converged
        assert report.warmup_bars == window - 1
    assert "warm-up" in report.summary()


def test_recursive_warmup_of_a_binary_cross_is_bounded_by_its_slow_window(
    btc: pd.DataFrame,
) -> None:
    report = detect_recursive_bias(bs.sma_cross, btc, params={"fast": 10, "slow": 50})
    assert report.converged and 0 < (report.warmup_bars or 0) <= 49


def test_recursive_state_from_the_first_bar_never_converges(btc: pd.DataFrame) -> None:
    report = detect_recursive_bias(bs.anchored_to_first_bar, btc.iloc[:5000])
    assert not report.converged and report.warmup_bars is None
    assert "never agree" in report.summary()
    assert report.to_dict()["warmup_bars"] is None


def test_ewm_converges_within_tolerance(btc: pd.DataFrame) -> None:
    def ewm_distance(data: pd.DataFrame, span: int = 20) -> pd.Series:
        close = data["close"]
        return close / close.ewm(span=span).mean() - 1.0

    report = detect_recursive_bias(ewm_distance, btc.iloc[:20000], atol=1e-6, rtol=0.0)
    # weights of the missing history decay like (1 - 2/21)^k; relative size ~1e-2 -> 1e-6
    assert report.converged and 50 < (report.warmup_bars or 0) < 200


def test_bad_strategies_and_data_raise_clear_errors(ohlcv: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="must return a pandas Series"):
        detect_lookahead(lambda d: d["close"].to_numpy(), ohlcv)
    with pytest.raises(ConfigError, match="one target exposure per input bar"):
        detect_lookahead(lambda d: d["close"].iloc[1:], ohlcv)
    with pytest.raises(ConfigError, match="ZeroDivisionError"):
        detect_lookahead(lambda d: 1 / 0, ohlcv)
    with pytest.raises(ConfigError, match="numeric exposures"):
        detect_lookahead(lambda d: pd.Series("x", index=d.index), ohlcv)
    with pytest.raises(ConfigError, match="min_history"):
        detect_lookahead(bs.sma_cross, ohlcv, min_history=len(ohlcv))
    with pytest.raises(ConfigError, match="offsets"):
        detect_recursive_bias(bs.sma_cross, ohlcv, offsets=[0])
    with pytest.raises(DataError, match="DataFrame"):
        detect_lookahead(bs.sma_cross, ohlcv["close"])  # type: ignore[arg-type]


def test_strategies_cannot_mutate_the_callers_frame(ohlcv: pd.DataFrame) -> None:
    before = ohlcv.copy()

    def vandal(data: pd.DataFrame) -> pd.Series:
        data["close"] = np.nan
        data["extra"] = 1.0
        return pd.Series(0.0, index=data.index)

    assert not detect_lookahead(vandal, ohlcv, n_checks=2).lookahead
    pd.testing.assert_frame_equal(ohlcv, before)


def test_rounding_ties_are_not_mistaken_for_warmup(btc: pd.DataFrame) -> None:
    # On the real sample, sign(SMA5 - SMA200) ties at a flat stretch where the sign is decided
    # by rounding in pandas' running sums, which differ with the start of the history.
    report = detect_recursive_bias(bs.sign_cross, btc, params={"fast": 5, "slow": 200})
    assert report.converged
    assert report.warmup_bars == 199  # the slow mean's own warm-up, not the late tie
    assert report.tie_timestamps, "expected at least one rounding tie on this sample"
    for ts in report.tie_timestamps:  # each is a genuine tie of the two means
        closes = btc["close"].loc[:ts].iloc[-200:]
        assert abs(closes.iloc[-5:].mean() - closes.mean()) < 1e-9 * closes.iloc[-1]
    assert "tie" in report.summary()


def bfill_sma(data: pd.DataFrame, window: int = 200) -> pd.Series:
    """A leak confined to the first bars: the warm-up NaNs back-filled with a later mean."""
    close = data["close"]
    return (close > close.rolling(window).mean().bfill()).astype(float)


def test_a_leak_in_the_first_bars_is_flagged(btc: pd.DataFrame) -> None:
    # Bars 0..198 see the mean of bars 0..199: only cuts before bar 199 can notice. The random
    # cuts start at a tenth of the data (4320 bars): they never do.
    report = detect_lookahead(bfill_sma, btc)
    assert report.lookahead, report.summary()
    assert report.first_offending_timestamp == btc.index[0]
    flagged = {c.cut for c in report.offending}
    assert flagged and max(flagged) < btc.index[199]
    random_only = detect_lookahead(bfill_sma, btc, include_early=False)
    assert not random_only.lookahead  # what the gate used to conclude


def test_early_cuts_ladder() -> None:
    assert early_cuts(10_000, 100) == [1, 3, 7, 15, 31, 63]
    assert early_cuts(5, 100) == [1, 3]  # never the last bar (nothing after it to hide)
    assert early_cuts(3, 1) == []


def test_a_strategy_that_raises_on_a_hidden_future_is_a_finding(ohlcv: pd.DataFrame) -> None:
    # Runs on the full history, fails when the future is cut away or shocked: not a skip.
    last = float(ohlcv["close"].iloc[-1])

    def needs_the_future(data: pd.DataFrame) -> pd.Series:
        if len(data) < len(ohlcv):
            raise KeyError("tomorrow")
        if data["close"].iloc[-1] < 0.9 * last:  # the future shocked down
            raise ValueError("crash")
        return pd.Series(0.0, index=data.index)

    report = detect_lookahead(needs_the_future, ohlcv, n_checks=4)
    assert not report.lookahead and not report.passed
    assert {c.method for c in report.errors} == {"truncate", "shock x0.5"}
    assert len(report.errors) == 2 * len(report.cuts)
    assert all(
        ("KeyError" if c.method == "truncate" else "ValueError") in (c.error or "")
        for c in report.errors
    )
    assert "RAISED" in report.summary()
    d = report.to_dict()
    assert d["n_errors"] == 2 * len(report.cuts) and d["passed"] is False
    assert "tomorrow" in d["first_error"]
