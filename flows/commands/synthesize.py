"""`hackgap synthesize EVENT_DIR`: make the synthetic twin and release it if every gate passes."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from flows.event import load_event
from flows.runtime import run_stage

console = Console()


def synthesize(
    directory: Path = typer.Argument(Path("."), help="Event directory or event.yaml."),
    no_prefect: bool = typer.Option(
        False, "--no-prefect", help="Run the plain functions without the Prefect server."
    ),
) -> None:
    """Fit the synthetic twin and release it if every gate passes."""
    event_dir = load_event(directory)
    summary, use_prefect = run_stage(
        event_dir,
        module="flows.synthesize",
        label="synthesize",
        console=console,
        no_prefect=no_prefect,
    )

    table = Table(title=f"twin {summary['version']} released", show_header=True)
    table.add_column("check", no_wrap=True)
    table.add_column("figure", justify="right")
    table.add_column("required", overflow="fold", max_width=22)
    table.add_column("result")
    for c in summary["checks"]:
        name, required = c["name"], c["threshold"]
        if name.startswith("fidelity "):  # the real statistic itself is never shown
            name, figure = name.removeprefix("fidelity "), "-"
            required = required.replace("|twin - real| <= ", "± ")
        else:
            figure = f"{c['value']:.4g}"
        table.add_row(name, figure, required, "pass" if c["passed"] else "FAIL")
    console.print(table)
    console.print(
        f"published {summary['prefix']}/ (twin.parquet, twin.csv, codebook.md, report.html)"
    )
    if not use_prefect:
        console.print("Ran without Prefect (no Prefect server for this event).")
