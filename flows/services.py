"""Embedded services for one machine: an S3 server and a Prefect server on loopback.

`hackgap services up` starts them detached (they outlive the CLI) and records them in
`<workdir>/services/state.json`; other commands find them there (`service_env`). The
S3 server is real MinIO when a `minio` binary is available, else moto's server mode.
moto keeps objects in memory, so `down` snapshots every bucket to
`<workdir>/services/s3-snapshot/` and `up` restores it: nothing is lost across down/up.
The services directory holds copies of the secure bucket, so it is private (mode 0700).
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
from pathlib import Path
from typing import Any

import psutil

from flows.objectstore import COMPLETE, ObjectStore, StoreError

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
class ServiceState:
    workdir: Path
    s3: S3Service | None = None
    prefect: PrefectService | None = None
    notes: list[str] = field(default_factory=list, compare=False)

    @property
    def empty(self) -> bool:
        return self.s3 is None and self.prefect is None


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
    return ServiceState(Path(workdir), s3, prefect)


def _write_state(state: ServiceState) -> None:
    path = state_path(state.workdir)
    if state.empty:
        path.unlink(missing_ok=True)
        return
    doc = {
        "s3": asdict(state.s3) if state.s3 else None,
        "prefect": asdict(state.prefect) if state.prefect else None,
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


def _stop(pid: int, started: float) -> None:
    """Stop a process group we started: SIGTERM, then SIGKILL after STOP_TIMEOUT."""
    if not _alive(pid, started):
        _reap(pid)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
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
    return ServiceState(state.workdir, s3, prefect, notes)


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
            _write_state(ServiceState(workdir, s3_service, prefect_service))
        if prefect and prefect_service is None:
            prefect_service = _start_prefect(workdir)
        final = ServiceState(workdir, s3_service, prefect_service, notes)
        _write_state(final)
        return final


def down(workdir: Path, *, s3: bool = True, prefect: bool = True) -> ServiceState:
    """Stop the services of workdir (saving moto's objects first); return what was stopped."""
    workdir = Path(workdir).resolve()
    if not state_path(workdir).exists():
        return ServiceState(workdir)
    with _locked(workdir):
        state = _live(_read_state(workdir))
        stopped_s3 = state.s3 if s3 else None
        stopped_prefect = state.prefect if prefect else None
        notes = list(state.notes)
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
            )
        )
        return ServiceState(workdir, stopped_s3, stopped_prefect, notes)


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
