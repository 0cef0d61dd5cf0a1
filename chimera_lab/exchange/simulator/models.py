"""The simulator's records: orders, fills, positions, balances and the fee schedule.

The :class:`~chimera_lab.exchange.simulator.engine.MatchingEngine` creates and updates them;
the REST and WebSocket handlers render them. Amounts are :class:`~decimal.Decimal`, times
market-clock milliseconds.

Examples
--------
>>> FeeSchedule().rate("mix", "taker")
Decimal('0.0006')
>>> dec("0.10", "size")
Decimal('0.10')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any, Literal

from chimera_lab.exchange.simulator.api import invalid

__all__ = ["Account", "FeeSchedule", "Market", "Position", "SimFill", "SimOrder", "dec"]

Market = Literal["spot", "mix"]
_Q8 = Decimal("0.00000001")
_ZERO = Decimal(0)


def _q(x: Decimal) -> Decimal:
    return x.quantize(_Q8, rounding=ROUND_DOWN)


def dec(value: Any, name: str) -> Decimal:
    """Parse a request number (string or JSON number) as a Decimal, or raise 40020."""
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise invalid(name, f"{value!r} is not a number") from None
    if not d.is_finite():
        raise invalid(name, f"{value!r} is not a number")
    return d


@dataclass(frozen=True)
class FeeSchedule:
    """Maker/taker fee rates (fractions: 0.001 = 0.1 %), Bitget's standard tier by default."""

    spot_maker: Decimal = Decimal("0.001")
    spot_taker: Decimal = Decimal("0.001")
    mix_maker: Decimal = Decimal("0.0002")
    mix_taker: Decimal = Decimal("0.0006")

    def rate(self, market: Market, scope: str) -> Decimal:
        """Return the rate for ``market`` (``spot``/``mix``) and ``scope`` (maker/taker)."""
        rate: Decimal = getattr(self, f"{market}_{scope}")
        return rate


@dataclass
class SimFill:
    """One execution."""

    trade_id: str
    order_id: str
    symbol: str
    market: Market
    side: str
    price: Decimal
    size: Decimal
    quote: Decimal
    fee: Decimal  # positive amount charged
    fee_coin: str
    scope: str  # "maker" / "taker"
    time_ms: int
    profit: Decimal = _ZERO
    trade_side: str = ""
    order_type: str = ""  # of its order (kept here: finished orders are pruned)


@dataclass
class SimOrder:
    """One accepted order and its state (``sim.orders`` lists these)."""

    order_id: str
    client_oid: str
    symbol: str
    market: Market
    side: str
    order_type: str
    force: str
    price: Decimal | None
    size: Decimal  # spot market buy: quote amount
    c_time: int
    u_time: int
    status: str = "live"  # live / partially_filled / filled / cancelled
    filled_size: Decimal = _ZERO
    filled_quote: Decimal = _ZERO
    fee: Decimal = _ZERO
    fee_coin: str = ""
    reduce_only: bool = False
    trade_side: str = ""
    margin_mode: str = "crossed"
    margin_coin: str = "USDT"
    cancel_reason: str = ""
    frozen: Decimal = _ZERO  # spot: frozen coin amount; mix: frozen margin
    checked_ms: int = 0  # resting orders: path examined up to here
    profit: Decimal = _ZERO
    fills: list[SimFill] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        """Whether the order can still fill."""
        return self.status in ("live", "partially_filled")

    @property
    def api_status(self) -> str:
        """The status as the API spells it: futures say ``canceled``, spot ``cancelled``."""
        if self.market == "mix" and self.status == "cancelled":
            return "canceled"
        return self.status

    @property
    def price_avg(self) -> Decimal:
        """Average fill price (0 before any fill)."""
        return _q(self.filled_quote / self.filled_size) if self.filled_size else _ZERO


@dataclass
class Position:
    """Net USDT-M position of one symbol (one-way mode)."""

    symbol: str
    size: Decimal = _ZERO  # signed base quantity: > 0 long, < 0 short
    entry: Decimal = _ZERO
    margin: Decimal = _ZERO
    achieved: Decimal = _ZERO
    total_fee: Decimal = _ZERO
    c_time: int = 0
    u_time: int = 0


@dataclass
class Account:
    """Balances: spot coins and the USDT-M futures account."""

    spot: dict[str, list[Decimal]] = field(default_factory=dict)  # coin -> [available, frozen]
    mix_available: Decimal = _ZERO
    mix_locked: Decimal = _ZERO
    positions: dict[str, Position] = field(default_factory=dict)
    funding_paid: Decimal = _ZERO

    def coin(self, name: str) -> list[Decimal]:
        """Return ``[available, frozen]`` of spot ``name`` (created empty on first use)."""
        return self.spot.setdefault(name, [_ZERO, _ZERO])
