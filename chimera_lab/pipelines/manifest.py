"""Run manifests: what ran, on which bars, with which code, and how it went.

``manifest.json`` in a run folder holds the spec, the environment (package version, git
commit when the source tree is a git checkout, key library versions), the data source and its
fingerprint, the folds, and one record per notebook task (resolved parameters, data
fingerprint of the bars that task uses, start/end/duration, status, error). It is rewritten
atomically after every task, so a crash or Ctrl-C leaves a readable manifest behind.

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

__all__ = [
    "MANIFEST_NAME",
    "collect_environment",
    "fingerprint_bars",
    "git_commit",
    "read_manifest",
    "utc_now",
    "write_manifest",
]

MANIFEST_NAME = "manifest.json"
_PACKAGES = ("pandas", "numpy", "numba", "scipy", "papermill", "dask", "distributed", "ipykernel")


def utc_now() -> str:
    """Return the current UTC time as ISO-8601 with a ``Z`` suffix."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


def git_commit(path: Path | None = None) -> dict[str, Any] | None:
    """Return ``{"commit", "dirty"}`` of the git checkout holding ``path``, or ``None``."""
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
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head, "dirty": bool(status.strip())} if head else None


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
        "git": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": packages,
    }


def write_manifest(run_dir: Path, manifest: dict[str, Any]) -> Path:
    """Write ``manifest.json`` atomically (temp file + rename) and return its path."""
    target = run_dir / MANIFEST_NAME
    text = json.dumps(manifest, indent=2, ensure_ascii=False, allow_nan=False, default=str)
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".manifest-", suffix=".tmp")
    try:
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
