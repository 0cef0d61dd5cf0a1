"""Authentication: the worked examples of bitget-api.md §2 and every documented auth error."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from _simkit import (
    DOC_BODY_A,
    DOC_KEY,
    DOC_PASSPHRASE,
    DOC_SECRET,
    DOC_SIGN_A,
    DOC_SIGN_B,
    DOC_SIGN_C,
    DOC_TS,
    Signed,
    hand_sign,
    limit_buy,
)

from chimera_lab.exchange.simulator import BitgetSimulator


def _doc_sim() -> BitgetSimulator:
    # Server clock moved so that the doc's timestamp 1700000000000 is "now" (within 30 s).
    offset = int(DOC_TS) - int(time.time() * 1000)
    return BitgetSimulator(
        api_key=DOC_KEY,
        api_secret=DOC_SECRET,
        passphrase=DOC_PASSPHRASE,
        server_time_offset_ms=offset,
        balances={"USDT": 1000},
    )


def _doc_headers(sign: str, **override: str) -> dict[str, str]:
    headers = {
        "ACCESS-KEY": DOC_KEY,
        "ACCESS-SIGN": sign,
        "ACCESS-TIMESTAMP": DOC_TS,
        "ACCESS-PASSPHRASE": DOC_PASSPHRASE,
        "Content-Type": "application/json",
    }
    headers.update(override)
    return headers


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_worked_examples_are_accepted_byte_for_byte() -> None:
    async def scenario() -> None:
        async with _doc_sim() as sim, httpx.AsyncClient(base_url=sim.base_url) as http:
            a = await http.post(
                "/api/v2/spot/trade/place-order",
                content=DOC_BODY_A,
                headers=_doc_headers(DOC_SIGN_A),
            )
            assert a.status_code == 200, a.text
            assert a.json()["code"] == "00000"
            assert a.json()["data"]["clientOid"] == "demo-order-0001"
            b = await http.get(
                "/api/v2/mix/order/orders-pending?productType=USDT-FUTURES&symbol=BTCUSDT",
                headers=_doc_headers(DOC_SIGN_B),
            )
            assert b.json()["code"] == "00000", b.text
            c = await http.get("/api/v2/spot/account/assets", headers=_doc_headers(DOC_SIGN_C))
            assert c.json()["code"] == "00000", c.text
            assert [o.client_oid for o in sim.orders] == ["demo-order-0001"]

    run(scenario())


def test_auth_errors_have_bitget_codes_and_http_400() -> None:
    async def scenario() -> None:
        async with _doc_sim() as sim, httpx.AsyncClient(base_url=sim.base_url) as http:
            path = "/api/v2/spot/account/assets"

            async def code(**override: str) -> tuple[int, str]:
                headers = _doc_headers(DOC_SIGN_C, **override)
                for name, value in list(headers.items()):
                    if value == "<drop>":
                        del headers[name]
                r = await http.get(path, headers=headers)
                body = r.json()
                assert body["data"] is None
                return r.status_code, body["code"]

            assert await code(**{"ACCESS-KEY": "<drop>"}) == (400, "40001")
            assert await code(**{"ACCESS-SIGN": "<drop>"}) == (400, "40002")
            assert await code(**{"ACCESS-TIMESTAMP": "<drop>"}) == (400, "40005")
            assert await code(**{"ACCESS-PASSPHRASE": "<drop>"}) == (400, "40011")
            assert await code(**{"ACCESS-TIMESTAMP": "17e11"}) == (400, "40005")
            assert await code(**{"ACCESS-KEY": "someone-else"}) == (400, "40006")
            assert await code(**{"ACCESS-PASSPHRASE": "wrong"}) == (400, "40012")
            # A wrong secret signs differently.
            wrong = hand_sign("not-the-secret", DOC_TS + "GET" + path)
            assert await code(**{"ACCESS-SIGN": wrong}) == (400, "40009")
            # Stale and future timestamps beyond 30 s (correctly signed for that timestamp).
            for delta in (-31_000, 31_000):
                ts = str(int(DOC_TS) + delta)
                sign = hand_sign(DOC_SECRET, ts + "GET" + path)
                assert await code(**{"ACCESS-TIMESTAMP": ts, "ACCESS-SIGN": sign}) == (
                    400,
                    "40008",
                )
            # Within the window is fine.
            ts = str(int(DOC_TS) + 20_000)
            sign = hand_sign(DOC_SECRET, ts + "GET" + path)
            r = await http.get(path, headers=_doc_headers(sign, **{"ACCESS-TIMESTAMP": ts}))
            assert r.json()["code"] == "00000"
            assert not sim.orders

    run(scenario())


def test_body_must_be_byte_identical_to_the_signed_one() -> None:
    async def scenario() -> None:
        async with _doc_sim() as sim, httpx.AsyncClient(base_url=sim.base_url) as http:
            spaced = DOC_BODY_A.replace(",", ", ")  # same JSON, other bytes
            r = await http.post(
                "/api/v2/spot/trade/place-order", content=spaced, headers=_doc_headers(DOC_SIGN_A)
            )
            assert r.json()["code"] == "40009"
            assert not sim.orders

    run(scenario())


def test_signature_covers_the_url_decoded_query(creds: dict[str, str]) -> None:
    async def scenario() -> None:
        async with (
            BitgetSimulator(**creds) as sim,
            httpx.AsyncClient(base_url=sim.base_url) as http,
        ):
            client = Signed(http)
            placed = await client.call(
                "POST",
                "/api/v2/spot/trade/place-order",
                body=limit_buy("a+b#c"),
            )
            assert placed["code"] == "00000", placed
            path = "/api/v2/spot/trade/orderInfo"
            ts = str(int(time.time() * 1000))
            # ccxt style: URL percent-encoded, signature over the raw k=v form.
            raw = "clientOid=a+b#c"
            headers = {
                "ACCESS-KEY": creds["api_key"],
                "ACCESS-SIGN": hand_sign(creds["api_secret"], ts + "GET" + path + "?" + raw),
                "ACCESS-TIMESTAMP": ts,
                "ACCESS-PASSPHRASE": creds["passphrase"],
            }
            r = await http.get(path + "?clientOid=a%2Bb%23c", headers=headers)
            assert r.json()["code"] == "00000", r.text
            assert r.json()["data"][0]["clientOid"] == "a+b#c"
            # Signing the still-encoded form is rejected.
            headers["ACCESS-SIGN"] = hand_sign(
                creds["api_secret"], ts + "GET" + path + "?clientOid=a%2Bb%23c"
            )
            r = await http.get(path + "?clientOid=a%2Bb%23c", headers=headers)
            assert r.json()["code"] == "40009"

    run(scenario())


def test_public_endpoints_need_no_headers_and_unknown_paths_are_404(
    creds: dict[str, str],
) -> None:
    async def scenario() -> None:
        async with (
            BitgetSimulator(**creds) as sim,
            httpx.AsyncClient(base_url=sim.base_url) as http,
        ):
            r = await http.get("/api/v2/public/time")
            body = r.json()
            assert r.status_code == 200 and body["code"] == "00000" and body["msg"] == "success"
            # requestTime is market time (the replay clock); serverTime wall time.
            assert body["requestTime"] == sim.clock.now_ms
            assert abs(int(body["data"]["serverTime"]) - time.time() * 1000) < 60_000
            r = await http.get("/api/v2/spot/market/nonsense")
            assert r.status_code == 404 and r.json()["code"] == "40404"
            r = await http.get("/api/v2/spot/account/assets")  # private without headers
            assert r.json()["code"] == "40001"

    run(scenario())
