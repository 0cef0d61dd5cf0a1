"""Bitget API v2 request signing (HMAC-SHA256), shared by the client and the simulator.

``prehash = timestamp + METHOD + requestPath + ("?" + query if query) + body`` and
``ACCESS-SIGN = base64(HMAC_SHA256(secret, prehash))`` (../shared/bitget-api.md §2). The query
is built once from the same parameters, keys sorted ascending, in two forms: Bitget signs the
**raw** ``k=v&...`` string (values not escaped, as ccxt and the official SDK sign it) while the
URL carries it percent-encoded. The two differ only for values with characters such as ``#``
or ``+`` (both allowed in a ``clientOid``). WebSocket login signs
``timestamp_seconds + "GET" + "/user/verify"``.

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

A ``clientOid`` with ``#`` and ``+`` is signed raw and sent escaped:

>>> canonical_query({"symbol": "BTCUSDT", "clientOid": "a+b#c"})
'clientOid=a+b#c&symbol=BTCUSDT'
>>> canonical_query({"symbol": "BTCUSDT", "clientOid": "a+b#c"}, encoded=True)
'clientOid=a%2Bb%23c&symbol=BTCUSDT'
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote

__all__ = ["canonical_query", "prehash", "sign", "ws_login_sign"]


def canonical_query(params: Mapping[str, object] | None, *, encoded: bool = False) -> str:
    """Return ``k=v&...`` with keys sorted and ``None`` values dropped.

    Parameters
    ----------
    params : mapping, optional
        Query parameters (values are turned into strings).
    encoded : bool
        ``False`` (default): the raw form Bitget signs (:func:`prehash`). ``True``: the same
        string percent-encoded for the URL; characters that travel unescaped (letters, digits,
        ``-_.~:,``) are left alone, so for ordinary parameters both forms are identical.
    """
    if not params:
        return ""
    parts = []
    for key in sorted(params):
        value = params[key]
        if value is None:
            continue
        text = str(value)
        if encoded:
            text = quote(text, safe="-_.~:,")
        parts.append(f"{key}={text}")
    return "&".join(parts)


def prehash(timestamp: str, method: str, request_path: str, query: str = "", body: str = "") -> str:
    """Return the string Bitget signs for a REST request (``query`` in its raw form)."""
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
