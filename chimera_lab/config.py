"""Settings: one typed object built from the environment and ``.env``.

Every variable is ``CHIMERA_<SECTION>__<FIELD>`` (nested delimiter ``__``), for example
``CHIMERA_STORE__URL=data/chimera.duckdb`` or ``CHIMERA_BITGET__API_KEY=...``. ``.env.example``
documents each one. Secrets are :class:`pydantic.SecretStr`: they print as ``**********`` and
never enter logs (see :mod:`chimera_lab.logging`), notebook parameters or run manifests.

Nothing here is global: build a :class:`Settings` where the program starts (CLI, notebook,
pipeline worker) and pass it, or the pieces of it, to what needs it.

Examples
--------
>>> s = Settings(_env_file=None, store={"url": "/tmp/example.duckdb"})
>>> s.store.url
'/tmp/example.duckdb'
>>> s.bitget.api_key is None
True
"""

from __future__ import annotations

import difflib
import os
import re
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from chimera_lab.errors import AuthenticationError, ChimeraWarning

__all__ = [
    "BacktestSettings",
    "BitgetSettings",
    "ConfigWarning",
    "find_project_root",
    "LoggingSettings",
    "PipelineSettings",
    "RegimeLimitsSettings",
    "RiskSettings",
    "Settings",
    "SimSettings",
    "StoreSettings",
    "iter_secret_values",
]


def _real_credential(value: SecretStr | None) -> SecretStr | None:
    # Shorter values could not be masked in logs without corrupting ordinary text, and no
    # exchange issues credentials that short.
    if value is not None and 0 < len(value.get_secret_value()) < 4:
        raise ValueError("is shorter than 4 characters; that cannot be a real credential")
    return value


Credential = Annotated[SecretStr | None, AfterValidator(_real_credential)]


class ConfigWarning(ChimeraWarning):
    """A ``CHIMERA_*`` variable names no setting (probably a typo)."""


class StoreSettings(BaseModel):
    """Where bars are stored."""

    url: str = Field(
        "data/chimera.duckdb",
        description="A DuckDB file path, duckdb:///path, or (later) postgresql://...",
    )
    lock_timeout_s: float = Field(
        30.0, gt=0, description="How long a call waits for another process's file lock."
    )
    rollup_timeframes: list[str] = Field(
        default_factory=lambda: ["5m", "15m", "1h", "4h", "1d"],
        description="Rollups kept up to date on write (continuous aggregates) for fast resample.",
    )


class BitgetSettings(BaseModel):
    """Bitget REST/WebSocket API v2 access (see ../shared/bitget-api.md)."""

    api_key: Credential = None
    api_secret: Credential = None
    passphrase: Credential = None
    base_url: str = "https://api.bitget.com"
    ws_public_url: str = "wss://ws.bitget.com/v2/ws/public"
    ws_private_url: str = "wss://ws.bitget.com/v2/ws/private"
    product: Literal["spot", "usdt-futures"] = "spot"
    demo: bool = Field(False, description="Send `paptrading: 1` (Bitget demo trading).")
    mode: Literal["paper", "live"] = Field(
        "paper", description="Live trading with real money also needs confirm_live=true."
    )
    confirm_live: bool = False
    timeout_s: float = Field(10.0, gt=0)
    connect_timeout_s: float = Field(5.0, gt=0)
    max_connections: int = Field(20, ge=1)
    max_keepalive_connections: int = Field(10, ge=0)
    rate_limit_per_minute: int = Field(500, ge=1, description="Overall requests per 60 s.")
    rate_limit_per_second: int = Field(10, ge=1, description="Overall requests per second.")
    rate_limit_trading_reserve: float = Field(
        0.02,
        ge=0,
        lt=1,
        description="Share of each overall window kept for orders (at least 1 slot; 0 = none).",
    )
    retry_max_attempts: int = Field(5, ge=1)
    retry_base_delay_s: float = Field(0.2, ge=0)
    retry_max_delay_s: float = Field(10.0, ge=0)
    circuit_failure_threshold: int = Field(5, ge=1)
    circuit_recovery_s: float = Field(60.0, gt=0)
    endpoint_limit_scale: float = Field(
        1.0, gt=0, description="Multiply Bitget's per-endpoint limits (simulators and tests)."
    )
    rate_limit_margin_s: float = Field(
        0.05, ge=0, description="Added to every rate window: a guard against network jitter."
    )
    limiter_max_waiters: int = Field(
        10_000, ge=1, description="Most requests allowed to wait for a rate-limit slot."
    )
    auto_time_sync: bool = Field(
        True, description="On a stale-timestamp error (40008) resync with server time, retry once."
    )
    ws_ping_interval_s: float = Field(30.0, gt=0, description="Send text `ping` this often.")
    ws_pong_timeout_s: float = Field(10.0, gt=0, description="Reconnect if no `pong` by then.")
    ws_reconnect_base_delay_s: float = Field(0.5, ge=0)
    ws_reconnect_max_delay_s: float = Field(30.0, ge=0)
    ws_queue_size: int = Field(10_000, ge=1, description="Events buffered for a slow consumer.")

    def credentials(self) -> tuple[str, str, str]:
        """Return ``(api_key, api_secret, passphrase)`` as plain strings, for signing.

        Raises
        ------
        AuthenticationError
            If any of the three is not set (before anything is sent). It is an
            :class:`~chimera_lab.errors.AuthenticationError` like the exchange's own refusals,
            so callers handle "no usable credentials" in one place.

        Examples
        --------
        >>> s = BitgetSettings(api_key="key-1", api_secret="secret-1", passphrase="phrase-1")
        >>> s.credentials()[0]
        'key-1'
        """
        if self.api_key is None or self.api_secret is None or self.passphrase is None:
            raise AuthenticationError(
                "this needs Bitget API credentials; set CHIMERA_BITGET__API_KEY, "
                "CHIMERA_BITGET__API_SECRET and CHIMERA_BITGET__PASSPHRASE (env or .env)"
            )
        return (
            self.api_key.get_secret_value(),
            self.api_secret.get_secret_value(),
            self.passphrase.get_secret_value(),
        )


class SimSettings(BaseModel):
    """The loopback Bitget-compatible simulator (``chimera sim serve``)."""

    host: str = "127.0.0.1"
    port: int = Field(8900, ge=0, le=65535)
    api_key: Credential = None
    api_secret: Credential = None
    passphrase: Credential = None


class RegimeLimitsSettings(BaseModel):
    """Risk limits that apply while the market is in one regime."""

    exposure_multiplier: float = Field(1.0, ge=0)
    max_leverage: float = Field(1.0, ge=0)
    var_limit: float = Field(0.05, gt=0, description="Max one-period VaR as a fraction of equity.")


def _default_regime_limits() -> dict[str, RegimeLimitsSettings]:
    return {
        "normal": RegimeLimitsSettings(exposure_multiplier=1.0, max_leverage=2.0, var_limit=0.05),
        "trending": RegimeLimitsSettings(exposure_multiplier=1.0, max_leverage=2.0, var_limit=0.05),
        "volatile": RegimeLimitsSettings(exposure_multiplier=0.5, max_leverage=1.0, var_limit=0.03),
        "crisis": RegimeLimitsSettings(exposure_multiplier=0.0, max_leverage=0.5, var_limit=0.02),
    }


class RiskSettings(BaseModel):
    """Defaults for VaR, Kelly sizing and pre-trade checks."""

    var_confidence: float = Field(0.99, gt=0.5, lt=1.0)
    var_window_bars: int = Field(1440, ge=2)
    kelly_fraction: float = Field(0.25, gt=0, le=1.0)
    max_leverage: float = Field(1.0, gt=0)
    max_exposure: float = Field(1.0, gt=0)
    max_order_notional: float = Field(1_000_000.0, gt=0)
    drawdown_kill: float = Field(
        0.20, gt=0, lt=1, description="Flat and locked when equity falls this far below its peak."
    )
    regime_limits: dict[str, RegimeLimitsSettings] = Field(default_factory=_default_regime_limits)

    @field_validator("regime_limits", mode="before")
    @classmethod
    def _merge_regime_limits(cls, value: Any) -> Any:
        # Runs before validation so a partial override (one env variable such as
        # CHIMERA_RISK__REGIME_LIMITS__CRISIS__VAR_LIMIT) only changes that field: the
        # regime's other limits keep the regime's own defaults, never the looser class
        # defaults. Anything that is not a mapping is left for pydantic to reject.
        if not isinstance(value, Mapping):
            return value
        defaults = _default_regime_limits()
        overrides: dict[str, Any] = {}
        for key, limits in value.items():
            name = key.lower() if isinstance(key, str) else key
            if name not in defaults:
                close = difflib.get_close_matches(str(name), defaults, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"unknown regime {key!r} in regime_limits; expected some of "
                    f"{sorted(defaults)}{hint}"
                )
            if name in overrides:
                raise ValueError(
                    f"regime {name!r} is given twice in regime_limits (keys are "
                    "case-insensitive); keep one"
                )
            overrides[name] = limits
        merged: dict[str, Any] = {}
        for name, default in defaults.items():
            limits = overrides.get(name)
            if limits is None:
                merged[name] = default
            elif isinstance(limits, RegimeLimitsSettings):
                # only the fields the caller set override the regime's defaults
                merged[name] = {**default.model_dump(), **limits.model_dump(exclude_unset=True)}
            elif isinstance(limits, Mapping):
                merged[name] = {**default.model_dump(), **limits}
            else:
                merged[name] = limits
        return merged


class BacktestSettings(BaseModel):
    """Defaults for the backtest engine."""

    initial_capital: float = Field(100_000.0, gt=0)
    fee_bps: float = Field(6.0, ge=0)
    slippage_bps: float = Field(0.0, ge=0)


class LoggingSettings(BaseModel):
    """Structured logging."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "console"] = "json"


class PipelineSettings(BaseModel):
    """Papermill + Dask execution of notebook pipelines."""

    runs_dir: str = "data/runs"
    workers: int | None = Field(None, ge=1, description="LocalCluster workers (default: cores).")
    scheduler: str | None = Field(None, description="tcp://host:8786 to use an existing cluster.")
    kernel_name: str = "python3"
    connect_timeout_s: float = Field(
        30.0, gt=0, description="How long to try reaching a Dask scheduler before failing."
    )
    cancel_grace_s: float = Field(
        30.0, ge=0, description="On Ctrl-C, how long to wait for running notebooks to stop."
    )


class Settings(BaseSettings):
    """All of chimera_lab's configuration, read from ``CHIMERA_*`` variables and ``.env``."""

    model_config = SettingsConfigDict(
        env_prefix="CHIMERA_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    store: StoreSettings = Field(default_factory=StoreSettings)
    bitget: BitgetSettings = Field(default_factory=BitgetSettings)
    sim: SimSettings = Field(default_factory=SimSettings)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    backtest: BacktestSettings = Field(default_factory=BacktestSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)

    def __init__(self, **values: Any) -> None:
        # `.env` and relative paths belong to the project, not to whatever directory a kernel
        # happens to start in (JupyterLab runs notebooks in notebooks/): inside a chimera-lab
        # checkout they resolve against its root. Elsewhere they stay relative to the CWD.
        root = find_project_root()
        if "_env_file" not in values:
            values["_env_file"] = root / ".env" if root is not None else ".env"
        super().__init__(**values)
        if root is not None:
            self.store.url = _anchor(self.store.url, root)
            self.pipeline.runs_dir = _anchor(self.pipeline.runs_dir, root)
        _warn_unknown_variables(type(self))


_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")
_NOT_SETTINGS = {"CHIMERA_DEBUG", "CHIMERA_SHARED_DATA"}  # read by the CLI / the test suite


def find_project_root(start: Path | None = None) -> Path | None:
    """Return the chimera-lab checkout containing ``start`` (default: the CWD), if any."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file() and 'name = "chimera-lab"' in pyproject.read_text(errors="ignore"):
            return directory
    return None


def _anchor(value: str, root: Path) -> str:
    # A plain relative path becomes absolute under root; URLs, :memory: and absolute paths stay.
    if not value or value == ":memory:" or _URL_SCHEME.match(value) or Path(value).is_absolute():
        return value
    return str(root / value)


def _variables(model: type[BaseModel], prefix: str) -> tuple[set[str], set[str]]:
    # Exact variable names of leaf settings, and prefixes of mapping-valued settings.
    names: set[str] = set()
    prefixes: set[str] = set()
    for name, field in model.model_fields.items():
        var = f"{prefix}{name.upper()}"
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            sub_names, sub_prefixes = _variables(ann, var + "__")
            names |= sub_names
            prefixes |= sub_prefixes
        else:
            names.add(var)
            prefixes.add(var + "__")
    return names, prefixes


def _warn_unknown_variables(settings_cls: type[BaseModel]) -> None:
    names, prefixes = _variables(settings_cls, "CHIMERA_")
    for var in sorted(os.environ):
        if not var.startswith("CHIMERA_") or var in names or var in _NOT_SETTINGS:
            continue
        if any(var.startswith(p) for p in prefixes):
            continue
        close = difflib.get_close_matches(var, names, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        warnings.warn(f"{var} names no chimera_lab setting{hint}", ConfigWarning, stacklevel=3)


def iter_secret_values(model: BaseModel) -> Iterator[str]:
    """Yield the plain value of every non-empty ``SecretStr`` in ``model``, recursively.

    Used by the log redactor; the values never leave this process.
    """
    for name in type(model).model_fields:
        value = getattr(model, name)
        yield from _secrets_in(value)


def _secrets_in(value: object) -> Iterator[str]:
    # Walks nested models, dicts and lists; SecretStr leaves yield their plain text.
    if isinstance(value, SecretStr):
        plain = value.get_secret_value()
        if plain:
            yield plain
    elif isinstance(value, BaseModel):
        yield from iter_secret_values(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _secrets_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _secrets_in(item)
