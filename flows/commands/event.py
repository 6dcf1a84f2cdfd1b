"""`hackgap init` and `hackgap event validate|schema`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.text import Text

from flows.event import (
    EVENT_FILE,
    EventError,
    event_schema,
    exposure_warnings,
    load_event,
    render_event_yaml,
)

app = typer.Typer(help="Check and describe event.yaml.", no_args_is_help=True)
# User text (paths, names, patterns) prints verbatim: Text objects, never markup strings.
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def init(
    directory: Path = typer.Argument(..., help="New event directory."),
    name: str = typer.Option(None, help="Event id (default: the directory name)."),
    force: bool = typer.Option(False, help="Overwrite an existing event.yaml."),
) -> None:
    """Scaffold a new event directory with a commented event.yaml."""
    target = directory / EVENT_FILE
    if target.exists() and not force:
        raise EventError(f"{target} already exists; pass --force to overwrite it.")
    slug = (name or directory.resolve().name).lower().replace("_", "-").replace(" ", "-")
    try:
        (directory / "sources").mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".yaml.tmp")
        tmp.write_text(render_event_yaml(slug), encoding="utf-8")
        tmp.replace(target)
    except OSError as exc:
        reason = "no permission to write here" if isinstance(exc, PermissionError) else exc.strerror
        raise EventError(
            f"{directory}: cannot create the event here ({reason}); choose a writable directory."
        ) from None
    console.print(
        Text.assemble(
            "Created ",
            (str(target), "bold"),
            f". Put the extracts in {directory / 'sources'} "
            f"(or run `hackgap demo-data {directory / 'sources'}`), "
            f"then `hackgap event validate {directory}`.",
        )
    )


@app.command("validate")
def validate(
    directory: Path = typer.Argument(Path("."), help="Event directory or event.yaml."),
) -> None:
    """Check event.yaml and the files it names; print every problem as one sentence.

    Also warns when other users on this machine can read the event's secure parts."""
    event_dir = load_event(directory)
    ev = event_dir.event
    console.print(
        Text.assemble(
            ("ok", "green"),
            f" {ev.name}: {len(ev.teams)} teams, {len(ev.challenges)} challenges, "
            f"{len(ev.judges)} judges, sandbox backend {ev.sandbox.backend}.",
        )
    )
    for sentence in exposure_warnings(event_dir):
        err_console.print(Text.assemble(("warning:", "bold yellow"), " ", sentence))


@app.command("schema")
def schema(
    output: Path = typer.Option(
        None, "--output", "-o", help="Write to this file instead of stdout."
    ),
) -> None:
    """Print the JSON Schema of event.yaml (for editor validation)."""
    text = json.dumps(event_schema(), indent=2, ensure_ascii=False)
    if output:
        output.write_text(text + "\n", encoding="utf-8")
    else:
        typer.echo(text)
