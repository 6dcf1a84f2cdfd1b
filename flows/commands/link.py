"""`hackgap link EVENT_DIR`: link the extracts inside the secure zone, with progress."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from flows.event import load_event

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
    from flows import services
    from flows.objectstore import ObjectStore
    from flows.pipeline.pseudonymise import load_key

    event_dir = load_event(directory)
    os.environ.update(services.service_env(event_dir.workdir))
    load_key(event_dir.event.secure_zone, event_dir.root)  # a missing key stops us first
    store = ObjectStore.for_workdir(event_dir.workdir)
    store.ping()

    import flows.link as link_stage

    use_prefect = not no_prefect and bool(os.environ.get("PREFECT_API_URL"))
    with console.status("linking…") as status:

        def show(step: str) -> None:
            status.update(f"link: {step}…")
            console.log(step)

        link_stage.progress_hook = show
        try:
            if use_prefect:
                summary = link_stage.link_flow(str(event_dir.root))
            else:
                summary = link_stage.run_link(event_dir, store, progress=show).summary()
        finally:
            link_stage.progress_hook = None

    table = Table(title=f"link: {event_dir.event.name}", show_header=False)
    table.add_row("pupils in the analysis table", f"{summary['pupils']:,}")
    table.add_row("exact match rate (records with a person number)", _rate(summary["exact_rate"]))
    table.add_row(
        "probabilistic match rate (records without)", _rate(summary["probabilistic_rate"])
    )
    table.add_row("re-used cached output", "yes" if summary["cached"] else "no")
    prefix = summary["prefix"]
    table.add_row(
        "outputs",
        f"secure/{prefix}/analysis.parquet, manifest.json, report.md, report.html",
    )
    console.print(table)
    if not use_prefect:
        console.print("Ran without Prefect (no Prefect server for this event).")
