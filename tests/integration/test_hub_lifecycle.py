"""A roster change applies exactly the difference; services down/up keeps users, groups,
files and tokens. Its own hub (the session hub's roster stays as it is)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import psutil
import pytest
import yaml

from flows import services
from flows.event import load_event
from flows.objectstore import ObjectStore
from flows.provision import run_provision
from sandboxes import layout
from tests.conftest import make_hub_event, publish_test_twin
from tests.integration.hubclient import login, server_get, user_token

pytestmark = pytest.mark.hub


def _passwords(workdir: Path) -> dict[str, str]:
    import csv

    with open(layout.credentials_file(workdir), newline="") as fh:
        return {row["username"]: row["password"] for row in csv.DictReader(fh)}


def _set_teams(root: Path, teams: dict[str, list[str]]) -> None:
    doc = yaml.safe_load((root / "event.yaml").read_text())
    doc["teams"] = [{"name": t, "members": m} for t, m in teams.items()]
    (root / "event.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def test_roster_change_then_down_and_up(request):
    tag = secrets.token_hex(2)
    a, b = f"la-{tag}", f"lb-{tag}"
    tmp = Path(tempfile.mkdtemp(prefix="hackgap-hub-life-", dir="/tmp"))
    tmp.chmod(0o711)
    root = make_hub_event(tmp / "event", {a: ["carl"]}, name="life", judges=(), organisers=())
    workdir = load_event(root).workdir

    def cleanup() -> None:
        services.down(workdir)
        if os.geteuid() == 0:
            for team in (a, b, f"lc-{tag}"):
                subprocess.run(["userdel", layout.team_system_user("", team)], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)

    request.addfinalizer(cleanup)
    services.up(workdir, s3=True, prefect=False)
    store = ObjectStore.for_workdir(workdir)
    publish_test_twin(store, "life")
    services.hub_up(load_event(root))
    run_provision(load_event(root), store, start=False)
    note = layout.submission_dir(layout.workspace_dir(workdir, a)) / "analysis.ipynb"
    note.write_text("{}")

    # team a leaves, team b (dora) joins: exactly that changes
    _set_teams(root, {b: ["dora"]})
    result = run_provision(load_event(root), store, start=True)
    assert f"teams added: {b}" in result.changes and f"teams removed: {a}" in result.changes
    assert result.servers == {layout.team_account(b): "ready"}
    users = set(_api(workdir).users())
    assert users == {"dora", layout.team_account(b)}
    archived = store.list("submissions", f"life/archive/{a}/")
    assert len(archived) == 1 and archived[0].endswith(".tar.gz")
    assert note.read_text() == "{}"  # archived, never deleted
    passwords = _passwords(workdir)
    with pytest.raises(PermissionError):
        login(services.status(workdir).hub.url, "carl", passwords["carl"])

    # a new team restarts the hub (roles are config-only); b's running server lives on
    c = f"lc-{tag}"
    server_pid = _server_pid(workdir, b)
    _set_teams(root, {b: ["dora"], c: ["emma"]})
    hub_pid = services.status(workdir).hub.pid
    added = run_provision(load_event(root), store, start=False)
    assert f"teams added: {c}" in added.changes
    assert services.status(workdir).hub.pid != hub_pid
    assert _server_pid(workdir, b) == server_pid
    dora = user_token(services.status(workdir).hub.url, "dora", passwords["dora"])
    got = server_get(services.status(workdir).hub.url, layout.team_account(b), "api", dora)
    assert got.status_code == 200

    # down and up: users, groups, team files, passwords and the service token survive
    token_before = services.hub_token(workdir)
    services.down(workdir)
    assert services.status(workdir) is None
    services.up(workdir, s3=True, prefect=False)
    hub = services.hub_up(load_event(root)).hub
    assert services.hub_token(workdir) == token_before
    api = _api(workdir)
    assert set(api.users()) == {"dora", "emma", layout.team_account(b), layout.team_account(c)}
    assert api.groups()[b] == ["dora"] and api.groups()[c] == ["emma"]
    assert note.read_text() == "{}"
    store = ObjectStore.for_workdir(workdir)  # the object store came back on a new port
    again = run_provision(load_event(root), store)  # starts the stopped server, nothing else
    assert again.changes == []
    assert again.servers == {layout.team_account(b): "ready", layout.team_account(c): "ready"}
    dora = user_token(hub.url, "dora", passwords["dora"])
    assert server_get(hub.url, layout.team_account(b), "api/contents", dora).status_code == 200


def _server_pid(workdir: Path, team: str) -> int:
    needle = f"127.0.0.1:{services.status(workdir).hub.hub_port}/"
    for proc in psutil.process_iter():
        try:
            env = proc.environ()
        except psutil.Error:
            continue
        if needle in env.get("JUPYTERHUB_API_URL", "") and env.get(
            "JUPYTERHUB_USER"
        ) == layout.team_account(team):
            return proc.pid
    raise AssertionError(f"no server process for {team}")


def _api(workdir: Path):
    from sandboxes.hubapi import HubAPI

    return HubAPI(services.status(workdir).hub.api_url, services.hub_token(workdir))
