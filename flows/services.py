"""Embedded services for one machine: an S3 server and a Prefect server on loopback.

`hackgap services up` starts them detached (they outlive the CLI) and records them in
`<workdir>/services/state.json`; other commands find them there (`service_env`). The
S3 server is real MinIO when a `minio` binary is available, else moto's server mode.
moto keeps objects in memory, so `down` snapshots every bucket to
`<workdir>/services/s3-snapshot/` and `up` restores it: nothing is lost across down/up.
The services directory holds copies of the secure bucket, so it is private (mode 0700).

With an event (`hub_up`), the team sandboxes' JupyterHub starts too: configurable-http-proxy
(npm, installed by `scripts/bootstrap.sh hub`) and the hub, both on free loopback ports, from
a config rendered from event.yaml (sandboxes/hubconfig.py), with database, cookie secret and
tokens under `<workdir>/hub/` (0700), so down/up keeps users, groups, files and tokens. The
proxy is ours, not the hub's: restarting the hub for a roster change (roles are config-only)
takes ~4 s and leaves the proxy and the team servers running.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import psutil

from flows.objectstore import COMPLETE, ObjectStore, StoreError
from sandboxes import layout

HOST = "127.0.0.1"
S3_START_TIMEOUT = 30.0
PREFECT_START_TIMEOUT = 90.0
STOP_TIMEOUT = 10.0


class ServiceError(Exception):
    """An embedded service cannot start or stop, for a reason the organiser can fix."""

    hackgap_user_error = True


@dataclass(frozen=True)
class S3Service:
    kind: str  # "moto" or "minio"
    pid: int
    started: float  # process create time: guards against a recycled pid
    port: int
    endpoint: str
    access_key: str
    secret_key: str
    log: str


@dataclass(frozen=True)
class PrefectService:
    pid: int
    started: float
    port: int
    api_url: str
    ui_url: str
    home: str
    log: str


@dataclass(frozen=True)
class HubService:
    pid: int
    started: float
    proxy_pid: int
    proxy_started: float
    url: str  # public URL (the proxy)
    port: int
    hub_port: int
    proxy_api_port: int
    log: str
    proxy_log: str
    judge_port: int = 0

    @property
    def api_url(self) -> str:
        return f"{self.url}hub/api"


@dataclass(frozen=True)
class ServiceState:
    workdir: Path
    s3: S3Service | None = None
    prefect: PrefectService | None = None
    notes: list[str] = field(default_factory=list, compare=False)
    hub: HubService | None = None

    @property
    def empty(self) -> bool:
        return self.s3 is None and self.prefect is None and self.hub is None


# -- paths and state file ---------------------------------------------------------------


def _services_dir(workdir: Path) -> Path:
    return Path(workdir) / "services"


def state_path(workdir: Path) -> Path:
    return _services_dir(workdir) / "state.json"


def snapshot_dir(workdir: Path) -> Path:
    return _services_dir(workdir) / "s3-snapshot"


def logs_dir(workdir: Path) -> Path:
    return Path(workdir) / "logs"


def _prepare_workdir(workdir: Path) -> None:
    try:
        _services_dir(workdir).mkdir(parents=True, exist_ok=True)
        _services_dir(workdir).chmod(0o700)
        logs_dir(workdir).mkdir(parents=True, exist_ok=True)
        probe = _services_dir(workdir) / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror.lower() if exc.strerror else "not writable"
        raise ServiceError(
            f"Cannot write to the work directory {workdir} ({reason}); choose a writable "
            "`workdir` in event.yaml or fix the directory's permissions."
        ) from None


@contextlib.contextmanager
def _locked(workdir: Path) -> Iterator[None]:
    """Serialise up/down on one workdir, so two callers never start a service twice."""
    with open(_services_dir(workdir) / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read_state(workdir: Path) -> ServiceState:
    path = state_path(workdir)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ServiceState(Path(workdir))
    except (OSError, ValueError):
        raise ServiceError(
            f"{path} is unreadable or corrupt; stop any hackgap services by hand and delete it."
        ) from None
    s3 = S3Service(**raw["s3"]) if raw.get("s3") else None
    prefect = PrefectService(**raw["prefect"]) if raw.get("prefect") else None
    hub = HubService(**raw["hub"]) if raw.get("hub") else None
    return ServiceState(Path(workdir), s3, prefect, hub=hub)


def _write_state(state: ServiceState) -> None:
    path = state_path(state.workdir)
    if state.empty:
        path.unlink(missing_ok=True)
        return
    doc = {
        "s3": asdict(state.s3) if state.s3 else None,
        "prefect": asdict(state.prefect) if state.prefect else None,
        "hub": asdict(state.hub) if state.hub else None,
    }
    tmp = path.with_name(f".state.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds S3 credentials
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2)
    tmp.replace(path)


# -- processes --------------------------------------------------------------------------


def _alive(pid: int, started: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - started) < 1.0 and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _spawn(cmd: list[str], env: dict[str, str], log: Path) -> tuple[int, float]:
    """Start a detached process group (it outlives the CLI) logging to `log`."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    try:
        started = psutil.Process(proc.pid).create_time()
    except psutil.Error:
        started = 0.0
    return proc.pid, started


def _stop(pid: int, started: float, timeout: float = STOP_TIMEOUT) -> None:
    """Stop a process group we started: SIGTERM, then SIGKILL after `timeout` seconds."""
    if not _alive(pid, started):
        _reap(pid)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not _alive(pid, started):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    _reap(pid)


def _port(env_name: str) -> tuple[int, bool]:
    """A fixed port from the environment (checked free), else a free loopback port."""
    value = os.environ.get(env_name, "").strip()
    if value:
        if not value.isdigit() or not 0 < int(value) < 65536:
            raise ServiceError(
                f"{env_name}={value} is not a port number; set 1..65535 or unset it."
            )
        port = int(value)
        with socket.socket() as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                raise ServiceError(
                    f"Port {port} on {HOST} (from {env_name}) is already in use; stop whatever "
                    f"uses it or unset {env_name} to pick a free port."
                ) from None
        return port, True
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1], False


def log_tail(path: Path | str, lines: int = 30) -> str:
    """The last lines of a service log, for error reports and test failures."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# -- object store -----------------------------------------------------------------------


def _minio_binary() -> str | None:
    named = os.environ.get("HACKGAP_MINIO_BINARY")
    if named:
        if not os.access(named, os.X_OK):
            raise ServiceError(
                f"HACKGAP_MINIO_BINARY={named} is not an executable file; fix the path or unset it."
            )
        return named
    return shutil.which("minio")


def _minio_credentials(workdir: Path) -> tuple[str, str]:
    """MinIO keeps its data across restarts, so its root credentials must persist too."""
    path = _services_dir(workdir) / "minio-credentials.json"
    if path.is_file():
        doc = json.loads(path.read_text(encoding="utf-8"))
        return doc["access_key"], doc["secret_key"]
    access, secret = f"hackgap-{secrets.token_hex(4)}", secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"access_key": access, "secret_key": secret}, fh)
    return access, secret


def _start_s3(workdir: Path) -> S3Service:
    log = logs_dir(workdir) / "s3.log"
    binary = _minio_binary()
    for _attempt in range(3):
        port, fixed = _port("HACKGAP_S3_PORT")
        env = {**os.environ}
        if binary:
            kind = "minio"
            access, secret = _minio_credentials(workdir)
            data = _services_dir(workdir) / "minio-data"
            data.mkdir(exist_ok=True)
            _, console_port = _port("HACKGAP_MINIO_CONSOLE_PORT")
            env |= {"MINIO_ROOT_USER": access, "MINIO_ROOT_PASSWORD": secret}
            cmd = [binary, "server", str(data), "--address", f"{HOST}:{port}",
                   "--console-address", f"{HOST}:{console_port}"]  # fmt: skip
        else:
            kind = "moto"
            access, secret = f"hackgap-{secrets.token_hex(4)}", secrets.token_urlsafe(24)
            cmd = [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)]
        pid, started = _spawn(cmd, env, log)
        service = S3Service(
            kind, pid, started, port, f"http://{HOST}:{port}", access, secret, str(log)
        )
        store = ObjectStore(service.endpoint, access, secret)
        deadline = time.monotonic() + S3_START_TIMEOUT
        while time.monotonic() < deadline and _alive(pid, started):
            try:
                store.ping()
                return service
            except StoreError:
                time.sleep(0.2)
        _stop(pid, started)
        if fixed:
            break  # a fixed port that fails is not worth retrying; another free port may be
    raise ServiceError(
        f"The {kind} object store did not start on {HOST}:{port}; see {log} for why."
    )


def _store(service: S3Service) -> ObjectStore:
    return ObjectStore(service.endpoint, service.access_key, service.secret_key)


def save_snapshot(service: S3Service, workdir: Path) -> int:
    """Copy every bucket's objects to s3-snapshot/ (via a temp dir, then rename); return count."""
    store = _store(service)
    target = snapshot_dir(workdir)
    tmp = target.with_name(f".s3-snapshot.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700)
    index: dict[str, list[dict[str, Any]]] = {}
    count = 0
    try:
        for bucket in store.buckets():
            index[bucket] = []
            (tmp / bucket).mkdir()
            for n, key in enumerate(store.list(bucket)):
                info = store.stat(bucket, key)
                # Files are numbered, not named by key: keys like "a" and "a/b" can coexist.
                store.get_file(bucket, key, tmp / bucket / f"{n}.bin")
                index[bucket].append({"key": key, "file": f"{n}.bin", "sha256": info.sha256})
                count += 1
        (tmp / "index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
        old = target.with_name(f".s3-snapshot.{os.getpid()}.old")
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return count


def restore_snapshot(service: S3Service, workdir: Path) -> int:
    """Load s3-snapshot/ into a fresh moto server; return how many objects were restored."""
    source = snapshot_dir(workdir)
    index_file = source / "index.json"
    if not index_file.is_file():
        return 0
    store = _store(service)
    index = json.loads(index_file.read_text(encoding="utf-8"))
    count = 0
    for bucket, entries in index.items():
        store.ensure_bucket(bucket)
        # _COMPLETE markers last, as publish writes them, so no reader sees half a set.
        for entry in sorted(entries, key=lambda e: e["key"].endswith(f"/{COMPLETE}")):
            store.put_file(bucket, entry["key"], source / bucket / entry["file"])
            count += 1
    return count


# -- Prefect ----------------------------------------------------------------------------


def _prefect_env(workdir: Path, api_url: str | None) -> dict[str, str]:
    env = {
        "PREFECT_HOME": str(Path(workdir) / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "DO_NOT_TRACK": "1",
    }
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _start_prefect(workdir: Path) -> PrefectService:
    log = logs_dir(workdir) / "prefect.log"
    timeout = float(os.environ.get("HACKGAP_PREFECT_START_TIMEOUT", PREFECT_START_TIMEOUT))
    for _attempt in range(2):
        port, fixed = _port("HACKGAP_PREFECT_PORT")
        base = f"http://{HOST}:{port}"
        env = {**os.environ, **_prefect_env(workdir, f"{base}/api")}
        env.pop("PREFECT_PROFILE", None)
        Path(env["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            HOST,
            "--port",
            str(port),
        ]
        pid, started = _spawn(cmd, env, log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid, started):
            if _healthy(f"{base}/api/health"):
                return PrefectService(
                    pid, started, port, f"{base}/api", base, env["PREFECT_HOME"], str(log)
                )
            time.sleep(0.5)
        exited = not _alive(pid, started)
        _stop(pid, started)
        if fixed or not exited:
            break  # only an early exit (e.g. a port race) is worth a second try
    why = "exited early" if exited else f"did not answer within {timeout:.0f} s"
    raise ServiceError(f"The Prefect server on {HOST}:{port} {why}; see {log} for why.")


# -- JupyterHub -------------------------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent
PROXY_BIN_ENV = "HACKGAP_PROXY_BIN"
HUB_STOP_TIMEOUT = 45.0  # the hub stops its managed services first (the culler takes ~30 s)


def proxy_binary() -> str:
    """configurable-http-proxy: $HACKGAP_PROXY_BIN, else the project's npm install, else PATH."""
    named = os.environ.get(PROXY_BIN_ENV)
    local = REPO / "infra" / "sandbox" / "node_modules" / ".bin" / "configurable-http-proxy"
    found = named or (str(local) if local.is_file() else shutil.which("configurable-http-proxy"))
    if not found or not os.access(found, os.X_OK):
        where = f" at {named}" if named else ""
        raise ServiceError(
            f"configurable-http-proxy (the hub's proxy, from npm) is missing{where}; install it "
            "with `scripts/bootstrap.sh hub` (or `make setup`), which runs npm in infra/sandbox."
        )
    return found


def _secret_file(path: Path, nbytes: int = 32) -> str:
    """A token kept in a 0600 file under the hub directory, made once (down/up keeps it)."""
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    token = secrets.token_hex(nbytes)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")
    tmp.replace(path)
    return token


def hub_token(workdir: Path) -> str:
    """The hackgap hub service's API token (provisioning); never given to a sandbox."""
    from sandboxes.hubconfig import service_token_file

    return _secret_file(service_token_file(layout.hub_dir(Path(workdir).resolve())))


def _hub_env(hub_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    """The hub's environment: only what it needs (no object-store keys, no Prefect URL)."""
    keep = ("PATH", "LANG", "LC_ALL", "HOME", "TZ", "PYTHONPATH")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    env["CONFIGPROXY_AUTH_TOKEN"] = _secret_file(hub_dir / "proxy-token")
    return env | extra


def _get(url: str, token: str | None = None, timeout: float = 2) -> int:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0


def _wait(check, pid: int, started: float, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid, started):
        if check():
            return True
        time.sleep(0.2)
    return False


def _start_proxy(hub_dir: Path, port: int, api_port: int, hub_port: int, log: Path):
    cmd = [proxy_binary(), "--ip", HOST, "--port", str(port), "--api-ip", HOST,
           "--api-port", str(api_port), "--default-target", f"http://{HOST}:{hub_port}",
           "--error-target", f"http://{HOST}:{hub_port}/hub/error"]  # fmt: skip
    env = _hub_env(hub_dir, {})
    pid, started = _spawn(cmd, env, log)
    token = env["CONFIGPROXY_AUTH_TOKEN"]
    ok = _wait(lambda: _get(f"http://{HOST}:{api_port}/api/routes", token) == 200, pid, started, 20)
    if not ok:
        _stop(pid, started)
        raise ServiceError(
            f"configurable-http-proxy did not start on {HOST}:{port}; see {log} for why."
        )
    return pid, started


def _start_hub_process(
    hub_dir: Path, url: str, timeout: float, log: Path, env: dict, hub_port: int
):
    from sandboxes.hubconfig import CONFIG_FILE

    cmd = [sys.executable, "-m", "jupyterhub", "-f", str(hub_dir / CONFIG_FILE)]
    offset = log.stat().st_size if log.exists() else 0
    pid, started = _spawn(cmd, _hub_env(hub_dir, env), log)

    def running() -> bool:
        # "now running" comes after the managed services (judge page) are up and the
        # hub's signal handlers are set: only then does SIGTERM stop it cleanly.
        with open(log, "rb") as fh:
            fh.seek(offset)
            return b"JupyterHub is now running" in fh.read() and _get(f"{url}hub/api/") == 200

    if not _wait(running, pid, started, timeout):
        exited = not _alive(pid, started)
        _stop(pid, started, HUB_STOP_TIMEOUT)
        _kill_services(hub_port)
        why = "exited early" if exited else f"did not answer within {timeout:g} s (start_timeout)"
        raise ServiceError(
            f"JupyterHub {why}; see {log} for why (a slow machine: raise sandbox.start_timeout "
            "in event.yaml)."
        )
    return pid, started


def _hub_children(hub_port: int) -> list[psutil.Process]:
    """Team servers and managed services of the hub on hub_port (they run in own sessions)."""
    needle = f"{HOST}:{hub_port}/"
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if needle in proc.environ().get("JUPYTERHUB_API_URL", ""):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _kill_services(hub_port: int) -> None:
    """Managed services a stopped hub left behind (team servers are left running)."""
    left = [p for p in _hub_children(hub_port) if _env_of(p).get("JUPYTERHUB_SERVICE_NAME")]
    for proc in left:
        with contextlib.suppress(psutil.Error, OSError):
            os.killpg(proc.pid, signal.SIGKILL)
    psutil.wait_procs(left, timeout=5)


def _env_of(proc: psutil.Process) -> dict[str, str]:
    try:
        return proc.environ()
    except psutil.Error:
        return {}


def _fence_tag(hub: HubService) -> str:
    return f"hackgap-hub-{hub.port}"


def _fence(hub: HubService, state: ServiceState) -> list[str]:
    """Team users may not open connections to the event's services on loopback."""
    from sandboxes import firewall

    ports = [hub.proxy_api_port] + [p for p in (hub.judge_port,) if p]
    ports += [svc.port for svc in (state.s3, state.prefect) if svc is not None]
    try:
        firewall.block(_fence_tag(hub), ports)
    except (OSError, subprocess.CalledProcessError):
        return [
            "could not add the iptables rule that keeps team kernels off the object store and "
            "Prefect ports; install iptables (or run as root) before teams log in"
        ]
    return []


def _stop_hub(hub: HubService, workdir: Path | None = None) -> None:
    """Stop team servers, the hub (and its services) and the proxy; nothing is left behind."""
    if os.geteuid() == 0:
        from sandboxes import firewall

        firewall.unblock(_fence_tag(hub))
    servers = _hub_children(hub.hub_port)
    for proc in servers:
        with contextlib.suppress(psutil.Error):
            os.killpg(proc.pid, signal.SIGTERM)
    psutil.wait_procs(servers, timeout=10)
    _stop(hub.pid, hub.started, HUB_STOP_TIMEOUT)
    leftover = _hub_children(hub.hub_port)
    for proc in leftover:
        with contextlib.suppress(psutil.Error, OSError):
            os.killpg(proc.pid, signal.SIGKILL)
    psutil.wait_procs(leftover, timeout=5)
    _stop(hub.proxy_pid, hub.proxy_started)
    if workdir is not None:
        _stop_containers(workdir)


def _stop_containers(workdir: Path) -> None:
    """docker backend: the team containers outlive the hub (cleanup_servers is off)."""
    from sandboxes import hubconfig

    try:
        settings = json.loads(
            (layout.hub_dir(workdir) / hubconfig.SETTINGS_FILE).read_text(encoding="utf-8")
        )
    except (OSError, ValueError):
        return
    if settings.get("backend") != "docker":
        return
    from sandboxes import docker

    with contextlib.suppress(docker.SandboxError):
        docker.cleanup_event(settings["event"])


def hub_settings(event_dir, *, port: int, hub_port: int, proxy_api_port: int, judge_port: int = 0):
    """Event -> HubSettings: one place that reads event.yaml for the hub."""
    import importlib.util

    from sandboxes import hubconfig, provision, singleuser

    ev = event_dir.event
    workdir = event_dir.workdir
    backend = ev.sandbox.backend
    if backend == "kubernetes":
        raise ServiceError(
            "sandbox.backend is kubernetes: that hub runs in a cluster, not here; render its "
            "Helm values with `hackgap teams render-k8s DIR OUT`, or use backend local/docker."
        )
    auth: dict[str, Any] = {"kind": ev.sandbox.auth}
    if ev.sandbox.auth == "oauth":
        if ev.sandbox.oauth is None:
            raise ServiceError(
                "sandbox.auth is oauth but sandbox.oauth is missing; add a provider "
                "(provider: github|generic, with its URLs) or use auth: hackgap."
            )
        oauth = ev.sandbox.oauth
        if oauth.provider == "generic":
            missing = [k for k in ("authorize_url", "token_url", "userdata_url")
                       if not getattr(oauth, k)]  # fmt: skip
            if missing:
                raise ServiceError(
                    f"sandbox.oauth (generic) needs {', '.join(missing)}: add your OpenID "
                    "Connect provider's endpoints to event.yaml."
                )
        for name in (oauth.client_id_env, oauth.client_secret_env):
            if not os.environ.get(name):
                raise ServiceError(
                    f"sandbox.auth is oauth but the environment variable {name} is not set; "
                    "export the OAuth app's client id and secret before `services up`."
                )
        auth |= oauth.model_dump()
    judge = None
    if importlib.util.find_spec("judging.webapp") is not None:  # F's module, when it exists
        judge = {
            "port": judge_port or _port("HACKGAP_JUDGE_PORT")[0],
            "environment": {
                "HACKGAP_EVENT_DIR": str(event_dir.root),
                "HACKGAP_WORKDIR": str(workdir),
            },
        }
    extra: dict[str, Any] = {}
    if backend == "docker":
        from sandboxes import docker

        extra = docker.spawner_config(
            ev.name, ev.sandbox, hub_port=hub_port, twin_dir=provision.released_twin_dir(workdir)
        )
    return hubconfig.HubSettings(
        event=ev.name,
        hub_dir=str(layout.hub_dir(workdir)),
        ip=HOST,
        port=port,
        hub_port=hub_port,
        proxy_api_port=proxy_api_port,
        teams=provision.provisioned_teams(workdir),
        judges=list(ev.judges),
        organisers=list(ev.organisers),
        backend=backend,
        isolate=backend == "local" and os.geteuid() == 0,
        env_dir=str(singleuser.ensure()) if backend == "local" else "",
        start_timeout=ev.sandbox.start_timeout,
        auth=auth,
        cull_idle_after=ev.sandbox.cull_idle_after,
        cull_not_before=ev.end.timestamp(),
        judge=judge,
        extra=extra,
    )


def _hub_timeout(event_dir) -> float:
    return float(os.environ.get("HACKGAP_HUB_START_TIMEOUT", event_dir.event.sandbox.start_timeout))


def _oauth_env(event_dir) -> dict[str, str]:
    oauth = event_dir.event.sandbox.oauth
    if event_dir.event.sandbox.auth != "oauth" or oauth is None:
        return {}
    names = (oauth.client_id_env, oauth.client_secret_env)
    return {n: os.environ[n] for n in names if n in os.environ}


def hub_up(event_dir) -> ServiceState:
    """Start the proxy and the hub for an event (idempotent); protect the event's secure parts."""
    from sandboxes import hubconfig, lockdown

    workdir = event_dir.workdir
    _prepare_workdir(workdir)
    hub_dir = layout.hub_dir(workdir)
    hub_dir.mkdir(parents=True, exist_ok=True)
    hub_dir.chmod(0o700)
    with _locked(workdir):
        state = _live(_read_state(workdir))
        notes = list(state.notes)
        if state.hub is not None:
            notes.append("the hub was already running")
            return ServiceState(workdir, state.s3, state.prefect, notes, state.hub)
        local = event_dir.event.sandbox.backend == "local"
        if os.geteuid() == 0:
            lockdown.protect_event(event_dir.root, workdir)
        if os.geteuid() == 0 and local:
            blocked = lockdown.unreachable_ancestor(layout.teams_root(workdir))
            if blocked is not None:
                raise ServiceError(
                    f"Team users cannot reach their workspaces under {workdir}: {blocked} is not "
                    f"traversable by others; `chmod o+x {blocked}` or move the event directory."
                )
        elif event_dir.event.sandbox.backend == "local":
            notes.append(
                "not running as root: team servers run as this user, so teams are NOT isolated "
                "from each other nor from the event's files; run hackgap as root for an event"
            )
        if event_dir.event.sandbox.backend == "docker":
            from sandboxes import docker

            # containers of a hub that died without `down` would be silently reused
            removed = docker.cleanup_event(event_dir.event.name)
            if removed:
                notes.append(f"removed {removed} leftover team container(s) of an earlier run")
        port, _ = _port("HACKGAP_HUB_PORT")
        hub_port, _ = _port("HACKGAP_HUB_API_PORT")
        proxy_api_port, _ = _port("HACKGAP_PROXY_API_PORT")
        hub_token(workdir)
        settings = hub_settings(
            event_dir, port=port, hub_port=hub_port, proxy_api_port=proxy_api_port
        )
        judge_port = settings.judge["port"] if settings.judge else 0
        hubconfig.write(settings)
        logs = logs_dir(workdir)
        log, proxy_log = logs / "hub.log", logs / "proxy.log"
        proxy_pid, proxy_started = _start_proxy(hub_dir, port, proxy_api_port, hub_port, proxy_log)
        try:
            pid, started = _start_hub_process(
                hub_dir, settings.url, _hub_timeout(event_dir), log, _oauth_env(event_dir),
                hub_port,
            )  # fmt: skip
        except BaseException:
            _stop(proxy_pid, proxy_started)
            raise
        hub = HubService(pid, started, proxy_pid, proxy_started, settings.url, port, hub_port,
                         proxy_api_port, str(log), str(proxy_log), judge_port)  # fmt: skip
        if settings.isolate:
            notes.extend(_fence(hub, state))
        final = ServiceState(workdir, state.s3, state.prefect, notes, hub)
        _write_state(final)
        return final


def restart_hub(event_dir, *, check=None) -> HubService:
    """Re-render the hub config from event.yaml and restart only the hub (same ports).

    The proxy and the team servers keep running; the hub reconnects to them. `check`, if
    given, runs on the new settings before anything stops (raise to refuse)."""
    from sandboxes import hubconfig

    workdir = event_dir.workdir
    with _locked(workdir):
        state = _live(_read_state(workdir))
        hub = state.hub
        if hub is None:
            raise ServiceError(
                f"The hub of {event_dir.root} is not running; start it with "
                f"`hackgap services up {event_dir.root}`."
            )
        settings = hub_settings(
            event_dir, port=hub.port, hub_port=hub.hub_port, proxy_api_port=hub.proxy_api_port,
            judge_port=hub.judge_port,
        )  # fmt: skip
        if check is not None:
            check(settings)
        hub_dir = layout.hub_dir(workdir)
        previous = (hub_dir / hubconfig.SETTINGS_FILE).read_text(encoding="utf-8")
        hubconfig.write(settings)
        _stop(hub.pid, hub.started, HUB_STOP_TIMEOUT)
        _kill_services(hub.hub_port)
        start = partial(
            _start_hub_process, hub_dir, hub.url, _hub_timeout(event_dir), Path(hub.log),
            _oauth_env(event_dir), hub.hub_port,
        )  # fmt: skip
        try:
            pid, started = start()
        except ServiceError:
            # leave the hub as it was: the previous settings, running
            hubconfig.write(hubconfig.HubSettings.from_dict(json.loads(previous)))
            pid, started = start()
            _write_state(ServiceState(workdir, state.s3, state.prefect, hub=HubService(
                **{**asdict(hub), "pid": pid, "started": started})))  # fmt: skip
            raise
        new = HubService(**{**asdict(hub), "pid": pid, "started": started})
        _write_state(ServiceState(workdir, state.s3, state.prefect, hub=new))
        return new


# -- public API -------------------------------------------------------------------------


def _live(state: ServiceState) -> ServiceState:
    """Drop entries whose process is gone (stale after a reboot or a kill)."""
    notes = []
    s3, prefect = state.s3, state.prefect
    if s3 and not _alive(s3.pid, s3.started):
        notes.append(f"the {s3.kind} object store (pid {s3.pid}) had stopped")
        s3 = None
    if prefect and not _alive(prefect.pid, prefect.started):
        notes.append(f"the Prefect server (pid {prefect.pid}) had stopped")
        prefect = None
    hub = state.hub
    if hub and not (_alive(hub.pid, hub.started) and _alive(hub.proxy_pid, hub.proxy_started)):
        notes.append(f"the hub (pid {hub.pid}) or its proxy had stopped")
        _stop_hub(hub, state.workdir)
        hub = None
    return ServiceState(state.workdir, s3, prefect, notes, hub)


def up(workdir: Path, *, s3: bool = True, prefect: bool = True) -> ServiceState:
    """Start the object store and/or Prefect server for workdir; idempotent.

    A service already running is reported, not started twice; a stale record (process
    gone) is cleaned up and the service started afresh, restoring the moto snapshot.
    """
    workdir = Path(workdir).resolve()
    _prepare_workdir(workdir)
    with _locked(workdir):
        state = _live(_read_state(workdir))
        notes = list(state.notes)
        s3_service, prefect_service = state.s3, state.prefect
        if s3 and s3_service is not None:
            notes.append(f"the {s3_service.kind} object store was already running")
        if prefect and prefect_service is not None:
            notes.append("the Prefect server was already running")
        if s3 and s3_service is None:
            s3_service = _start_s3(workdir)
            try:
                store = _store(s3_service)
                if s3_service.kind == "moto":
                    restored = restore_snapshot(s3_service, workdir)
                    if restored:
                        notes.append(f"restored {restored} objects from {snapshot_dir(workdir)}")
                store.ensure_buckets()
            except BaseException:
                _stop(s3_service.pid, s3_service.started)
                raise
            _write_state(ServiceState(workdir, s3_service, prefect_service, hub=state.hub))
        if prefect and prefect_service is None:
            prefect_service = _start_prefect(workdir)
        final = ServiceState(workdir, s3_service, prefect_service, notes, state.hub)
        _write_state(final)
        return final


def down(workdir: Path, *, s3: bool = True, prefect: bool = True, hub: bool = True) -> ServiceState:
    """Stop the services of workdir (saving moto's objects first); return what was stopped.

    The hub goes first (its team servers, managed services, hub, proxy): nothing of a
    team keeps running without it."""
    workdir = Path(workdir).resolve()
    if not state_path(workdir).exists():
        return ServiceState(workdir)
    with _locked(workdir):
        state = _live(_read_state(workdir))
        stopped_s3 = state.s3 if s3 else None
        stopped_prefect = state.prefect if prefect else None
        stopped_hub = state.hub if hub else None
        notes = list(state.notes)
        if stopped_hub:
            _stop_hub(stopped_hub, workdir)
        if stopped_s3:
            if stopped_s3.kind == "moto":
                try:
                    saved = save_snapshot(stopped_s3, workdir)
                except StoreError as exc:
                    raise ServiceError(
                        f"Could not save the object store's contents before stopping it ({exc}); "
                        f"it is still running, see {stopped_s3.log}."
                    ) from None
                notes.append(f"saved {saved} objects to {snapshot_dir(workdir)}")
            _stop(stopped_s3.pid, stopped_s3.started)
        if stopped_prefect:
            _stop(stopped_prefect.pid, stopped_prefect.started)
        _write_state(
            ServiceState(
                workdir,
                None if s3 else state.s3,
                None if prefect else state.prefect,
                hub=None if hub else state.hub,
            )
        )
        return ServiceState(workdir, stopped_s3, stopped_prefect, notes, stopped_hub)


def status(workdir: Path) -> ServiceState | None:
    """The running services of workdir, or None when nothing runs."""
    workdir = Path(workdir).resolve()
    if not state_path(workdir).exists():
        return None
    state = _live(_read_state(workdir))
    return None if state.empty else state


def service_env(workdir: Path) -> dict[str, str]:
    """Environment for commands and flows that use this workdir's services."""
    state = status(workdir)
    api_url = state.prefect.api_url if state and state.prefect else None
    env = _prefect_env(Path(workdir).resolve(), api_url)
    if state and state.s3:
        env |= {
            "HACKGAP_S3_ENDPOINT": state.s3.endpoint,
            "HACKGAP_S3_ACCESS_KEY": state.s3.access_key,
            "HACKGAP_S3_SECRET_KEY": state.s3.secret_key,
        }
    return env
