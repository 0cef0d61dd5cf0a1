"""The exception hierarchy of chimera_lab.

Every error the package raises on purpose derives from :class:`ChimeraError`. Children also
subclass the builtin they refine, so ``except ValueError`` in user code keeps working
(``DataError`` is a ``ValueError``, ``NotFittedError`` an ``AttributeError``, ...).

Messages say what was expected, what was received and what to do next.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "AuthenticationError",
    "ChimeraError",
    "ChimeraWarning",
    "CircuitOpenError",
    "ConfigError",
    "DataError",
    "DataQualityWarning",
    "DuplicateOrder",
    "ExchangeError",
    "ExchangeUnavailable",
    "InsufficientFunds",
    "InvalidOrder",
    "LookAheadError",
    "NotFittedError",
    "OrderNotFound",
    "OutcomeUnknown",
    "PipelineError",
    "RateLimited",
    "RiskLimitError",
    "StoreError",
    "TimestampLeakError",
    "UnknownSeriesError",
]


class ChimeraError(Exception):
    """Root of every error raised deliberately by chimera_lab."""


class ChimeraWarning(UserWarning):
    """Root of every warning issued by chimera_lab."""


class DataQualityWarning(ChimeraWarning):
    """Data is usable but suspicious (gaps, stale prices, outliers)."""


class ConfigError(ChimeraError, ValueError):
    """A setting or parameter has an invalid value."""


class DataError(ChimeraError, ValueError):
    """Input data is malformed; says where (file, row, column) when known.

    Parameters
    ----------
    message : str
        What is wrong and what to do about it.
    file : str or Path, optional
        The file the data came from.
    row : int, optional
        1-based data row (the header is not counted) of the first offending row.
    column : str, optional
        The offending column, as named in the source.
    line : int, optional
        1-based physical line in a text file (header and skipped lines counted).
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        row: int | None = None,
        column: str | None = None,
        line: int | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.row = row
        self.column = column
        self.line = line
        super().__init__(self._format())

    def _format(self) -> str:
        where: list[str] = []
        if self.file is not None:
            where.append(self.file)
        if self.row is not None:
            where.append(f"row {self.row}" + (f" (line {self.line})" if self.line else ""))
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class StoreError(ChimeraError, RuntimeError):
    """The bar store could not complete an operation (locked, missing series, bad URL)."""


class NotFittedError(ChimeraError, AttributeError):
    """An estimator-like object was used before ``fit``."""


class LookAheadError(ChimeraError, ValueError):
    """A fold, feature frame or strategy uses information from the future."""


class RiskLimitError(ChimeraError, ValueError):
    """An operation would breach a configured risk limit."""


class PipelineError(ChimeraError, RuntimeError):
    """A notebook pipeline could not be built or run."""


class ExchangeError(ChimeraError):
    """An exchange rejected or failed a request.

    Parameters
    ----------
    message : str
        Human-readable description.
    code : str, optional
        The exchange's own error code (Bitget: a string such as ``"43012"``).
    status : int, optional
        HTTP status code, when the error came over HTTP.
    """

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        self.code = code
        self.status = status
        super().__init__(message)


class RateLimited(ExchangeError):
    """Too many requests; wait ``retry_after_s`` seconds (when known) before retrying."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        retry_after_s: float | None = None,
    ):
        self.retry_after_s = retry_after_s
        super().__init__(message, code=code, status=status)


class AuthenticationError(ExchangeError, PermissionError):
    """Credentials, signature, passphrase or timestamp were refused."""


class InsufficientFunds(ExchangeError):
    """The account cannot fund the order."""


class OrderNotFound(ExchangeError, LookupError):
    """The order does not exist (or no longer exists) on the exchange."""


class DuplicateOrder(ExchangeError):
    """The clientOid was already used; the order was probably placed before.

    Parameters
    ----------
    message : str
        Human-readable description.
    code, status : optional
        As for :class:`ExchangeError`.
    client_oid : str, optional
        The client order id the exchange refused as a duplicate.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        client_oid: str | None = None,
    ):
        self.client_oid = client_oid
        super().__init__(message, code=code, status=status)


class InvalidOrder(ExchangeError, ValueError):
    """The order's parameters were rejected (size, price, symbol, clientOid format)."""


class ExchangeUnavailable(ExchangeError, ConnectionError):
    """The exchange is down, busy, or the request failed in transport."""


class CircuitOpenError(ExchangeUnavailable):
    """The circuit breaker for an endpoint group is open; the call failed fast."""


class OutcomeUnknown(ExchangeUnavailable):
    """A request was sent but no answer came (timeout, connection reset mid-request).

    The exchange may or may not have acted on it. For orders, reconcile by ``client_oid``
    (the adapter does this itself before resending; this error means it could not tell).

    Parameters
    ----------
    message : str
        Human-readable description.
    code, status : optional
        As for :class:`ExchangeError`.
    client_oid : str, optional
        The client order id of the order whose fate is unknown.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        client_oid: str | None = None,
    ):
        self.client_oid = client_oid
        super().__init__(message, code=code, status=status)


class TimestampLeakError(LookAheadError):
    """A fold or a feature frame holds timestamps past its decision time.

    Parameters
    ----------
    message : str
        What leaked and what to do about it.
    timestamps : iterable
        Every offending timestamp (``pandas.Timestamp`` values), earliest first.
    """

    def __init__(self, message: str, *, timestamps: Iterable[object] = ()) -> None:
        self.timestamps = tuple(timestamps)
        super().__init__(message)


class UnknownSeriesError(StoreError):
    """The bar store holds no such series (symbol and timeframe) yet.

    Distinct from other :class:`StoreError` causes (locked, broken, bad URL) so a caller can
    treat "nothing stored yet" as empty without also swallowing those.
    """
