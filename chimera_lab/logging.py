"""Structured JSON logging with secret redaction.

Library code asks for a logger and logs events with fields::

    from chimera_lab.logging import get_logger
    log = get_logger(__name__)
    log.info("store.write", symbol="BTCUSDT", rows=1440)

Loggers are thin structlog wrappers around the standard library's ``logging`` loggers, so the
package is silent until an entry point (the CLI, a notebook, a pipeline worker) calls
:func:`configure_logging`. That installs one handler whose formatter renders each event as one
JSON object (``event``, ``timestamp`` in ISO-8601 UTC, ``level``, ``logger`` and the fields) and
then **redacts**: fields whose names look like credentials are masked, and every secret value
held in :class:`~chimera_lab.config.Settings` is replaced wherever it occurs in the final line
(also in its JSON-escaped form), so no secret can reach a log line by any route.
"""

from __future__ import annotations

import json
import logging as _logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO
from urllib.parse import quote, quote_plus

import structlog

from chimera_lab.config import Settings, iter_secret_values

__all__ = ["REDACTED", "Redactor", "configure_logging", "get_logger"]

REDACTED = "***"

# Field names whose values are credentials whatever they contain.
_SECRET_KEY = re.compile(
    r"(secret|passphrase|password|passwd|api[_-]?key|access[_-]?key|access[_-]?sign|"
    r"signature|^sign$|token|authorization|cookie)",
    re.IGNORECASE,
)

# Processors shared by our own events and by foreign (stdlib) log records.
_PRE_CHAIN: list[Any] = [
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
]


class Redactor:
    """Remove secrets from an event dict and from the rendered line.

    Parameters
    ----------
    secrets : iterable of str
        Plain secret values that must never appear in output. Values shorter than 4
        characters are ignored (masking them would corrupt ordinary text).
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {s for s in secrets if s and len(s) >= 4}
        forms = set(values)
        for v in values:
            # The forms a value takes in a rendered line: JSON (ASCII-escaped), repr (the
            # console renderer), URL-encoded (a query string or a logged URL).
            forms |= {json.dumps(v)[1:-1], json.dumps(v, ensure_ascii=False)[1:-1]}
            forms |= {repr(v)[1:-1], quote(v, safe=""), quote_plus(v)}
        # Longest first, so a secret containing another is masked whole.
        self._needles = sorted(forms, key=len, reverse=True)

    def scrub_text(self, text: str) -> str:
        """Replace every known secret value in ``text``."""
        for needle in self._needles:
            if needle in text:
                text = text.replace(needle, REDACTED)
        return text

    def event_processor(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Mask credential-named fields (recursively) before rendering."""
        return {k: self._mask(k, v) for k, v in event_dict.items()}

    def _mask(self, key: str, value: Any) -> Any:
        if _SECRET_KEY.search(key) and value not in (None, "", False):
            return REDACTED
        if isinstance(value, dict):
            return {k: self._mask(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            # (name, value) pairs, e.g. headers as a list of tuples, are masked by name.
            if len(value) == 2 and isinstance(value[0], str) and _SECRET_KEY.search(value[0]):
                masked: list[Any] = [value[0], REDACTED if value[1] else value[1]]
            else:
                masked = [self._mask(key, v) for v in value]
            return tuple(masked) if isinstance(value, tuple) else masked
        return value

    def line_processor(self, _logger: Any, _method: str, line: Any) -> Any:
        """Scrub the whole rendered line (the final step)."""
        return self.scrub_text(line) if isinstance(line, str) else line


_KEY_MASKER = Redactor()


def get_logger(name: str) -> Any:
    """Return a structured logger for ``name`` (usually ``__name__``).

    The logger does nothing visible until :func:`configure_logging` has been called (or the
    application configures the standard library's logging). Credential-named fields are masked
    here already, whatever handler prints the event; secret *values* inside other text are
    removed by the handler :func:`configure_logging` installs.
    """
    return structlog.wrap_logger(
        _logging.getLogger(name),
        processors=[
            structlog.stdlib.filter_by_level,
            _KEY_MASKER.event_processor,
            *_PRE_CHAIN,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
    )


def configure_logging(
    settings: Settings | None = None,
    *,
    stream: TextIO | None = None,
    extra_secrets: Iterable[str] = (),
) -> _logging.Handler:
    """Send log events to ``stream`` (default stderr) as redacted JSON lines.

    Installs one handler on the root logger, replacing any handler a previous call installed,
    so calling it twice is harmless. Returns the handler (tests read from it).

    Parameters
    ----------
    settings : Settings, optional
        Supplies the level, the format and the secrets to redact. Built from the
        environment when omitted.
    stream : text stream, optional
        Where lines go; default ``sys.stderr``.
    extra_secrets : iterable of str
        More values to redact (for example credentials passed on a command line).
    """
    settings = settings if settings is not None else Settings()
    redactor = Redactor([*iter_secret_values(settings), *extra_secrets])
    renderer: Any
    if settings.logging.format == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False, default=str)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_PRE_CHAIN,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redactor.event_processor,
            renderer,
            redactor.line_processor,
        ],
    )
    handler = _logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)
    handler.set_name("chimera_lab")
    root = _logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "chimera_lab"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.logging.level)
    # httpx logs every request line at INFO; our own request events carry the same facts.
    _logging.getLogger("httpx").setLevel(max(_logging.WARNING, root.level))
    return handler
