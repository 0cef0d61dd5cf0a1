"""Keep committed notebooks clean: strip outputs, or refresh only the checked ones.

Notebooks are committed without outputs, except cells whose source contains
``# NBVAL_CHECK_OUTPUT``: their outputs are committed so ``pytest --nbval-lax`` compares the
numbers, not only that cells run (STYLE.md). Two commands do it::

    python -m chimera_lab.nbtools strip notebooks/*.ipynb      # drop every output
    python -m chimera_lab.nbtools refresh notebooks/00_quickstart.ipynb
        # execute with papermill, keep outputs of NBVAL_CHECK_OUTPUT cells only

``strip`` leaves the outputs of checked cells in place; ``--all`` drops those too.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nbformat

__all__ = ["CHECK_MARK", "is_checked", "main", "refresh", "strip"]

CHECK_MARK = "NBVAL_CHECK_OUTPUT"


def is_checked(cell: Any) -> bool:
    """Return True for a code cell whose outputs nbval compares."""
    return cell.get("cell_type") == "code" and CHECK_MARK in "".join(cell.get("source", ""))


def _clean(nb: Any, *, keep_checked: bool) -> Any:
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        if not (keep_checked and is_checked(cell)):
            cell["outputs"] = []
            cell["execution_count"] = None
        cell["metadata"].pop("execution", None)
        cell["metadata"].pop("papermill", None)
    nb.metadata.pop("papermill", None)
    nb.metadata.get("widgets", {}).clear()
    return nb


def strip(path: str | Path, *, keep_checked: bool = True) -> None:
    """Remove outputs (except checked ones unless ``keep_checked=False``) in place."""
    nb = nbformat.read(str(path), as_version=4)
    nbformat.write(_clean(nb, keep_checked=keep_checked), str(path))


def refresh(path: str | Path, *, cwd: str | Path | None = None) -> None:
    """Execute ``path`` with papermill and keep only the outputs of checked cells, in place.

    Like the nbval run in ``make test`` (notebooks/conftest.py), the kernel gets a throw-away
    store unless ``CHIMERA_STORE__URL`` is set, so committed outputs match what CI computes.
    """
    import papermill

    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / path.name
        saved = os.environ.get("CHIMERA_STORE__URL")
        os.environ.setdefault("CHIMERA_STORE__URL", str(Path(tmp) / "refresh.duckdb"))
        try:
            papermill.execute_notebook(
                str(path),
                str(out),
                cwd=str(cwd or path.parent),
                progress_bar=False,
                log_output=False,
            )
        finally:
            if saved is None:
                os.environ.pop("CHIMERA_STORE__URL", None)
        executed = nbformat.read(str(out), as_version=4)
    source = nbformat.read(str(path), as_version=4)
    by_id = {c.get("id"): c for c in executed.cells}
    for cell in source.cells:
        done = by_id.get(cell.get("id"))
        if is_checked(cell) and done is not None:
            cell["outputs"] = done.get("outputs", [])
            cell["execution_count"] = done.get("execution_count")
    nbformat.write(_clean(source, keep_checked=True), str(path))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``python -m chimera_lab.nbtools``)."""
    parser = argparse.ArgumentParser(prog="python -m chimera_lab.nbtools", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_strip = sub.add_parser("strip", help="drop outputs (checked cells keep theirs)")
    p_strip.add_argument("paths", nargs="+")
    p_strip.add_argument("--all", action="store_true", help="drop checked outputs too")
    p_refresh = sub.add_parser("refresh", help="execute; keep checked outputs only")
    p_refresh.add_argument("paths", nargs="+")
    args = parser.parse_args(argv)
    for p in args.paths:
        if args.command == "strip":
            strip(p, keep_checked=not args.all)
        else:
            refresh(p)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
