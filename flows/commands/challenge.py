"""`hackgap challenge ...` (being built: issue 4)."""

import typer

app = typer.Typer(help="List, validate, show and render challenge packs.", no_args_is_help=True)
