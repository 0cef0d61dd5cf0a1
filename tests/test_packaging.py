"""Packaging invariants: environment.yml follows pyproject.toml; public names are consistent."""

from __future__ import annotations

import importlib
import pkgutil
import re
import tomllib
from pathlib import Path

import pytest
import yaml

import chimera_lab

REPO = Path(__file__).resolve().parents[1]
# conda-forge spells a few packages differently.
CONDA_NAMES = {"python-duckdb": "duckdb", "types-pyyaml": "types-pyyaml"}


def _split(requirement: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)$", requirement)
    assert match, requirement
    return match.group(1).lower().replace("_", "-"), match.group(3).replace(" ", "")


def _pyproject_requirements() -> dict[str, str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    reqs = data["project"]["dependencies"] + data["project"]["optional-dependencies"]["dev"]
    out: dict[str, str] = {}
    for req in reqs:
        name, spec = _split(req)
        out[name] = spec
        if name == "dask":  # dask[distributed] is two conda packages
            out["distributed"] = spec
    return out


def _conda_requirements() -> dict[str, str]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    out: dict[str, str] = {}
    for dep in env["dependencies"]:
        if not isinstance(dep, str):
            continue
        name, spec = _split(dep)
        if name in {"python", "pip"}:
            continue
        out[CONDA_NAMES.get(name, name)] = spec
    return out


def test_environment_yml_lists_the_same_dependencies_as_pyproject() -> None:
    assert _conda_requirements() == _pyproject_requirements()


def test_lock_file_pins_every_dependency() -> None:
    pinned = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (REPO / "requirements.lock").read_text().splitlines()
        if "==" in line
    }
    missing = set(_pyproject_requirements()) - pinned
    assert not missing, f"requirements.lock lacks {sorted(missing)}; run `make lock`"


PUBLIC_PACKAGES = sorted(
    m.name
    for m in pkgutil.walk_packages(chimera_lab.__path__, prefix="chimera_lab.")
    if not any(part.startswith("_") for part in m.name.split("."))
)


@pytest.mark.parametrize("module_name", ["chimera_lab", *PUBLIC_PACKAGES])
def test_all_names_exist(module_name: str) -> None:
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    assert names is not None, f"{module_name} sets no __all__"
    missing = [n for n in names if not hasattr(module, n)]
    assert not missing, f"{module_name}.__all__ names missing attributes: {missing}"
