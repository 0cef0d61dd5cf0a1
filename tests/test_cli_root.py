"""The `chimera` root command: help without heavy imports, one-line errors, exit status 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chimera_lab.cli import main


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in (
        "data",
        "backtest",
        "var",
        "regime",
        "sim",
        "lookahead",
        "walk-forward",
        "pipeline",
    ):
        assert f"  {name}" in out


def test_unknown_command_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "no-such-command" in err[0]


def test_help_does_not_import_numerics() -> None:
    code = (
        "import sys; from chimera_lab.cli import main; main(['--help']);"
        "heavy = [m for m in ('numba', 'scipy', 'duckdb', 'dask', 'httpx') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_bad_settings_are_a_user_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHIMERA_RISK__VAR_CONFIDENCE", "2")
    assert main(["data", "--help"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "var_confidence" in err
