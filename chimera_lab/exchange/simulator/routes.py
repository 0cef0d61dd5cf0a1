"""The simulator's REST endpoint table: path, method, privacy, rate limit and handler.

Limits are Bitget's per-endpoint ones (bitget-api.md §3): per IP for public market data, per
account (API key) for private calls.

Examples
--------
>>> SIM_ENDPOINTS[("POST", "/api/v2/spot/trade/place-order")].rule.limit
10
"""

from __future__ import annotations

from dataclasses import dataclass

from chimera_lab.exchange.simulator.ratelimit import RateLimitRule
from chimera_lab.exchange.simulator.rest import (
    Handler,
    _candles,
    _current_fund_rate,
    _funding_time,
    _history_fund_rate,
    _margin_currencies,
    _mix_contracts,
    _mix_merge_depth,
    _mix_ticker,
    _mix_tickers,
    _open_interest_h,
    _server_time,
    _spot_orderbook,
    _spot_symbols,
    _spot_tickers,
)
from chimera_lab.exchange.simulator.rest_trade import (
    _all_position,
    _cancel_mix,
    _cancel_spot,
    _mix_account,
    _mix_accounts,
    _mix_detail,
    _mix_fills,
    _mix_pending,
    _place_mix,
    _place_spot,
    _single_position,
    _spot_assets,
    _spot_fills,
    _spot_order_info,
    _spot_unfilled,
)

__all__ = ["SIM_ENDPOINTS", "Endpoint"]


@dataclass(frozen=True)
class Endpoint:
    """One REST endpoint of the simulator."""

    method: str
    path: str
    handler: Handler
    rule: RateLimitRule
    private: bool = False
    is_order: bool = False  # place/cancel: subject to the after-accept faults


def _rule(name: str, per_s: int, scope: str = "ip") -> RateLimitRule:
    return RateLimitRule(name, limit=per_s, window_s=1.0, scope=scope)  # type: ignore[arg-type]


def _spot(family: str, history: bool) -> Handler:
    return lambda ctx: _candles(ctx, family=family, history=history)


_P = "/api/v2"
_ROWS: list[tuple[str, str, Handler, int, bool, bool]] = [
    # method, path, handler, limit per second, private, is_order
    ("GET", f"{_P}/public/time", _server_time, 20, False, False),
    ("GET", f"{_P}/spot/public/symbols", _spot_symbols, 20, False, False),
    ("GET", f"{_P}/spot/market/candles", _spot("spot", False), 20, False, False),
    ("GET", f"{_P}/spot/market/history-candles", _spot("spot", True), 20, False, False),
    ("GET", f"{_P}/spot/market/tickers", _spot_tickers, 20, False, False),
    ("GET", f"{_P}/spot/market/orderbook", _spot_orderbook, 20, False, False),
    ("GET", f"{_P}/mix/market/contracts", _mix_contracts, 20, False, False),
    ("GET", f"{_P}/margin/currencies", _margin_currencies, 10, False, False),
    ("GET", f"{_P}/mix/market/candles", _spot("mix", False), 20, False, False),
    ("GET", f"{_P}/mix/market/history-candles", _spot("mix", True), 20, False, False),
    ("GET", f"{_P}/mix/market/ticker", _mix_ticker, 20, False, False),
    ("GET", f"{_P}/mix/market/tickers", _mix_tickers, 20, False, False),
    ("GET", f"{_P}/mix/market/merge-depth", _mix_merge_depth, 20, False, False),
    ("GET", f"{_P}/mix/market/current-fund-rate", _current_fund_rate, 20, False, False),
    ("GET", f"{_P}/mix/market/history-fund-rate", _history_fund_rate, 20, False, False),
    ("GET", f"{_P}/mix/market/funding-time", _funding_time, 20, False, False),
    ("GET", f"{_P}/mix/market/open-interest", _open_interest_h, 20, False, False),
    ("POST", f"{_P}/spot/trade/place-order", _place_spot, 10, True, True),
    ("POST", f"{_P}/spot/trade/cancel-order", _cancel_spot, 10, True, True),
    ("GET", f"{_P}/spot/trade/orderInfo", _spot_order_info, 20, True, False),
    ("GET", f"{_P}/spot/trade/unfilled-orders", _spot_unfilled, 20, True, False),
    ("GET", f"{_P}/spot/trade/fills", _spot_fills, 10, True, False),
    ("GET", f"{_P}/spot/account/assets", _spot_assets, 10, True, False),
    ("POST", f"{_P}/mix/order/place-order", _place_mix, 10, True, True),
    ("POST", f"{_P}/mix/order/cancel-order", _cancel_mix, 10, True, True),
    ("GET", f"{_P}/mix/order/detail", _mix_detail, 10, True, False),
    ("GET", f"{_P}/mix/order/orders-pending", _mix_pending, 10, True, False),
    ("GET", f"{_P}/mix/order/fills", _mix_fills, 10, True, False),
    ("GET", f"{_P}/mix/account/accounts", _mix_accounts, 10, True, False),
    ("GET", f"{_P}/mix/account/account", _mix_account, 10, True, False),
    ("GET", f"{_P}/mix/position/all-position", _all_position, 5, True, False),
    ("GET", f"{_P}/mix/position/single-position", _single_position, 10, True, False),
]

SIM_ENDPOINTS: dict[tuple[str, str], Endpoint] = {
    (method, path): Endpoint(
        method, path, handler, _rule(path, per_s, "uid" if private else "ip"), private, is_order
    )
    for method, path, handler, per_s, private, is_order in _ROWS
}
"""Every REST endpoint the simulator serves, keyed by ``(METHOD, path)``."""
