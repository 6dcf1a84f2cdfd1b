"""Team servers on the docker backend through the real hub (production path end to end).

An event with `sandbox.backend: docker` is brought up the way an organiser does it:
`services.up` (object store), a released twin, `services.hub_up` (proxy + hub with the
DockerSpawner settings from `sandboxes.docker.spawner_config`) and `run_provision(start=True)`,
which writes each team's workspace into its volume and starts its server. A member then
reaches the team server through the proxy and runs code in its kernel, inside the container.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandboxes import docker as sd
from sandboxes import layout
from tests.conftest import HubEvent, running_docker_hub
from tests.integration.hubclient import run_in_kernel, server_get, user_token

pytestmark = [pytest.mark.docker, pytest.mark.hub, pytest.mark.slow]

MEM = "768M"


@pytest.fixture(scope="module")
def docker_hub(docker_engine, sandbox_image) -> Iterator[HubEvent]:
    tag = secrets.token_hex(2)
    teams = {f"da-{tag}": ["dana"], f"db-{tag}": ["dirk"]}
    stale = []

    def leave_a_stale_container(name: str) -> None:
        # a team container left by a hub that died without `down`: hub_up must remove it
        stale.append(
            docker_engine.containers.create(
                sandbox_image, command="true", labels=sd._labels(name, "container", "stale")
            )
        )

    with running_docker_hub(
        docker_engine, sandbox_image, teams, name=f"dock-{tag}", mem_limit=MEM,
        before_hub=leave_a_stale_container,
    ) as hub:  # fmt: skip
        hub.stale_id = stale[0].id
        try:
            yield hub
        finally:
            for team in teams:
                try:
                    container = docker_engine.containers.get(sd.container_name(hub.name, team))
                    print(container.logs(tail=30).decode(errors="replace"))
                except Exception:
                    pass


def _passwords(workdir: Path) -> dict[str, str]:
    import csv

    with open(layout.credentials_file(workdir), newline="") as fh:
        return {row["username"]: row["password"] for row in csv.DictReader(fh)}


def _member_token(docker_hub, team: str) -> str:
    member = docker_hub.teams[team][0]
    return user_token(docker_hub.hub.url, member, _passwords(docker_hub.workdir)[member])


def test_team_server_runs_in_its_container_and_answers_through_the_proxy(docker_hub):
    team = sorted(docker_hub.teams)[0]
    account = layout.team_account(team)
    response = server_get(docker_hub.hub.url, account, "api", _member_token(docker_hub, team))
    assert response.status_code == 200 and "version" in response.json()
    container = docker_hub.client.containers.get(sd.container_name(docker_hub.name, team))
    assert container.status == "running"
    assert container.labels[sd.LABEL_EVENT] == docker_hub.name
    assert container.labels[sd.LABEL_TEAM] == team
    net = sd.network_name(docker_hub.name, docker_hub.event_dir.event.sandbox)
    assert list(container.attrs["NetworkSettings"]["Networks"]) == [net]
    host = container.attrs["HostConfig"]
    assert host["Memory"] == 768 * 2**20 and host["CapDrop"] == ["ALL"]
    assert host["ReadonlyRootfs"] is True and host["PidsLimit"] == sd.PIDS_LIMIT


def test_team_kernel_sees_its_workspace_and_twin_and_nothing_of_the_host(docker_hub):
    team = sorted(docker_hub.teams)[0]
    account = layout.team_account(team)
    gateway = sd.ensure_network(
        docker_hub.client, docker_hub.name, docker_hub.event_dir.event.sandbox
    ).gateway
    ports = {"hub_api": docker_hub.hub.hub_port, "s3": docker_hub.s3.port,
             "proxy": docker_hub.hub.port, "proxy_api": docker_hub.hub.proxy_api_port}  # fmt: skip
    code = f"""
import json, os, socket
import pandas as pd
def reach(port):
    try:
        socket.create_connection(({gateway!r}, port), 3).close()
        return True
    except OSError:
        return False
out = {{"uid": os.getuid(), "home": sorted(os.listdir(os.path.expanduser("~"))),
       "twin_rows": len(pd.read_parquet(os.environ["{layout.TWIN_PATH_ENV}"])),
       "reach": {{name: reach(port) for name, port in {ports!r}.items()}},
       "env": dict(os.environ)}}
try:
    open(os.environ["{layout.TWIN_PATH_ENV}"], "ab").close(); out["twin_writable"] = True
except OSError:
    out["twin_writable"] = False
print(json.dumps(out))
"""
    printed = run_in_kernel(docker_hub.hub.url, account, _member_token(docker_hub, team), code)
    seen = json.loads(printed.strip().splitlines()[-1])
    assert seen["uid"] == sd.SANDBOX_UID
    assert {layout.CHALLENGES_DIR, layout.TWIN_DIR, layout.SUBMISSION_DIR} <= set(seen["home"])
    assert seen["twin_rows"] == 120 and seen["twin_writable"] is False
    assert seen["reach"] == {"hub_api": True, "s3": False, "proxy": False, "proxy_api": False}
    hub_dir = layout.hub_dir(docker_hub.workdir)
    secrets_ = {
        "S3 secret": docker_hub.s3.secret_key,
        "service token": (hub_dir / "service-token").read_text().strip(),
        "proxy token": (hub_dir / "proxy-token").read_text().strip(),
    }
    container = docker_hub.client.containers.get(sd.container_name(docker_hub.name, team))
    inspected = json.dumps(container.attrs)
    joined = json.dumps(seen["env"])
    for label, value in secrets_.items():
        assert value not in joined, label
        assert value not in inspected, label


def test_kernel_past_mem_limit_is_killed_and_team_status_says_so(docker_hub):
    team = sorted(docker_hub.teams)[1]
    account = layout.team_account(team)
    token = _member_token(docker_hub, team)
    assert sd.team_status(docker_hub.name, team, docker_hub.client).oom_killed is False
    hog = "chunks = []\nfor _ in range(120):\n    chunks.append(bytearray(10 * 2**20))\n"
    with pytest.raises(Exception):  # noqa: B017 - the kernel dies mid-request
        run_in_kernel(docker_hub.hub.url, account, token, hog, timeout=25)
    status = sd.team_status(docker_hub.name, team, docker_hub.client)
    assert status.oom_killed is True and status.state == "running"
    assert f"{MEM} memory limit" in status.sentence()
    # and the organiser's `hackgap teams status` says so
    run = subprocess.run(
        [sys.executable, "-m", "flows.cli", "teams", "status", str(docker_hub.event_dir.root),
         "--json"], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows = {row["team"]: row for row in json.loads(run.stdout)}
    assert rows[team]["oom_killed"] is True and rows[team]["container"] == "running"
    assert "memory limit" in rows[team]["server"]
    other = sorted(docker_hub.teams)[0]
    assert rows[other]["oom_killed"] is False
    # the team's server lives on and answers again
    assert server_get(docker_hub.hub.url, account, "api", token).status_code == 200


def test_leftover_team_containers_of_an_earlier_run_are_removed_at_hub_start(docker_hub):
    import docker as docker_sdk

    with pytest.raises(docker_sdk.errors.NotFound):
        docker_hub.client.containers.get(docker_hub.stale_id)
    assert any("leftover team container" in note for note in docker_hub.hub_notes)
