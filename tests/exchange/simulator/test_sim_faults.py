"""Rate limits (429 + code 429, counted windows) and every injected fault."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
import websockets
from _simkit import Signed, limit_buy

from chimera_lab.errors import ConfigError
from chimera_lab.exchange.simulator import BitgetSimulator, FaultSpec
from chimera_lab.exchange.simulator.ratelimit import RateLimitRule, SimRateLimiter


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_public_limit_20_per_second_answers_429_and_counts_the_window(creds: dict) -> None:
    async def scenario() -> None:
        async with (
            BitgetSimulator(**creds) as sim,
            httpx.AsyncClient(base_url=sim.base_url) as http,
        ):
            rs = await asyncio.gather(*(http.get("/api/v2/public/time") for _ in range(30)))
            codes = [r.json()["code"] for r in rs]
            limited = [r for r in rs if r.status_code == 429]
            assert all(r.json()["code"] == "429" and r.json()["data"] is None for r in limited)
            # 20/s per IP: within one second at most 20 get through (the burst may straddle
            # a window edge on a slow machine, then more pass - never more than 20 per window).
            assert codes.count("00000") >= 20
            assert sim.stats.max_in_window["/api/v2/public/time"] == 30
            assert sim.stats.rate_limited["/api/v2/public/time"] == len(limited)
            assert sim.stats.max_requests_in_window(1.0, path_prefix="/api/v2/public") == 30

    run(scenario())


def test_private_limits_are_per_api_key(creds: dict) -> None:
    async def scenario() -> None:
        async with (
            BitgetSimulator(**creds) as sim,
            httpx.AsyncClient(base_url=sim.base_url) as http,
        ):
            client = Signed(http)
            rs = await asyncio.gather(
                *(
                    client.request(
                        "GET",
                        "/api/v2/mix/position/all-position",
                        params={"productType": "USDT-FUTURES"},
                    )
                    for _ in range(8)
                )
            )
            ok = sum(r.json()["code"] == "00000" for r in rs)
            assert 5 <= ok < 8  # all-position: 5/s per UID
            assert sim.stats.rate_limited["/api/v2/mix/position/all-position"] == 8 - ok

    run(scenario())


def test_rate_limits_off_counts_but_never_refuses(creds: dict) -> None:
    async def scenario() -> None:
        async with (
            BitgetSimulator(**creds, rate_limits=False) as sim,
            httpx.AsyncClient(base_url=sim.base_url) as http,
        ):
            rs = await asyncio.gather(*(http.get("/api/v2/public/time") for _ in range(30)))
            assert {r.status_code for r in rs} == {200}
            assert sim.stats.max_in_window["/api/v2/public/time"] == 30

    run(scenario())


def test_limiter_ban_after_tripping_an_overall_style_rule() -> None:
    limiter = SimRateLimiter([RateLimitRule("cap", limit=3, window_s=10.0, ban_s=100.0)])
    assert [limiter.check("cap", "ip", now_s=t) is None for t in (0, 1, 2, 3)] == [
        True,
        True,
        True,
        False,
    ]
    assert limiter.check("cap", "ip", now_s=50) is not None  # banned although the window moved
    assert limiter.check("cap", "other-ip", now_s=50) is None
    assert limiter.check("cap", "ip", now_s=104) is None


def test_a_request_refused_by_its_endpoint_rule_uses_no_overall_budget() -> None:
    limiter = SimRateLimiter(
        [
            RateLimitRule("overall", limit=3, window_s=60.0, ban_s=300.0),
            RateLimitRule("ep", limit=1, window_s=1.0),
            RateLimitRule("other", limit=10, window_s=1.0),
        ]
    )
    pairs = [("overall", "ip"), ("ep", "ip")]
    refused = [limiter.check_all(pairs, now_s=t) for t in (0.0, 0.1, 0.2, 0.3)]
    assert [r.name if r else None for r in refused] == [None, "ep", "ep", "ep"]
    assert limiter.remaining("overall", "ip") == 2  # only the accepted request counts
    assert limiter.stats.rate_limited == {"ep": 3}  # the overall cap never tripped: no ban
    assert limiter.check_all(pairs, now_s=1.5) is None  # the endpoint window moved on
    assert limiter.check_all([("overall", "ip"), ("other", "ip")], now_s=1.6) is None
    assert limiter.remaining("overall", "ip") == 0
    # A refusal by the overall cap leaves the endpoint budget alone, and then bans.
    assert limiter.check_all([("overall", "ip"), ("other", "ip")], now_s=1.7).name == "overall"
    assert limiter.remaining("other", "ip") == 9
    assert limiter.check_all([("overall", "ip"), ("other", "ip")], now_s=100.0).name == "overall"
    # Every request was received by each rule it was checked under.
    assert limiter.stats.max_in_window == {"overall": 7, "ep": 4, "other": 2}


def test_server_requests_refused_per_endpoint_leave_the_overall_cap_intact(creds: dict) -> None:
    async def scenario() -> None:
        async with (
            BitgetSimulator(**creds) as sim,
            httpx.AsyncClient(base_url=sim.base_url) as http,
        ):
            # A small overall cap (Bitget: 6000/min) so the burst below would exhaust it if
            # the 429s of the 20/s endpoint rule were charged to it.
            cap = RateLimitRule("overall", limit=25, window_s=600.0, ban_s=300.0)
            sim.limiter.rules["overall"] = cap
            rs = await asyncio.gather(*(http.get("/api/v2/public/time") for _ in range(30)))
            ok = sum(r.status_code == 200 for r in rs)
            assert 20 <= ok < 25  # the endpoint rule refused some (a window edge may add a few)
            assert sim.stats.rate_limited["/api/v2/public/time"] == 30 - ok
            assert sim.stats.rate_limited["overall"] == 0
            assert sim.limiter.remaining("overall", "127.0.0.1") == 25 - ok
            r = await http.get("/api/v2/spot/public/symbols")  # another endpoint still passes
            assert r.status_code == 200 and r.json()["code"] == "00000"

    run(scenario())


def test_fault_spec_parse_roundtrip_and_errors() -> None:
    spec = FaultSpec.parse(
        "latency=0.01,error_rate=0.2,error_statuses=500|503,seed=3,"
        "ws_disconnect_every_s=5,paths=/api/v2/spot/*"
    )
    assert FaultSpec.parse(spec.to_string()) == spec
    with pytest.raises(ConfigError, match="expected name=value"):
        FaultSpec.parse("lattency=1")
    with pytest.raises(ConfigError, match="probability"):
        FaultSpec(error_rate=1.5)
    with pytest.raises(ConfigError, match="number"):
        FaultSpec.parse("latency=fast")


def test_errors_storms_drops_and_latency(creds: dict) -> None:
    async def scenario() -> None:
        sim = BitgetSimulator(**creds, rate_limits=False)
        async with sim, httpx.AsyncClient(base_url=sim.base_url) as http:
            path = "/api/v2/spot/market/tickers"
            sim.faults = FaultSpec(error_rate=1.0, seed=1)
            rs = [await http.get(path) for _ in range(12)]
            assert {r.status_code for r in rs} <= {500, 502, 503}
            assert len({r.status_code for r in rs}) > 1
            for r in rs:
                if r.status_code == 502:
                    assert r.headers["content-type"].startswith("text/plain")
                else:
                    assert r.json()["code"] == {500: "40015", 503: "45001"}[r.status_code]
            assert sim.stats.faults["error_5xx"] == 12
            # Server time is exempt unless named in `paths`.
            assert (await http.get("/api/v2/public/time")).status_code == 200

            sim.faults = FaultSpec(rate_limit_storm=1.0, storm_duration_s=60.0)
            r = await http.get(path)
            assert r.status_code == 429 and r.json()["code"] == "429"
            sim.faults = FaultSpec(rate_limit_storm=0.0)
            assert (await http.get(path)).status_code == 200  # new spec: storm over

            sim.faults = FaultSpec(drop_rate=1.0)
            with pytest.raises(httpx.TransportError):
                await http.get(path)
            assert sim.stats.faults["drop"] == 1

            sim.faults = FaultSpec(latency_s=0.05, paths=(path,))
            assert (await http.get(path)).status_code == 200
            assert sim.stats.faults["latency"] == 1

    run(scenario())


def test_drop_and_timeout_after_accept_leave_the_order_placed(creds: dict) -> None:
    async def scenario() -> None:
        sim = BitgetSimulator(**creds, rate_limits=False)
        async with sim, httpx.AsyncClient(base_url=sim.base_url, timeout=0.5) as http:
            client = Signed(http)
            sim.faults = FaultSpec(drop_after_accept_rate=1.0)
            with pytest.raises(httpx.TransportError):
                await client.request(
                    "POST", "/api/v2/spot/trade/place-order", body=limit_buy("dropped-1")
                )
            sim.faults = FaultSpec(timeout_after_accept_rate=1.0, withhold_s=30.0)
            with pytest.raises(httpx.TimeoutException):
                await client.request(
                    "POST", "/api/v2/spot/trade/place-order", body=limit_buy("timed-out-1")
                )
            assert [o.client_oid for o in sim.orders] == ["dropped-1", "timed-out-1"]
            assert sim.stats.faults["timeout_after_accept"] == 1
            # Reads are never "after accept" faulted; the client can reconcile by clientOid.
            sim.faults = FaultSpec()
            found = await client.call(
                "GET", "/api/v2/spot/trade/orderInfo", params={"clientOid": "timed-out-1"}
            )
            assert found["data"][0]["status"] == "live"
            dup = await client.call(
                "POST", "/api/v2/spot/trade/place-order", body=limit_buy("timed-out-1")
            )
            assert dup["code"] == "43118"
        # Leaving the block released the withheld response quickly (bounded shutdown).

    started = time.monotonic()
    run(scenario())
    assert time.monotonic() - started < 25  # withhold_s=30 did not hold up the shutdown


@pytest.mark.parametrize(("status", "code"), [(500, "40015"), (503, "45001"), (502, None)])
def test_error_after_accept_places_the_order_then_answers_5xx(
    creds: dict, status: int, code: str | None
) -> None:
    async def scenario() -> None:
        sim = BitgetSimulator(**creds, rate_limits=False)
        async with sim, httpx.AsyncClient(base_url=sim.base_url, timeout=5) as http:
            client = Signed(http)
            sim.faults = FaultSpec(error_after_accept_rate=1.0, error_statuses=(status,))
            r = await client.request(
                "POST", "/api/v2/spot/trade/place-order", body=limit_buy("accepted-then-5xx")
            )
            assert r.status_code == status
            if code is None:
                assert r.text == "502 Bad Gateway"
            else:
                assert r.json()["code"] == code and r.json()["data"] is None
            assert [o.client_oid for o in sim.orders] == ["accepted-then-5xx"]  # it was placed
            assert sim.stats.faults["error_after_accept"] == 1
            # Only order endpoints get it: reads answer normally.
            found = await client.call(
                "GET", "/api/v2/spot/trade/orderInfo", params={"clientOid": "accepted-then-5xx"}
            )
            assert found["code"] == "00000" and found["data"][0]["status"] == "live"
        assert FaultSpec.parse("error_after_accept_rate=0.2").error_after_accept_rate == 0.2

    run(scenario())


def test_websocket_disconnect_fault_and_forced_disconnect(creds: dict) -> None:
    async def scenario() -> None:
        sim = BitgetSimulator(**creds, ws_push_interval_s=0.05)
        async with sim:
            async with websockets.connect(sim.ws_public_url) as ws:
                assert await sim.disconnect_websockets() == 1
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), timeout=5)
            sim.faults = FaultSpec(ws_disconnect_every_s=0.2)
            async with websockets.connect(sim.ws_public_url) as ws:
                with pytest.raises(websockets.ConnectionClosed):
                    for _ in range(100):  # bounded: pongs until the fault closes it
                        await ws.send("ping")
                        await asyncio.wait_for(ws.recv(), timeout=5)
                        await asyncio.sleep(0.15)  # under 10 messages/s
            assert sim.stats.faults["ws_disconnect"] >= 2

    run(scenario())
