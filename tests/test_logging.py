"""Structured JSON logs; no secret value from Settings ever reaches a log line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chimera_lab.config import Settings
from chimera_lab.logging import REDACTED, configure_logging, get_logger


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _settings(secret: str, key: str = "key-ABCDEF", passphrase: str = "pass-phrase") -> Settings:
    return Settings(
        _env_file=None,
        bitget={"api_key": key, "api_secret": secret, "passphrase": passphrase},
        logging={"level": "DEBUG", "format": "json"},
    )


def _emit_everywhere(secret: str) -> None:
    log = get_logger("chimera_lab.test")
    log.info("plain.event", symbol="BTCUSDT", rows=3)
    log.info(f"message with {secret} inside")
    log.warning("field", note=f"prefix-{secret}-suffix", nested={"deep": {"x": secret}})
    log.info("named", api_secret="whatever", headers={"ACCESS-SIGN": "abc", "ok": 1})
    try:
        raise RuntimeError(f"boom {secret}")
    except RuntimeError:
        log.exception("failed")
    logging.getLogger("some.library").warning("foreign %s record", secret)


def test_lines_are_json_with_event_timestamp_level(restore_root: None) -> None:
    stream = io.StringIO()
    configure_logging(_settings("s3cret-value-123"), stream=stream)
    get_logger("chimera_lab.test").info("store.write", symbol="BTCUSDT", rows=1440)
    record = json.loads(stream.getvalue().splitlines()[0])
    assert record["event"] == "store.write"
    assert record["level"] == "info"
    assert record["timestamp"].endswith("Z")
    assert (record["symbol"], record["rows"], record["logger"]) == (
        "BTCUSDT",
        1440,
        "chimera_lab.test",
    )


def test_secrets_never_appear(restore_root: None) -> None:
    secret = "s3cret-value-123"
    stream = io.StringIO()
    configure_logging(_settings(secret), stream=stream)
    _emit_everywhere(secret)
    out = stream.getvalue()
    assert secret not in out and "key-ABCDEF" not in out
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 6
    named = next(r for r in lines if r["event"] == "named")
    assert named["api_secret"] == REDACTED and named["headers"]["ACCESS-SIGN"] == REDACTED
    assert named["headers"]["ok"] == 1


@settings(max_examples=50, deadline=None)
@given(
    secret=st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=4, max_size=30
    ).filter(lambda s: s.strip() == s and len(set(s)) > 2)
)
def test_any_secret_is_redacted_including_json_escapes(secret: str) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        stream = io.StringIO()
        configure_logging(_settings(secret, key="k" * 12, passphrase="p" * 12), stream=stream)
        _emit_everywhere(secret)
        out = stream.getvalue()
        assert secret not in out
        assert json.dumps(secret)[1:-1] not in out
        for line in out.splitlines():
            json.loads(line)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_configure_twice_keeps_one_handler(restore_root: None) -> None:
    configure_logging(_settings("abcd-1234"), stream=io.StringIO())
    configure_logging(_settings("abcd-1234"), stream=io.StringIO())
    ours = [h for h in logging.getLogger().handlers if h.get_name() == "chimera_lab"]
    assert len(ours) == 1


def test_credential_fields_are_masked_even_without_configure_logging(
    restore_root: None,
) -> None:
    # An application that only calls logging.basicConfig() must not print credentials either.
    stream = io.StringIO()
    root = logging.getLogger()
    root.handlers[:] = [logging.StreamHandler(stream)]
    root.setLevel(logging.INFO)
    get_logger("chimera_lab.test").info(
        "req", api_key="AK-supersecret-123", headers=[("ACCESS-PASSPHRASE", "pw-123456")]
    )
    out = stream.getvalue()
    assert "AK-supersecret-123" not in out and "pw-123456" not in out and REDACTED in out


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_quoted_and_url_encoded_secrets_are_redacted(restore_root: None, fmt: str) -> None:
    from urllib.parse import quote

    secret = "se\"c\\ret'x+/="
    stream = io.StringIO()
    settings = Settings(
        _env_file=None,
        bitget={"api_secret": secret},
        logging={"level": "INFO", "format": fmt},
    )
    configure_logging(settings, stream=stream)
    log = get_logger("chimera_lab.test")
    log.info("blob", blob=secret)
    log.info("url", url=f"https://x/?q={quote(secret, safe='')}")
    out = stream.getvalue()
    for form in (secret, json.dumps(secret)[1:-1], repr(secret)[1:-1], quote(secret, safe="")):
        assert form not in out
