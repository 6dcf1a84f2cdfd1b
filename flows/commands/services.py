"""`hackgap services up|down|status`: the embedded object store, Prefect server and JupyterHub."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from flows import services
from flows.event import load_event
from flows.objectstore import BUCKETS, ObjectStore, StoreError

app = typer.Typer(
    help="Start and stop the embedded object store, Prefect server and team hub.",
    no_args_is_help=True,
)
console = Console()

EventArg = typer.Argument(Path("."), help="Event directory or event.yaml.")


def _workdir(directory: Path) -> Path:
    return load_event(directory).workdir


def _row(label: str, value: str) -> None:
    # soft_wrap: endpoints and log paths are printed whole, never cut to the terminal width
    console.print(f"[bold]{label:<14}[/] {value}", soft_wrap=True, highlight=False)


def _show(state: services.ServiceState) -> None:
    if state.s3:
        _row("object store", f"{state.s3.endpoint} ({state.s3.kind}, pid {state.s3.pid})")
        store = ObjectStore(state.s3.endpoint, state.s3.access_key, state.s3.secret_key)
        for bucket in BUCKETS:
            try:
                count = f"{len(store.list(bucket))} objects"
            except StoreError as exc:
                count = "missing" if exc.missing else "unreachable"
            _row(f"  {bucket}", count)
        _row("  log", state.s3.log)
    else:
        _row("object store", "not running")
    if state.prefect:
        _row("Prefect UI", f"{state.prefect.ui_url} (pid {state.prefect.pid})")
        _row("  API", state.prefect.api_url)
        _row("  log", state.prefect.log)
    else:
        _row("Prefect", "not running")
    if state.hub:
        _row(
            "JupyterHub", f"{state.hub.url} (pid {state.hub.pid}, proxy pid {state.hub.proxy_pid})"
        )
        _row("  log", state.hub.log)
    else:
        _row("JupyterHub", "not running")
    for note in state.notes:
        console.print(f"[dim]note: {note}[/]", soft_wrap=True, highlight=False)


@app.command("up")
def up(
    directory: Path = EventArg,
    s3: bool = typer.Option(True, "--s3/--no-s3", help="Start the object store."),
    prefect: bool = typer.Option(True, "--prefect/--no-prefect", help="Start Prefect."),
    hub: bool = typer.Option(True, "--hub/--no-hub", help="Start the team sandboxes' hub."),
) -> None:
    """Start the services of an event (idempotent: running services are left alone)."""
    event_dir = load_event(directory)
    workdir = event_dir.workdir
    with console.status("Starting services (Prefect takes about 20 s)..."):
        state = services.up(workdir, s3=s3, prefect=prefect)
    if hub:
        from sandboxes import singleuser

        label = (
            "Starting the hub..."
            if singleuser.is_ready()
            else ("Building the team servers' Python environment (first time: a few minutes)...")
        )
        with console.status(label):
            hub_state = services.hub_up(event_dir)
        state = services.ServiceState(
            workdir, state.s3, state.prefect, state.notes + hub_state.notes, hub_state.hub
        )
    console.print(f"[green]up[/] services for {workdir}", soft_wrap=True)
    _show(state)


@app.command("down")
def down(directory: Path = EventArg) -> None:
    """Stop the services of an event; the object store's contents are kept on disk."""
    workdir = _workdir(directory)
    stopped = services.down(workdir)
    if stopped.empty:
        console.print(f"Nothing was running for {workdir}.", soft_wrap=True)
    else:
        pairs = (("hub", stopped.hub), ("object store", stopped.s3), ("Prefect", stopped.prefect))
        names = [n for n, s in pairs if s]
        console.print(f"[green]stopped[/] {', '.join(names)} for {workdir}", soft_wrap=True)
    for note in stopped.notes:
        console.print(f"[dim]note: {note}[/]", soft_wrap=True, highlight=False)


@app.command("status")
def status(directory: Path = EventArg) -> None:
    """Show what runs for an event; exit code 1 when nothing does."""
    workdir = _workdir(directory)
    _docker_rows(directory)
    state = services.status(workdir)
    if state is None:
        console.print(
            f"No services are running for {workdir}; start them with `hackgap services up`.",
            soft_wrap=True,
        )
        raise typer.Exit(1)
    _show(state)


def _docker_rows(directory: Path) -> None:
    """Engine and sandbox image state, for events whose sandboxes are docker containers."""
    sandbox = load_event(directory).event.sandbox
    if sandbox.backend != "docker":
        return
    from sandboxes import docker as sandbox_docker
    from sandboxes import image

    _row("Docker engine", sandbox_docker.engine_status())
    try:
        _row("sandbox image", image.status(sandbox_docker.engine(), sandbox.image))
    except sandbox_docker.SandboxError:
        _row("sandbox image", "unknown (no engine)")
