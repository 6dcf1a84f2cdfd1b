"""`hackgap teams provision|status|render-k8s`: team sandboxes on the event's hub."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Provision and inspect the team sandboxes.", no_args_is_help=True)

EventArg = typer.Argument(Path("."), help="Event directory or event.yaml.")


@app.command("provision")
def provision(
    directory: Path = EventArg,
    start: bool = typer.Option(True, "--start/--no-start", help="Start every team's server."),
    no_prefect: bool = typer.Option(False, "--no-prefect", help="Run without Prefect."),
) -> None:
    """Create or update the teams on the running hub; a re-run applies only the difference."""
    from rich.console import Console

    from flows import provision as stage
    from flows.event import load_event
    from flows.runtime import run_stage

    console = Console(highlight=False, soft_wrap=True)
    event_dir = load_event(directory)
    stage.preflight(event_dir)  # a bad roster or no hub: one sentence, before any service call
    if not start:
        stage.START = False
    summary, _ = run_stage(
        event_dir, module="flows.provision", label="provision", console=console,
        no_prefect=no_prefect,
    )  # fmt: skip
    for line in summary["changes"] or ["nothing to change: the hub already matches event.yaml"]:
        console.print(f"  {line}", markup=False)
    for account, state in sorted(summary["servers"].items()):
        console.print(f"  server {account}: {state}", markup=False)
    console.print(f"hub          {summary['hub_url']}", markup=False)
    console.print(f"twin         {summary['twin_version']} (read-only in each workspace)",
                  markup=False)  # fmt: skip
    note = f" ({summary['new_passwords']} new)" if summary["new_passwords"] else ""
    console.print(f"credentials  {summary['credentials']}{note}  (organisers only, mode 0600)",
                  markup=False)  # fmt: skip


@app.command("status")
def status(
    directory: Path = EventArg,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Every team: members, server state, last activity, whether submission/ holds a notebook."""
    import json

    from rich.console import Console
    from rich.table import Table

    from flows.event import load_event
    from flows.provision import team_status

    rows = team_status(load_event(directory))
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("team", "members", "server", "last activity", "notebook in submission/")
    for row in rows:
        table.add_row(
            row["team"], ", ".join(row["members"]), row["server"],
            row["last_activity"] or "-", "yes" if row["submission_notebook"] else "no",
        )  # fmt: skip
    Console(highlight=False).print(table)


# -- kubernetes backend (helper G) ---------------------------------------------------------


@app.command("render-k8s")
def render_k8s(
    directory: Path = typer.Argument(..., help="Event directory or event.yaml."),
    out: Path = typer.Argument(..., help="Directory to write values.yaml into."),
    values: Path = typer.Option(
        None,
        "--values",
        "-f",
        help="Your own chart values (ingress, https, storage class) merged over hackgap's.",
    ),
) -> None:
    """Render and validate the Zero to JupyterHub Helm values for the kubernetes backend."""
    import yaml
    from rich.console import Console

    from flows.event import load_event
    from sandboxes import k8s

    event_dir = load_event(directory)
    ev = event_dir.event
    overlay = None
    if values is not None:
        try:
            overlay = yaml.safe_load(values.read_text(encoding="utf-8")) or {}
        except OSError:
            raise k8s.K8sValuesError(
                f"{values}: cannot read this values file; check the path."
            ) from None
        except yaml.YAMLError:
            raise k8s.K8sValuesError(
                f"{values}: not valid YAML; fix the indentation or quoting."
            ) from None
        if not isinstance(overlay, dict):
            raise k8s.K8sValuesError(f"{values}: must be a mapping of chart values.")
    spec = k8s.K8sEvent(
        name=ev.name,
        end_epoch=ev.end.timestamp(),
        teams={t.name: list(t.members) for t in ev.teams},
        challenges={
            t.name: [t.challenge] if t.challenge else list(ev.challenges) for t in ev.teams
        },
        judges=list(ev.judges),
        organisers=list(ev.organisers),
        image=ev.sandbox.image,
        hub_image=ev.sandbox.hub_image,
        cpu_limit=ev.sandbox.cpu_limit,
        mem_limit=ev.sandbox.mem_limit,
        start_timeout=ev.sandbox.start_timeout,
        cull_idle_after=ev.sandbox.cull_idle_after,
        auth=ev.sandbox.auth,
        oauth=ev.sandbox.oauth.model_dump() if ev.sandbox.oauth else None,
        workdir=ev.workdir.as_posix() if not ev.workdir.is_absolute() else ".hackgap",
    )
    rendered = k8s.render_values(spec, overlay)
    k8s.validate_values(
        rendered, origin=f"values.yaml (with {values})" if values else "values.yaml"
    )
    target = k8s.write_values(rendered, out, ev.name, ev.sandbox.auth)
    console = Console(highlight=False, soft_wrap=True)
    console.print(f"Wrote {target}; it validates against the z2jh chart's schema.", markup=False)
    console.print(
        k8s.values_header(ev.name, ev.sandbox.auth).replace("# ", "").rstrip(), markup=False
    )
    if ev.sandbox.auth == "hackgap":
        # The hub in the cluster checks the same hash file `provision` keeps: give everyone
        # on the roster a password (new people only), then make the Secret from the file.
        from sandboxes import hubauth, layout
        from sandboxes import provision as prov
        from sandboxes.hubconfig import password_file

        roster = prov.Roster(
            teams=dict(spec.teams), judges=list(ev.judges), organisers=list(ev.organisers)
        )
        hub_dir = layout.hub_dir(event_dir.workdir)
        hub_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        hashed = set(hubauth.read_hashes(password_file(hub_dir)))
        people = set(roster.people())
        plain = prov.issue_passwords(
            event_dir.workdir, roster, sorted(people - hashed), sorted(hashed - people)
        )
        console.print(
            f"Passwords: {len(plain)} new, {len(people) - len(plain)} kept; plain values in "
            f"{layout.credentials_file(event_dir.workdir)} (organisers only). Make the Secret: "
            f"kubectl create secret generic {k8s.secret_names(ev.name)['passwords']} "
            f"--from-file={k8s.PASSWORD_FILE_KEY}={password_file(hub_dir)}",
            markup=False,
        )
    if ev.sandbox.backend != "kubernetes":
        console.print(
            f"Note: event.yaml's sandbox.backend is {ev.sandbox.backend}, not kubernetes.",
            markup=False,
        )
