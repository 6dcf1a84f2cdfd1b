"""The `hackgap` command line: one Typer app, one module per command group.

Errors a user can cause are raised as exceptions whose class sets
`hackgap_user_error = True`; they end here as one red sentence and exit code 2,
never a traceback.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TQDM_DISABLE", "1")  # libraries' progress bars; the CLI shows its own

import typer
from rich.console import Console
from rich.text import Text

from flows.commands import (
    challenge,
    demo,
    event,
    link,
    review,
    sandbox_image,
    services,
    synthesize,
    teams,
)
from flows.runtime import is_user_error

app = typer.Typer(
    name="hackgap",
    help="Run a 'Hack the gap' data hackathon: link, synthesise, sandbox, judge.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("init")(event.init)
app.add_typer(event.app, name="event")
app.add_typer(services.app, name="services")
app.command("demo-data")(demo.demo_data)
app.command("demo")(demo.demo)
app.command("link")(link.link)
app.command("synthesize")(synthesize.synthesize)
app.add_typer(challenge.app, name="challenge")
app.add_typer(teams.app, name="teams")
app.add_typer(review.app, name="review")
app.add_typer(sandbox_image.app, name="sandbox-image")

err_console = Console(stderr=True)


def main() -> None:
    try:
        app()
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
