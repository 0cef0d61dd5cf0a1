"""Keep secrets out of notebook parameters and run manifests.

Papermill writes every parameter into the executed notebook, and the manifest records them, so
a credential passed as a parameter would be archived in clear text. :func:`assert_no_secrets`
refuses, before anything runs:

- a key whose name looks like a credential (``api_key``, ``secret``, ``passphrase``, ``token``
  ...), whatever its value;
- a value equal to (or containing) any secret held in :class:`~chimera_lab.config.Settings`;
- a URL with a password in it (``postgresql://user:pw@host/db``).

Steps that need credentials read them from the worker's environment (``CHIMERA_BITGET__*``,
``CHIMERA_STORE__URL``) through ``Settings()``, never from their parameters.

Examples
--------
>>> assert_no_secrets({"symbol": "BTCUSDT", "store_url": "duckdb:///tmp/x.duckdb"})
>>> assert_no_secrets({"api_key": "abc"})
Traceback (most recent call last):
...
chimera_lab.errors.PipelineError: parameter 'api_key' looks like a credential; ...
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from chimera_lab.config import Settings, iter_secret_values
from chimera_lab.errors import PipelineError

__all__ = ["assert_no_secrets", "mask_url"]

_SECRET_NAME = re.compile(
    r"(secret|passphrase|password|passwd|api[_-]?key|access[_-]?key|private[_-]?key|token|"
    r"credential|authorization)",
    re.IGNORECASE,
)
_URL_WITH_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]*:[^/@\s]+@")


def mask_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``.

    >>> mask_url("postgresql://quant:hunter2@db:5432/bars")
    'postgresql://quant:***@db:5432/bars'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _walk(value: Any, path: str) -> Iterable[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            key_path = f"{path}.{k}" if path else str(k)
            yield key_path, {"__key__": str(k)}
            yield from _walk(v, key_path)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")
    else:
        yield path, value


def assert_no_secrets(
    parameters: Mapping[str, Any], *, settings: Settings | None = None, what: str = "parameter"
) -> None:
    """Raise if ``parameters`` (nested mappings and lists too) could carry a credential.

    Parameters
    ----------
    parameters : mapping
        Notebook parameters or a manifest section.
    settings : Settings, optional
        Whose secret values must not appear (default: none checked beyond names and URLs).
    what : str
        How to name the offending entry in the message.

    Raises
    ------
    PipelineError
        Naming the offending key (never the value).
    """
    secrets = [s for s in iter_secret_values(settings) if len(s) >= 4] if settings else []
    for path, value in _walk(parameters, ""):
        if isinstance(value, dict) and "__key__" in value:
            if _SECRET_NAME.search(value["__key__"]):
                raise PipelineError(
                    f"{what} {path!r} looks like a credential; secrets are never passed to "
                    "notebooks (they are saved in the executed notebook and the manifest): "
                    "let the step read them from the worker's environment (CHIMERA_* variables)"
                )
            continue
        if not isinstance(value, str):
            continue
        if _URL_WITH_PASSWORD.match(value):
            raise PipelineError(
                f"{what} {path!r} is a URL with a password; pass it through the worker's "
                "environment (e.g. CHIMERA_STORE__URL) instead of a parameter"
            )
        if any(secret in value for secret in secrets):
            raise PipelineError(
                f"{what} {path!r} contains a configured secret value; secrets are never passed "
                "to notebooks or written to manifests"
            )
