"""The provision stage: event.yaml's teams -> hub groups, accounts, workspaces; thin over sandboxes.

Reads the latest released twin from the open bucket (`open/twins/<event>/<version>/`, a set
with `_COMPLETE`), renders each team's briefs and starter notebooks, and lets
`sandboxes.provision` apply the difference to the running hub. A removed team's workspace
is archived to `submissions/<event>/archive/<team>/<UTC time>.tar.gz` first, never deleted.
The summary (and so Prefect) never holds a password: those go to the credentials file.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow

from flows import services
from flows.event import EventDir, load_event
from flows.objectstore import ObjectStore
from sandboxes import layout, lockdown
from sandboxes import provision as prov
from sandboxes import workspace as ws
from sandboxes.hubapi import HubAPI

OPEN, SUBMISSIONS = "open", "submissions"
progress_hook: Callable[[str], None] | None = None
START = True  # `teams provision --no-start` sets False: accounts and files, no servers


class ProvisionError(Exception):
    """Provisioning cannot start, for a reason the organiser can fix."""

    hackgap_user_error = True


def _say(progress: Callable[[str], None] | None) -> Callable[[str], None]:
    return progress or progress_hook or (lambda _msg: None)


@dataclass
class ProvisionResult:
    hub_url: str
    credentials: str
    twin_version: str
    changes: list[str]
    servers: dict[str, str]
    new_passwords: int
    archived: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "hub_url": self.hub_url,
            "credentials": self.credentials,
            "twin_version": self.twin_version,
            "changes": self.changes,
            "servers": self.servers,
            "new_passwords": self.new_passwords,
            "archived": self.archived,
        }


def roster(event_dir: EventDir) -> prov.Roster:
    ev = event_dir.event
    return prov.Roster(
        teams={t.name: list(t.members) for t in ev.teams},
        judges=list(ev.judges),
        organisers=list(ev.organisers),
    )


def latest_twin(store: ObjectStore, event: str) -> tuple[str, dict]:
    """(version, manifest) of the newest complete twin release; ProvisionError if none."""
    prefix = f"twins/{event}/"
    versions = {key[len(prefix) :].split("/", 1)[0] for key in store.list(OPEN, prefix)}
    manifests = {v: store.read_manifest(OPEN, prefix + v) for v in sorted(versions)}
    complete = {v: m for v, m in manifests.items() if m is not None}
    if not complete:
        raise ProvisionError(
            f"No twin of event '{event}' has been released yet (nothing complete under "
            f"open/{prefix}); run `hackgap synthesize DIR` first."
        )
    version = max(complete, key=lambda v: (complete[v].get("created", ""), v))
    return version, complete[version]


def fetch_twin(store: ObjectStore, event: str, workdir: Path) -> str:
    """Copy the latest released twin to the workdir (once per version); return the version."""
    version, manifest = latest_twin(store, event)
    target = prov.released_twin_dir(workdir)
    if (target / ws.VERSION_FILE).is_file() and (
        target / ws.VERSION_FILE
    ).read_text().strip() == version:
        return version
    tmp = Path(tempfile.mkdtemp(prefix=".open-twin.", dir=workdir))
    for name in manifest["files"]:
        if name in ws.TWIN_FILES:
            store.get_file(OPEN, f"twins/{event}/{version}/{name}", tmp / name)
            (tmp / name).chmod(0o444)  # open data: readable by a team container's user
    (tmp / ws.VERSION_FILE).write_text(version + "\n", encoding="utf-8")
    tmp.chmod(0o755)
    old = target.with_name(".open-twin.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return version


def _hub(event_dir: EventDir) -> services.HubService:
    state = services.status(event_dir.workdir)
    if state is None or state.hub is None:
        raise ProvisionError(
            f"The hub of {event_dir.root} is not running; start it with "
            f"`hackgap services up {event_dir.root}` and provision again."
        )
    return state.hub


def preflight(event_dir: EventDir) -> services.HubService:
    """Checks before anything changes: a roster the hub and Unix accept, a running hub."""
    isolate = event_dir.event.sandbox.backend == "local" and os.geteuid() == 0
    prov.check(roster(event_dir), isolate=isolate)
    return _hub(event_dir)


def _sandbox_paths(event_dir: EventDir, spec) -> tuple[Path, str, tuple[int, int] | None]:
    """(workspace on this machine, its path inside the sandbox, owner) for a team."""
    backend = event_dir.event.sandbox.backend
    if backend == "docker":
        from sandboxes import docker

        path = docker.team_volume_dir(event_dir.event.name, spec.team)
        return path, str(docker.HOME), (docker.SANDBOX_UID, docker.SANDBOX_UID)
    return Path(spec.workspace), spec.workspace, None


def run_provision(
    event_dir: EventDir,
    store: ObjectStore,
    *,
    start: bool | None = None,
    progress: Callable[[str], None] | None = None,
) -> ProvisionResult:
    """Provision every team of event.yaml on the running hub; a re-run applies the difference."""
    from challenges import load_packs
    from challenges.render import RenderContext

    say = _say(progress)
    ev = event_dir.event
    workdir = event_dir.workdir
    isolate = ev.sandbox.backend == "local" and os.geteuid() == 0
    hub = preflight(event_dir)
    api = HubAPI(hub.api_url, services.hub_token(workdir))
    api.version()
    version = fetch_twin(store, ev.name, workdir)
    twin_src = prov.released_twin_dir(workdir)
    packs = {p.id: p for p in load_packs(ev.challenges, [event_dir.root / "challenges"])}
    chosen = {t.name: [t.challenge] if t.challenge else list(ev.challenges) for t in ev.teams}
    if isolate:  # files made since `services up` (open twin, judging, ...) lose "others" bits
        lockdown.protect_event(event_dir.root, workdir)

    def fill(spec, owner):
        path, inside, docker_owner = _sandbox_paths(event_dir, spec)
        twin_dir = f"{inside}/{layout.TWIN_DIR}"
        context = RenderContext(
            event_title=ev.title, start=ev.start, deadline=ev.deadline, end=ev.end,
            data_version=version, twin_path=f"{twin_dir}/twin.parquet",
            codebook_url=f"{twin_dir}/codebook.md", codebook_path=f"{twin_dir}/codebook.md",
        )  # fmt: skip
        return ws.fill(
            path, packs=[packs[c] for c in chosen[spec.team]], context=context,
            twin_src=twin_src, twin_version_label=version, owner=owner or docker_owner,
        )  # fmt: skip

    def archive(team: str, workspace: Path) -> None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            tar = prov.archive_workspace(workspace, Path(tmp) / f"{team}.tar.gz")
            store.put_file(SUBMISSIONS, f"{ev.name}/archive/{team}/{stamp}.tar.gz", tar)
        say(f"archived the workspace of removed team {team} to {SUBMISSIONS}/{ev.name}/archive/")

    def restart() -> None:
        say("restarting the hub with the new teams' roles (about 5 s)")
        services.restart_hub(event_dir)

    say(f"applying the roster ({len(ev.teams)} teams) with twin {version}")
    result = prov.apply(
        api, workdir, ev.name, roster(event_dir), isolate=isolate, restart_hub=restart,
        fill_workspace=fill, archive=archive, start=START if start is None else start,
        start_timeout=ev.sandbox.start_timeout + 30,
    )  # fmt: skip
    return ProvisionResult(
        hub_url=hub.url,
        credentials=str(result.credentials),
        twin_version=version,
        changes=result.plan.summary(),
        servers=result.servers,
        new_passwords=len(result.passwords),
        archived=[str(p) for p in result.archived],
    )


@flow(name="provision", log_prints=False)
def provision_flow(event_path: str) -> dict:
    """Provision the event's teams on its hub (accounts, groups, workspaces, servers)."""
    event_dir = load_event(Path(event_path))
    store = ObjectStore.for_workdir(event_dir.workdir)
    return run_provision(event_dir, store).summary()


def team_status(event_dir: EventDir) -> list[dict[str, Any]]:
    """One row per team of event.yaml, from the hub's API and the workspace on disk."""
    from sandboxes.status import team_rows

    hub = _hub(event_dir)
    api = HubAPI(hub.api_url, services.hub_token(event_dir.workdir))
    teams = {t.name: list(t.members) for t in event_dir.event.teams}
    workspace = None  # the local backend's home directories
    if event_dir.event.sandbox.backend == "docker":  # the team's files are in its volume
        from functools import partial

        from sandboxes import docker

        workspace = partial(docker.team_volume_dir, event_dir.event.name)
    rows = team_rows(api, event_dir.workdir, teams, workspace)
    if event_dir.event.sandbox.backend == "docker":
        for row in rows:  # what the engine knows: the container, and memory kills in it
            container = docker.team_status(event_dir.event.name, row["team"])
            row["container"] = container.state
            row["oom_killed"] = container.oom_killed
            if container.oom_killed:
                row["server"] = f"{row['server']} ({container.sentence()})"
    return rows
