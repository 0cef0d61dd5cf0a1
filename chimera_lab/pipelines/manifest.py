"""Run manifests: what ran, on which bars, with which code, and how it went.

``manifest.json`` in a run folder holds the spec, the environment of every attempt (package
version and a SHA-256 of its sources, git commit when the source tree is a git checkout, key
library versions) with the SHA-256 of the files the run executes (templates, strategy
files), the data source and its fingerprint, the folds, and one record per notebook task
(resolved parameters, data fingerprint of the bars that task uses, start/end/duration,
status, error, the attempts that ran it). It is rewritten atomically after every task, so a
crash or Ctrl-C leaves a readable manifest behind.

Examples
--------
>>> import pandas as pd
>>> from chimera_lab.data.synthetic import make_ohlcv
>>> bars = make_ohlcv(100, seed=3)
>>> fingerprint_bars(bars) == fingerprint_bars(bars.copy())
True
>>> fingerprint_bars(bars) == fingerprint_bars(bars.iloc[1:])
False
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import tempfile
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chimera_lab.errors import PipelineError
from chimera_lab.frames import OHLCV_COLUMNS
from chimera_lab.validation import to_utc

__all__ = [
    "MANIFEST_NAME",
    "code_differences",
    "collect_environment",
    "fingerprint_bars",
    "git_commit",
    "iso_utc",
    "read_manifest",
    "sha256_file",
    "source_sha256",
    "utc_now",
    "write_manifest",
]

MANIFEST_NAME = "manifest.json"
_PACKAGES = ("pandas", "numpy", "numba", "scipy", "papermill", "dask", "distributed", "ipykernel")


def utc_now() -> str:
    """Return the current UTC time as ISO-8601 with a ``Z`` suffix."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_utc(ts: Any) -> str:
    """Return a time as ISO-8601 UTC with a ``Z`` suffix: the one format of a run folder.

    >>> iso_utc(pd.Timestamp("2024-07-31 02:00", tz="Europe/Paris"))
    '2024-07-31T00:00:00Z'
    """
    return to_utc(ts, name="timestamp").isoformat().replace("+00:00", "Z")


def fingerprint_bars(df: pd.DataFrame) -> str:
    """Return the SHA-256 of a bar frame's timestamps and OHLCV values (hex).

    Two frames have the same fingerprint exactly when they hold the same bars: same UTC
    timestamps (to the nanosecond) and bit-identical float64 open/high/low/close/volume.
    Extra columns and the index name are ignored.
    """
    missing = [c for c in OHLCV_COLUMNS if c not in df.columns]
    if missing:
        raise PipelineError(f"cannot fingerprint bars without columns {missing}")
    h = hashlib.sha256()
    index = pd.DatetimeIndex(df.index)
    stamps = index.tz_convert("UTC") if index.tz is not None else index
    h.update(np.ascontiguousarray(stamps.as_unit("ns").asi8).tobytes())
    for col in OHLCV_COLUMNS:
        h.update(col.encode())
        h.update(np.ascontiguousarray(df[col].to_numpy(dtype=np.float64)).tobytes())
    return h.hexdigest()


_WATCHED = ("chimera_lab", "notebooks/templates")
"""Untracked files here make a checkout dirty (code a run could import or execute)."""


def git_commit(
    path: Path | None = None, *, watched: tuple[str, ...] = _WATCHED
) -> dict[str, Any] | None:
    """Return ``{"commit", "dirty", "changes"}`` of the git checkout holding ``path``, or ``None``.

    ``dirty`` is true when a tracked file differs from the commit, or when an **untracked**
    file lies under one of ``watched`` (repository-relative folders: the package and the
    notebook templates, whose new modules a run would import or execute). ``changes`` lists
    those paths (at most 20).
    """
    where = path or Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain=v1", "--untracked-files=all"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    if not head:
        return None
    changes = []
    for line in status.splitlines():
        code, name = line[:2], line[3:].strip().strip('"')
        if code == "??" and not any(
            name == w or name.startswith(w.rstrip("/") + "/") for w in watched
        ):
            continue
        changes.append(name)
    return {"commit": head, "dirty": bool(changes), "changes": changes[:20]}


def sha256_file(path: str | Path) -> str:
    """Return the SHA-256 of a file's bytes (hex)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def source_sha256(package_dir: Path | None = None) -> str:
    """Return one SHA-256 over the chimera_lab package's Python sources (paths and bytes).

    It identifies the code a run executed whether or not the package is a git checkout, and
    sees uncommitted and untracked modules that a commit hash does not.
    """
    root = package_dir or Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for file in sorted(root.rglob("*.py")):
        if "__pycache__" in file.parts:
            continue
        h.update(file.relative_to(root).as_posix().encode())
        h.update(b"\0")
        h.update(file.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def collect_environment() -> dict[str, Any]:
    """Return the code and platform a run used (package versions, git commit, Python)."""
    packages: dict[str, str | None] = {}
    for name in ("chimera-lab", *_PACKAGES):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = None
    return {
        "chimera_lab": packages.pop("chimera-lab"),
        "chimera_lab_source_sha256": source_sha256(),
        "git": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": packages,
    }


def code_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Return how the code identity ``current`` differs from ``recorded`` (empty: the same).

    Both are ``{"environment": collect_environment(), "files": {path: sha256}}`` records: the
    package sources, Python and library versions, and the files a run executes (templates,
    strategy files). Git commits are not compared (the source hash is what matters).
    """
    out: list[str] = []
    old_env, new_env = recorded.get("environment") or {}, current.get("environment") or {}
    for key, label in (
        ("chimera_lab", "chimera_lab version"),
        ("chimera_lab_source_sha256", "chimera_lab source (sha256 of its modules)"),
        ("python", "Python"),
    ):
        if old_env.get(key) != new_env.get(key):
            out.append(f"{label}: {old_env.get(key)} -> {new_env.get(key)}")
    old_pk, new_pk = old_env.get("packages") or {}, new_env.get("packages") or {}
    for name in sorted(set(old_pk) | set(new_pk)):
        if old_pk.get(name) != new_pk.get(name):
            out.append(f"{name}: {old_pk.get(name)} -> {new_pk.get(name)}")
    old_files, new_files = recorded.get("files") or {}, current.get("files") or {}
    for name in sorted(set(old_files) | set(new_files)):
        a, b = old_files.get(name), new_files.get(name)
        if a != b:
            out.append(f"{name}: sha256 {str(a)[:12]} -> {str(b)[:12]}")
    return out


def write_manifest(run_dir: Path, manifest: dict[str, Any]) -> Path:
    """Write ``manifest.json`` atomically (temp file + rename, mode 0644) and return its path."""
    target = run_dir / MANIFEST_NAME
    text = json.dumps(manifest, indent=2, ensure_ascii=False, allow_nan=False, default=str)
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".manifest-", suffix=".tmp")
    try:
        # mkstemp creates 0600; a run folder is shared (readable by the team, the web server
        # that serves report.html), like every other file in it.
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    """Read a run folder's manifest.

    Raises
    ------
    PipelineError
        The folder has no readable manifest (not a run folder, or written by a crash).
    """
    path = Path(run_dir) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError(
            f"{path} not found: {run_dir} is not a run folder (expected data/runs/<id>/)"
        ) from None
    except json.JSONDecodeError as exc:
        raise PipelineError(
            f"{path} is not valid JSON ({exc}); the run cannot be resumed"
        ) from None
    if not isinstance(data, dict) or "tasks" not in data:
        raise PipelineError(f"{path} is not a chimera run manifest (no 'tasks')")
    return data
