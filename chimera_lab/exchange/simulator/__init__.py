"""A Bitget-compatible exchange simulator on loopback: REST + WebSocket v2, replayed market.

``BitgetSimulator`` serves the Bitget API v2 endpoints the adapter uses (same paths,
parameters, envelope, numbers-as-strings, error codes, signatures, rate limits), replays bars
on a controllable :class:`SimClock`, matches orders with fees, keeps balances and USDT-M
positions, and injects faults (:class:`FaultSpec`). See ``docs/simulator.md``.

Examples
--------
>>> from chimera_lab.exchange.simulator import BitgetSimulator, FaultSpec
>>> sim = BitgetSimulator(clock="stepped", faults=FaultSpec(error_rate=0.1, seed=1))
>>> sim.faults.error_rate
0.1
"""

from __future__ import annotations

from chimera_lab.exchange.simulator.api import ApiError
from chimera_lab.exchange.simulator.clock import SimClock
from chimera_lab.exchange.simulator.faults import FaultSpec
from chimera_lab.exchange.simulator.market import MarketData
from chimera_lab.exchange.simulator.models import FeeSchedule, Position, SimFill, SimOrder
from chimera_lab.exchange.simulator.ratelimit import RateLimitRule, SimStats
from chimera_lab.exchange.simulator.routes import SIM_ENDPOINTS
from chimera_lab.exchange.simulator.server import TIMESTAMP_SKEW_MS, BitgetSimulator

__all__ = [
    "SIM_ENDPOINTS",
    "TIMESTAMP_SKEW_MS",
    "ApiError",
    "BitgetSimulator",
    "FaultSpec",
    "FeeSchedule",
    "MarketData",
    "Position",
    "RateLimitRule",
    "SimClock",
    "SimFill",
    "SimOrder",
    "SimStats",
]
