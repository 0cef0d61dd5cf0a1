"""Pre-trade checks and the RiskManager facade: hand-computed limits, invariants, purity."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chimera_lab.config import RiskSettings, Settings
from chimera_lab.errors import ConfigError, DataError
from chimera_lab.risk import (
    MarketState,
    OrderRequest,
    PortfolioState,
    Regime,
    RiskManager,
    portfolio_var,
    value_at_risk,
)

RS = RiskSettings(max_exposure=1.0, max_leverage=2.0, max_order_notional=1e9, drawdown_kill=0.2)
BOOK = PortfolioState(equity=100_000.0, peak_equity=100_000.0)
PX = {"BTCUSDT": 50_000.0, "ETHUSDT": 2_500.0}


def check(order: OrderRequest, book: PortfolioState = BOOK, **market: object):
    market.setdefault("prices", PX)
    return RiskManager(RS).check_order(order, book, MarketState(**market))  # type: ignore[arg-type]


def test_small_order_within_limits_is_approved_in_full() -> None:
    d = check(OrderRequest("BTCUSDT", "buy", 0.5), var={"BTCUSDT": 0.05})
    assert d.approved and d.approved_quantity == 0.5 and not d.cut
    assert d.reasons == ()
    assert d.metrics["exposure_after"] == pytest.approx(0.25)
    assert d.metrics["var_after"] == pytest.approx(0.25 * 0.05)
    assert d.regime is Regime.NORMAL and not d.kill_switch


def test_exposure_cap_by_hand() -> None:
    # max_exposure 1.0 x normal multiplier 1.0 -> at most 100k notional = 2 BTC
    d = check(OrderRequest("BTCUSDT", "buy", 3.0), var=None)
    assert d.approved_quantity == pytest.approx(2.0)
    assert d.reasons[0].startswith("exposure 150.00% of equity capped at 100.00%")
    assert "VaR check skipped" in d.reasons[1]


def test_volatile_regime_halves_exposure_and_crisis_refuses_new_risk() -> None:
    d = check(OrderRequest("BTCUSDT", "buy", 3.0), regime="volatile")
    assert d.approved_quantity == pytest.approx(1.0)
    assert d.limits.var_limit == 0.03
    d = check(OrderRequest("BTCUSDT", "buy", 3.0), regime=Regime.CRISIS)
    assert d.approved_quantity == 0.0 and not d.approved
    # reducing an existing long in a crisis is allowed
    book = PortfolioState(100_000.0, 100_000.0, {"BTCUSDT": 1.0})
    d = check(OrderRequest("BTCUSDT", "sell", 3.0), book, regime="crisis")
    assert d.approved_quantity == pytest.approx(1.0)


def test_leverage_cap_counts_other_positions() -> None:
    # other book: 60 ETH x 2500 = 150k gross; leverage cap 2x -> 50k room -> 1 BTC
    book = PortfolioState(100_000.0, 100_000.0, {"ETHUSDT": -60.0})
    d = check(OrderRequest("BTCUSDT", "buy", 1.5), book)
    assert d.approved_quantity == pytest.approx(1.0)
    assert d.reasons[0].startswith("gross leverage 2.25x capped at 2x")
    assert d.metrics["leverage_after"] == pytest.approx(2.0)


def test_var_cap_by_hand() -> None:
    # var_limit 5% of 100k = 5,000; ETH uses 20 x 2500 x 0.04 = 2,000; BTC VaR/unit 0.06 x 50k
    # = 3,000 per BTC -> 1 BTC allowed
    book = PortfolioState(100_000.0, 100_000.0, {"ETHUSDT": 20.0})
    d = check(OrderRequest("BTCUSDT", "buy", 1.8), book, var={"BTCUSDT": 0.06, "ETHUSDT": 0.04})
    assert d.approved_quantity == pytest.approx(1.0)
    assert d.metrics["var_after"] == pytest.approx(0.05)
    assert d.reasons == ("VaR 7.40% of equity would exceed the regime limit 5.00%",)


def test_missing_var_forecast_refuses_risk_increase() -> None:
    d = check(OrderRequest("BTCUSDT", "buy", 0.1), var={"ETHUSDT": 0.04})
    assert d.approved_quantity == 0.0
    assert "no VaR forecast for ['BTCUSDT']" in d.reasons[0]


def test_kill_switch_on_drawdown_allows_only_reduction_and_latches() -> None:
    book = PortfolioState(75_000.0, 100_000.0, {"BTCUSDT": 0.5})
    buy = check(OrderRequest("BTCUSDT", "buy", 0.1), book)
    assert buy.approved_quantity == 0.0 and buy.kill_switch and buy.locked and buy.flatten
    assert "drawdown 25.00% >= kill level 20.00%" in buy.reasons[0]
    sell = check(OrderRequest("BTCUSDT", "sell", 2.0), book)
    assert sell.approved_quantity == pytest.approx(0.5)  # flat, no flip into a short
    # the latch carries over even after equity recovers
    relatched = PortfolioState(99_000.0, 100_000.0, {}, locked=True)
    d = check(OrderRequest("BTCUSDT", "buy", 0.1), relatched)
    assert d.approved_quantity == 0.0 and "latched" in d.reasons[0]


def test_flip_reduces_then_checks_the_new_side() -> None:
    book = PortfolioState(100_000.0, 100_000.0, {"BTCUSDT": -1.0})
    d = check(OrderRequest("BTCUSDT", "buy", 4.0), book)
    assert d.approved_quantity == pytest.approx(1.0 + 2.0)  # close the short, then 2 BTC long


def test_max_order_notional_and_lot_size() -> None:
    rm = RiskManager(RiskSettings(max_order_notional=30_000.0, max_leverage=5, max_exposure=5))
    d = rm.check_order(
        OrderRequest("BTCUSDT", "buy", 1.0, lot_size=0.001), BOOK, MarketState(prices=PX)
    )
    assert d.approved_quantity == pytest.approx(0.6)
    assert any("max_order_notional" in r for r in d.reasons)
    d = rm.check_order(
        OrderRequest("BTCUSDT", "buy", 0.12345, lot_size=0.01), BOOK, MarketState(prices=PX)
    )
    assert d.approved_quantity == pytest.approx(0.12)


def test_order_price_overrides_market_price() -> None:
    d = check(OrderRequest("BTCUSDT", "buy", 3.0, price=40_000.0))
    assert d.approved_quantity == pytest.approx(2.5)


def test_check_order_is_pure() -> None:
    book = PortfolioState(90_000.0, 100_000.0, {"ETHUSDT": 10.0})
    market = MarketState(prices=dict(PX), var={"BTCUSDT": 0.05, "ETHUSDT": 0.05}, regime="normal")
    before = copy.deepcopy((book, market))
    a = check(OrderRequest("BTCUSDT", "buy", 5.0), book, prices=market.prices, var=market.var)
    b = check(OrderRequest("BTCUSDT", "buy", 5.0), book, prices=market.prices, var=market.var)
    assert a == b
    assert (book, market) == before


@pytest.mark.parametrize(
    ("order", "book", "prices", "error", "match"),
    [
        (OrderRequest("BTCUSDT", "hold", 1.0), BOOK, PX, ConfigError, "side"),  # type: ignore[arg-type]
        (OrderRequest("BTCUSDT", "buy", -1.0), BOOK, PX, ConfigError, "quantity"),
        (OrderRequest("DOGE", "buy", 1.0), BOOK, PX, DataError, "no price for DOGE"),
        (
            OrderRequest("BTCUSDT", "buy", 1.0),
            PortfolioState(1.0, 1.0, {"SOL": 1.0}),
            PX,
            DataError,
            "held SOL",
        ),
        (OrderRequest("BTCUSDT", "buy", 1.0), PortfolioState(1.0, 0.0), PX, ConfigError, "peak"),
    ],
)
def test_bad_inputs(order, book, prices, error, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=match):
        RiskManager(RS).check_order(order, book, MarketState(prices=prices))


def test_negative_var_forecast_is_refused_not_read_as_unlimited() -> None:
    rm = RiskManager(RS)
    order = OrderRequest("BTCUSDT", "buy", 1.0)
    for var in ({"BTCUSDT": -0.5}, {"BTCUSDT": 0.02, "ETHUSDT": -0.01}):
        with pytest.raises(DataError, match="VaR forecast for .* is -0.0?[15]"):
            rm.check_order(order, BOOK, MarketState(prices=PX, var=var))
    with pytest.raises(DataError, match="must be a number"):
        rm.check_order(order, BOOK, MarketState(prices=PX, var={"BTCUSDT": "high"}))
    # zero VaR is a valid forecast (no VaR cap); NaN is "no forecast" (no risk increase)
    free = rm.check_order(order, BOOK, MarketState(prices=PX, var={"BTCUSDT": 0.0}))
    assert free.approved_quantity == 1.0 and free.metrics["var_after"] == 0.0
    blocked = rm.check_order(order, BOOK, MarketState(prices=PX, var={"BTCUSDT": math.nan}))
    assert blocked.approved_quantity == 0.0


@settings(max_examples=120, deadline=None)
@given(
    equity=st.floats(1_000, 1e7),
    dd=st.floats(0.0, 0.5),
    btc=st.floats(-5, 5),
    eth=st.floats(-50, 50),
    side=st.sampled_from(["buy", "sell"]),
    qty=st.floats(0.001, 20),
    regime=st.sampled_from(list(Regime)),
    v_btc=st.floats(0.005, 0.2),
    v_eth=st.floats(0.005, 0.2),
)
def test_invariants(equity, dd, btc, eth, side, qty, regime, v_btc, v_eth) -> None:  # type: ignore[no-untyped-def]
    book = PortfolioState(equity, equity / (1 - dd), {"BTCUSDT": btc, "ETHUSDT": eth})
    market = MarketState(prices=PX, regime=regime, var={"BTCUSDT": v_btc, "ETHUSDT": v_eth})
    rm = RiskManager(RS)
    d = rm.check_order(OrderRequest("BTCUSDT", side, qty), book, market)
    assert 0.0 <= d.approved_quantity <= qty + 1e-12
    direction = 1 if side == "buy" else -1
    reducing = min(qty, abs(btc)) if btc * direction < 0 else 0.0
    assert d.approved_quantity >= reducing - 1e-9  # reducing risk is never blocked
    if d.kill_switch:
        assert d.approved_quantity == pytest.approx(reducing)
        return
    before = RiskManager(RS).check_order(OrderRequest("BTCUSDT", side, 1e-12), book, market)
    lim = rm.limits(regime)
    # any approved increase keeps the book within every limit it was within before
    if d.approved_quantity > reducing + 1e-9:
        m = d.metrics
        assert m["exposure_after"] <= RS.max_exposure * lim.exposure_multiplier + 1e-9
        if before.metrics["leverage_after"] <= min(RS.max_leverage, lim.max_leverage):
            assert m["leverage_after"] <= min(RS.max_leverage, lim.max_leverage) + 1e-9
        if before.metrics["var_after"] <= lim.var_limit:
            assert m["var_after"] <= lim.var_limit + 1e-9


# ------------------------------------------------------------------ RiskManager facade


@pytest.fixture(scope="module")
def book_returns() -> pd.DataFrame:
    rng = np.random.default_rng(9)
    return pd.DataFrame(rng.standard_t(4, (1_500, 2)) * 0.02, columns=["BTC", "ETH"])


def test_calculate_portfolio_var_keeps_the_seed_call_shape(book_returns: pd.DataFrame) -> None:
    rm = RiskManager(
        Settings(_env_file=None), returns=book_returns, weights={"BTC": 0.7, "ETH": 0.3}, seed=3
    )
    for method in ("monte_carlo", "parametric", "historical"):
        res = rm.calculate_portfolio_var(method=method)
        assert res.confidence == 0.99 and res.method == method
        ref = portfolio_var(book_returns, {"BTC": 0.7, "ETH": 0.3}, method=method, seed=3)
        assert res.var == ref.var
    assert rm.calculate_portfolio_var(method="parametric", confidence=0.95).var < res.var
    assert rm.calculate_var(book_returns["BTC"], method="mc").details["n_sims"] == 100_000


def test_calculate_portfolio_var_needs_a_book() -> None:
    with pytest.raises(ConfigError, match="set_portfolio"):
        RiskManager().calculate_portfolio_var()


def test_manager_kelly_uses_settings_and_regime_limits() -> None:
    rm = RiskManager(RiskSettings(kelly_fraction=0.5, max_leverage=3.0))
    pos = rm.kelly_position_size("BTCUSDT", 0.55, 0.45, 0.02, 0.02, equity=1_000.0)
    assert pos.fraction == 0.5
    assert pos.exposure == pytest.approx(2.0)  # min(3.0, normal regime max_leverage 2.0)
    assert rm.kelly_position_size("BTCUSDT", 0.55, 0.45, 0.02, 0.02, regime="crisis").exposure == 0
    vol = rm.kelly_position_size("BTCUSDT", 0.55, 0.45, 0.02, 0.02, regime="volatile")
    assert vol.exposure == pytest.approx(1.0 * 0.5)  # cap 1.0 in volatile, x0.5
    assert math.isclose(vol.full_kelly, 5.0)


@pytest.mark.parametrize("spelling", ["MC", "montecarlo", "monte carlo", "Monte-Carlo"])
def test_manager_seeds_every_monte_carlo_spelling(
    book_returns: pd.DataFrame, spelling: str
) -> None:
    # Regression: only "monte_carlo"/"mc" used to get the manager's seed; the other accepted
    # spellings silently ran unseeded (a different VaR on every call).
    weights = {"BTC": 0.7, "ETH": 0.3}
    rm = RiskManager(Settings(_env_file=None), returns=book_returns, weights=weights, seed=3)
    book = portfolio_var(book_returns, weights, method="monte_carlo", seed=3, n_sims=2_000)
    assert rm.calculate_portfolio_var(method=spelling, n_sims=2_000).var == book.var
    one = value_at_risk(book_returns["BTC"], method="monte_carlo", seed=3, n_sims=2_000)
    assert rm.calculate_var(book_returns["BTC"], method=spelling, n_sims=2_000).var == one.var
