"""Options and helpers shared by the ``chimera`` subcommands."""

from __future__ import annotations

import ast
import functools
import json
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar, cast

import click
import numpy as np
import pandas as pd

from chimera_lab.config import Settings
from chimera_lab.errors import ConfigError

__all__ = [
    "DataSource",
    "SourceArgs",
    "emit_json",
    "get_settings",
    "json_option",
    "load_source",
    "option_group",
    "parse_params",
    "parse_time",
    "require_one_source",
    "source_options",
    "store_option",
    "to_jsonable",
]

F = TypeVar("F", bound=Callable[..., Any])


def get_settings(ctx: click.Context | None = None) -> Settings:
    """Return the Settings built by the root command (or fresh ones outside a CLI run)."""
    ctx = ctx or click.get_current_context(silent=True)
    if ctx is not None:
        root = ctx.find_root()
        settings = root.obj.get("settings") if isinstance(root.obj, dict) else None
        if isinstance(settings, Settings):
            return settings
    return Settings()


def json_option(func: F) -> F:
    """Add ``--json`` (machine-readable output on stdout, nothing else)."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON only.")(func)


def store_option(func: F) -> F:
    """Add ``--store URL`` (default: CHIMERA_STORE__URL, else data/chimera.duckdb)."""
    return click.option(
        "--store",
        "store_url",
        default=None,
        metavar="URL",
        help="Store URL or DuckDB path (default: settings, data/chimera.duckdb).",
    )(func)


@dataclass(frozen=True)
class SourceArgs:
    """The values of the data-source options, handed to a command as one ``source`` argument."""

    csv_path: Path | None
    symbol: str | None
    timeframe: str
    start: str | None
    end: str | None
    store_url: str | None

    def load(self, settings: Settings | None = None) -> tuple[pd.DataFrame, DataSource]:
        """Load the bars these options name (see :func:`load_source`)."""
        return load_source(**asdict(self), settings=settings)


def option_group(
    cls: type[Any], name: str, options: list[Callable[[Any], Any]]
) -> Callable[[F], F]:
    """Return a decorator adding ``options`` whose values reach the command as one argument.

    ``cls`` is a dataclass whose fields are the options' parameter names; the command gets
    ``name=cls(...)`` instead of one keyword per option.
    """
    names = tuple(f.name for f in fields(cls))

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            group = cls(**{field: kwargs.pop(field) for field in names})
            return func(*args, **{name: group}, **kwargs)

        decorated: Any = wrapper
        for option in reversed(options):
            decorated = option(decorated)
        return cast(F, decorated)

    return decorate


source_options = option_group(
    SourceArgs,
    "source",
    [
        click.option(
            "--csv",
            "csv_path",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="Read bars from a file (CSV, CSV.gz, Parquet, Feather).",
        ),
        click.option("--symbol", default=None, help="Read bars of SYMBOL from the store."),
        click.option("--timeframe", default="1m", show_default=True, help="Bar timeframe."),
        click.option("--start", default=None, help="First bar (ISO date/time, UTC)."),
        click.option("--end", default=None, help="Last bar (ISO date/time, UTC, inclusive)."),
        store_option,
    ],
)
"""Add ``--csv FILE | --symbol S --timeframe T [--start --end] [--store URL]``.

The command receives them as one keyword argument, ``source`` (a :class:`SourceArgs`);
``source.load(settings)`` returns the bars and where they came from.
"""


@dataclass(frozen=True)
class DataSource:
    """Where a command's bars came from (for reports and manifests)."""

    kind: str  # "file" or "store"
    location: str
    symbol: str | None
    timeframe: str | None
    start: pd.Timestamp | None
    end: pd.Timestamp | None

    def describe(self) -> str:
        """One-line description."""
        what = f"{self.symbol or ''} {self.timeframe or ''}".strip()
        return f"{self.kind}:{self.location}" + (f" [{what}]" if what else "")


def parse_time(value: str | None, *, name: str) -> pd.Timestamp | None:
    """Parse ``--start``/``--end`` by :func:`chimera_lab.frames.to_utc`; empty stays ``None``."""
    from chimera_lab.frames import to_utc

    if value is None or value == "":
        return None
    try:
        return to_utc(value, name=name)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint=f"--{name}") from None


def load_source(
    *,
    csv_path: Path | None,
    symbol: str | None,
    timeframe: str,
    start: str | None,
    end: str | None,
    store_url: str | None,
    settings: Settings | None = None,
) -> tuple[pd.DataFrame, DataSource]:
    """Load the bars named by :func:`source_options`; exactly one of csv/symbol is required.

    The bars come from :func:`chimera_lab.pipelines.data.load_bars`, the loader pipelines
    and their notebooks use, so a command and a pipeline given the same source read the
    same bars.
    """
    from chimera_lab.pipelines.data import load_bars

    require_one_source(csv_path, symbol)
    t0, t1 = parse_time(start, name="start"), parse_time(end, name="end")
    settings = settings or get_settings()
    bars = load_bars(
        data_path=csv_path, store_url=store_url, symbol=symbol, timeframe=timeframe,
        start=t0, end=t1, settings=settings,
    )  # fmt: skip
    if csv_path is not None:
        return bars, DataSource("file", str(csv_path), None, None, t0, t1)
    return bars, DataSource("store", store_url or settings.store.url, symbol, timeframe, t0, t1)


def require_one_source(csv_path: Path | None, symbol: str | None) -> None:
    """Raise a usage error unless exactly one of ``--csv`` and ``--symbol`` was given."""
    if (csv_path is None) == (symbol is None):
        raise click.UsageError("give exactly one of --csv FILE or --symbol SYMBOL")


def parse_params(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Parse ``k=v`` strings; values are Python literals when they parse (``10``, ``True``).

    >>> parse_params(["fast=10", "k=2.5", "base=sma_cross"])
    {'fast': 10, 'k': 2.5, 'base': 'sma_cross'}
    """
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not of the form key=value", param_hint="--param")
        try:
            value: Any = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        if isinstance(value, str) and value.lower() in {"true", "false"}:
            value = value.lower() == "true"
        params[key.strip()] = value
    return params


def to_jsonable(value: Any) -> Any:
    """Convert numpy/pandas/decimal/enum values to JSON types; NaN and inf become ``None``."""
    if value is pd.NaT or value is None:
        return None
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [to_jsonable(v) for v in value]
    if isinstance(value, pd.Timestamp):
        ts = value.tz_localize("UTC") if value.tzinfo is None else value.tz_convert("UTC")
        return ts.isoformat().replace("+00:00", "Z")
    if isinstance(value, datetime | date):
        return to_jsonable(pd.Timestamp(value))
    if isinstance(value, pd.Timedelta):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value


def emit_json(obj: Any) -> None:
    """Print ``obj`` as JSON on stdout (one document, indented, UTF-8)."""
    json.dump(to_jsonable(obj), sys.stdout, indent=2, ensure_ascii=False, allow_nan=False)
    sys.stdout.write("\n")
