"""`hackgap demo-data` and `hackgap demo` (being built: issue 2)."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

console = Console()


class DemoDataError(Exception):
    """A `hackgap demo-data` request that cannot be carried out as given."""

    hackgap_user_error = True


def _check_out_dir(out: Path) -> None:
    """Fail before the (long) simulation if OUT cannot take the files."""
    if out.exists() and not out.is_dir():
        raise DemoDataError(
            f"OUT {out} is a file; give a directory to write the four extracts into."
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".hackgap-write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise DemoDataError(
            f"OUT {out} is not writable ({reason}); choose a directory you can write to."
        ) from None


def demo_data(
    out: Path = typer.Argument(..., help="Directory to write the four source extracts into."),
    persons: int = typer.Option(235_000, "--persons", help="Number of persons in the register."),
    seed: int = typer.Option(20261126, "--seed", help="Seed: the same seed gives identical files."),
    no_bsn_share: float = typer.Option(
        0.10, "--no-bsn-share", help="Share of pupils whose DUO rows carry no BSN (0..1)."
    ),
) -> None:
    """Write realistic demo source extracts (BRP, CBS kerncijfers, CBS pc6hnr, DUO)."""
    if persons <= 0:
        raise DemoDataError(
            f"--persons {persons} is not a positive number; give e.g. --persons 235000."
        )
    if not 0 <= no_bsn_share <= 1:
        raise DemoDataError(f"--no-bsn-share {no_bsn_share} is outside 0..1; give e.g. 0.10.")
    write_demo_sources(out, persons, seed, no_bsn_share)


def write_demo_sources(out: Path, persons: int, seed: int, no_bsn_share: float = 0.10) -> dict:
    """Simulate and write the four extracts with a progress display; file name -> path."""
    _check_out_dir(out)
    from flows.demodata.extracts import write_sources
    from flows.demodata.world import simulate

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        step = progress.add_task(f"simulating {persons:,} persons", total=1)
        world = simulate(persons, seed, no_bsn_share=no_bsn_share)
        progress.update(step, completed=1)
        sizes = {
            "brp_personen.csv": len(world.persons),
            "kwb_2023_statline.csv": len(world.cbs),
            "pc6hnr_2023_gwb.csv": len(world.postcodes),
            "duo_onderwijs.csv": len(world.school),
        }
        tasks = {
            name: progress.add_task(f"writing {name}", total=rows) for name, rows in sizes.items()
        }
        try:
            paths = write_sources(
                world, out, progress=lambda name, n: progress.advance(tasks[name], n)
            )
        except OSError as exc:
            raise DemoDataError(
                f"OUT {out}: writing failed ({exc.strerror}); free space or pick another directory."
            ) from None
    for name, path in paths.items():
        size = path.stat().st_size
        console.print(f"  {path}  {sizes[name]:>10,} rows  {size / 1e6:>8.1f} MB")
    return paths


def demo(
    directory: Path = typer.Argument(
        Path("demo-event"), help="Event directory to create or reuse."
    ),
    persons: int = typer.Option(235_000, "--persons", help="Persons in the invented city."),
    seed: int = typer.Option(20261126, "--seed", help="Seed for the demo data and the twin."),
) -> None:
    """Run the main job end to end on a demo event: sources, services, link, twin."""
    if persons <= 0:
        raise DemoDataError(
            f"--persons {persons} is not a positive number; give e.g. --persons 235000."
        )
    from flows.demo import run_demo

    run_demo(directory, persons=persons, seed=seed, console=console)
