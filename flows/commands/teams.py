"""`hackgap teams provision|status|render-k8s`: team sandboxes on the event's hub."""

from __future__ import annotations

import typer

app = typer.Typer(help="Provision and inspect the team sandboxes.", no_args_is_help=True)
