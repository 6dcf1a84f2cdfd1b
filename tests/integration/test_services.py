"""Embedded services: real moto/Prefect processes started by flows.services and the CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from flows import services
from flows.objectstore import BUCKETS, ObjectStore
from flows.services import ServiceError

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[2]
HACKGAP = REPO / ".venv" / "bin" / "hackgap"
SOURCES = ("brp_personen.csv", "kwb_2023_statline.csv", "pc6hnr_2023_gwb.csv", "duo_onderwijs.csv")


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """A private workdir whose services are always stopped after the test."""
    wd = tmp_path / "work"
    yield wd
    if wd.exists():
        services.down(wd)


def _store(state: services.ServiceState) -> ObjectStore:
    assert state.s3 is not None
    return ObjectStore(state.s3.endpoint, state.s3.access_key, state.s3.secret_key)


def test_up_starts_s3_with_buckets_and_private_state(workdir: Path) -> None:
    state = services.up(workdir, prefect=False)
    assert state.s3 is not None and state.prefect is None
    assert psutil.pid_exists(state.s3.pid)
    assert set(BUCKETS) <= set(_store(state).buckets())
    saved = json.loads(services.state_path(workdir).read_text())
    assert saved["s3"]["endpoint"] == state.s3.endpoint
    assert services.state_path(workdir).stat().st_mode & 0o077 == 0
    assert (workdir / "services").stat().st_mode & 0o077 == 0
    assert (workdir / "logs" / "s3.log").is_file()


def test_down_then_up_keeps_every_object(workdir: Path) -> None:
    store = _store(services.up(workdir, prefect=False))
    store.put_bytes("secure", "ev/sources/a.csv", b"a;b\n1;2\n")
    store.publish("open", "twins/ev/v1", {"twin.csv": b"x\n1\n"}, {"rows": 1})
    store.ensure_bucket("scratch")
    store.put_bytes("scratch", "k", b"also kept")
    stopped = services.down(workdir)
    assert stopped.s3 is not None and not psutil.pid_exists(stopped.s3.pid)
    assert services.status(workdir) is None

    state = services.up(workdir, prefect=False)
    assert state.s3.pid != stopped.s3.pid
    store = _store(state)
    assert store.get_bytes("secure", "ev/sources/a.csv") == b"a;b\n1;2\n"
    assert store.is_complete("open", "twins/ev/v1")
    assert store.read_manifest("open", "twins/ev/v1")["rows"] == 1
    assert store.get_bytes("scratch", "k") == b"also kept"
    assert store.stat("secure", "ev/sources/a.csv").sha256 is not None
    assert any("restored 4 objects" in n for n in state.notes)


def test_snapshot_is_replaced_atomically_and_reflects_deletes(workdir: Path) -> None:
    store = _store(services.up(workdir, prefect=False))
    store.put_bytes("audit", "one", b"1")
    store.put_bytes("audit", "two", b"2")
    services.down(workdir)
    store = _store(services.up(workdir, prefect=False))
    store.remove("audit", "one")
    services.down(workdir)
    leftovers = [p.name for p in (workdir / "services").iterdir() if "snapshot" in p.name]
    assert leftovers == ["s3-snapshot"]
    store = _store(services.up(workdir, prefect=False))
    assert store.list("audit") == ["two"]


def test_up_twice_is_idempotent(workdir: Path) -> None:
    first = services.up(workdir, prefect=False)
    second = services.up(workdir, prefect=False)
    assert second.s3 == first.s3
    assert "the moto object store was already running" in second.notes
    assert len([p for p in psutil.process_iter(["cmdline"]) if _is_moto_on(p, first.s3.port)]) == 1


def _is_moto_on(proc: psutil.Process, port: int) -> bool:
    cmd = proc.info.get("cmdline") or []
    return "moto.server" in cmd and str(port) in cmd


def test_status_reports_running_and_stopped(workdir: Path) -> None:
    assert services.status(workdir) is None
    state = services.up(workdir, prefect=False)
    assert services.status(workdir).s3 == state.s3
    services.down(workdir)
    assert services.status(workdir) is None
    assert not services.state_path(workdir).exists()


def test_stale_state_is_cleaned_up_and_service_restarted(workdir: Path) -> None:
    store = _store(services.up(workdir, prefect=False))
    store.put_bytes("secure", "kept", b"1")
    services.down(workdir)
    state = services.up(workdir, prefect=False)
    os.killpg(state.s3.pid, signal.SIGKILL)  # the process we started dies behind our back
    os.waitpid(state.s3.pid, 0)
    assert services.status(workdir) is None
    again = services.up(workdir, prefect=False)
    assert again.s3.pid != state.s3.pid
    assert any("had stopped" in n for n in again.notes)
    assert _store(again).get_bytes("secure", "kept") == b"1"


def test_service_env_points_at_the_running_store(workdir: Path) -> None:
    state = services.up(workdir, prefect=False)
    env = services.service_env(workdir)
    assert env["HACKGAP_S3_ENDPOINT"] == state.s3.endpoint
    assert env["PREFECT_HOME"] == str(workdir.resolve() / "prefect")
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert "PREFECT_API_URL" not in env  # Prefect was not started
    assert ObjectStore.from_env(env).buckets() == _store(state).buckets()
    assert ObjectStore.for_workdir(workdir).endpoint == state.s3.endpoint


def test_busy_fixed_port_is_one_sentence(workdir: Path, monkeypatch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        monkeypatch.setenv("HACKGAP_S3_PORT", str(port))
        with pytest.raises(ServiceError) as err:
            services.up(workdir, prefect=False)
    assert str(err.value) == (
        f"Port {port} on 127.0.0.1 (from HACKGAP_S3_PORT) is already in use; stop whatever "
        "uses it or unset HACKGAP_S3_PORT to pick a free port."
    )
    assert services.status(workdir) is None


def test_fixed_free_port_is_used(workdir: Path, monkeypatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HACKGAP_S3_PORT", str(port))
    assert services.up(workdir, prefect=False).s3.endpoint == f"http://127.0.0.1:{port}"


def test_unwritable_workdir_is_one_sentence(tmp_path: Path) -> None:
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o555)
    workdir = parent / "work"
    if os.geteuid() != 0:
        with pytest.raises(ServiceError) as err:
            services.up(workdir)
        message = str(err.value)
    else:
        # root writes everywhere; without CAP_DAC_OVERRIDE it meets a real EACCES.
        script = (
            "from flows import services\n"
            "try:\n"
            f"    services.up({str(workdir)!r})\n"
            "except services.ServiceError as exc:\n"
            "    print(exc)\n"
        )
        setpriv = shutil.which("setpriv")
        assert setpriv, "util-linux's setpriv is needed to drop root's override as root"
        proc = subprocess.run(
            [setpriv, "--bounding-set", "-dac_override", sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
        )
        message = proc.stdout.strip() or proc.stderr
    assert message == (
        f"Cannot write to the work directory {workdir} (permission denied); choose a "
        "writable `workdir` in event.yaml or fix the directory's permissions."
    )
    assert not workdir.exists()


def test_session_prefect_server_is_healthy(prefect_server: str) -> None:
    assert os.environ["PREFECT_API_URL"] == prefect_server
    with urllib.request.urlopen(f"{prefect_server}/health", timeout=10) as response:
        assert json.loads(response.read()) is True


# -- the CLI, as an organiser runs it ---------------------------------------------------


def _hackgap(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HACKGAP_S3_")}
    return subprocess.run(
        [str(HACKGAP), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300
    )


@pytest.fixture
def event_dir() -> Iterator[Path]:
    # `services up` also starts the hub, which refuses an event its team users cannot reach:
    # pytest's own tmp dirs are 0700, so the event lives in a traversable dir under /tmp.
    root = Path(tempfile.mkdtemp(prefix="hackgap-services-test-", dir="/tmp"))
    root.chmod(0o711)
    event = root / "ev"
    assert _hackgap("init", str(event), cwd=root).returncode == 0
    for name in SOURCES:
        (event / "sources" / name).write_text("placeholder\n", encoding="utf-8")
    yield event
    if (event / ".hackgap").exists():
        services.down(event / ".hackgap")
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_cli_up_status_down_exit_codes(event_dir: Path) -> None:
    workdir = event_dir / ".hackgap"
    status = _hackgap("services", "status", cwd=event_dir)
    assert status.returncode == 1, status.stderr
    assert "No services are running" in status.stdout

    up = _hackgap("services", "up", str(event_dir), cwd=event_dir.parent)
    assert up.returncode == 0, up.stderr + services.log_tail(workdir / "logs" / "prefect.log")
    state = services.status(workdir)
    assert state is not None and state.s3 is not None and state.prefect is not None
    assert state.s3.endpoint in up.stdout and state.prefect.ui_url in up.stdout
    assert "secure" in up.stdout and "0 objects" in up.stdout
    assert str(workdir / "logs" / "prefect.log") in up.stdout

    again = _hackgap("services", "up", cwd=event_dir)  # default EVENT_DIR is "."
    assert again.returncode == 0
    assert "already running" in again.stdout
    assert services.status(workdir).prefect.pid == state.prefect.pid

    assert _hackgap("services", "status", cwd=event_dir).returncode == 0

    down = _hackgap("services", "down", cwd=event_dir)
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not psutil.pid_exists(state.prefect.pid) or _zombie(state.prefect.pid)
    assert _hackgap("services", "status", cwd=event_dir).returncode == 1


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_cli_user_errors_exit_2_with_one_sentence(tmp_path: Path, event_dir: Path) -> None:
    missing = _hackgap("services", "up", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert missing.returncode == 2
    assert "no event file here" in missing.stderr and "Traceback" not in missing.stderr

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env_run = subprocess.run(
            [str(HACKGAP), "services", "up", "--no-prefect", str(event_dir)],
            capture_output=True,
            text=True,
            env={**os.environ, "HACKGAP_S3_PORT": str(port)},
            timeout=120,
        )
    assert env_run.returncode == 2
    assert f"Port {port} on 127.0.0.1 (from HACKGAP_S3_PORT) is already in use" in env_run.stderr


def test_cli_down_with_nothing_running_is_fine(event_dir: Path) -> None:
    down = _hackgap("services", "down", cwd=event_dir)
    assert down.returncode == 0
    assert "Nothing was running" in down.stdout
