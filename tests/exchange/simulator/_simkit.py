"""Helpers for the simulator tests: a signed HTTP client with its own (independent) signer."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

import httpx

KEY, SECRET, PASSPHRASE = "test-key", "test-secret", "test-passphrase"

# bitget-api.md §2 worked example.
DOC_KEY = "bg_dummy_key_0001"
DOC_SECRET = "dummy-secret-0123456789abcdef"
DOC_PASSPHRASE = "dummy-passphrase"
DOC_TS = "1700000000000"
DOC_BODY_A = (
    '{"symbol":"BTCUSDT","side":"buy","orderType":"limit","force":"gtc",'
    '"price":"30000","size":"0.001","clientOid":"demo-order-0001"}'
)
DOC_SIGN_A = "FedbgNYfvVL0y65jTX41YhmvZo8wKm0XdFNo/VuLC6k="
DOC_SIGN_B = "5qlpFLwF63bbVQuOr9h7T1oD8yTRvFwbxguwtXGfc14="
DOC_SIGN_C = "CSUmjaK+QxCXGyA8evN2z9JqEa+kXoNYl3jl7eOWxK4="
DOC_SIGN_D = "7NJkJan7KjmAyLAHjIE6yZgCV/o4R8aRiOQ4zKog9Uw="


def limit_buy(client_oid: str) -> dict[str, str]:
    """Body of a small spot limit buy far below the market (rests on the book)."""
    return {
        "symbol": "BTCUSDT",
        "side": "buy",
        "orderType": "limit",
        "force": "gtc",
        "price": "1000",
        "size": "0.01",
        "clientOid": client_oid,
    }


def hand_sign(secret: str, message: str) -> str:
    """Independent of chimera_lab.exchange.signing: base64(HMAC-SHA256(secret, message))."""
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class Signed:
    """Minimal Bitget v2 client for tests: sorted query, compact JSON body, ms timestamps."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        key: str = KEY,
        secret: str = SECRET,
        passphrase: str = PASSPHRASE,
    ) -> None:
        self.http, self.key, self.secret, self.passphrase = http, key, secret, passphrase

    async def get_public(self, path: str, **params: Any) -> dict[str, Any]:
        r = await self.http.get(path, params={k: str(v) for k, v in params.items()})
        return r.json()

    async def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        *,
        timestamp: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        ts = timestamp or str(int(time.time() * 1000))
        pairs = sorted((k, str(v)) for k, v in (params or {}).items())
        raw = "&".join(f"{k}={v}" for k, v in pairs)  # signed raw (bitget-api.md section 2)
        query = urlencode(pairs)  # sent percent-encoded
        text = json.dumps(body, separators=(",", ":")) if body is not None else ""
        message = ts + method + path + (("?" + raw) if raw else "") + text
        h = {
            "ACCESS-KEY": self.key,
            "ACCESS-SIGN": hand_sign(self.secret, message),
            "ACCESS-TIMESTAMP": ts,
            "ACCESS-PASSPHRASE": self.passphrase,
            "Content-Type": "application/json",
            "locale": "en-US",
        }
        h.update(headers or {})
        url = path + (("?" + query) if query else "")
        return await self.http.request(method, url, headers=h, content=text or None)

    async def call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        return (await self.request(method, path, **kw)).json()
