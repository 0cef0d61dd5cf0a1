"""The strategy registry: decorator, clashes, lookups with suggestions, loading from files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from chimera_lab.backtest import resolve_strategy, run, strategies, strategy
from chimera_lab.data.synthetic import make_ohlcv
from chimera_lab.errors import ConfigError


@pytest.fixture
def cleanup() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        if name in strategies.names():
            strategies.unregister(name)


def test_decorator_registers_with_grid_and_returns_the_function(cleanup: list[str]) -> None:
    @strategy(name="test_half_long", grid={"size": [0.25, 0.5]})
    def half_long(data: pd.DataFrame, size: float = 0.5) -> pd.Series:
        """Hold a fixed long exposure."""
        return pd.Series(size, index=data.index)

    cleanup.append("test_half_long")
    assert half_long(make_ohlcv(3), size=0.2).tolist() == [0.2] * 3
    spec = strategies.get("test_half_long")
    assert spec.grid == {"size": (0.25, 0.5)}
    assert spec.defaults == {"size": 0.5}
    assert spec.description == "Hold a fixed long exposure."
    res = run(make_ohlcv(50, seed=1), "test_half_long", size=1)  # int accepted for float
    assert res.params == {"size": 1.0}


def test_bare_decorator_uses_the_function_name(cleanup: list[str]) -> None:
    @strategy
    def test_bare_flat(data: pd.DataFrame) -> pd.Series:
        """Never trade."""
        return pd.Series(0.0, index=data.index)

    cleanup.append("test_bare_flat")
    assert "test_bare_flat" in strategies.names()


def test_a_different_function_under_a_taken_name_is_an_error(cleanup: list[str]) -> None:
    with pytest.raises(ConfigError, match="already registered as 'sma_cross'"):

        @strategy(name="sma_cross")
        def other(data: pd.DataFrame) -> pd.Series:
            return pd.Series(0.0, index=data.index)

    def make(value: float):  # the "same cell run twice" case: same module and qualname
        @strategy(name="test_rerun")
        def rerun(data: pd.DataFrame) -> pd.Series:
            return pd.Series(value, index=data.index)

        return rerun

    cleanup.append("test_rerun")
    make(0.1)
    make(0.2)  # no error: redefinition of the same function replaces it
    assert strategies.get("test_rerun")(make_ohlcv(2)).iloc[0] == 0.2

    @strategy(name="test_rerun", replace=True)
    def replacement(data: pd.DataFrame) -> pd.Series:
        return pd.Series(0.3, index=data.index)

    assert strategies.get("test_rerun").func is replacement


def test_grid_naming_an_unknown_parameter_is_an_error() -> None:
    with pytest.raises(ConfigError, match="unknown parameter 'slow'"):

        @strategy(name="test_bad_grid", grid={"slow": [1]})
        def bad(data: pd.DataFrame, fast: int = 1) -> pd.Series:
            return pd.Series(0.0, index=data.index)

    assert "test_bad_grid" not in strategies.names()


def test_unknown_names_suggest_close_matches() -> None:
    with pytest.raises(ConfigError, match="did you mean sma_cross"):
        strategies.get("sma_crossover")
    with pytest.raises(ConfigError, match="did you mean breakout"):
        run(make_ohlcv(10), "brekout")


def test_missing_required_parameter_is_named() -> None:
    def needs(data: pd.DataFrame, window: int) -> pd.Series:
        return data["close"].rolling(window).mean().notna().astype(float)

    with pytest.raises(ConfigError, match="needs parameter.*window"):
        run(make_ohlcv(10), needs)
    assert run(make_ohlcv(10), needs, window=3).params == {"window": 3}


def test_plain_callables_and_kwargs_callables_resolve() -> None:
    def flexible(data: pd.DataFrame, **kwargs: float) -> pd.Series:
        return pd.Series(kwargs.get("level", 0.0), index=data.index)

    spec = resolve_strategy(flexible)
    assert spec.name == "flexible" and spec.accepts_any
    assert run(make_ohlcv(10), flexible, level=0.5).trades["size"].iloc[0] > 0
    with pytest.raises(ConfigError, match="registered name, a callable"):
        resolve_strategy(42)  # type: ignore[arg-type]


STRATEGY_FILE = '''
import pandas as pd
from chimera_lab.backtest import strategy


def momentum(data: pd.DataFrame, window: int = 5) -> pd.Series:
    """Long after a rise over the window."""
    return (data["close"].pct_change(window) > 0).astype(float)


@strategy(name="test_file_registered", grid={"level": [0.5, 1.0]})
def registered(data: pd.DataFrame, level: float = 1.0) -> pd.Series:
    """Always long."""
    return pd.Series(level, index=data.index)
'''


def test_load_strategy_from_a_file(tmp_path: Path, cleanup: list[str]) -> None:
    path = tmp_path / "my_strats.py"
    path.write_text(STRATEGY_FILE)
    cleanup.append("test_file_registered")
    spec = strategies.load_strategy(f"{path}:momentum")
    assert spec.name == "momentum" and spec.defaults == {"window": 5}
    res = run(make_ohlcv(100, seed=2), f"{path}:momentum", window=3)
    assert res.strategy == "momentum" and res.stats["n_trades"] > 0
    # @strategy inside the file registers; loading it again reuses the module (no clash).
    again = resolve_strategy(f"{path}:registered")
    assert again.name == "test_file_registered" and again.grid == {"level": (0.5, 1.0)}
    assert resolve_strategy(f"{path}:registered") is again


def test_load_strategy_errors_are_specific(tmp_path: Path, cleanup: list[str]) -> None:
    path = tmp_path / "my_strats.py"
    path.write_text(STRATEGY_FILE)
    cleanup.append("test_file_registered")
    with pytest.raises(ConfigError, match="does not exist"):
        strategies.load_strategy(f"{tmp_path / 'nope.py'}:f")
    with pytest.raises(ConfigError, match="did you mean momentum"):
        strategies.load_strategy(f"{path}:momentm")
    with pytest.raises(ConfigError, match="form path/to/file.py:function"):
        strategies.load_strategy(f"{path}")
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ConfigError, match="RuntimeError: boom"):
        strategies.load_strategy(f"{broken}:f")
