"""The kelly strategy: sizes come from base trades closed before the bar, via risk.kelly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chimera_lab.backtest import run, strategies
from chimera_lab.backtest.strategies.kelly import kelly_sizes
from chimera_lab.config import RiskSettings
from chimera_lab.data.synthetic import make_ohlcv
from chimera_lab.errors import ConfigError, DataError
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


def _kelly_sizes_reference(r: np.ndarray, **kw: float) -> np.ndarray:
    # The obvious per-trade version: the risk toolkit's estimate and sizing on each window.
    out = np.empty(r.size)
    for k in range(r.size):
        window = r[max(0, k - int(kw["lookback_trades"]) + 1) : k + 1]
        if window.size < kw["min_trades"]:
            out[k] = kw["min_size"]
        elif not (window > 0).any():
            out[k] = 0.0
        elif not (window < 0).any():
            out[k] = kw["max_leverage"]
        else:
            est = kelly_inputs_from_trades(window, min_trades=0)
            pos = est.position_size("", fraction=kw["fraction"], max_leverage=kw["max_leverage"])
            out[k] = pos.exposure
    return out


@pytest.mark.parametrize("seed", range(6))
def test_kelly_sizes_match_the_per_trade_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    r = rng.normal(rng.normal(0.0, 0.003), 0.02, n)
    r[rng.random(n) < 0.05] = 0.0  # flat trades count in p and q's denominator
    lookback = int(rng.integers(2, 80))
    kw = {
        "fraction": float(rng.choice([0.25, 0.5, 1.0])),
        "max_leverage": float(rng.choice([0.5, 1.0, 3.0])),
        "lookback_trades": lookback,
        "min_trades": int(rng.integers(2, lookback + 1)),
        "min_size": 0.1,
    }
    got = kelly_sizes(r, **kw)  # type: ignore[arg-type]
    # x* = p/L - q/W cancels: its absolute error is set by the ulps of p/L (~50 here), so
    # sums taken in another order agree to 1e-12 relative or a few 1e-15 absolute.
    np.testing.assert_allclose(got, _kelly_sizes_reference(r, **kw), rtol=1e-12, atol=1e-14)
    with pytest.raises(DataError, match="not finite"):
        kelly_sizes(np.r_[r, np.nan], **kw)  # type: ignore[arg-type]


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


# ------------------------------------------------------------------ the risk overlay

LOOSE = {"max_exposure": 10.0, "max_leverage": 10.0, "max_order_notional": 1e12}
RISK_KW = {
    "base_params": {"fast": 5, "slow": 20},
    "lookback_trades": 20,
    "min_trades": 5,
    "allow_short": True,
    "min_size": 0.5,
}


@pytest.fixture(scope="module")
def daily() -> pd.DataFrame:
    # Real BTC/USDT daily bars: trends, crashes and long drawdowns for the limits to meet.
    from pathlib import Path

    from chimera_lab.data import load_ohlcv

    root = Path(__file__).resolve().parents[2]
    return load_ohlcv(root / "data/samples/btcusdt_1d_binance_20170817_20250826.csv")


def _fills(res) -> np.ndarray:  # noqa: ANN001 - BacktestResult
    # Bars whose open filled a signal (the position changed, no stops in these runs).
    u = res.positions.to_numpy()
    return np.flatnonzero(np.diff(np.r_[0.0, u]) != 0)


def test_exposure_cap_binds_in_the_backtest(daily: pd.DataFrame) -> None:
    free = run(daily, "kelly", **RISK_KW)
    assert free.signal.abs().max() > 0.9  # unchecked, Kelly sizes reach the 1.0 cap
    capped = run(daily, "kelly", risk=RiskSettings(max_exposure=0.3, drawdown_kill=0.99), **RISK_KW)
    assert capped.signal.abs().max() == pytest.approx(0.3, rel=1e-9)
    assert (capped.signal.abs() <= 0.3 * (1 + 1e-9)).all()
    # at every entry the engine sized the position to <= 30% of equity at the fill
    o = daily["open"].to_numpy()
    u, e, c = capped.positions.to_numpy(), capped.equity.to_numpy(), daily["close"].to_numpy()
    for i in _fills(capped):
        e_open = e[i] - u[i] * (c[i] - o[i])  # equity at the open, after the fill
        assert abs(u[i] * o[i] / e_open) <= 0.3 * (1 + 1e-9)
    binding = (free.signal.abs() > 0.3) & (capped.signal != 0)
    assert binding.sum() > 20  # many decisions were cut, not refused
    assert capped.params["risk"].max_exposure == 0.3


def test_drawdown_kill_switch_flattens_and_locks(daily: pd.DataFrame) -> None:
    free = run(daily, "kelly", **RISK_KW)
    res = run(daily, "kelly", risk=RiskSettings(drawdown_kill=0.25, **LOOSE), **RISK_KW)
    equity = res.equity.to_numpy()
    peak = np.maximum.accumulate(np.r_[100_000.0, equity])[1:]
    hit = int(np.flatnonzero(1 - equity / peak >= 0.25)[0])  # first close 25% below the peak
    # the shadow account is the backtest's own equity: the switch trips at that very close
    assert (res.signal.iloc[hit:] == 0).all() and res.signal.iloc[hit - 1] != 0
    assert (res.positions.iloc[hit + 1 :] == 0).all()
    # before it nothing else binds with these loose limits: the same targets as unchecked
    np.testing.assert_array_equal(res.signal.iloc[:hit], free.signal.iloc[:hit])
    assert (free.signal.iloc[hit:] != 0).any()


def test_regime_scales_targets_and_regime_changes_are_decisions(daily: pd.DataFrame) -> None:
    from chimera_lab.risk import RegimeDetector, regime_limits

    free = run(daily, "kelly", **RISK_KW)
    res = run(daily, "kelly", risk=RiskSettings(drawdown_kill=0.99, **LOOSE), risk_regime=True,
              **RISK_KW)  # fmt: skip
    labels = RegimeDetector().fit(daily).predict(daily)  # 79 warm-up days of 2,932: no warning
    mult = {r: lim.exposure_multiplier for r, lim in regime_limits().items()}
    scale = np.array([1.0 if r is None else mult[r] for r in labels])
    # whenever the direction/size or the regime changed, target = Kelly target x multiplier
    change = np.r_[True, (free.signal.to_numpy()[1:] != free.signal.to_numpy()[:-1])]
    change |= np.r_[True, labels.fillna("-").to_numpy()[1:] != labels.fillna("-").to_numpy()[:-1]]
    want = free.signal.to_numpy() * scale
    np.testing.assert_allclose(res.signal.to_numpy()[change], want[change], rtol=1e-12)
    crisis = (labels == "crisis").to_numpy()
    assert crisis.sum() > 10 and (res.signal.to_numpy()[crisis] == 0).all()
    volatile = (labels == "volatile").to_numpy() & change & (free.signal.to_numpy() != 0)
    assert volatile.sum() > 5
    np.testing.assert_allclose(
        res.signal.to_numpy()[volatile], 0.5 * free.signal.to_numpy()[volatile], rtol=1e-12
    )


def test_overlay_reads_regime_labels_as_members_or_strings() -> None:
    from chimera_lab.backtest.strategies._risk import apply_risk
    from chimera_lab.risk import Regime, RiskManager

    data = make_ohlcv(40, seed=5)
    rng = np.random.default_rng(5)
    members = np.array([None, *Regime], dtype=object)[rng.integers(0, 5, 40)]
    strings = np.array([None if r is None else r.value for r in members], dtype=object)
    kw = {"var": None, "fee_rate": 0.0, "slip_rate": 0.0, "initial_capital": 1e5, "start": 0}
    proposed, decide = np.full(40, 0.8), np.r_[True, np.zeros(39, dtype=bool)]
    rm = RiskManager(RiskSettings(drawdown_kill=0.99, **LOOSE))
    got = apply_risk(data, proposed, decide, rm, regimes=members, cap=1.0, **kw)
    mult = {r: rm.limits(r).exposure_multiplier for r in Regime}
    want = [0.8 * (1.0 if r is None else mult[r]) for r in members]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_array_equal(
        apply_risk(data, proposed, decide, rm, regimes=strings, cap=1.0, **kw), got
    )
    with pytest.raises(ValueError, match="'calm' is not a valid Regime"):
        apply_risk(data, proposed, decide, rm, regimes=np.append(members[:-1], "calm"), cap=1, **kw)


def test_var_limit_caps_each_new_position(daily: pd.DataFrame) -> None:
    limits = {"normal": {"exposure_multiplier": 1.0, "max_leverage": 2.0, "var_limit": 0.03}}
    rs = RiskSettings(drawdown_kill=0.99, regime_limits=limits, **LOOSE)
    res = run(daily, "kelly", risk=rs, risk_var_window=100, **RISK_KW)
    free = run(daily, "kelly", **RISK_KW)
    # the one-bar historical VaR(99%) of the 100 returns up to each close, written out
    r = daily["close"].pct_change()
    var = -r.rolling(100).quantile(1 - 0.99).to_numpy()
    sig, raw = res.signal.to_numpy(), free.signal.to_numpy()
    decided = np.flatnonzero(np.r_[True, raw[1:] != raw[:-1]] & (raw != 0) & ~np.isnan(var))
    cut = [t for t in decided if abs(raw[t]) * var[t] > 0.03]
    assert len(cut) > 10
    for t in decided:
        if t in cut:  # cut to exactly the VaR budget: |exposure| x VaR = 3% of equity
            assert abs(sig[t]) * var[t] == pytest.approx(0.03, rel=1e-9)
        else:
            assert sig[t] == raw[t]
    # before 100 returns exist the VaR check is skipped, not a refusal
    early = np.flatnonzero((raw != 0) & np.isnan(var))
    assert early.size and (sig[early] == raw[early]).all()


def test_risk_overlay_has_no_look_ahead() -> None:
    # Every part of the overlay at work: the exposure cap binds, regimes (with warm-up) and
    # VaR feed the checks, and the kill switch trips at bar 431. Targets on a truncated
    # history are the prefix of the full ones, including around the kill.
    data = make_ohlcv(500, seed=9, timeframe="1d", volatility=0.03)
    kw = {
        **RISK_KW,
        "base_params": {"fast": 3, "slow": 10},
        "risk": RiskSettings(max_exposure=0.6, drawdown_kill=0.15),
        "risk_regime": True,
        "risk_var_window": 30,
        "fee_bps": 6.0,
    }
    spec = strategies.get("kelly")
    full = spec(data, **kw)
    free = spec(data, **{k: v for k, v in kw.items() if not k.startswith("risk")})
    assert full.abs().max() == pytest.approx(0.6) and free.abs().max() == 1.0
    killed = int(np.flatnonzero(full.to_numpy() != 0)[-1]) + 1
    assert killed == 431 and (full.iloc[killed:] == 0).all() and (free.iloc[killed:] != 0).any()
    for cut in (60, 120, 200, 333, 430, 431, 499):
        part = spec(data.iloc[: cut + 1], **kw)
        pd.testing.assert_series_equal(part, full.iloc[: cut + 1], check_names=False)


def test_shadow_account_pieces_equal_one_engine_run() -> None:
    from chimera_lab.backtest import _kernels as K

    data = make_ohlcv(300, seed=2, volatility=0.01)
    o, h, lo, c = (data[k].to_numpy() for k in ("open", "high", "low", "close"))
    target = np.sign(strategies.sma_cross(data, fast=3, slow=9).to_numpy()) * 0.8
    whole = run(data, pd.Series(target, index=data.index), initial_capital=1e4, fee_bps=10,
                slippage_bps=3, allow_short=True)  # fmt: skip
    cash, units, last, pos = 1e4, 0.0, 0.0, 0
    eq = np.empty(300)
    for stop in (50, 51, 170, 299):
        m = stop + 1 - pos
        e, u = np.empty(m), np.empty(m)
        cash, units = K.simulate_from(o[: stop + 1], h[: stop + 1], lo[: stop + 1],
                                      c[: stop + 1], target[: stop + 1], pos, cash, units,
                                      last, 1e-3, 3e-4, e, u)  # fmt: skip
        eq[pos : stop + 1] = e
        last, pos = target[stop - 1], stop + 1
    np.testing.assert_allclose(eq, whole.equity.to_numpy(), rtol=1e-12)


def test_no_closed_base_trade_yet_means_min_size() -> None:
    # sma_cross(20, 100) on 150 bars closes no trade: every entry is min_size (was an
    # IndexError), with or without the risk checks.
    data = make_ohlcv(150, seed=1, volatility=0.004)
    for extra in ({}, {"risk": True}):
        target = strategies.get("kelly")(data, min_size=0.2, allow_short=True, **extra)
        assert set(np.unique(target.abs())) <= {0.0, 0.2} and (target != 0).any()


def test_bad_risk_parameters() -> None:
    data = make_ohlcv(300, seed=1)
    with pytest.raises(ConfigError, match="need risk=True"):
        run(data, "kelly", risk_regime=True)
    with pytest.raises(ConfigError, match="risk must be"):
        run(data, "kelly", risk="yes")
    with pytest.raises(ConfigError, match="risk_var_window"):
        run(data, "kelly", risk=True, risk_var_window=5)
    with pytest.raises(ConfigError, match="must be a bool"):
        run(data, "kelly", risk=True, risk_regime="on")


def _base_file(tmp_path: Path, body: str) -> str:
    # A base strategy loaded as "file.py:function" (kelly's base parameter is a string).
    path = tmp_path / "bases.py"
    path.write_text(
        "import pandas as pd\n\n"
        "def base(data):\n"
        "    up = (data['close'] > data['close'].rolling(12).mean()).astype(float)\n"
        f"    return {body}\n\n"
        "def as_series(data):\n"
        "    return (data['close'] > data['close'].rolling(12).mean()).astype(float)\n"
    )
    return str(path)


def test_base_on_a_shifted_index_is_a_clear_error(data: pd.DataFrame, tmp_path: Path) -> None:
    # Regression: kelly used to take the base's values positionally and trade them one bar
    # off, while run(data, base) refused the same output.
    base = _base_file(tmp_path, "up.set_axis(up.index + pd.Timedelta('1min'))") + ":base"
    with pytest.raises(DataError, match=r"base strategy 'base' returned a series whose index"):
        run(data, "kelly", base=base)
    with pytest.raises(DataError, match="index differs"):
        run(data, base)


def test_base_may_return_a_one_column_frame_as_run_allows(
    data: pd.DataFrame, tmp_path: Path
) -> None:
    # Regression: the engine accepts a one-column DataFrame; kelly used to refuse it.
    path = _base_file(tmp_path, "up.to_frame('exposure')")
    kw = {"fee_bps": 6.0, "lookback_trades": 15, "min_trades": 5}
    got = run(data, "kelly", base=f"{path}:base", **kw)
    want = run(data, "kelly", base=f"{path}:as_series", **kw)
    assert got.signal.equals(want.signal) and got.equity.equals(want.equity)
    assert (got.signal > 0).any() and got.signal.nunique() > 2
