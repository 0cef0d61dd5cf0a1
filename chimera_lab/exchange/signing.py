"""Bitget API v2 request signing (HMAC-SHA256), shared by the client and the simulator.

``prehash = timestamp + METHOD + requestPath + ("?" + query if query) + body`` and
``ACCESS-SIGN = base64(HMAC_SHA256(secret, prehash))`` (../shared/bitget-api.md §2). The query
string is built once, keys sorted ascending, and the very same string is sent in the URL and
signed. WebSocket login signs ``timestamp_seconds + "GET" + "/user/verify"``.

Examples
--------
The worked examples of bitget-api.md §2:

>>> secret = "dummy-secret-0123456789abcdef"
>>> body = ('{"symbol":"BTCUSDT","side":"buy","orderType":"limit","force":"gtc",'
...         '"price":"30000","size":"0.001","clientOid":"demo-order-0001"}')
>>> sign(secret, "1700000000000", "POST", "/api/v2/spot/trade/place-order", "", body)
'FedbgNYfvVL0y65jTX41YhmvZo8wKm0XdFNo/VuLC6k='
>>> q = canonical_query({"symbol": "BTCUSDT", "productType": "USDT-FUTURES"})
>>> q
'productType=USDT-FUTURES&symbol=BTCUSDT'
>>> sign(secret, "1700000000000", "GET", "/api/v2/mix/order/orders-pending", q)
'5qlpFLwF63bbVQuOr9h7T1oD8yTRvFwbxguwtXGfc14='
>>> ws_login_sign(secret, "1700000000")
'7NJkJan7KjmAyLAHjIE6yZgCV/o4R8aRiOQ4zKog9Uw='
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote

__all__ = ["canonical_query", "prehash", "sign", "ws_login_sign"]


def canonical_query(params: Mapping[str, object] | None) -> str:
    """Return ``k=v&...`` with keys sorted and ``None`` values dropped.

    Values are percent-encoded only where a character could not travel in a URL unescaped
    (Bitget parameters are alphanumeric plus ``-_.``), so the signed and the sent string agree.
    """
    if not params:
        return ""
    parts = []
    for key in sorted(params):
        value = params[key]
        if value is None:
            continue
        parts.append(f"{key}={quote(str(value), safe='-_.~:,')}")
    return "&".join(parts)


def prehash(timestamp: str, method: str, request_path: str, query: str = "", body: str = "") -> str:
    """Return the string Bitget signs for a REST request."""
    return f"{timestamp}{method.upper()}{request_path}{'?' + query if query else ''}{body}"


def sign(
    secret: str,
    timestamp: str,
    method: str,
    request_path: str,
    query: str = "",
    body: str = "",
) -> str:
    """Return the base64 HMAC-SHA256 ``ACCESS-SIGN`` of a REST request."""
    message = prehash(timestamp, method, request_path, query, body)
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def ws_login_sign(secret: str, timestamp_s: str) -> str:
    """Return the signature of a WebSocket login (timestamp in **seconds**)."""
    return sign(secret, timestamp_s, "GET", "/user/verify")
