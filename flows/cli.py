"""The `hackgap` command line: one Typer app, one module per command group.

Errors a user can cause are raised as exceptions whose class sets
`hackgap_user_error = True`; they end here as one red sentence and exit code 2,
never a traceback.
"""

from __future__ import annotations

import importlib
import os
import sys

os.environ.setdefault("TQDM_DISABLE", "1")  # libraries' progress bars; the CLI shows its own

import typer
from rich.console import Console
from rich.text import Text

from flows.runtime import is_user_error

# name -> (module in flows.commands, attribute, a group of subcommands?), in help order.
# Only the invoked one is imported: the groups pull in pandas, SciPy, FastAPI, SQLAlchemy
# and Prefect, and importing them all cost every call seconds.
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "init": ("event", "init", False),
    "event": ("event", "app", True),
    "services": ("services", "app", True),
    "demo-data": ("demo", "demo_data", False),
    "demo": ("demo", "demo", False),
    "link": ("link", "link", False),
    "synthesize": ("synthesize", "synthesize", False),
    "challenge": ("challenge", "app", True),
    "teams": ("teams", "app", True),
    "review": ("review", "app", True),
    "sandbox-image": ("sandbox_image", "app", True),
}


def build_app(argv: list[str]) -> typer.Typer:
    """The CLI with the command `argv` names (every command for help or an unknown name)."""
    app = typer.Typer(
        name="hackgap",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )

    @app.callback()
    def hackgap() -> None:
        """Run a 'Hack the gap' data hackathon: link, synthesise, sandbox, judge."""

    named = next((a for a in argv if not a.startswith("-")), None)
    for name in [named] if named in COMMANDS else COMMANDS:
        module, attribute, group = COMMANDS[name]
        target = getattr(importlib.import_module(f"flows.commands.{module}"), attribute)
        if group:
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)
    return app


err_console = Console(stderr=True)


def main() -> None:
    try:
        build_app(sys.argv[1:])(prog_name="hackgap")
    except Exception as exc:
        if not is_user_error(exc):
            raise
        for line in getattr(exc, "problems", None) or [str(exc)]:
            # Text, not markup: a message may hold [brackets] (a pattern, a path) verbatim.
            message = Text.assemble(("error:", "bold red"), " ", str(line))
            err_console.print(message, highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
