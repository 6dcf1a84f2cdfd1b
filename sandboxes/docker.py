"""The docker backend: one container per team, on a network with no way out.

Each event gets one Docker network marked `internal` (the engine forwards nothing off it) with
inter-container traffic off, so teams cannot reach each other. An internal network does
not protect the host: a container reaches any host service bound to 0.0.0.0 through the
bridge gateway, so a host firewall rule drops new connections from the event's bridge,
except to the hub API port (the single-user servers report to the hub there). The hub
listens on the bridge gateway and reaches containers by their internal IP (ports published
on an internal network are ignored).

A team's container runs the image from `sandboxes.image` as an unprivileged user with every
capability dropped, no-new-privileges, a read-only root file system, a pids limit and the
event's cpu/mem limits; its home is one named volume per team (kept across restarts,
exported to a tar on removal) and the released twin is bind-mounted read-only. Every
network, volume and container carries labels, and clean-up goes by those labels only.

`spawner_config` gives the hub config the DockerSpawner settings (with `DockerTeamSpawner`, a
small subclass that names things per team and labels the volume); `run_team_container`
starts a container with the same settings without a hub (tests, benchmarks).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from dockerspawner import DockerSpawner
from traitlets import Unicode, default

from sandboxes import layout

HOME = "/home/jovyan"
TWIN_MOUNT = f"{HOME}/{layout.TWIN_DIR}"
SANDBOX_UID = 1000
PORT = 8888
PIDS_LIMIT = 512  # threads count too: a server with a few kernels stays far below
# JupyterLab with jupyter-collaboration and one kernel idles at ~105-140 MiB; below this it
# cannot start and open a notebook.
MIN_MEM_BYTES = 384 * 2**20

LABEL_EVENT = "org.hackgap.event"
LABEL_TEAM = "org.hackgap.team"
LABEL_KIND = "org.hackgap.kind"
ICC_OPTION = "com.docker.network.bridge.enable_icc"

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


class SandboxError(Exception):
    """The docker backend cannot do what the event asks, for a reason the organiser can fix."""

    hackgap_user_error = True


class SandboxSettings(Protocol):
    """What this module reads of `event.yaml`'s `sandbox:` section."""

    image: str
    cpu_limit: float
    mem_limit: str
    start_timeout: int
    network: str | None


# -- names ------------------------------------------------------------------------------------


def network_name(event_name: str, sandbox: SandboxSettings) -> str:
    return sandbox.network or f"hackgap-{event_name}"


def container_name(event_name: str, team: str) -> str:
    return f"hackgap-{event_name}-{layout.team_account(team)}"


def team_volume(event_name: str, team: str) -> str:
    """The named volume that is a team's home; same spelling as the spawner's template."""
    return container_name(event_name, team)


def _labels(event_name: str, kind: str, team: str | None = None) -> dict[str, str]:
    labels = {LABEL_EVENT: event_name, LABEL_KIND: kind}
    if team is not None:
        labels[LABEL_TEAM] = team
    return labels


def mem_bytes(spec: str) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", spec.strip().upper())
    if not match:
        raise SandboxError(f"sandbox.mem_limit '{spec}' is not a size like 2G; fix it.")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def check_mem_limit(spec: str) -> int:
    """The limit in bytes; refuses one too small for JupyterLab to start."""
    value = mem_bytes(spec)
    if value < MIN_MEM_BYTES:
        raise SandboxError(
            f"sandbox.mem_limit {spec} is below the {MIN_MEM_BYTES // 2**20}M JupyterLab needs "
            "to start; raise it in event.yaml (2G suits most analyses)."
        )
    return value


# -- engine -----------------------------------------------------------------------------------


def engine(need: str = "sandbox.backend is docker"):
    """A docker client for a running engine, or one sentence saying how to get one."""
    import docker

    try:
        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except Exception:
        pass
    if os.geteuid() == 0:
        raise SandboxError(
            f"{need} but no Docker engine answers; start it with "
            "`scripts/bootstrap.sh docker` (installs docker.io and starts dockerd)."
        )
    raise SandboxError(
        f"{need} but no Docker engine answers and hackgap is not running as root, so it "
        "cannot start one; start the Docker engine or run as root."
    )


def engine_status() -> str:
    """One line for `services status`."""
    try:
        client = engine()
    except SandboxError as exc:
        return str(exc)
    version = client.version()
    return f"Docker {version.get('Version')} (API {version.get('ApiVersion')})"


def require_image(client, ref: str) -> None:
    from sandboxes.image import image_exists

    if not image_exists(client, ref):
        raise SandboxError(
            f"The sandbox image {ref} is not built; run `hackgap sandbox-image build` "
            "(or set sandbox.image to an image the engine has)."
        )


# -- the event network and the host firewall ---------------------------------------------------


@dataclass(frozen=True)
class EventNetwork:
    name: str
    id: str
    bridge: str  # the host interface of the network
    gateway: str  # the host's address on it: where the hub API listens
    subnet: str


def _as_event_network(net) -> EventNetwork:
    ipam = (net.attrs.get("IPAM") or {}).get("Config") or [{}]
    options = net.attrs.get("Options") or {}
    bridge = options.get("com.docker.network.bridge.name") or f"br-{net.id[:12]}"
    return EventNetwork(
        net.name, net.id, bridge, ipam[0].get("Gateway", ""), ipam[0].get("Subnet", "")
    )


def ensure_network(client, event_name: str, sandbox: SandboxSettings) -> EventNetwork:
    """The event's internal network without inter-container traffic (created if missing)."""
    import docker

    name = network_name(event_name, sandbox)
    found = [n for n in client.networks.list(names=[name]) if n.name == name]
    if not found:
        try:
            net = client.networks.create(
                name,
                driver="bridge",
                internal=True,
                options={ICC_OPTION: "false"},
                labels=_labels(event_name, "network"),
                check_duplicate=True,
            )
            net.reload()
            return _as_event_network(net)
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: made meanwhile by a concurrent caller
                raise
            found = [n for n in client.networks.list(names=[name]) if n.name == name]
    if found:
        net = client.networks.get(found[0].id)
        labels = net.attrs.get("Labels") or {}
        options = net.attrs.get("Options") or {}
        if labels.get(LABEL_EVENT) != event_name:
            raise SandboxError(
                f"The Docker network '{name}' exists and was not made by hackgap for event "
                f"'{event_name}'; set sandbox.network in event.yaml to another name or remove "
                "that network."
            )
        if not net.attrs.get("Internal") or options.get(ICC_OPTION) != "false":
            raise SandboxError(
                f"The Docker network '{name}' is not internal with inter-container traffic off; "
                f"remove it (`docker network rm {name}`) and hackgap makes it again."
            )
        return _as_event_network(net)
    raise SandboxError(f"The Docker network '{name}' could not be made; see the engine's log.")


def _iptables(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["iptables", "-w", *args], capture_output=True, text=True, check=check)


def _firewall_comment(net: EventNetwork) -> str:
    return f"hackgap:{net.name}"


def _firewall_rules(net: EventNetwork, hub_port: int) -> list[list[str]]:
    """Top to bottom: replies to the host's own connections, the hub API, drop the rest."""
    common = ["-i", net.bridge, "-m", "comment", "--comment", _firewall_comment(net)]
    return [
        [*common, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
        [*common, "-p", "tcp", "--dport", str(hub_port), "-j", "ACCEPT"],
        [*common, "-j", "DROP"],
    ]


def _rules_with_comment(comment: str) -> list[str]:
    listing = _iptables("-S", "INPUT").stdout.splitlines()
    marks = (f'--comment "{comment}"', f"--comment {comment} ")
    return [line for line in listing if any(mark in line + " " for mark in marks)]


def require_firewall() -> None:
    if os.geteuid() != 0 or not shutil.which("iptables"):
        raise SandboxError(
            "The docker backend needs root and iptables to keep team containers away from the "
            "host's services; run hackgap as root (`scripts/bootstrap.sh docker` installs "
            "iptables)."
        )


def ensure_firewall(net: EventNetwork, hub_port: int) -> None:
    """Drop new connections from the event's bridge to the host, except to the hub API."""
    require_firewall()
    rules = _firewall_rules(net, hub_port)
    present = _rules_with_comment(_firewall_comment(net))
    if len(present) == len(rules) and all(
        _iptables("-C", "INPUT", *rule, check=False).returncode == 0 for rule in rules
    ):
        return
    remove_firewall(net.name)
    for rule in reversed(rules):
        _iptables("-I", "INPUT", "1", *rule)


def remove_firewall(net_name: str) -> int:
    """Delete the event network's rules (found by their comment); returns how many."""
    if os.geteuid() != 0 or not shutil.which("iptables"):
        return 0
    lines = _rules_with_comment(f"hackgap:{net_name}")
    for line in lines:
        spec = shlex.split(line)[2:]  # "-A INPUT ..." -> the rule
        _iptables("-D", "INPUT", *spec, check=False)
    return len(lines)


# -- container settings (one place for the spawner and for direct runs) -----------------------


def host_settings() -> dict[str, Any]:
    """Hardening every team container gets (docker-py host-config keywords)."""
    return {
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "pids_limit": PIDS_LIMIT,
        "read_only": True,
        "tmpfs": {"/tmp": "rw,nosuid,nodev,size=512m"},
        "init": True,
    }


def limit_settings(sandbox: SandboxSettings) -> dict[str, Any]:
    """The event's cpu and memory limits as docker-py host-config keywords (no swap)."""
    mem = check_mem_limit(sandbox.mem_limit)
    return {
        "mem_limit": mem,
        "memswap_limit": mem,
        "cpu_period": 100_000,
        "cpu_quota": int(sandbox.cpu_limit * 100_000),
    }


def team_environment() -> dict[str, str]:
    """What a team's server finds in its environment (no hackgap secret, ever)."""
    return {layout.TWIN_PATH_ENV: f"{TWIN_MOUNT}/twin.parquet", "HOME": HOME}


def ensure_team_volume(client, event_name: str, team: str) -> str:
    name = team_volume(event_name, team)
    client.volumes.create(name=name, driver="local", labels=_labels(event_name, "volume", team))
    return name


def team_volume_dir(event_name: str, team: str) -> Path:
    """Host path of a team's volume contents (root only): where the workspace is written."""
    client = engine()
    name = ensure_team_volume(client, event_name, team)
    return Path(client.volumes.get(name).attrs["Mountpoint"])


def run_team_container(
    client,
    event_name: str,
    sandbox: SandboxSettings,
    team: str,
    *,
    twin_dir: Path | None = None,
    environment: dict[str, str] | None = None,
    command: list[str] | None = None,
):
    """Start a team's container as the spawner would, without a hub (tests, benchmarks)."""
    limits = limit_settings(sandbox)  # every check before anything is made
    require_image(client, sandbox.image)
    net = ensure_network(client, event_name, sandbox)
    volume = ensure_team_volume(client, event_name, team)
    binds = {volume: {"bind": HOME, "mode": "rw"}}
    if twin_dir is not None:
        binds[str(twin_dir)] = {"bind": TWIN_MOUNT, "mode": "ro"}
    labels = _labels(event_name, "container", team)
    return client.containers.run(
        sandbox.image,
        command=command,
        name=container_name(event_name, team),
        hostname=layout.team_account(team),
        user=f"{SANDBOX_UID}:{SANDBOX_UID}",
        environment={**team_environment(), **(environment or {})},
        labels=labels,
        network=net.name,
        volumes=binds,
        detach=True,
        **host_settings(),
        **limits,
    )


def container_ip(container, net_name: str) -> str:
    container.reload()
    return container.attrs["NetworkSettings"]["Networks"][net_name]["IPAddress"]


def server_command() -> list[str]:
    """JupyterLab without a hub (direct runs): the token comes from JUPYTER_TOKEN."""
    return [
        "jupyter-lab",
        "--ip=0.0.0.0",
        f"--port={PORT}",
        "--no-browser",
        f"--notebook-dir={HOME}",
    ]


def wait_until_answers(url: str, timeout: float = 60.0) -> float:
    """Poll a server's URL until it answers HTTP 200; returns the seconds it took."""
    import time
    import urllib.request

    started = time.monotonic()
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(0.2)


# -- the spawner --------------------------------------------------------------------------------


class DockerTeamSpawner(DockerSpawner):
    """DockerSpawner naming containers and volumes per team and labelling the volume.

    Hub account names are slugs, so they are used as they are (DockerSpawner would escape
    every '-'); anything else falls back to DockerSpawner's escaping.
    """

    event_name = Unicode("", config=True, help="The event the team containers belong to.")

    @default("escape")
    def _slug_or_escape(self):
        def escape(text: str) -> str:
            if re.fullmatch(r"[a-z0-9][a-z0-9-]*", text):
                return text
            return DockerSpawner._escape(text)

        return escape

    async def start(self):
        import docker

        try:
            await self.docker("inspect_image", self.image)
        except docker.errors.ImageNotFound:
            raise SandboxError(
                f"The sandbox image {self.image} is not on this Docker engine; the organiser "
                "runs `hackgap sandbox-image build`."
            ) from None
        team = self.user.name.removesuffix(layout.ACCOUNT_SUFFIX)
        labels = _labels(self.event_name, "volume", team)
        await self.docker("create_volume", team_volume(self.event_name, team), labels=labels)
        extra = dict(self.extra_create_kwargs) if isinstance(self.extra_create_kwargs, dict) else {}
        extra["labels"] = {**extra.get("labels", {}), **_labels(self.event_name, "container", team)}
        self.extra_create_kwargs = extra
        return await super().start()


def spawner_config(
    event_name: str,
    sandbox: SandboxSettings,
    *,
    hub_port: int,
    twin_dir: Path | None = None,
) -> dict[str, dict[str, Any]]:
    """DockerSpawner settings for the hub config, by configurable class (traitlets' JSON form).

    Checks the engine, the image and mem_limit, then makes sure the event network and the
    host firewall rule exist (idempotent). The hub must listen on the network's gateway.
    """
    client = engine()
    limits = limit_settings(sandbox)  # refuses a too-small mem_limit first
    require_image(client, sandbox.image)
    require_firewall()
    net = ensure_network(client, event_name, sandbox)
    ensure_firewall(net, hub_port)
    volume_template = f"hackgap-{event_name}-{{username}}"
    read_only = {str(twin_dir): TWIN_MOUNT} if twin_dir is not None else {}
    return {
        "JupyterHub": {
            "spawner_class": "sandboxes.docker.DockerTeamSpawner",
            "hub_ip": net.gateway,
            "hub_port": hub_port,
            "hub_connect_ip": net.gateway,
        },
        "Spawner": {"start_timeout": sandbox.start_timeout, "http_timeout": 60},
        "DockerSpawner": {
            "image": sandbox.image,
            "pull_policy": "never",
            "network_name": net.name,
            "use_internal_ip": True,
            "prefix": f"hackgap-{event_name}",
            "name_template": "{prefix}-{username}",
            "remove": False,
            "volumes": {volume_template: HOME},
            "read_only_volumes": read_only,
            "notebook_dir": HOME,
            "mem_limit": limits["mem_limit"],
            "cpu_limit": float(sandbox.cpu_limit),
            "extra_host_config": {**host_settings(), "memswap_limit": limits["memswap_limit"]},
            "extra_create_kwargs": {
                "user": f"{SANDBOX_UID}:{SANDBOX_UID}",
                "hostname": "{raw_username}",
                "labels": {"org.hackgap.account": "{raw_username}"},
            },
            "environment": team_environment(),
        },
        "DockerTeamSpawner": {"event_name": event_name},
    }


# -- status, archive, clean-up ----------------------------------------------------------------


def _oom_kills(container_id: str) -> int:
    """How many processes the kernel killed in the container's memory cgroup.

    Docker's own OOMKilled flag is set only when the container's main task dies; a notebook
    kernel (or `docker exec`) killed for memory shows up only in the cgroup's counter.
    """
    candidates = [
        (Path(f"/sys/fs/cgroup/memory/docker/{container_id}/memory.oom_control"), "oom_kill"),
        (Path(f"/sys/fs/cgroup/docker/{container_id}/memory.events"), "oom_kill"),
        (
            Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/memory.events"),
            "oom_kill",
        ),
    ]
    for path, key in candidates:
        try:
            for line in path.read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
        except OSError:
            continue
    return 0


@dataclass(frozen=True)
class TeamContainerStatus:
    team: str
    state: str  # "running", "exited", "created", ... or "absent"
    oom_killed: bool  # the engine killed a process of this container for memory
    exit_code: int | None
    mem_limit: int | None

    def sentence(self) -> str:
        if self.state == "absent":
            return f"Team {self.team} has no sandbox container."
        limit = f"{self.mem_limit // 2**20}M" if self.mem_limit else "its"
        if self.oom_killed and self.state == "running":
            return (
                f"Team {self.team}'s sandbox is running, but the engine killed a process that "
                f"went past the {limit} memory limit."
            )
        if self.oom_killed:
            return (
                f"Team {self.team}'s sandbox was stopped by the engine: it went past the "
                f"{limit} memory limit."
            )
        return f"Team {self.team}'s sandbox is {self.state}."


def team_status(event_name: str, team: str, client=None) -> TeamContainerStatus:
    """The team's container as the engine sees it, including whether memory ran out."""
    import docker

    client = client or engine()
    try:
        container = client.containers.get(container_name(event_name, team))
    except docker.errors.NotFound:
        return TeamContainerStatus(team, "absent", False, None, None)
    state = container.attrs["State"]
    host = container.attrs.get("HostConfig") or {}
    running = bool(state.get("Running"))
    oom = bool(state.get("OOMKilled")) or (running and _oom_kills(container.id) > 0)
    return TeamContainerStatus(
        team,
        state.get("Status", "unknown"),
        oom,
        None if state.get("Running") else state.get("ExitCode"),
        host.get("Memory") or None,
    )


def export_team_volume(event_name: str, team: str, tar_path: Path, client=None) -> Path:
    """Write a team's volume contents to a tar (temp name, then rename): the archive step."""
    client = client or engine()
    name = team_volume(event_name, team)
    try:
        mountpoint = Path(client.volumes.get(name).attrs["Mountpoint"])
    except Exception:
        raise SandboxError(
            f"Team {team} has no sandbox volume ({name}); nothing to archive."
        ) from None
    tar_path = Path(tar_path)
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{tar_path.name}.", dir=tar_path.parent)
    os.close(fd)
    try:
        with tarfile.open(tmp, "w") as tar:
            tar.add(mountpoint, arcname=team)
        os.replace(tmp, tar_path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return tar_path


def _by_label(collection, event_name: str, kind: str, team: str | None = None) -> list:
    filters = [f"{LABEL_EVENT}={event_name}", f"{LABEL_KIND}={kind}"]
    if team is not None:
        filters.append(f"{LABEL_TEAM}={team}")
    if kind == "container":
        return collection.list(all=True, filters={"label": filters})
    return collection.list(filters={"label": filters})


def remove_team(event_name: str, team: str, archive_to: Path | None = None, client=None) -> None:
    """Remove a team's container and volume, archiving the volume first when asked."""
    client = client or engine()
    for container in _by_label(client.containers, event_name, "container", team):
        container.remove(force=True)
    if archive_to is not None:
        export_team_volume(event_name, team, archive_to, client)
    for volume in _by_label(client.volumes, event_name, "volume", team):
        volume.remove(force=True)


def cleanup_event(event_name: str, client=None) -> int:
    """Remove the event's leftover containers (by label); call before the hub starts."""
    client = client or engine()
    leftovers = _by_label(client.containers, event_name, "container")
    for container in leftovers:
        container.remove(force=True)
    return len(leftovers)


def teardown_event(event_name: str, sandbox: SandboxSettings, client=None) -> None:
    """Remove the event's containers, firewall rule and network; volumes are kept."""
    client = client or engine()
    cleanup_event(event_name, client)
    name = network_name(event_name, sandbox)
    remove_firewall(name)
    for net in _by_label(client.networks, event_name, "network"):
        net.remove()
