"""nbval runs notebooks here; give their kernels a private store so CI never touches data/."""

from __future__ import annotations

import os
import tempfile


def pytest_configure(config: object) -> None:
    # Kernels inherit this process's environment. A throw-away store keeps nbval runs from
    # reading or writing the user's data/chimera.duckdb; notebooks import the bundled sample
    # into it on first use.
    if "CHIMERA_STORE__URL" not in os.environ:
        tmp = tempfile.mkdtemp(prefix="chimera-nbval-")
        os.environ["CHIMERA_STORE__URL"] = os.path.join(tmp, "nbval.duckdb")
