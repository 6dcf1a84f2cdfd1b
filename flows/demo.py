"""`hackgap demo`: the main job end to end on an invented city, re-runnable.

Each step is the same code an organiser runs by hand (init, demo-data,
services up, ingest, link, synthesize); a second run re-uses what is already
there (same sources, running services, cached linkage, the twin released from the same
linked table, settings and code) instead of redoing it.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path

from rich.console import Console
from rich.table import Table

from flows.event import EVENT_FILE, load_event, render_event_yaml

DEMO_NAME = "hack-the-gap-demo"
KEY_FILE = Path(".hackgap/secure/pseudonym.key")
STAMP = ".demo-sources.json"
TWIN_STAMP = "demo-twin.json"  # in the work directory: what the released twin was made from
REPO = Path(__file__).resolve().parent.parent
# Everything the twin depends on besides the linked table and event.yaml: a change here
# makes the demo fit the twin again.
TWIN_CODE = ("synthetic", "flows/synthesize.py", "flows/schemas", "challenges/packs")


def scaffold(directory: Path, seed: int) -> bool:
    """Write the demo event.yaml (with a key file) unless one exists; True if written."""
    target = directory / EVENT_FILE
    if target.exists():
        return False
    directory.mkdir(parents=True, exist_ok=True)
    text = render_event_yaml(DEMO_NAME, seed=seed).replace(
        "  # pseudonym_key_file: /secure/keys/hackgap.key",
        f"  pseudonym_key_file: {KEY_FILE}   # demo only: a real key lives outside the event dir",
    )
    for members in ("[anna, bram]", "[chaima, daan]"):  # demo teams ask for verification
        text = text.replace(
            f"    members: {members}\n", f"    members: {members}\n    open_data_only: false\n"
        )
    tmp = target.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return True


def ensure_key(directory: Path) -> Path:
    """A random 32-byte hex key in the secure work directory (0700/0600), made once."""
    path = directory / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
        tmp.replace(path)
    return path


def ensure_sources(directory: Path, persons: int, seed: int) -> bool:
    """Write the demo extracts unless the same size and seed are already there; True if written."""
    from flows.commands.demo import write_demo_sources

    sources = directory / "sources"
    stamp = sources / STAMP
    wanted = {"persons": persons, "seed": seed}
    if stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        names = (
            "brp_personen.csv",
            "kwb_2023_statline.csv",
            "pc6hnr_2023_gwb.csv",
            "duo_onderwijs.csv",
        )
        if all((sources / n).is_file() for n in names):
            return False
    write_demo_sources(sources, persons, seed)
    stamp.write_text(json.dumps(wanted))
    return True


def _twin_inputs(event_dir, store) -> dict | None:
    """What the twin is made from: the linked table's digest, the twin settings, the
    challenges and a digest of the twin code. None while no linked table is complete."""
    ev = event_dir.event
    manifest = store.read_manifest("secure", f"{ev.name}/linked")
    if manifest is None:
        return None
    code = hashlib.sha256()
    roots = [REPO / p for p in TWIN_CODE] + [event_dir.root / "challenges"]
    for root in roots:
        files = [root] if root.is_file() else sorted(root.rglob("*")) if root.is_dir() else []
        for path in files:
            if path.is_file() and "__pycache__" not in path.parts:
                code.update(str(path.relative_to(root.parent)).encode() + b"\0")
                code.update(path.read_bytes())
    return {
        "linked": manifest["files"]["analysis.parquet"]["sha256"],
        "twin": ev.twin.model_dump(mode="json"),
        "seed": ev.seed,
        "challenges": list(ev.challenges),
        "code": code.hexdigest(),
    }


def reusable_twin(event_dir, store) -> str | None:
    """The open prefix of the twin an earlier demo run released from the same inputs, if it
    is still complete; None means: make it (again)."""
    stamp = event_dir.workdir / TWIN_STAMP
    if not stamp.is_file():
        return None
    recorded = json.loads(stamp.read_text(encoding="utf-8"))
    prefix = recorded.get("prefix", "")
    if recorded.get("inputs") != _twin_inputs(event_dir, store):
        return None
    return prefix if prefix and store.is_complete("open", prefix) else None


def remember_twin(event_dir, store) -> None:
    """Record which twin the demo released and from what (read by `reusable_twin`)."""
    from flows.provision import latest_twin

    version, _manifest = latest_twin(store, event_dir.event.name)
    doc = {
        "prefix": f"twins/{event_dir.event.name}/{version}",
        "inputs": _twin_inputs(event_dir, store),
    }
    stamp = event_dir.workdir / TWIN_STAMP
    tmp = stamp.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    tmp.replace(stamp)


def run_demo(directory: Path, *, persons: int, seed: int, console: Console) -> None:
    """Scaffold, generate, start services, ingest, link and synthesise; print a summary."""
    from flows import services
    from flows.commands.link import link
    from flows.commands.synthesize import synthesize
    from flows.objectstore import ObjectStore
    from flows.runtime import quiet_console, use_services

    directory = directory.resolve()
    console.rule("[bold]1. event")
    made = scaffold(directory, seed)
    console.print(f"{'Created' if made else 'Re-using'} {directory / EVENT_FILE}")
    ensure_key(directory)

    console.rule("[bold]2. demo sources (invented city)")
    if not ensure_sources(directory, persons, seed):
        console.print(f"Re-using the {persons:,}-person extracts in {directory / 'sources'}")
    event_dir = load_event(directory)

    console.rule("[bold]3. services")
    quiet_console()
    with console.status("starting the object store and the Prefect server (about 20-60 s)…"):
        state = services.up(event_dir.workdir)
    use_services(event_dir.workdir)
    quiet_console()  # again: Prefect re-reads its logging set-up with the new settings
    store = ObjectStore.for_workdir(event_dir.workdir)
    for note in state.notes:
        console.print(note)
    console.print(
        f"object store {state.s3.endpoint} ({state.s3.kind}); Prefect {state.prefect.ui_url}"
    )

    console.rule("[bold]4. ingest into the secure bucket")
    from flows.ingest import ingest_flow

    uploaded = ingest_flow(str(directory))
    changed = [u for u in uploaded if u.get("uploaded")]
    console.print(f"{len(changed)} of {len(uploaded)} source files uploaded (the rest unchanged)")

    console.rule("[bold]5. link (secure zone)")
    link(directory=directory, no_prefect=False)

    console.rule("[bold]6. synthetic twin (release gate)")
    reused = reusable_twin(event_dir, store)
    if reused:
        console.print(
            f"Re-using the released twin open/{reused} (same linked table, settings and code; "
            f"`hackgap synthesize {directory}` makes it again)",
            markup=False,
        )
    else:
        synthesize(directory=directory, no_prefect=False)
        remember_twin(event_dir, store)

    console.rule("[bold]7. team sandboxes (JupyterHub)")
    hub = _team_sandboxes(event_dir, store, console)

    console.rule("[bold]summary")
    table = Table(show_header=True)
    table.add_column("bucket")
    table.add_column("objects", justify="right")
    for bucket in ("secure", "open", "submissions", "audit"):
        table.add_row(bucket, f"{len(store.list(bucket)):,}")
    console.print(f"event directory  {directory}")
    console.print(
        f"S3 endpoint      {state.s3.endpoint}  (keys in {services.state_path(event_dir.workdir)})"
    )
    console.print(f"Prefect UI       {state.prefect.ui_url}")
    console.print(table)
    console.print(f"JupyterHub       {hub['hub_url']}  (log in as a team member)", markup=False)
    console.print(f"credentials      {hub['credentials']}  (organisers only)", markup=False)
    console.print(
        f"Stop the services with `hackgap services down {directory}`; "
        "objects are kept and come back with `services up`."
    )

    console.rule("[bold]submissions: freeze, re-run, verify, airlock")
    from flows.commands.review import demo_step as review_step

    review_step(directory, console)

    console.rule("[bold]judging")
    from flows.commands.judge import demo_step

    demo_step(directory, console)


def _team_sandboxes(event_dir, store, console: Console) -> dict:
    """Start the hub and provision the demo teams: one ready sandbox per team."""
    from flows import services
    from flows.provision import run_provision

    with console.status("starting JupyterHub (first time: builds the team servers' Python)…"):
        state = services.hub_up(event_dir)
    for note in state.notes:
        console.print(f"note: {note}", markup=False)
    with console.status("provisioning the teams and starting their servers…"):
        summary = run_provision(
            event_dir, store, progress=lambda m: console.print(f"  • {m}", markup=False)
        )
    for account, server in sorted(summary.servers.items()):
        console.print(f"  {account}: {server}", markup=False)
    return summary.summary()
