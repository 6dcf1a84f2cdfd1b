"""Bad input for the hub and provisioning: one sentence naming the thing and the fix, exit 2,
and nothing half-made (no hub process left, no team created)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from flows import services
from flows.event import load_event
from tests.conftest import make_hub_event

pytestmark = pytest.mark.hub
CLI = str(Path(sys.executable).with_name("hackgap"))


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=180,
                          env={**os.environ, **(env or {})})  # fmt: skip


def _one_sentence(run: subprocess.CompletedProcess) -> str:
    assert run.returncode == 2, (run.returncode, run.stdout[-500:], run.stderr[-1500:])
    assert "Traceback" not in run.stderr
    return " ".join(run.stderr.split())


@pytest.fixture
def tmp_path():
    """A directory team users could traverse (pytest's own tmp is 0700)."""
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="hackgap-hub-bad-", dir="/tmp"))
    root.chmod(0o711)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _event(tmp_path: Path, teams: dict, **kw) -> Path:
    return make_hub_event(tmp_path / "event", teams, **kw)


def _hub_processes(workdir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if str(workdir) in cmd and ("jupyterhub" in cmd or "configurable-http-proxy" in cmd):
            found.append(proc)
    return found


@pytest.mark.parametrize(
    ("members", "needle"),
    [
        ({"team-a": []}, "teams.0.members"),
        ({"team-a": ["anna"], "team-b": ["anna"]}, "'anna' is a member of both 'team-a' and"),
        ({"team-a": ["Anna B"]}, "'Anna B' does not match the required pattern"),
        ({"team-a": ["team-b-collab"], "team-b": ["bram"]}, "shared account"),
    ],
)
def test_bad_rosters_are_refused_before_the_hub_is_touched(tmp_path, members, needle):
    from flows.provision import preflight
    from flows.runtime import is_user_error

    with pytest.raises(Exception) as err:
        preflight(load_event(_event(tmp_path, members)))
    assert is_user_error(err.value)
    assert needle in str(err.value)


def test_bad_roster_through_the_cli_exits_2(tmp_path):
    event = _event(tmp_path, {"team-a": ["team-b-collab"], "team-b": ["bram"]})
    text = _one_sentence(_cli("teams", "provision", str(event), "--no-prefect"))
    assert "has the name of team team-b's shared account" in text


def test_provision_before_services_up_says_to_start_them(tmp_path):
    event = _event(tmp_path, {"team-a": ["anna"]})
    text = _one_sentence(_cli("teams", "provision", str(event), "--no-prefect"))
    assert "is not running; start it with `hackgap services up" in text


def test_hub_port_in_use(tmp_path, monkeypatch):
    event_dir = load_event(_event(tmp_path, {"team-a": ["anna"]}))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("HACKGAP_HUB_PORT", str(port))
        with pytest.raises(services.ServiceError, match=f"Port {port} .* already in use"):
            services.hub_up(event_dir)
    assert services.status(event_dir.workdir) is None
    assert not _hub_processes(event_dir.workdir)


def test_proxy_missing(tmp_path, monkeypatch):
    event_dir = load_event(_event(tmp_path, {"team-a": ["anna"]}))
    monkeypatch.setenv("HACKGAP_PROXY_BIN", str(tmp_path / "no-such-proxy"))
    with pytest.raises(services.ServiceError, match=r"configurable-http-proxy .* is missing"):
        services.hub_up(event_dir)
    assert services.status(event_dir.workdir) is None


def test_hub_not_up_within_start_timeout_leaves_nothing_running(tmp_path, monkeypatch):
    event_dir = load_event(_event(tmp_path, {"team-a": ["anna"]}))
    monkeypatch.setenv("HACKGAP_HUB_START_TIMEOUT", "1")
    with pytest.raises(services.ServiceError, match="did not answer within 1 s"):
        services.hub_up(event_dir)
    assert services.status(event_dir.workdir) is None
    assert not _hub_processes(event_dir.workdir)


@pytest.mark.skipif(os.geteuid() != 0, reason="team users exist only as root")
def test_event_where_team_users_cannot_reach_their_workspaces(tmp_path_factory):
    private = tmp_path_factory.mktemp("private")
    private.chmod(0o700)
    event_dir = load_event(make_hub_event(private / "event", {"team-a": ["anna"]}))
    with pytest.raises(services.ServiceError, match="is not traversable by others; `chmod o"):
        services.hub_up(event_dir)
    assert not _hub_processes(event_dir.workdir)


def test_kubernetes_backend_is_rendered_not_started(tmp_path):
    event_dir = load_event(
        _event(tmp_path, {"team-a": ["anna"]}, sandbox="sandbox: {backend: kubernetes}\n")
    )
    with pytest.raises(services.ServiceError, match="render-k8s"):
        services.hub_up(event_dir)
    assert not _hub_processes(event_dir.workdir)


def test_no_released_twin_changes_nothing(hub_event, store):
    from flows.provision import ProvisionError, run_provision
    from sandboxes.provision import teams_file

    users, teams = set(hub_event.api.users()), teams_file(hub_event.workdir).read_text()
    # the same event with one more team, against an object store with no twin
    ev = hub_event.event_dir.event
    extra = type(ev.teams[0])(name="tz-new", members=["zoe"])
    bigger = ev.model_copy(update={"teams": [*ev.teams, extra]})
    event_dir = type(hub_event.event_dir)(hub_event.event_dir.root, bigger)
    with pytest.raises(ProvisionError, match="No twin of event 'hub-test' has been released"):
        run_provision(event_dir, store)
    assert set(hub_event.api.users()) == users
    assert teams_file(hub_event.workdir).read_text() == teams


def test_oauth_without_client_credentials(tmp_path, monkeypatch):
    monkeypatch.delenv("HACKGAP_OAUTH_CLIENT_ID", raising=False)
    sandbox = "sandbox:\n  auth: oauth\n  oauth: {provider: github}\n"
    event_dir = load_event(_event(tmp_path, {"team-a": ["anna"]}, sandbox=sandbox))
    with pytest.raises(services.ServiceError, match="HACKGAP_OAUTH_CLIENT_ID is not set"):
        services.hub_up(event_dir)
    assert not _hub_processes(event_dir.workdir)
