"""The ``chimera`` command.

Subcommands live in sibling modules and are imported only when used, so ``chimera --help``
and ``chimera data info`` start quickly (numba, scipy and dask load on demand).

Errors: any :class:`~chimera_lab.errors.ChimeraError`, bad option, missing file or bad value
prints a single line ``error: ...`` on stderr and exits with status 2; ``--debug`` shows the
traceback instead. Unexpected exceptions exit with status 1.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import click
from pydantic import ValidationError
from pydantic_settings import SettingsError

from chimera_lab.errors import ChimeraError

__all__ = ["LazyGroup", "cli", "main"]


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on use.

    ``lazy`` maps a command name to ``("module:attribute", "short help")``; the help text is
    shown by ``--help`` without importing the module.
    """

    def __init__(
        self, *args: Any, lazy: dict[str, tuple[str, str]] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        """List eager and lazy subcommands, sorted."""
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Return the subcommand, importing its module first if it is lazy."""
        if cmd_name in self.lazy:
            target = self.lazy[cmd_name][0]
            module_name, attr = target.split(":")
            command = getattr(importlib.import_module(module_name), attr)
            if not isinstance(command, click.Command):
                raise TypeError(f"{target} is not a click command")
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List subcommands with their short help, without importing lazy ones."""
        rows: list[tuple[str, str]] = []
        for name in self.list_commands(ctx):
            if name in self.lazy:
                rows.append((name, self.lazy[name][1]))
            else:
                command = super().get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str(limit=80)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    lazy={
        "data": ("chimera_lab.cli.data:data", "Import, inspect, export and fetch bars."),
        "backtest": ("chimera_lab.cli.backtest:backtest", "Backtest a strategy on bars."),
        "var": ("chimera_lab.cli.risk:var", "Value at Risk by three methods, with coverage tests."),
        "regime": ("chimera_lab.cli.risk:regime", "Market regimes: time shares and current."),
        "sim": ("chimera_lab.cli.sim:sim", "The loopback Bitget-compatible simulator."),
        "lookahead": ("chimera_lab.cli.research:lookahead", "Check a strategy for look-ahead."),
        "walk-forward": (
            "chimera_lab.cli.research:walk_forward",
            "Walk-forward optimisation as papermill notebooks on Dask.",
        ),
        "pipeline": ("chimera_lab.cli.research:pipeline", "Run a notebook pipeline spec (YAML)."),
    },
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option("-v", "--verbose", is_flag=True, help="Log INFO events (JSON) on stderr.")
@click.version_option(package_name="chimera-lab", prog_name="chimera")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: bool) -> None:
    """chimera_lab: a quant research workbench for crypto markets."""
    from chimera_lab.config import Settings
    from chimera_lab.logging import configure_logging

    settings = Settings()
    # The CLI is quiet by default: its output is the result; logs are for --verbose/--debug.
    settings.logging.level = "DEBUG" if debug else ("INFO" if verbose else "WARNING")
    configure_logging(settings)
    ctx.obj = {"settings": settings, "debug": debug}


def _user_error(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ")
    if isinstance(exc, FileNotFoundError) and exc.filename:
        text = f"no such file: {exc.filename}"
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit status (the console script's entry point)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("CHIMERA_DEBUG") == "1"
    try:
        result = cli.main(args=args, prog_name="chimera", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort:
        print("error: aborted", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except click.ClickException as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {exc.format_message()}", file=sys.stderr)
        return 2
    except (ChimeraError, OSError, ValidationError, SettingsError) as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {_user_error(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:
        if debug:
            traceback.print_exc()
        print(
            f"error: internal error ({type(exc).__name__}: {exc}); rerun with --debug",
            file=sys.stderr,
        )
        return 1
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
