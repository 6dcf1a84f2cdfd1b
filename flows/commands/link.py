"""`hackgap link EVENT_DIR`: link the extracts inside the secure zone, with progress."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from flows.event import load_event
from flows.runtime import run_stage

console = Console()


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def link(
    directory: Path = typer.Argument(Path("."), help="Event directory or event.yaml."),
    no_prefect: bool = typer.Option(
        False, "--no-prefect", help="Run the plain functions without the Prefect server."
    ),
) -> None:
    """Link the source extracts into the analysis table in the secure bucket."""
    from flows.pipeline.pseudonymise import load_key

    event_dir = load_event(directory)
    load_key(event_dir.event.secure_zone, event_dir.root)  # a missing key stops us first
    summary, use_prefect = run_stage(
        event_dir, module="flows.link", label="link", console=console, no_prefect=no_prefect
    )

    table = Table(title=f"link: {event_dir.event.name}", show_header=False)
    table.add_row("pupils in the analysis table", f"{summary['pupils']:,}")
    table.add_row("pupils of the school data linked", _rate(summary.get("link_rate")))
    table.add_row("exact match rate (records with a person number)", _rate(summary["exact_rate"]))
    table.add_row(
        "probabilistic match rate (records without)", _rate(summary["probabilistic_rate"])
    )
    if summary.get("training"):
        table.add_row("probabilistic model trained on", summary["training"])
    table.add_row("register persons not needed (dropped)", f"{summary['persons_not_needed']:,}")
    table.add_row("re-used cached output", "yes" if summary["cached"] else "no")
    prefix = summary["prefix"]
    console.print(table)
    console.print(
        f"outputs: secure/{prefix}/ (analysis.parquet, manifest.json, report.md, report.html)"
    )
    if not use_prefect:
        console.print("Ran without Prefect (no Prefect server for this event).")
