"""Shared test fixtures: the embedded object store and Prefect server, once per session.

Prefect settings are set here at import time, before any test module imports prefect, so
no test touches ~/.prefect or sends analytics, and the ephemeral server has time to start.
Services start lazily: only a test that asks for `s3_server`, `prefect_server` or `store`
pays for them.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_PREFECT_HOME = tempfile.mkdtemp(prefix="hackgap-test-prefect-")
atexit.register(shutil.rmtree, _PREFECT_HOME, ignore_errors=True)
os.environ.update(
    {
        "PREFECT_HOME": _PREFECT_HOME,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "DO_NOT_TRACK": "1",
    }
)
# Five test sessions may share two cores: give the Prefect server more than the usual 90 s.
os.environ.setdefault("HACKGAP_PREFECT_START_TIMEOUT", "180")
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("PREFECT_PROFILE", None)

_SERVICE_FIXTURES = {"s3_server", "prefect_server", "store"}


def _refresh_prefect_settings() -> None:
    """Prefect caches settings at import; make it see a changed PREFECT_API_URL."""
    if "prefect.context" in sys.modules:
        sys.modules["prefect.context"].refresh_global_settings_context()


def _log_tails(workdir: Path) -> str:
    from flows.services import log_tail, logs_dir

    parts = []
    for log in sorted(logs_dir(workdir).glob("*.log")):
        parts.append(f"--- {log} (last 30 lines) ---\n{log_tail(log)}")
    return "\n".join(parts)


@pytest.fixture(scope="session")
def services_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The work directory of this session's embedded services."""
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def s3_server(services_workdir: Path) -> Iterator[dict[str, str]]:
    """The embedded S3 server for the session; yields HACKGAP_S3_* for ObjectStore.from_env."""
    from flows import services

    try:
        state = services.up(services_workdir, s3=True, prefect=False)
    except Exception:
        print(_log_tails(services_workdir), file=sys.stderr)
        raise
    assert state.s3 is not None
    env = {
        "HACKGAP_S3_ENDPOINT": state.s3.endpoint,
        "HACKGAP_S3_ACCESS_KEY": state.s3.access_key,
        "HACKGAP_S3_SECRET_KEY": state.s3.secret_key,
    }
    yield env
    services.down(services_workdir, s3=True, prefect=False)


@pytest.fixture(scope="session")
def prefect_server(services_workdir: Path) -> Iterator[str]:
    """A Prefect server for the session; sets PREFECT_API_URL for the session, yields it."""
    from flows import services

    try:
        state = services.up(services_workdir, s3=False, prefect=True)
    except Exception:
        print(_log_tails(services_workdir), file=sys.stderr)
        raise
    assert state.prefect is not None
    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = state.prefect.api_url
    _refresh_prefect_settings()
    yield state.prefect.api_url
    if previous is None:
        os.environ.pop("PREFECT_API_URL", None)
    else:
        os.environ["PREFECT_API_URL"] = previous
    _refresh_prefect_settings()
    services.down(services_workdir, s3=False, prefect=True)


@pytest.fixture
def store(s3_server: dict[str, str]):
    """An ObjectStore on the session server, with hackgap's four buckets empty."""
    from flows.objectstore import BUCKETS, ObjectStore

    st = ObjectStore.from_env(s3_server)
    st.ensure_buckets()
    for bucket in BUCKETS:
        st.clear(bucket)
    return st


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Attach the service log tails to a failing test that used the services."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed or not _SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
        return
    workdir = getattr(item, "funcargs", {}).get("services_workdir")
    if workdir is not None:
        report.sections.append(("service logs", _log_tails(workdir)))


# -- Docker engine and sandbox image (docker-marked tests) ------------------------------------


@pytest.fixture(scope="session")
def docker_engine():
    """A client for a running Docker engine; as root, `scripts/bootstrap.sh docker` starts one.

    Fails (never skips) with a hint when there is no engine and it cannot be started.
    """
    import subprocess

    from sandboxes import docker as sandbox_docker

    try:
        return sandbox_docker.engine()
    except sandbox_docker.SandboxError as exc:
        if os.geteuid() != 0:
            pytest.fail(f"{exc} (docker-marked tests need an engine)")
    script = Path(__file__).resolve().parent.parent / "scripts" / "bootstrap.sh"
    run = subprocess.run([str(script), "docker"], capture_output=True, text=True)
    if run.returncode != 0:
        pytest.fail(f"`scripts/bootstrap.sh docker` could not start an engine: {run.stderr[-500:]}")
    return sandbox_docker.engine()


_IMAGE_BUILD: dict = {}  # the background `hackgap sandbox-image build` of this session


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start building the sandbox image in the background when a collected test needs it.

    On a fresh machine the build takes minutes of mostly network and disk work; the tests that
    run before the first docker test overlap it, and `sandbox_image` waits for it.
    """
    if session.config.option.collectonly or not any(
        "sandbox_image" in getattr(item, "fixturenames", ()) for item in session.items
    ):
        return
    import subprocess

    from sandboxes import docker as sandbox_docker
    from sandboxes import image

    try:
        if image.image_exists(sandbox_docker.engine(), image.image_tag()):
            return
    except Exception:  # no engine yet: `docker_engine` starts one or fails with the hint
        return
    log = Path(tempfile.mkstemp(prefix="hackgap-image-build-", suffix=".log")[1])
    with open(log, "wb") as out:
        _IMAGE_BUILD["proc"] = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "sandbox-image", "build"],
            stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parent.parent,
        )  # fmt: skip
    _IMAGE_BUILD["log"] = log


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop a background image build the session no longer waits for (an early -x stop)."""
    import signal

    proc = _IMAGE_BUILD.pop("proc", None)
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # KeyboardInterrupt: its temporary files are removed
        proc.wait(timeout=60)


@pytest.fixture(scope="session")
def sandbox_image(docker_engine) -> str:
    """The team sandbox image, built once per machine (a no-op while its inputs are unchanged)."""
    from sandboxes import image

    proc = _IMAGE_BUILD.pop("proc", None)
    if proc is not None and proc.wait() != 0:
        print(f"background image build failed ({_IMAGE_BUILD['log']}):", file=sys.stderr)
        print(_IMAGE_BUILD["log"].read_text()[-2000:], file=sys.stderr)
    return image.build(say=lambda message: print(message, file=sys.stderr)).tag


# -- JupyterHub: one real hub per test session (hub-marked tests) -------------------------
# Start it with the `hub_event` fixture: an event in a fresh /tmp dir (traversable by team
# users) with two teams, a judge and an organiser, its own object store holding a small
# released twin, the hub up (`flows.services.hub_up`) and the teams provisioned.


def make_hub_event(
    root: Path,
    teams: dict[str, list[str]],
    *,
    name: str = "hub-test",
    judges=("judge-jo",),
    organisers=("org-olga",),
    sandbox: str = "",
) -> Path:
    """An event directory for hub tests: event.yaml (start now, end tomorrow) + stub sources."""
    import datetime as dt

    import yaml

    root.mkdir(parents=True, exist_ok=True)
    sources = root / "sources"
    sources.mkdir(exist_ok=True)
    names = ("brp.csv", "kwb.csv", "pc6.csv", "duo.csv")
    for n in names:
        (sources / n).write_text("stub\n")
    now = dt.datetime.now().replace(microsecond=0)
    doc = {
        "name": name, "title": "Hub test",
        "start": (now - dt.timedelta(hours=1)).isoformat(),
        "deadline": (now + dt.timedelta(hours=20)).isoformat(),
        "end": (now + dt.timedelta(days=1)).isoformat(),
        "sources": {k: {"path": f"sources/{n}", "format": f}
                    for k, n, f in zip(("municipal", "cbs", "postcodes", "school"), names,
                                       ("brp-csv", "statline-csv", "cbs-pc6hnr", "duo-csv"),
                                       strict=True)},
        "challenges": ["advieskloof"],
        "teams": [{"name": t, "members": m} for t, m in teams.items()],
        "judges": list(judges), "organisers": list(organisers),
    }  # fmt: skip
    text = yaml.safe_dump(doc, sort_keys=False) + sandbox
    (root / "event.yaml").write_text(text)
    return root


def publish_test_twin(store, event: str, rows: int = 120, version: str = "v-test") -> str:
    """A small released twin under open/twins/<event>/<version>/: invented rows with the
    analysis table's columns (the synthetic tests' table maker), so starters run on it."""
    import importlib.util
    import tempfile

    maker = Path(__file__).parent / "unit" / "synthetic" / "conftest.py"
    spec = importlib.util.spec_from_file_location("hackgap_test_tables", maker)
    tables = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = tables
    spec.loader.exec_module(tables)
    df = tables.make_table(rows, seed=8).drop(columns=["pupil_id", "link_method"])
    with tempfile.TemporaryDirectory() as tmp:
        df.to_parquet(Path(tmp) / "twin.parquet", index=False)
        df.to_csv(Path(tmp) / "twin.csv", index=False)
        (Path(tmp) / "codebook.md").write_text("# Codebook\n\ninvented test twin\n")
        files = {n: Path(tmp) / n for n in ("twin.parquet", "twin.csv", "codebook.md")}
        store.publish("open", f"twins/{event}/{version}", files, {"rows": rows})
    return version


class HubEvent:
    """A running test hub: event_dir, url, api (service token), passwords {user: password}."""

    def __init__(self, event_dir, hub, teams: dict[str, list[str]], store):
        from flows import services
        from sandboxes.hubapi import HubAPI

        self.event_dir = event_dir
        self.workdir = event_dir.workdir
        self.url = hub.url
        self.hub = hub
        self.teams = teams
        self.store = store
        self.api = HubAPI(hub.api_url, services.hub_token(self.workdir))

    @property
    def passwords(self) -> dict[str, str]:
        import csv

        from sandboxes import layout

        with open(layout.credentials_file(self.workdir), newline="") as fh:
            return {row["username"]: row["password"] for row in csv.DictReader(fh)}


def _hub_log_tails(workdir: Path) -> str:
    return _log_tails(workdir)


@pytest.fixture(scope="session")
def hub_event() -> Iterator[HubEvent]:
    """One real hub for the session with two provisioned teams (see make_hub_event)."""
    import secrets
    import subprocess
    import tempfile

    from flows import services
    from flows.event import load_event
    from flows.objectstore import ObjectStore
    from flows.provision import run_provision
    from sandboxes import layout

    tag = secrets.token_hex(2)
    teams = {f"ta-{tag}": ["alice", "amir"], f"tb-{tag}": ["bob"]}
    root = Path(tempfile.mkdtemp(prefix="hackgap-hub-test-", dir="/tmp"))
    root.chmod(0o711)
    event_dir = load_event(make_hub_event(root / "event", teams))
    workdir = event_dir.workdir
    try:
        state = services.up(workdir, s3=True, prefect=False)
        store = ObjectStore.from_env({
            "HACKGAP_S3_ENDPOINT": state.s3.endpoint, "HACKGAP_S3_ACCESS_KEY":
            state.s3.access_key, "HACKGAP_S3_SECRET_KEY": state.s3.secret_key})  # fmt: skip
        publish_test_twin(store, event_dir.event.name)
        hub = services.hub_up(event_dir).hub
        run_provision(event_dir, store, start=True)
        hub = services.status(workdir).hub  # provisioning restarted it (new pid)
    except Exception:
        print(_log_tails(workdir), file=sys.stderr)
        services.down(workdir)
        raise
    yield HubEvent(event_dir, hub, teams, store)
    services.down(workdir)
    if os.geteuid() == 0:
        for team in teams:
            subprocess.run(["userdel", layout.team_system_user("", team)], capture_output=True)
    subprocess.run(["rm", "-rf", str(root)], capture_output=True)


@contextlib.contextmanager
def running_docker_hub(
    client,
    image: str,
    teams: dict[str, list[str]],
    *,
    name: str,
    mem_limit: str = "1G",
    before_hub=None,
) -> Iterator[HubEvent]:
    """An event on `sandbox.backend: docker`, brought up as an organiser does (object store,
    released twin, hub, provision with servers started); everything it made goes at the end:
    hub, proxy, S3, containers, network, firewall rule, volumes, the event directory.

    `before_hub(name)` runs just before the hub starts. The HubEvent also carries `name`,
    `client`, `s3` and `hub_notes` (what `hub_up` reported).
    """
    import subprocess
    import tempfile

    from flows import services
    from flows.event import load_event
    from flows.objectstore import ObjectStore
    from flows.provision import run_provision
    from sandboxes import docker as sd

    root = Path(tempfile.mkdtemp(prefix="hackgap-docker-hub-test-", dir="/tmp"))
    root.chmod(0o711)
    sandbox = (
        f"sandbox:\n  backend: docker\n  image: {image}\n  mem_limit: {mem_limit}\n"
        "  cpu_limit: 1.0\n  start_timeout: 180\n"
    )
    event_dir = load_event(make_hub_event(root / "event", teams, name=name, sandbox=sandbox))
    workdir = event_dir.workdir

    def remove_all() -> None:
        services.down(workdir)
        sd.teardown_event(name, event_dir.event.sandbox, client)
        for team in teams:
            sd.remove_team(name, team, client=client)
        subprocess.run(["rm", "-rf", str(root)], capture_output=True)

    try:
        state = services.up(workdir, s3=True, prefect=False)
        store = ObjectStore.from_env({
            "HACKGAP_S3_ENDPOINT": state.s3.endpoint, "HACKGAP_S3_ACCESS_KEY":
            state.s3.access_key, "HACKGAP_S3_SECRET_KEY": state.s3.secret_key})  # fmt: skip
        publish_test_twin(store, name, rows=120)
        if before_hub is not None:
            before_hub(name)
        notes = services.hub_up(event_dir).notes
        run_provision(event_dir, store, start=True)
        hub_event = HubEvent(event_dir, services.status(workdir).hub, teams, store)
    except Exception:
        print(_log_tails(workdir), file=sys.stderr)
        remove_all()
        raise
    hub_event.name, hub_event.client, hub_event.s3 = name, client, state.s3
    hub_event.hub_notes = notes
    try:
        yield hub_event
    finally:
        remove_all()


@pytest.fixture(scope="module")
def docker_hub_event(docker_engine, sandbox_image) -> Iterator[HubEvent]:
    """`hub_event`'s teams and people on `sandbox.backend: docker` (a container per team).

    Module-scoped: its containers, volumes, network and firewall rule go at the module's end.
    """
    import secrets

    tag = secrets.token_hex(2)
    teams = {f"ta-{tag}": ["alice", "amir"], f"tb-{tag}": ["bob"]}
    with running_docker_hub(docker_engine, sandbox_image, teams, name=f"dweb-{tag}") as hub:
        yield hub


@pytest.fixture
def hackgap_cli(monkeypatch, capsys):
    """`hackgap ARGS` through the real entry point (flows.cli.main: user errors -> one
    sentence on stderr, exit 2) in this process: a new Python per call costs seconds."""
    import subprocess

    from flows import cli

    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["hackgap", *args])
        try:
            cli.main()
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run
