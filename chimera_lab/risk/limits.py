"""Pre-trade risk checks and the :class:`RiskManager` facade.

:meth:`RiskManager.check_order` takes a proposed order, the portfolio and the market, and
returns a :class:`RiskDecision`: the approved quantity (possibly cut, possibly zero) and the
reasons for every cut. It is pure and deterministic: no clock, no I/O, no state kept between
calls (the kill-switch latch travels in :class:`PortfolioState.locked` and comes back in the
decision). The checks, with limits from :class:`~chimera_lab.config.RiskSettings` and the
current regime's :class:`~chimera_lab.risk.RegimeLimits`:

1. **Drawdown kill switch**: when equity is ``drawdown_kill`` or more below its peak (or the
   switch is already latched), only risk-reducing quantity is approved, ``flatten`` asks the
   caller to close every position, and ``locked`` stays true until a person resets it.
2. **Max order notional** (fat-finger cap): ``quantity * price <= max_order_notional``.
3. **Exposure**: ``|position| * price / equity <= max_exposure * exposure_multiplier``.
4. **Leverage**: gross exposure of the book / equity ``<= min(max_leverage, regime
   max_leverage)``.
5. **VaR**: the book's one-period VaR, ``sum(|position| * price * var_per_unit) / equity``
   (undiversified: it assumes perfectly correlated losses, an upper bound), must stay within the
   regime's ``var_limit``. Per-unit VaR forecasts come from :class:`MarketState` ``.var`` (e.g.
   the last value of :func:`~chimera_lab.risk.rolling_var`); ``var=None`` skips this check and
   says so in the decision.

Only the part of an order that increases risk is checked against 3-5; the part that reduces an
existing position (down to flat) is always allowed (but still counts towards the order cap).
Exposure already beyond a limit is not force-reduced here; the decision flags it.

Examples
--------
>>> rm = RiskManager()
>>> order = OrderRequest("BTCUSDT", "buy", quantity=1.0)
>>> book = PortfolioState(equity=50_000.0, peak_equity=50_000.0)
>>> market = MarketState(prices={"BTCUSDT": 60_000.0}, var={"BTCUSDT": 0.08}, regime="normal")
>>> d = rm.check_order(order, book, market)
>>> round(d.approved_quantity, 6), d.reasons
(0.520833, ('VaR 9.60% of equity would exceed the regime limit 5.00%',))
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from chimera_lab.config import RiskSettings, Settings
from chimera_lab.errors import ConfigError, DataError
from chimera_lab.risk import _stats as S
from chimera_lab.risk.kelly import KellyPosition, kelly_position_size
from chimera_lab.risk.portfolio import PortfolioVaR, portfolio_var
from chimera_lab.risk.regime import Regime, RegimeLimits, _risk_settings, regime_limits
from chimera_lab.risk.var import VaRResult, value_at_risk

__all__ = [
    "MarketState",
    "OrderRequest",
    "PortfolioState",
    "RiskDecision",
    "RiskManager",
]


@dataclass(frozen=True)
class OrderRequest:
    """A proposed order.

    Attributes
    ----------
    symbol : str
    side : {"buy", "sell"}
    quantity : float
        Base units, > 0.
    price : float, optional
        Limit price; default the market price in :class:`MarketState`.
    lot_size : float, optional
        When given, the approved quantity is floored to a multiple of it.
    """

    symbol: str
    side: Literal["buy", "sell"]
    quantity: float
    price: float | None = None
    lot_size: float | None = None


@dataclass(frozen=True)
class PortfolioState:
    """The book at decision time.

    Attributes
    ----------
    equity : float
        Current equity (quote currency).
    peak_equity : float
        Highest equity so far (for the drawdown kill switch).
    positions : mapping of str to float
        Signed positions in base units (negative is short).
    locked : bool
        The kill switch was triggered earlier and has not been reset.
    """

    equity: float
    peak_equity: float
    positions: Mapping[str, float] = field(default_factory=dict)
    locked: bool = False


@dataclass(frozen=True)
class MarketState:
    """Prices, the regime and per-unit VaR forecasts at decision time.

    Attributes
    ----------
    prices : mapping of str to float
        Mark prices of the order's symbol and every held symbol.
    regime : Regime or str, optional
        Current regime; ``None`` means NORMAL limits.
    var : mapping of str to float, optional
        One-period VaR per unit of notional (positive fraction) by symbol; ``None`` skips the
        VaR check (reported in the decision).
    """

    prices: Mapping[str, float]
    regime: Regime | str | None = None
    var: Mapping[str, float] | None = None


@dataclass(frozen=True)
class RiskDecision:
    """The outcome of :meth:`RiskManager.check_order`.

    Attributes
    ----------
    approved : bool
        True when some quantity is approved.
    approved_quantity, requested_quantity : float
    reasons : tuple of str
        One entry per cut or skipped check, in check order.
    kill_switch : bool
        The drawdown kill switch is active for this decision.
    locked : bool
        Latch to carry into the next :class:`PortfolioState`.
    flatten : bool
        The caller should close every position (kill switch).
    regime : Regime
    limits : RegimeLimits
        The regime's limits used.
    metrics : dict
        ``drawdown``, ``exposure_after``, ``leverage_after``, ``var_after`` (fractions of
        equity, with the approved quantity) and the caps in units.
    """

    approved: bool
    approved_quantity: float
    requested_quantity: float
    reasons: tuple[str, ...]
    kill_switch: bool
    locked: bool
    flatten: bool
    regime: Regime
    limits: RegimeLimits
    metrics: Mapping[str, float]

    @property
    def cut(self) -> bool:
        """True when less than the requested quantity was approved."""
        return self.approved_quantity < self.requested_quantity

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {
            "approved": self.approved,
            "approved_quantity": self.approved_quantity,
            "requested_quantity": self.requested_quantity,
            "reasons": list(self.reasons),
            "kill_switch": self.kill_switch,
            "locked": self.locked,
            "flatten": self.flatten,
            "regime": self.regime.value,
            "limits": vars(self.limits),
            "metrics": dict(self.metrics),
        }


def _positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        rel = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be finite and {rel}, got {value!r}")
    return v


def _check_var_forecasts(var: Mapping[str, float] | None) -> None:
    # A VaR forecast is a loss fraction >= 0 (NaN: no forecast, which refuses risk increases).
    # A negative one would read as "no limit", so it is refused rather than trusted.
    if var is None:
        return
    for sym, v in var.items():
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise DataError(f"VaR forecast for {sym} must be a number, got {v!r}") from None
        if x < 0:
            raise DataError(
                f"VaR forecast for {sym} is {x:g}; VaR is a loss fraction per unit of notional "
                ">= 0. A negative forecast (the loss quantile is a gain) would lift the VaR "
                "limit: floor it at 0 explicitly if that is meant, or pass NaN for no forecast"
            )


def _as_regime(regime: Regime | str | None) -> Regime:
    if regime is None:
        return Regime.NORMAL
    raw = regime.value if isinstance(regime, Enum) else str(regime)
    try:
        return Regime(raw.strip().lower())
    except ValueError:
        raise ConfigError(
            f"unknown regime {regime!r}; expected one of {[r.value for r in Regime]}"
        ) from None


class RiskManager:
    """Risk facade: VaR of a book, Kelly sizing and pre-trade checks, from one set of limits.

    Parameters
    ----------
    settings : Settings or RiskSettings, optional
        Limits and defaults; default ``RiskSettings()`` (no environment is read).
    returns : DataFrame, optional
        Per-period returns by asset, for :meth:`calculate_portfolio_var`.
    weights : mapping or Series, optional
        Exposure per asset (fractions of equity).
    seed : int, optional
        Monte Carlo seed used by :meth:`calculate_portfolio_var` unless one is passed.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rets = pd.DataFrame(np.random.default_rng(0).normal(0, 0.02, (500, 2)), columns=["A", "B"])
    >>> rm = RiskManager(returns=rets, weights={"A": 0.5, "B": 0.5}, seed=1)
    >>> sorted(round(rm.calculate_portfolio_var(method=m).var, 3)
    ...        for m in ("historical", "parametric", "monte_carlo"))
    [0.033, 0.034, 0.034]
    """

    def __init__(
        self,
        settings: Settings | RiskSettings | None = None,
        *,
        returns: pd.DataFrame | None = None,
        weights: Mapping[str, float] | pd.Series | None = None,
        seed: int | None = None,
    ) -> None:
        self.settings = _risk_settings(settings)
        self.returns = returns
        self.weights = weights
        self.seed = seed

    def __repr__(self) -> str:
        assets = None if self.returns is None else list(self.returns.columns)
        s = self.settings
        return (
            f"RiskManager(max_exposure={s.max_exposure:g}, max_leverage={s.max_leverage:g}, "
            f"drawdown_kill={s.drawdown_kill:g}, max_order_notional={s.max_order_notional:g}, "
            f"var_confidence={s.var_confidence:g}, assets={assets})"
        )

    # ------------------------------------------------------------------ VaR

    def set_portfolio(
        self, returns: pd.DataFrame, weights: Mapping[str, float] | pd.Series
    ) -> RiskManager:
        """Set the book used by :meth:`calculate_portfolio_var`; return ``self``."""
        self.returns = returns
        self.weights = weights
        return self

    def calculate_var(
        self,
        returns: pd.Series | npt.ArrayLike,
        method: str = "historical",
        confidence: float | None = None,
        horizon: int = 1,
        **kwargs: Any,
    ) -> VaRResult:
        """VaR of one return series (confidence defaults to ``settings.var_confidence``)."""
        c = self.settings.var_confidence if confidence is None else confidence
        # Shared alias table: every Monte Carlo spelling ("MC", "monte carlo") gets the seed.
        if S.check_method(method) == "monte_carlo":
            kwargs.setdefault("seed", self.seed)
        return value_at_risk(returns, method=method, confidence=c, horizon=horizon, **kwargs)

    def calculate_portfolio_var(
        self,
        method: str = "historical",
        confidence: float | None = None,
        horizon: int = 1,
        **kwargs: Any,
    ) -> PortfolioVaR:
        """VaR of the book set in the constructor or :meth:`set_portfolio` (seed call shape)."""
        if self.returns is None or self.weights is None:
            raise ConfigError(
                "no portfolio: pass returns= and weights= to RiskManager(...) or call "
                "set_portfolio(returns, weights) first"
            )
        c = self.settings.var_confidence if confidence is None else confidence
        # Shared alias table: every Monte Carlo spelling ("MC", "monte carlo") gets the seed.
        if S.check_method(method) == "monte_carlo":
            kwargs.setdefault("seed", self.seed)
        return portfolio_var(
            self.returns, self.weights, method=method, confidence=c, horizon=horizon, **kwargs
        )

    # ------------------------------------------------------------------ limits and sizing

    def limits(self, regime: Regime | str | None = None) -> RegimeLimits:
        """Return the :class:`RegimeLimits` of ``regime`` (NORMAL when ``None``)."""
        return regime_limits(self.settings)[_as_regime(regime)]

    def kelly_position_size(
        self,
        symbol: str,
        win_probability: float,
        loss_probability: float | None,
        avg_win: float,
        avg_loss: float,
        *,
        equity: float = 1.0,
        price: float | None = None,
        regime: Regime | str | None = None,
        fraction: float | None = None,
        max_leverage: float | None = None,
    ) -> KellyPosition:
        """Kelly sizing with this manager's fraction, leverage cap and regime multipliers.

        The cap is ``min(settings.max_leverage, regime max_leverage)`` unless given.
        """
        lim = self.limits(regime)
        cap = (
            min(self.settings.max_leverage, lim.max_leverage)
            if max_leverage is None
            else (max_leverage)
        )
        mults = {k: v.exposure_multiplier for k, v in self.settings.regime_limits.items()}
        return kelly_position_size(
            symbol,
            win_probability,
            loss_probability,
            avg_win,
            avg_loss,
            fraction=self.settings.kelly_fraction if fraction is None else fraction,
            max_leverage=cap,
            equity=equity,
            price=price,
            regime=None if regime is None else _as_regime(regime),
            regime_multipliers=mults,
        )

    # ------------------------------------------------------------------ pre-trade check

    def drawdown_breached(self, equity: npt.ArrayLike, peak_equity: npt.ArrayLike) -> Any:
        """Return where the drawdown kill switch trips (scalars or arrays, vectorised).

        True when equity is <= 0 or at least ``drawdown_kill`` below the peak (the peak is
        at least the equity). This is the rule :meth:`check_order` applies; a backtest uses it
        to watch its equity path bar by bar.

        Examples
        --------
        >>> RiskManager().drawdown_breached([100.0, 81.0, 79.0, -1.0], 100.0).tolist()
        [False, False, True, True]
        """
        e = np.asarray(equity, dtype=np.float64)
        peak = np.maximum(np.asarray(peak_equity, dtype=np.float64), e)
        with np.errstate(divide="ignore", invalid="ignore"):
            drawdown = np.where(peak > 0, 1.0 - e / peak, 0.0)
        return (e <= 0.0) | (drawdown >= self.settings.drawdown_kill)

    def check_order(
        self, order: OrderRequest, portfolio_state: PortfolioState, market_state: MarketState
    ) -> RiskDecision:
        """Approve, cut or reject ``order`` (see the module notes for the checks)."""
        s = self.settings
        if order.side not in ("buy", "sell"):
            raise ConfigError(f"order side must be 'buy' or 'sell', got {order.side!r}")
        qty = _positive("order quantity", order.quantity)
        equity = float(portfolio_state.equity)
        if not math.isfinite(equity):
            raise ConfigError(f"equity must be finite, got {portfolio_state.equity!r}")
        peak = max(_positive("peak_equity", portfolio_state.peak_equity), equity)
        prices = market_state.prices
        price = order.price if order.price is not None else prices.get(order.symbol)
        if price is None:
            raise DataError(
                f"no price for {order.symbol}: pass order.price or market_state.prices"
                f"[{order.symbol!r}]"
            )
        price = _positive(f"price of {order.symbol}", price)
        _check_var_forecasts(market_state.var)
        regime = _as_regime(market_state.regime)
        lim = regime_limits(s)[regime]
        positions = {k: float(v) for k, v in portfolio_state.positions.items()}
        for sym, units in positions.items():
            if units != 0 and sym != order.symbol and sym not in prices:
                raise DataError(f"no price for held {sym}: add it to market_state.prices")
        pos = positions.get(order.symbol, 0.0)
        direction = 1.0 if order.side == "buy" else -1.0
        reduce = min(qty, abs(pos)) if pos * direction < 0 else 0.0
        increase = qty - reduce
        reasons: list[str] = []

        drawdown = 1.0 - equity / peak
        kill = portfolio_state.locked or bool(self.drawdown_breached(equity, peak))
        if kill:
            why = (
                "kill switch latched"
                if portfolio_state.locked
                else f"drawdown {drawdown:.2%} >= kill level {s.drawdown_kill:.2%}"
            )
            reasons.append(f"{why}: flat and locked, only risk-reducing quantity approved")
            allowed_increase = 0.0
            caps: dict[str, float] = {}
        else:
            caps = self._caps(order.symbol, price, equity, positions, prices, market_state, lim)
            start = abs(pos) if pos * direction > 0 else 0.0
            room = max(0.0, min(caps.values()) - start)
            allowed_increase = min(increase, room)
            if allowed_increase < increase:
                binding = min(caps, key=lambda k: caps[k])
                full = dict(positions)
                full[order.symbol] = pos + direction * qty
                wanted = self._metrics(
                    full, order.symbol, {**prices, order.symbol: price}, equity, market_state
                )
                reasons.append(
                    self._cap_reason(binding, order.symbol, lim, wanted, market_state, full)
                )
            if market_state.var is None and increase > 0:
                reasons.append("VaR check skipped: market_state.var is None")
        approved = reduce + allowed_increase
        if approved * price > s.max_order_notional:
            approved = s.max_order_notional / price
            reasons.append(
                f"order notional {qty * price:,.2f} cut to max_order_notional "
                f"{s.max_order_notional:,.2f}"
            )
        if order.lot_size is not None:
            lot = _positive("lot_size", order.lot_size)
            approved = math.floor(approved / lot + 1e-9) * lot
        approved = max(0.0, min(approved, qty))
        after = dict(positions)
        after[order.symbol] = pos + direction * approved
        metrics = self._metrics(
            after, order.symbol, {**prices, order.symbol: price}, equity, market_state
        )
        metrics["drawdown"] = drawdown
        metrics.update({f"cap_units_{k}": v for k, v in caps.items()})
        if not kill and metrics["leverage_after"] > min(s.max_leverage, lim.max_leverage) + 1e-12:
            reasons.append("book is above its leverage limit; reduce positions")
        return RiskDecision(
            approved=approved > 0,
            approved_quantity=approved,
            requested_quantity=qty,
            reasons=tuple(reasons),
            kill_switch=kill,
            locked=kill,
            flatten=kill,
            regime=regime,
            limits=lim,
            metrics=metrics,
        )

    def _caps(
        self,
        symbol: str,
        price: float,
        equity: float,
        positions: Mapping[str, float],
        prices: Mapping[str, float],
        market: MarketState,
        lim: RegimeLimits,
    ) -> dict[str, float]:
        # Max |position| in units of `symbol` allowed by each limit.
        s = self.settings
        others = {k: v for k, v in positions.items() if k != symbol and v != 0}
        other_gross = sum(abs(v) * float(prices[k]) for k, v in others.items())
        caps = {
            "exposure": s.max_exposure * lim.exposure_multiplier * equity / price,
            "leverage": max(0.0, min(s.max_leverage, lim.max_leverage) * equity - other_gross)
            / price,
        }
        if market.var is not None:
            v = market.var.get(symbol)
            if v is None or not math.isfinite(float(v)):
                caps["var"] = 0.0
            else:
                other_var = sum(
                    abs(u) * float(prices[k]) * float(market.var.get(k, math.inf))
                    for k, u in others.items()
                )
                budget = lim.var_limit * equity - other_var
                caps["var"] = max(0.0, budget) / (price * float(v)) if float(v) > 0 else math.inf
        return caps

    def _cap_reason(
        self,
        binding: str,
        symbol: str,
        lim: RegimeLimits,
        wanted: Mapping[str, float],
        market: MarketState,
        positions: Mapping[str, float],
    ) -> str:
        # `wanted` holds the metrics the book would have with the full requested quantity.
        s = self.settings
        if binding == "exposure":
            limit = s.max_exposure * lim.exposure_multiplier
            return (
                f"exposure {wanted['exposure_after']:.2%} of equity capped at {limit:.2%} "
                f"(max_exposure {s.max_exposure:g} x regime multiplier "
                f"{lim.exposure_multiplier:g})"
            )
        if binding == "leverage":
            cap = min(s.max_leverage, lim.max_leverage)
            return f"gross leverage {wanted['leverage_after']:.2f}x capped at {cap:g}x"
        assert market.var is not None
        missing = [k for k, u in positions.items() if u != 0 and k not in market.var]
        if missing:
            return f"no VaR forecast for {missing} in market_state.var: risk increase refused"
        return (
            f"VaR {wanted['var_after']:.2%} of equity would exceed the regime limit "
            f"{lim.var_limit:.2%}"
        )

    def _metrics(
        self,
        positions: Mapping[str, float],
        symbol: str,
        prices: Mapping[str, float],
        equity: float,
        market: MarketState,
    ) -> dict[str, float]:
        gross = sum(abs(u) * float(prices[k]) for k, u in positions.items() if u != 0)
        own = abs(positions.get(symbol, 0.0)) * float(prices[symbol])
        out = {
            "exposure_after": own / equity if equity > 0 else math.inf,
            "leverage_after": gross / equity if equity > 0 else math.inf,
            "var_after": math.nan,
        }
        if market.var is not None:
            known = all(k in market.var for k, u in positions.items() if u != 0)
            if known:
                var = sum(
                    abs(u) * float(prices[k]) * float(market.var[k])
                    for k, u in positions.items()
                    if u != 0
                )
                out["var_after"] = var / equity if equity > 0 else math.inf
        return out
