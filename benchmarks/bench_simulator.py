"""Throughput of the Bitget simulator on loopback, against a bare aiohttp baseline.

Run: .venv/bin/python benchmarks/bench_simulator.py [--requests 2000] [--concurrency 32]

Each scenario sends N requests with C concurrent httpx workers over keep-alive connections
and reports requests/s and latency percentiles. The baseline is an aiohttp server that
answers a constant JSON body: the ratio shows what the simulator's own work (routing, rate
limit bookkeeping, auth, matching, JSON) costs on top of HTTP itself. Results go to
benchmarks/results/bench_simulator.json. Timings are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from aiohttp import web

from chimera_lab.exchange.simulator import BitgetSimulator

RESULTS = Path(__file__).resolve().parent / "results" / "bench_simulator.json"
KEY, SECRET, PASSPHRASE = "bench-key", "bench-secret", "bench-pass"


def _sign(message: str) -> str:
    digest = hmac.new(SECRET.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


async def _drive(
    make: Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]],
    base_url: str,
    n: int,
    concurrency: int,
) -> dict[str, float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    counter = iter(range(n))
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as http:
        await make(http, -1)  # warm-up (connection set-up)

        async def worker() -> None:
            for i in counter:
                t0 = time.perf_counter()
                r = await make(http, i)
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    raise RuntimeError(f"request {i} failed: {r.status_code} {r.text[:200]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": n,
        "seconds": elapsed,
        "rps": n / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000,
    }


async def _baseline(n: int, c: int) -> dict[str, float]:
    body = json.dumps(
        {"code": "00000", "msg": "success", "requestTime": 0, "data": {"serverTime": "0"}}
    )

    async def handler(_: web.Request) -> web.Response:
        return web.Response(text=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/v2/public/time", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        return await _drive(
            lambda h, i: h.get("/api/v2/public/time"), f"http://127.0.0.1:{port}", n, c
        )
    finally:
        await runner.cleanup()


async def main(n: int, c: int) -> dict[str, dict[str, float]]:
    results = {"baseline: bare aiohttp, constant JSON": await _baseline(n, c)}
    sim = BitgetSimulator(
        api_key=KEY,
        api_secret=SECRET,
        passphrase=PASSPHRASE,
        rate_limits=False,
        balances={"USDT": 10**12},
    )
    async with sim:
        base = sim.base_url
        results["sim: GET public/time"] = await _drive(
            lambda h, i: h.get("/api/v2/public/time"), base, n, c
        )
        params = {"symbol": "BTCUSDT", "granularity": "1min", "limit": "100"}
        results["sim: GET spot candles (100 rows)"] = await _drive(
            lambda h, i: h.get("/api/v2/spot/market/candles", params=params), base, n, c
        )

        def place(h: httpx.AsyncClient, i: int) -> Awaitable[httpx.Response]:
            body = json.dumps(
                {
                    "symbol": "BTCUSDT",
                    "side": "buy",
                    "orderType": "limit",
                    "force": "gtc",
                    "price": "1000",
                    "size": "0.01",
                    "clientOid": f"bench-{i + 1}",
                },
                separators=(",", ":"),
            )
            ts = str(int(time.time() * 1000))
            path = "/api/v2/spot/trade/place-order"
            headers = {
                "ACCESS-KEY": KEY,
                "ACCESS-SIGN": _sign(ts + "POST" + path + body),
                "ACCESS-TIMESTAMP": ts,
                "ACCESS-PASSPHRASE": PASSPHRASE,
                "Content-Type": "application/json",
            }
            return h.post(path, content=body, headers=headers)

        results["sim: POST signed spot place-order (resting)"] = await _drive(place, base, n, c)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    out = asyncio.run(main(args.requests, args.concurrency))
    base_rps = next(iter(out.values()))["rps"]
    print(f"{'scenario':48} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs baseline':>11}")
    for name, r in out.items():
        print(
            f"{name:48} {r['rps']:9.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} "
            f"{r['rps'] / base_rps:10.2f}x"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "requests": args.requests,
                "concurrency": args.concurrency,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "results": out,
            },
            indent=2,
        )
    )
    print(f"wrote {RESULTS}")
