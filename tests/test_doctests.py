"""Run every docstring example in the package (STYLE: examples are offline, seeded doctests)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import chimera_lab

MODULES = sorted(m.name for m in pkgutil.walk_packages(chimera_lab.__path__, prefix="chimera_lab."))


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples_run(module_name: str) -> None:
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {module_name}"
