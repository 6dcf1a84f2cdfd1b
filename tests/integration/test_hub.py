"""Team sandboxes on a real JupyterHub: who reaches what, and what a team's kernel sees.

One hub for the session (`hub_event` in tests/conftest.py): teams A (alice, amir) and B
(bob), a judge and an organiser, all provisioned through the production path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from sandboxes import layout
from tests.integration.hubclient import login, run_in_kernel, server_get, user_token

pytestmark = pytest.mark.hub


def _token(hub_event, person: str) -> str:
    return user_token(hub_event.url, person, hub_event.passwords[person])


def _teams(hub_event):
    a, b = sorted(hub_event.teams)
    return a, b


def test_members_reach_their_team_server_and_no_other(hub_event):
    a, b = _teams(hub_event)
    alice = _token(hub_event, "alice")
    own = server_get(hub_event.url, layout.team_account(a), "api/contents/challenges", alice)
    assert own.status_code == 200
    assert [c["name"] for c in own.json()["content"]] == ["advieskloof"]
    for path in ("api/contents", "api/contents/challenges", "api/kernels", "lab"):
        other = server_get(hub_event.url, layout.team_account(b), path, alice)
        assert other.status_code in (403, 404), (path, other.status_code)


def test_people_in_no_team_reach_no_team_server(hub_event):
    judge = _token(hub_event, "judge-jo")
    for team in hub_event.teams:
        got = server_get(hub_event.url, layout.team_account(team), "api/contents", judge)
        assert got.status_code in (403, 404), (team, got.status_code)
    # organisers help teams: their role reaches every team server (but not hub admin)
    organiser = _token(hub_event, "org-olga")
    a, _ = _teams(hub_event)
    assert server_get(hub_event.url, layout.team_account(a), "api/contents", organiser).ok


def test_members_log_in_with_their_password_and_cannot_open_admin_pages(hub_event):
    passwords = hub_event.passwords
    session = login(hub_event.url, "alice", passwords["alice"])
    home = session.get(f"{hub_event.url}hub/home", timeout=30)
    assert home.status_code == 200
    for page in ("hub/admin", "hub/api/users"):
        got = session.get(f"{hub_event.url}{page}", allow_redirects=False, timeout=30)
        assert got.status_code == 403, (page, got.status_code)
    with pytest.raises(PermissionError):
        login(hub_event.url, "alice", passwords["bob"])
    with pytest.raises(PermissionError):  # nobody logs in as a team's shared account
        login(hub_event.url, layout.team_account(sorted(hub_event.teams)[0]), "")


def test_credentials_file_is_organiser_only(hub_event):
    path = layout.credentials_file(hub_event.workdir)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert set(hub_event.passwords) == {"alice", "amir", "bob", "judge-jo", "org-olga"}


@pytest.fixture(scope="module")
def probe(hub_event) -> dict:
    """What a notebook of team A sees (run once, in a kernel on team A's server)."""
    return _kernel_probe(hub_event)


def _kernel_probe(hub_event) -> dict:
    a, b = _teams(hub_event)
    ev = hub_event.event_dir
    token = _token(hub_event, "alice")
    brief = "challenges/advieskloof/brief.md"
    paths = {
        "own_brief": f"{layout.workspace_dir(hub_event.workdir, a)}/{brief}",
        "other_workspace": str(layout.workspace_dir(hub_event.workdir, b)),
        "other_brief": f"{layout.workspace_dir(hub_event.workdir, b)}/{brief}",
        "sources": str(ev.source_path("municipal")),
        "event_yaml": str(ev.root / "event.yaml"),
        "services_state": str(hub_event.workdir / "services" / "state.json"),
        "hub_dir": str(layout.hub_dir(hub_event.workdir)),
        "credentials": str(layout.credentials_file(hub_event.workdir)),
        "logs": str(hub_event.workdir / "logs" / "hub.log"),
        "workdir": str(hub_event.workdir),
    }  # fmt: skip
    twin = f"{layout.workspace_dir(hub_event.workdir, a)}/twin/twin.parquet"
    state = json.loads((hub_event.workdir / "services" / "state.json").read_text())
    ports = {"s3": state["s3"]["port"], "proxy_api": hub_event.hub.proxy_api_port,
             "hub_api": hub_event.hub.hub_port}  # fmt: skip
    code = f"""
import json, os
paths = {paths!r}
def can(path):
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            open(path, 'rb').read(1)
        return True
    except OSError:
        return False
out = {{name: can(p) for name, p in paths.items()}}
try:
    open({twin!r}, 'ab').close(); out['twin_writable'] = True
except OSError:
    out['twin_writable'] = False
out['twin_readable'] = can({twin!r})
import socket
def reach(port):
    try:
        socket.create_connection(('127.0.0.1', port), 3).close()
        return True
    except OSError:
        return False
out['reach'] = {{name: reach(port) for name, port in {ports!r}.items()}}
out['env'] = dict(os.environ)
out['uid'] = os.getuid()
print(json.dumps(out))
"""
    printed = run_in_kernel(hub_event.url, layout.team_account(a), token, code)
    return json.loads(printed.strip().splitlines()[-1])


@pytest.mark.skipif(os.geteuid() != 0, reason="isolation between teams needs root")
def test_team_kernel_cannot_read_other_teams_nor_the_secure_parts(probe):
    seen = probe
    assert seen["uid"] != 0
    assert seen["own_brief"] and seen["twin_readable"]
    assert not seen["twin_writable"]
    for secret in ("other_workspace", "other_brief", "sources", "event_yaml", "services_state",
                   "hub_dir", "credentials", "logs", "workdir"):  # fmt: skip
        assert not seen[secret], secret


@pytest.mark.skipif(os.geteuid() != 0, reason="the loopback fence needs root (iptables)")
def test_team_kernel_cannot_reach_the_object_store_nor_the_proxy_api(probe):
    assert probe["reach"] == {"s3": False, "proxy_api": False, "hub_api": True}


def test_sandbox_environment_holds_no_secret(hub_event, probe):
    env = probe["env"]
    state = json.loads((hub_event.workdir / "services" / "state.json").read_text())
    secrets = {
        "S3 secret": state["s3"]["secret_key"],
        "service token": (layout.hub_dir(hub_event.workdir) / "service-token").read_text().strip(),
        "proxy token": (layout.hub_dir(hub_event.workdir) / "proxy-token").read_text().strip(),
    }
    joined = "\n".join(f"{k}={v}" for k, v in env.items())
    for name, value in secrets.items():
        assert value not in joined, name
    assert not [k for k in env if k.startswith(("HACKGAP_S3", "PREFECT", "CONFIGPROXY"))]
    assert env[layout.TWIN_PATH_ENV].endswith("twin/twin.parquet")
    # and nothing in the team's files either
    a, _ = _teams(hub_event)
    for path in layout.workspace_dir(hub_event.workdir, a).rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000:
            data = path.read_bytes()
            for name, value in secrets.items():
                assert value.encode() not in data, (name, path)


def test_generated_passwords_and_tokens_appear_in_no_log(hub_event):
    login(
        hub_event.url, "amir", hub_event.passwords["amir"]
    )  # a log-in is logged, not its password
    secrets = list(hub_event.passwords.values())
    secrets.append((layout.hub_dir(hub_event.workdir) / "service-token").read_text().strip())
    secrets.append((layout.hub_dir(hub_event.workdir) / "proxy-token").read_text().strip())
    logs = list((hub_event.workdir / "logs").glob("*.log"))
    assert any(p.name == "hub.log" for p in logs)
    for log in logs:
        text = log.read_text(errors="replace")
        for value in secrets:
            assert value not in text, log


def test_workspace_holds_brief_starter_twin_and_empty_submission(hub_event):
    a, _ = _teams(hub_event)
    ws = layout.workspace_dir(hub_event.workdir, a)
    assert (ws / "challenges" / "advieskloof" / "brief.md").read_text().strip()
    starter = json.loads((ws / "challenges" / "advieskloof" / "starter.ipynb").read_text())
    params = next(c for c in starter["cells"] if "parameters" in c["metadata"].get("tags", []))
    assert str(ws / "twin" / "twin.parquet") in "".join(params["source"])
    assert sorted(p.name for p in (ws / "twin").iterdir()) == [
        "VERSION", "codebook.md", "twin.csv", "twin.parquet"]  # fmt: skip
    assert all(p.stat().st_mode & 0o222 == 0 for p in (ws / "twin").iterdir())
    assert layout.outputs_dir(ws).is_dir()
    assert [p.name for p in layout.submission_dir(ws).iterdir()] == ["outputs"]
    if os.geteuid() == 0:
        assert ws.stat().st_mode & 0o777 == 0o700


def test_teams_status_json_lists_members_and_servers(hub_event):
    cli = Path(sys.executable).with_name("hackgap")
    run = subprocess.run([str(cli), "teams", "status", str(hub_event.event_dir.root), "--json"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows = {r["team"]: r for r in json.loads(run.stdout)}
    a, b = _teams(hub_event)
    assert rows[a]["members"] == ["alice", "amir"] and rows[b]["members"] == ["bob"]
    assert rows[a]["server"] == "ready"
    assert rows[a]["submission_notebook"] is False


def test_provision_again_changes_nothing_and_keeps_the_hub(hub_event):
    from flows import services
    from flows.provision import run_provision

    before = services.status(hub_event.workdir).hub
    result = run_provision(hub_event.event_dir, hub_event.store)
    assert result.changes == [] and result.new_passwords == 0 and result.servers == {}
    assert services.status(hub_event.workdir).hub.pid == before.pid


def test_proxy_routes_only_team_accounts_to_servers(hub_event):
    token = (layout.hub_dir(hub_event.workdir) / "proxy-token").read_text().strip()
    api = f"http://127.0.0.1:{hub_event.hub.proxy_api_port}/api/routes"
    routes = requests.get(api, headers={"Authorization": f"token {token}"}, timeout=10).json()
    users = {r.split("/")[2] for r in routes if r.startswith("/user/")}
    assert users == {layout.team_account(t) for t in hub_event.teams}


def test_starter_notebooks_run_top_to_bottom_inside_the_team_sandbox(hub_event):
    a, _ = _teams(hub_event)
    challenges = layout.workspace_dir(hub_event.workdir, a) / layout.CHALLENGES_DIR
    code = f"""
import nbformat
from pathlib import Path
from nbclient import NotebookClient
for starter in sorted(Path({str(challenges)!r}).glob("*/starter.ipynb")):
    nb = nbformat.read(starter, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={{"metadata": {{"path": str(starter.parent)}}}}).execute()
    print("ran", starter.parent.name, sum(c.cell_type == "code" for c in nb.cells))
"""
    printed = run_in_kernel(
        hub_event.url, layout.team_account(a), _token(hub_event, "amir"), code, timeout=600
    )
    assert "ran advieskloof" in printed, printed[-2000:]
