"""Notebook conventions (STYLE.md): a parsable parameters cell first; outputs only if checked."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from papermill.translators import PythonTranslator

from chimera_lab.nbtools import is_checked

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.relative_to(REPO) for p in (REPO / "notebooks").rglob("*.ipynb"))


def test_there_are_notebooks() -> None:
    assert Path("notebooks/00_quickstart.ipynb") in NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=str)
def test_first_code_cell_is_a_fully_parsable_parameters_cell(path: Path) -> None:
    nb = nbformat.read(REPO / path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and "parameters" in code[0].metadata.get("tags", []), "first code cell untagged"
    lines = [ln for ln in code[0].source.splitlines() if ln.strip() and not ln.startswith("#")]
    params = PythonTranslator.inspect(code[0])
    assert len(params) == len(lines), f"papermill cannot parse some of {lines}"
    for p in params:
        assert p.inferred_type_name not in ("", "None"), f"{p.name} has no type annotation"
        assert p.help, f"{p.name} has no help comment"
        lowered = p.name.lower()
        assert not any(word in lowered for word in ("secret", "passphrase", "api_key")), p.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=str)
def test_outputs_only_in_checked_cells_and_python3_kernel(path: Path) -> None:
    nb = nbformat.read(REPO / path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code" and not is_checked(cell):
            assert not cell.outputs, f"uncommitted-output rule broken in cell {cell.source[:60]!r}"
