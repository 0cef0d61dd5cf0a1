"""Benchmark the Bitget client: per-request overhead, limiter throughput, end-to-end req/s.

Every number is compared with a baseline measured in the same run:

1. **Client overhead per request, no network** (``httpx.MockTransport`` answering a canned
   Bitget envelope): ``BitgetClient.get_ticker`` — limiter slot, circuit breaker, signing-free
   public call, envelope decoding with ``Decimal``, parsing into ``Ticker``, a structured log
   event — against a bare ``httpx.AsyncClient.get`` + ``json.loads`` on the same transport.
   Median and p99 of sequential calls.
2. **Loopback round trip** against the simulator (``/api/v2/public/time`` and a signed
   ``/api/v2/spot/account/assets``): ``BitgetClient`` vs bare ``httpx`` (signing by hand for
   the private call). Median and p99, sequential.
3. **Limiter throughput with limits lifted**: ``RateLimiter.slot`` acquire/release per second,
   one task and 100 concurrent tasks, against an ``asyncio.Semaphore`` doing the same job.
4. **End-to-end requests/s** against the simulator with limits lifted (``rate_limits=False``
   on the simulator, client windows at 10^6/s), 4 and 32 concurrent callers (pool of the
   same size): ``BitgetClient`` vs bare ``httpx``. With 32 connections httpcore's pool
   bookkeeping (a scan of every connection per assignment, encode/httpx#3215) dominates both.

httpcore asks ``import sniffio`` on every request and, when sniffio is not installed (it is
not a dependency here), pays a failed import each time; ``--sniffio`` installs a stub module
for the run to show what adding ``sniffio`` to the dependencies would save.

Run: ``.venv/bin/python benchmarks/bench_exchange.py [--n 2000] [--sniffio]``. Prints a table
and writes ``benchmarks/results/exchange.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import sys
import time
import types
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from chimera_lab.config import Settings
from chimera_lab.exchange import BitgetClient, Priority
from chimera_lab.exchange.limiter import RateLimiter, Window
from chimera_lab.exchange.signing import sign
from chimera_lab.exchange.simulator import BitgetSimulator

RESULTS = Path(__file__).resolve().parent / "results" / "exchange.json"
KEY, SECRET, PHRASE = "bench-key", "bench-secret-0123456789", "bench-passphrase"
LIFTED = {
    "rate_limit_per_second": 1_000_000,
    "rate_limit_per_minute": 100_000_000,
    "endpoint_limit_scale": 100_000.0,
    "rate_limit_margin_s": 0.0,
    "api_key": KEY,
    "api_secret": SECRET,
    "passphrase": PHRASE,
}
TICKER = {
    "code": "00000",
    "msg": "success",
    "requestTime": 1_700_000_000_000,
    "data": [
        {
            "symbol": "BTCUSDT", "high24h": "37775.65", "open": "35134.2", "low24h": "34413.1",
            "lastPr": "34413.1", "quoteVolume": "0", "baseVolume": "0", "usdtVolume": "0",
            "bidPr": "34413", "askPr": "34413.2", "bidSz": "0.0663", "askSz": "0.0119",
            "openUtc": "23856.72", "ts": "1625125755277", "changeUtc24h": "0.00301",
            "change24h": "0.00069",
        }
    ],
}  # fmt: skip


def stats_us(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return {"median_us": statistics.median(ordered) * 1e6, "p99_us": p99 * 1e6}


async def sequential(fn: Callable[[], Awaitable[Any]], n: int, warmup: int = 50) -> list[float]:
    for _ in range(warmup):
        await fn()
    gc.collect()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t0)
    return out


async def bench_mock(n: int) -> dict[str, Any]:
    body = json.dumps(TICKER).encode()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    settings = Settings(_env_file=None, bitget={**LIFTED, "base_url": "http://bench.test"})
    async with BitgetClient(settings, transport=httpx.MockTransport(handler)) as ex:
        client = await sequential(lambda: ex.get_ticker("BTCUSDT"), n)
    async with httpx.AsyncClient(
        base_url="http://bench.test", transport=httpx.MockTransport(handler)
    ) as raw:

        async def bare() -> Any:
            response = await raw.get("/api/v2/spot/market/tickers?symbol=BTCUSDT")
            return json.loads(response.content)["data"][0]

        baseline = await sequential(bare, n)
    return {"client": stats_us(client), "httpx": stats_us(baseline)}


async def bench_loopback(sim: BitgetSimulator, n: int) -> dict[str, Any]:
    settings = Settings(_env_file=None, bitget={**LIFTED, "base_url": sim.base_url})
    out: dict[str, Any] = {}
    async with BitgetClient(settings) as ex:
        out["time_client"] = stats_us(await sequential(ex.server_time, n))
        out["assets_client"] = stats_us(await sequential(ex.get_balances, n))
    async with httpx.AsyncClient(base_url=sim.base_url) as raw:

        async def bare_time() -> Any:
            return (await raw.get("/api/v2/public/time")).json()

        async def bare_assets() -> Any:
            ts = str(int(time.time() * 1000))
            path = "/api/v2/spot/account/assets"
            headers = {
                "ACCESS-KEY": KEY, "ACCESS-SIGN": sign(SECRET, ts, "GET", path),
                "ACCESS-TIMESTAMP": ts, "ACCESS-PASSPHRASE": PHRASE,
            }  # fmt: skip
            return (await raw.get(path, headers=headers)).json()

        out["time_httpx"] = stats_us(await sequential(bare_time, n))
        out["assets_httpx"] = stats_us(await sequential(bare_assets, n))
    return out


async def bench_limiter(n: int) -> dict[str, float]:
    limiter = RateLimiter(
        [Window(10**9, 1.0), Window(10**9, 60.0)],
        {"/x": [Window(10**9, 1.0)]},
        max_concurrent=100,
    )
    semaphore = asyncio.Semaphore(100)

    async def one_limiter() -> None:
        async with limiter.slot(Priority.ANALYSIS, "/x"):
            pass

    async def one_semaphore() -> None:
        async with semaphore:
            pass

    out: dict[str, float] = {}
    for name, fn in (("limiter", one_limiter), ("semaphore", one_semaphore)):
        t0 = time.perf_counter()
        for _ in range(n):
            await fn()
        out[f"{name}_serial_per_s"] = n / (time.perf_counter() - t0)

        async def worker(count: int, fn: Callable[[], Awaitable[None]] = fn) -> None:
            for _ in range(count):
                await fn()
                await asyncio.sleep(0)  # interleave the 100 callers

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(n // 100) for _ in range(100)))
        out[f"{name}_100_tasks_per_s"] = n / (time.perf_counter() - t0)
    limiter.close()
    return out


async def bench_end_to_end(sim: BitgetSimulator, n: int, concurrency: int) -> dict[str, float]:
    settings = Settings(
        _env_file=None,
        bitget={
            **LIFTED, "base_url": sim.base_url, "max_connections": concurrency,
            "max_keepalive_connections": concurrency,
        },
    )  # fmt: skip
    out: dict[str, float] = {}
    gate = asyncio.Semaphore(concurrency)

    async def run(fn: Callable[[], Awaitable[Any]]) -> float:
        async def one() -> None:
            async with gate:
                await fn()

        await asyncio.gather(*(one() for _ in range(100)))  # warm up the pool
        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return n / (time.perf_counter() - t0)

    async with BitgetClient(settings) as ex:
        out["client_time_per_s"] = await run(ex.server_time)
        out["client_ticker_per_s"] = await run(lambda: ex.get_ticker("BTCUSDT"))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=sim.base_url, limits=limits) as raw:
        out["httpx_time_per_s"] = await run(lambda: raw.get("/api/v2/public/time"))
        out["httpx_ticker_per_s"] = await run(
            lambda: raw.get("/api/v2/spot/market/tickers?symbol=BTCUSDT")
        )
    return out


async def main(n: int, concurrency: int) -> dict[str, Any]:
    results: dict[str, Any] = {"mock": await bench_mock(n)}
    results["limiter"] = await bench_limiter(n * 50)
    async with BitgetSimulator(
        history_bars=1_000, rate_limits=False, api_key=KEY, api_secret=SECRET, passphrase=PHRASE
    ) as sim:
        results["loopback"] = await bench_loopback(sim, n)
        results["end_to_end"] = await bench_end_to_end(sim, n, concurrency)
        results["end_to_end_32"] = await bench_end_to_end(sim, n, 32)
    return results


def report(r: dict[str, Any]) -> None:
    m, lb, lim, e2e, e32 = (
        r["mock"], r["loopback"], r["limiter"], r["end_to_end"], r["end_to_end_32"]
    )  # fmt: skip
    c = r["meta_concurrency"]
    rows = [
        ("no network: get_ticker (client)", m["client"], m["httpx"], "bare httpx.get + json"),
        ("loopback: server time (client)", lb["time_client"], lb["time_httpx"], "bare httpx"),
        ("loopback: signed assets (client)", lb["assets_client"], lb["assets_httpx"],
         "bare httpx + sign"),
    ]  # fmt: skip
    print(f"{'per request':40} {'median µs':>10} {'p99 µs':>10}   {'baseline':>10} {'p99':>10}"
          f"  {'overhead (median)':>18}")  # fmt: skip
    for name, ours, base, label in rows:
        over = ours["median_us"] - base["median_us"]
        print(
            f"{name:40} {ours['median_us']:10.0f} {ours['p99_us']:10.0f}   "
            f"{base['median_us']:10.0f} {base['p99_us']:10.0f}  {over:+10.0f} µs "
            f"(x{ours['median_us'] / base['median_us']:.2f})  [{label}]"
        )
    print()
    print(f"{'throughput':40} {'ours /s':>12} {'baseline /s':>12} {'ratio':>8}")
    pairs = [
        ("limiter slot, 1 task", lim["limiter_serial_per_s"], lim["semaphore_serial_per_s"]),
        ("limiter slot, 100 tasks", lim["limiter_100_tasks_per_s"],
         lim["semaphore_100_tasks_per_s"]),
        (f"end-to-end server time, {c} callers", e2e["client_time_per_s"],
         e2e["httpx_time_per_s"]),
        (f"end-to-end ticker, {c} callers", e2e["client_ticker_per_s"],
         e2e["httpx_ticker_per_s"]),
        ("end-to-end server time, 32 callers", e32["client_time_per_s"], e32["httpx_time_per_s"]),
        ("end-to-end ticker, 32 callers", e32["client_ticker_per_s"], e32["httpx_ticker_per_s"]),
    ]  # fmt: skip
    for name, ours, base in pairs:
        print(f"{name:40} {ours:12,.0f} {base:12,.0f} {ours / base:8.2f}")
    print("(limiter baseline: asyncio.Semaphore; end-to-end baseline: bare httpx, same pool)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2_000, help="requests per measurement")
    parser.add_argument("--concurrency", type=int, default=4, help="callers (= pool size)")
    parser.add_argument(
        "--sniffio", action="store_true", help="stub sniffio (what the dependency would save)"
    )
    args = parser.parse_args()
    if args.sniffio and "sniffio" not in sys.modules:
        stub = types.ModuleType("sniffio")
        stub.current_async_library = lambda: "asyncio"  # type: ignore[attr-defined]
        sys.modules["sniffio"] = stub
    started = time.time()
    results = asyncio.run(main(args.n, args.concurrency))
    results["meta_concurrency"] = args.concurrency
    report(results)
    results["meta"] = {
        "n": args.n,
        "concurrency": args.concurrency,
        "sniffio_stub": args.sniffio,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_avg": os.getloadavg(),
        "wall_s": round(time.time() - started, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    name = RESULTS.with_name("exchange_sniffio.json") if args.sniffio else RESULTS
    name.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {name}")
