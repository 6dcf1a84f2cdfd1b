"""`hackgap services up|down|status` (being built: issue 2)."""

import typer

app = typer.Typer(help="Start and stop the embedded object store and Prefect server.", no_args_is_help=True)
