"""Team containers against a real engine: no way out, no way to another team, limits that hold.

Two teams' containers run JupyterLab from the real sandbox image on the event's internal
network, with the host firewall rule in place. Every reachability check sends packets only
to this machine: the bridge gateway (listeners this test starts) and the other container.
Each negative check has a positive control (the same target answers from the host, or the
hub API port answers from the container), so a check cannot pass because a listener is down.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from sandboxes import docker as sd

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TOKEN = "test-token-" + uuid.uuid4().hex[:8]
# Values that stand for hackgap's secrets in the process that starts the containers.
SECRETS = {
    "HACKGAP_S3_SECRET_KEY": "s3-secret-" + uuid.uuid4().hex,
    "CONFIGPROXY_AUTH_TOKEN": "proxy-secret-" + uuid.uuid4().hex,
    "HACKGAP_PSEUDONYM_KEY": "pseudonym-secret-" + uuid.uuid4().hex,
}


class _Listener:
    """A TCP listener on this machine that answers b'hi' to whoever connects."""

    def __init__(self, host: str):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.sendall(b"hi")
            conn.close()

    def close(self) -> None:
        self.sock.close()


def _connect_from(container, targets: list[tuple[str, int]]) -> dict[str, str]:
    """Try each host:port from inside the container; 'ok' or the error's class name."""
    code = (
        "import json, socket, sys\n"
        "out = {}\n"
        "for host, port in json.loads(sys.argv[1]):\n"
        "    try:\n"
        "        socket.create_connection((host, port), timeout=3).close()\n"
        "        out[f'{host}:{port}'] = 'ok'\n"
        "    except Exception as exc:\n"
        "        out[f'{host}:{port}'] = type(exc).__name__\n"
        "print(json.dumps(out))\n"
    )
    exit_code, output = container.exec_run(["python", "-c", code, json.dumps(targets)])
    assert exit_code == 0, output.decode()
    return json.loads(output.decode().strip().splitlines()[-1])


def _py(container, code: str) -> tuple[int, str]:
    exit_code, output = container.exec_run(["python", "-c", code])
    return exit_code, output.decode()


@pytest.fixture(scope="module")
def event(docker_engine, sandbox_image, tmp_path_factory) -> Iterator[SimpleNamespace]:
    client = docker_engine
    name = "hgt-" + uuid.uuid4().hex[:6]
    sandbox = SimpleNamespace(
        image=sandbox_image, cpu_limit=1.0, mem_limit="512M", start_timeout=60, network=None
    )
    twin = tmp_path_factory.mktemp("twin")
    pd.DataFrame({"school": ["A", "B"], "advice": [1, 2]}).to_parquet(twin / "twin.parquet")
    (twin / "codebook.md").write_text("# codebook\n")
    # Modes that would let anyone write: only the read-only mount can refuse the writes.
    os.chmod(twin / "twin.parquet", 0o666)
    os.chmod(twin, 0o777)
    previous = {k: os.environ.get(k) for k in SECRETS}
    os.environ.update(SECRETS)
    hub = None
    try:
        net = sd.ensure_network(client, name, sandbox)
        hub = _Listener(net.gateway)  # stands for the hub API, the one port containers may use
        sd.ensure_firewall(net, hub.port)
        env = {"JUPYTER_TOKEN": TOKEN}
        teams = {}
        for team in ("alpha", "beta"):
            container = sd.run_team_container(
                client, name, sandbox, team, twin_dir=twin, environment=env,
                command=sd.server_command(),
            )  # fmt: skip
            teams[team] = container
        ips = {team: sd.container_ip(c, net.name) for team, c in teams.items()}
        for ip in ips.values():
            sd.wait_until_answers(f"http://{ip}:{sd.PORT}/api", timeout=90)
        yield SimpleNamespace(
            client=client, name=name, sandbox=sandbox, net=net, hub=hub, teams=teams, ips=ips
        )
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for team in ("alpha", "beta"):
            with contextlib.suppress(Exception):
                print(client.containers.get(sd.container_name(name, team)).logs(tail=20).decode())
            sd.remove_team(name, team, client=client)
        sd.teardown_event(name, sandbox, client)
        if hub is not None:
            hub.close()
        assert not sd._rules_with_comment(f"hackgap:{sd.network_name(name, sandbox)}")


def test_network_is_internal_and_the_host_forwards_nothing_out(event):
    attrs = event.client.networks.get(event.net.id).attrs
    assert attrs["Internal"] is True
    assert attrs["Options"][sd.ICC_OPTION] == "false"
    # What the engine made of that, read from the host's firewall (no packet sent anywhere):
    # packets from the bridge to any address off the subnet are dropped, container to
    # container on the bridge is dropped, and nothing is masqueraded out.
    rules = subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout
    br, subnet = event.net.bridge, event.net.subnet
    assert f"-A DOCKER-ISOLATION-STAGE-1 ! -d {subnet} -i {br} -j DROP" in rules
    assert f"-A FORWARD -i {br} -o {br} -j DROP" in rules
    nat = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True).stdout
    assert subnet not in nat


def test_host_services_unreachable_except_hub_api(event, s3_server):
    other = _Listener("0.0.0.0")  # a host service bound on all addresses
    try:
        s3_port = int(s3_server["HACKGAP_S3_ENDPOINT"].rsplit(":", 1)[1])
        gw = event.net.gateway
        result = _connect_from(
            event.teams["alpha"], [[gw, event.hub.port], [gw, other.port], [gw, s3_port]]
        )
        assert result[f"{gw}:{event.hub.port}"] == "ok"  # the hub API is reachable
        assert result[f"{gw}:{other.port}"] != "ok"
        assert result[f"{gw}:{s3_port}"] != "ok"
        assert other.accepted == 0
        # positive control: the same listener answers from the host
        socket.create_connection((gw, other.port), timeout=3).close()
    finally:
        other.close()


def test_other_team_unreachable_by_ip_and_name(event):
    beta = sd.container_name(event.name, "beta")
    result = _connect_from(event.teams["alpha"], [[event.ips["beta"], sd.PORT], [beta, sd.PORT]])
    assert result[f"{event.ips['beta']}:{sd.PORT}"] != "ok"
    assert result[f"{beta}:{sd.PORT}"] != "ok"
    # positive control: beta's server answers from the host
    sd.wait_until_answers(f"http://{event.ips['beta']}:{sd.PORT}/api", timeout=5)


def test_other_team_volume_not_visible(event):
    client = event.client
    marker = "beta-only-" + uuid.uuid4().hex[:8]
    beta_dir = Path(client.volumes.get(sd.team_volume(event.name, "beta")).attrs["Mountpoint"])
    (beta_dir / marker).write_text("beta's work")
    alpha_marker = "alpha-own-" + uuid.uuid4().hex[:8]
    code, _ = _py(event.teams["alpha"], f"open('{sd.HOME}/{alpha_marker}', 'w').write('x')")
    assert code == 0
    code, out = _py(
        event.teams["alpha"],
        "import os\n"
        f"print(os.path.exists('{sd.HOME}/{marker}'), os.path.exists('{sd.HOME}/{alpha_marker}'))\n"
        "print(open('/proc/self/mountinfo').read())",
    )
    first, mounts = out.split("\n", 1)
    assert first == "False True"
    assert sd.team_volume(event.name, "beta") not in mounts
    assert sd.team_volume(event.name, "alpha") in mounts
    # and beta sees its own file
    code, out = _py(event.teams["beta"], f"print(open('{sd.HOME}/{marker}').read())")
    assert out.strip() == "beta's work"


def test_twin_is_readable_and_refuses_writes(event):
    code, out = _py(
        event.teams["alpha"],
        "import os, pandas as pd\n"
        f"print(len(pd.read_parquet(os.environ['{sd.layout.TWIN_PATH_ENV}'])))\n"
        "for path in ['" + sd.TWIN_MOUNT + "/twin.parquet', '" + sd.TWIN_MOUNT + "/new.txt',"
        " '/opt/venv/evil.py']:\n"
        "    try:\n"
        "        open(path, 'a').write('x')\n"
        "        print('wrote', path)\n"
        "    except OSError as exc:\n"
        "        print(exc.errno)\n",
    )
    assert code == 0, out
    assert out.split() == ["2", "30", "30", "30"]  # 30 = EROFS


def test_hardening_in_inspect_and_inside(event):
    container = event.teams["alpha"]
    container.reload()
    host = container.attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["PidsLimit"] == sd.PIDS_LIMIT
    assert host["ReadonlyRootfs"] is True
    assert host["Memory"] == 512 * 2**20 and host["NanoCpus"] in (0, None)
    assert host["CpuQuota"] == 100_000 and host["CpuPeriod"] == 100_000
    assert container.attrs["Config"]["User"] == "1000:1000"
    assert not any("docker.sock" in (m.get("Source") or "") for m in container.attrs["Mounts"])
    assert container.labels[sd.LABEL_EVENT] == event.name
    assert container.labels[sd.LABEL_TEAM] == "alpha"
    _code, out = _py(
        container,
        "import os\n"
        "status = dict(l.split(':\\t') for l in open('/proc/self/status').read().splitlines())\n"
        "print(os.getuid(), status['CapEff'].strip(), status['NoNewPrivs'].strip())\n"
        "print(os.path.exists('/var/run/docker.sock'))",
    )
    assert out.split() == ["1000", "0000000000000000", "1", "False"]


def test_no_hackgap_secret_in_environment_or_inspect(event):
    container = event.teams["alpha"]
    container.reload()
    inspected = json.dumps(container.attrs)
    code, environ = _py(container, "print(open('/proc/1/environ').read())")
    assert code == 0
    for key, value in SECRETS.items():
        assert value not in inspected, key
        assert value not in environ, key
        assert key not in environ, key


def test_memory_past_the_limit_is_killed_and_status_says_so(event):
    container = event.teams["alpha"]
    assert sd.team_status(event.name, "alpha", event.client).oom_killed is False
    code, _ = _py(
        container,
        "chunks = []\n"
        "for _ in range(80):\n"
        "    chunks.append(bytearray(10 * 2**20))\n"  # 800 MiB, past the 512M limit
        "print('survived')",
    )
    assert code == 137  # SIGKILL from the kernel's OOM killer inside the container's cgroup
    status = sd.team_status(event.name, "alpha", event.client)
    assert status.oom_killed is True
    assert "512M memory limit" in status.sentence()
    # the team's server itself lives on
    sd.wait_until_answers(f"http://{event.ips['alpha']}:{sd.PORT}/api", timeout=10)


def test_fork_bomb_is_bounded(event):
    container = event.teams["beta"]
    _code, out = _py(
        container,
        "import os, signal, time\n"
        "children = []\n"
        "try:\n"
        "    while len(children) < 5000:\n"
        "        pid = os.fork()\n"
        "        if pid == 0:\n"
        "            time.sleep(30)\n"
        "            os._exit(0)\n"
        "        children.append(pid)\n"
        "    print('unbounded', len(children))\n"
        "except OSError as exc:\n"
        "    print('bounded', len(children), exc.errno)\n"
        "for pid in children:\n"
        "    os.kill(pid, signal.SIGKILL)\n"
        "for pid in children:\n"
        "    os.waitpid(pid, 0)\n",
    )
    words = out.split()
    assert words[0] == "bounded", out
    assert int(words[1]) < sd.PIDS_LIMIT
    assert words[2] == "11"  # EAGAIN: the pids cgroup refused the fork
    sd.wait_until_answers(f"http://{event.ips['beta']}:{sd.PORT}/api", timeout=10)


def test_volume_is_kept_across_restarts_and_archived_on_removal(event, tmp_path):
    container = event.teams["beta"]
    code, _ = _py(container, f"open('{sd.HOME}/notes.txt', 'w').write('kept')")
    assert code == 0
    container.restart(timeout=5)
    code, out = _py(container, f"print(open('{sd.HOME}/notes.txt').read())")
    assert out.strip() == "kept"
    archive = sd.export_team_volume(event.name, "beta", tmp_path / "beta.tar", event.client)
    import tarfile

    with tarfile.open(archive) as tar:
        member = tar.extractfile("beta/notes.txt")
        assert member is not None and member.read() == b"kept"
    sd.wait_until_answers(f"http://{event.ips['beta']}:{sd.PORT}/api", timeout=60)
