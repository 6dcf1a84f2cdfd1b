"""`hackgap synthesize EVENT_DIR`: make the synthetic twin and release it if every gate passes."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from flows.event import load_event

console = Console()


def synthesize(
    directory: Path = typer.Argument(Path("."), help="Event directory or event.yaml."),
    no_prefect: bool = typer.Option(
        False, "--no-prefect", help="Run the plain functions without the Prefect server."
    ),
) -> None:
    """Fit the synthetic twin and release it if every gate passes."""
    from flows import services
    from flows.objectstore import ObjectStore

    event_dir = load_event(directory)
    os.environ.update(services.service_env(event_dir.workdir))
    store = ObjectStore.for_workdir(event_dir.workdir)
    store.ping()

    import flows.synthesize as stage

    use_prefect = not no_prefect and bool(os.environ.get("PREFECT_API_URL"))
    with console.status("synthesizing…") as status:

        def show(step: str) -> None:
            status.update(f"synthesize: {step}…")
            console.log(step)

        stage.progress_hook = show
        try:
            if use_prefect:
                summary = stage.synthesize_flow(str(event_dir.root))
            else:
                summary = stage.run_synthesize(event_dir, store, progress=show).summary()
        finally:
            stage.progress_hook = None

    table = Table(title=f"twin {summary['version']} released", show_header=True)
    for col in ("check", "figure", "required", "result"):
        table.add_column(col)
    for c in summary["checks"]:
        figure = "-" if c["name"].startswith("fidelity ") else f"{c['value']:.4g}"
        table.add_row(c["name"], figure, c["threshold"], "pass" if c["passed"] else "FAIL")
    console.print(table)
    console.print(
        f"published {summary['prefix']}/ (twin.parquet, twin.csv, codebook.md, report.html)"
    )
    if not use_prefect:
        console.print("Ran without Prefect (no Prefect server for this event).")
