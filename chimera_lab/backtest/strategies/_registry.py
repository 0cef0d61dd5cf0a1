"""The strategy registry: ``@strategy``, lookup by name, loading from ``file.py:function``."""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import inspect
import sys
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar, overload

import pandas as pd

from chimera_lab.errors import ConfigError

__all__ = [
    "StrategyFunc",
    "StrategySpec",
    "get",
    "load_strategy",
    "names",
    "resolve_strategy",
    "strategy",
    "unregister",
]

StrategyFunc = Callable[..., Any]
"""``f(data, **params) -> pd.Series`` of target exposure (fraction of equity) per bar."""

F = TypeVar("F", bound=StrategyFunc)

# The one piece of global mutable state the style guide allows: filled by @strategy at import,
# read-mostly, and a name clash is an error.
_REGISTRY: dict[str, StrategySpec] = {}


@dataclass(frozen=True)
class StrategySpec:
    """A strategy function with its name, parameter signature and default optimisation grid.

    Calling the spec calls the function after checking the parameters: unknown names raise
    :class:`~chimera_lab.errors.ConfigError` with close matches, and a value of the wrong
    type for an ``int``/``float``/``bool``/``str`` annotation is refused (an ``int`` is
    accepted for a ``float``).

    Examples
    --------
    >>> from chimera_lab.backtest import strategies
    >>> spec = strategies.get("sma_cross")
    >>> spec.defaults
    {'fast': 20, 'slow': 100}
    >>> sorted(spec.grid)
    ['fast', 'slow']
    """

    name: str
    func: StrategyFunc
    grid: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    registered: bool = False

    @property
    def signature(self) -> inspect.Signature:
        """The function's signature (first parameter: the OHLCV frame)."""
        return inspect.signature(self.func)

    @property
    def parameters(self) -> dict[str, inspect.Parameter]:
        """The tunable parameters (everything after ``data``, no ``*args``/``**kwargs``)."""
        params = list(self.signature.parameters.values())[1:]
        return {
            p.name: p
            for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"
        }

    @property
    def defaults(self) -> dict[str, Any]:
        """Default value of each parameter that has one."""
        return {k: p.default for k, p in self.parameters.items() if p.default is not p.empty}

    @property
    def accepts_any(self) -> bool:
        """Whether the function takes ``**kwargs`` (then any parameter name is passed on)."""
        return any(p.kind is p.VAR_KEYWORD for p in self.signature.parameters.values())

    @property
    def description(self) -> str:
        """The first line of the function's docstring."""
        doc = inspect.getdoc(self.func) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""

    def check_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Return ``params`` checked against the signature (see the class docstring)."""
        known = self.parameters
        out: dict[str, Any] = {}
        hints = _type_hints(self.func)
        for key, value in params.items():
            if key not in known:
                if self.accepts_any:
                    out[key] = value
                    continue
                close = difflib.get_close_matches(key, list(known), n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise ConfigError(
                    f"strategy {self.name!r} has no parameter {key!r}{hint} "
                    f"(parameters: {', '.join(known) or 'none'})"
                )
            out[key] = _coerce(self.name, key, value, hints.get(key))
        missing = [
            k
            for k, p in known.items()
            if p.default is p.empty and k not in out and p.kind is not p.VAR_POSITIONAL
        ]
        if missing:
            raise ConfigError(
                f"strategy {self.name!r} needs parameter(s) {', '.join(missing)}; "
                "pass them as keyword arguments (CLI: --param name=value)"
            )
        return out

    def __call__(self, data: pd.DataFrame, **params: Any) -> Any:
        """Compute the target exposure series for ``data``."""
        return self.func(data, **self.check_params(params))


def _type_hints(func: StrategyFunc) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func)
    except Exception:  # noqa: BLE001 - unresolvable annotations just skip the type check
        return {}


_SIMPLE = {int: "an int", float: "a float", bool: "a bool", str: "a string"}


def _coerce(name: str, key: str, value: Any, hint: Any) -> Any:
    if hint not in _SIMPLE:
        return value
    ok = isinstance(value, hint)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, bool):
        ok = False
    if not ok:
        raise ConfigError(
            f"parameter {key!r} of strategy {name!r} must be {_SIMPLE[hint]}, "
            f"got {value!r} ({type(value).__name__})"
        )
    return value


def _check_grid(spec: StrategySpec) -> None:
    known = spec.parameters
    for key, values in spec.grid.items():
        if key not in known and not spec.accepts_any:
            raise ConfigError(f"grid of strategy {spec.name!r} names unknown parameter {key!r}")
        if len(values) == 0:
            raise ConfigError(f"grid of strategy {spec.name!r} has no values for {key!r}")


def _same_function(a: StrategyFunc, b: StrategyFunc) -> bool:
    return bool(
        getattr(a, "__module__", None) == getattr(b, "__module__", None)
        and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", None)
    )


@overload
def strategy(func: F, /) -> F: ...


@overload
def strategy(
    *,
    name: str | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    replace: bool = False,
) -> Callable[[F], F]: ...


def strategy(
    func: F | None = None,
    /,
    *,
    name: str | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    replace: bool = False,
) -> F | Callable[[F], F]:
    """Register a strategy function under ``name`` (default: the function's name).

    Use bare (``@strategy``) or with options (``@strategy(name=..., grid={...})``). The
    function is returned unchanged. Registering a *different* function under a taken name
    raises :class:`~chimera_lab.errors.ConfigError` unless ``replace=True``; re-running the
    cell that defines the same function (same module and qualified name, as in a notebook)
    replaces it silently.

    Parameters
    ----------
    func : callable
        ``f(data, **params) -> pd.Series`` of target exposure in [-leverage, leverage].
    name : str, optional
        Registry name.
    grid : mapping of str to sequence, optional
        Default parameter grid for :func:`chimera_lab.backtest.optimize`.
    replace : bool
        Allow replacing another function registered under the same name.

    Examples
    --------
    >>> import pandas as pd
    >>> from chimera_lab.backtest import strategies
    >>> @strategy(name="doc_always_long", grid={"size": [0.5, 1.0]})
    ... def always_long(data: pd.DataFrame, size: float = 1.0) -> pd.Series:
    ...     '''Hold ``size`` of equity long on every bar.'''
    ...     return pd.Series(size, index=data.index)
    >>> strategies.get("doc_always_long").defaults
    {'size': 1.0}
    >>> strategies.unregister("doc_always_long")
    """

    def register(f: F) -> F:
        if not callable(f):
            raise ConfigError(f"@strategy needs a function, got {type(f).__name__}")
        key = name or getattr(f, "__name__", None)
        if not key or not isinstance(key, str):
            raise ConfigError("cannot name this strategy; pass @strategy(name=...)")
        spec = StrategySpec(
            key,
            f,
            MappingProxyType({k: tuple(v) for k, v in (grid or {}).items()}),
            registered=True,
        )
        if len(spec.signature.parameters) == 0:
            raise ConfigError(f"strategy {key!r} must take the OHLCV frame as first argument")
        _check_grid(spec)
        old = _REGISTRY.get(key)
        if old is not None and not replace and not _same_function(old.func, f):
            raise ConfigError(
                f"a different strategy is already registered as {key!r} "
                f"({old.func.__module__}.{old.func.__qualname__}); choose another name "
                "or pass replace=True"
            )
        _REGISTRY[key] = spec
        return f

    if func is not None:
        return register(func)
    return register


def unregister(name: str) -> None:
    """Remove a registered strategy (for tests and notebooks); unknown names are an error."""
    get(name)
    del _REGISTRY[name]


def names() -> list[str]:
    """Return the registered strategy names, sorted.

    Examples
    --------
    >>> {"sma_cross", "breakout"} <= set(names())
    True
    """
    return sorted(_REGISTRY)


def get(name: str) -> StrategySpec:
    """Return the registered strategy ``name``; unknown names suggest close matches.

    Examples
    --------
    >>> get("sma_cros")
    Traceback (most recent call last):
    ...
    chimera_lab.errors.ConfigError: unknown strategy 'sma_cros'; did you mean sma_cross? ...
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"unknown strategy {name!r}{hint} (registered: {', '.join(names())}; "
            "or pass a callable, or 'path/to/file.py:function')"
        ) from None


def load_strategy(target: str) -> StrategySpec:
    """Load ``path/to/file.py:function`` and return it as a spec.

    The file is imported as a module (named after its resolved path, so loading it again
    reuses the module); ``@strategy`` decorators in it register as usual. When the function
    was registered by the file, the registered spec (with its grid) is returned.

    Raises
    ------
    ConfigError
        Malformed target, missing file, or no such callable in it.
    """
    path_text, sep, func_name = target.rpartition(":")
    if not sep or not path_text or not func_name or not path_text.endswith(".py"):
        raise ConfigError(f"{target!r} is not of the form path/to/file.py:function")
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"strategy file {path_text!r} does not exist")
    digest = hashlib.sha1(str(path).encode(), usedforsecurity=False).hexdigest()[:12]
    module_name = f"chimera_user_strategy_{path.stem}_{digest}"
    module = sys.modules.get(module_name)
    if module is None or getattr(module, "__file__", None) != str(path):
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        if module_spec is None or module_spec.loader is None:
            raise ConfigError(f"cannot import {path_text!r} as a Python module")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[module_name]
            raise ConfigError(
                f"importing strategy file {path_text!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
    func = getattr(module, func_name, None)
    if func is None or not callable(func):
        available = [
            k
            for k, v in vars(module).items()
            if inspect.isfunction(v) and v.__module__ == module_name
        ]
        close = difflib.get_close_matches(func_name, available, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"{path_text!r} has no function {func_name!r}{hint} "
            f"(functions: {', '.join(available) or 'none'})"
        )
    for spec in _REGISTRY.values():
        if spec.func is func:
            return spec
    return StrategySpec(func_name, func)


def resolve_strategy(strategy: str | StrategyFunc | StrategySpec) -> StrategySpec:
    """Return a :class:`StrategySpec` for a registered name, a callable or ``file.py:func``.

    This is the one resolver used by :func:`~chimera_lab.backtest.run`, the CLI and the
    look-ahead checker.

    Examples
    --------
    >>> resolve_strategy("breakout").name
    'breakout'
    >>> resolve_strategy(lambda data: data["close"] * 0).name
    '<lambda>'
    """
    if isinstance(strategy, StrategySpec):
        return strategy
    if isinstance(strategy, str):
        if ":" in strategy and strategy.rpartition(":")[0].endswith(".py"):
            return load_strategy(strategy)
        return get(strategy)
    if callable(strategy):
        for spec in _REGISTRY.values():
            if spec.func is strategy:
                return spec
        name = getattr(strategy, "__name__", None) or type(strategy).__name__
        return StrategySpec(str(name), strategy)
    raise ConfigError(
        f"strategy must be a registered name, a callable or 'file.py:function', "
        f"got {type(strategy).__name__}"
    )
