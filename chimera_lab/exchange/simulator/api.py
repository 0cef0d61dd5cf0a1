"""Bitget's response envelope, error codes and the HTTP status the simulator gives each code.

Every answer is ``{"code": "00000", "msg": "success", "requestTime": <ms>, "data": ...}``;
errors carry another code and ``"data": null`` (bitget-api.md §4).

HTTP status per code is **unverified** upstream (the one observation: ``40009`` with HTTP 400).
The simulator's consistent rule: code ``429`` → HTTP 429; system-busy codes (``40015``,
``40725``, ``45001``) → HTTP 500/503; an unknown path → HTTP 404 (code ``40404``); every
other business or authentication error → HTTP 400. Clients should decide on ``code``.

Examples
--------
>>> err = ApiError("40009", "sign signature error")
>>> err.status
400
>>> envelope({"serverTime": "1"}, request_time_ms=5)["code"]
'00000'
"""

from __future__ import annotations

from typing import Any

__all__ = ["ApiError", "envelope", "error_body", "status_for"]

# Error codes whose HTTP status is not 400 (see module docstring; unverified upstream).
_STATUS = {"429": 429, "40015": 500, "40725": 500, "45001": 503, "40404": 404, "40010": 504}


def status_for(code: str) -> int:
    """Return the HTTP status the simulator sends with Bitget error ``code``."""
    return _STATUS.get(code, 400)


class ApiError(Exception):
    """A Bitget error answer: ``code`` (string), ``msg``, and the HTTP ``status`` to send."""

    def __init__(self, code: str, msg: str, *, status: int | None = None) -> None:
        self.code = code
        self.msg = msg
        self.status = status_for(code) if status is None else status
        super().__init__(f"{code}: {msg}")


def envelope(data: Any, *, request_time_ms: int) -> dict[str, Any]:
    """Wrap ``data`` in Bitget's success envelope."""
    return {"code": "00000", "msg": "success", "requestTime": request_time_ms, "data": data}


def error_body(code: str, msg: str, *, request_time_ms: int) -> dict[str, Any]:
    """Return Bitget's error envelope (``data`` is ``null``)."""
    return {"code": code, "msg": msg, "requestTime": request_time_ms, "data": None}


# Parameter errors. Bitget's texts for these codes (ccxt's table): 40019 "Parameter {0} cannot
# be empty", 40020 "Parameter {0} error", 40034 "Parameter {0} does not exist"; which code a
# given endpoint uses for which mistake is unverified.
def missing(name: str) -> ApiError:
    """Return the error for an absent required parameter."""
    return ApiError("40019", f"Parameter {name} cannot be empty")


def invalid(name: str, detail: str = "") -> ApiError:
    """Return the error for a parameter with a bad value."""
    return ApiError("40020", f"Parameter {name} error" + (f": {detail}" if detail else ""))
