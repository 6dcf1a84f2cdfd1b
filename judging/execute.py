"""Run a frozen notebook in a clean, limited environment: one seam, one implementation per backend.

Shaped like OpenSAFELY job-runner's ExecutorAPI: `prepare`, `execute`, `finalize` and
`cleanup` are each idempotent, so a run killed at any point and started again ends in the
same state (a finished result is never redone; a half-made work tree is made afresh).

A run lives in two places:
- `spec.result_dir` (private to hackgap: 0700 root when root): result.json, executed.ipynb,
  outputs/. result.json is written last; its presence means "done".
- a work tree under `spec.runs_root` with a random name: twin/ (the data, read-only),
  submission/ (the notebook, read-only; the kernel's working directory), submission/outputs/
  (the only place the notebook's account may write, plus a scratch home and a private /tmp).

On a root host the kernel runs with no network (`unshare --net`), a private /tmp, /var/tmp
and /dev/shm (`unshare --mount`), as `spec.user` with no capabilities and no new privileges,
and talks to the trusted driver (`judging.nbrun`) over Unix sockets in the work tree.
Elsewhere (a developer's machine) it runs as the current user without that isolation, and
real-data runs refuse to start (`isolated_or_refuse`).
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from judging.errors import ReviewError

POLL_SECONDS = 0.2
GRACE_SECONDS = 30  # kernel start and notebook write on top of the notebook's time limit


@dataclass(frozen=True)
class RunSpec:
    """One notebook run: what to run, on which data, with which limits, where to keep it."""

    key: str  # stable id of what is run (submission hash + kind); a result for it is reused
    notebook: Path
    data: dict[str, Path]  # file name in twin/ -> source file (twin or real)
    result_dir: Path
    runs_root: Path
    time_limit: int
    mem_limit: int  # bytes, the whole process tree
    disk_limit: int = 512 * 2**20  # bytes written in the work tree
    user: str | None = None  # the kernel's account (root hosts only)
    python: str = sys.executable  # the kernel's Python (must run as `user`)
    params: dict[str, str] = field(default_factory=dict)
    network: bool = False


@dataclass
class RunResult:
    """What a run gave: status ok|failed|timeout|memory|disk|died|error, and where its files are."""

    key: str
    status: str
    seconds: float
    message: str = ""
    cell: int | None = None
    error: str | None = None
    outputs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict:
        return dict(self.__dict__)


class Executor(Protocol):
    def prepare(self, spec: RunSpec) -> Path: ...
    def execute(self, spec: RunSpec, work: Path) -> dict: ...
    def finalize(self, spec: RunSpec, work: Path, raw: dict) -> RunResult: ...
    def cleanup(self, spec: RunSpec) -> None: ...


def parse_size(text: str) -> int:
    """'2G' -> bytes (event.yaml's mem_limit format)."""
    units = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    text = text.strip().upper()
    unit = text[-1] if text[-1] in units else ""
    return int(float(text[: len(text) - len(unit)]) * units[unit])


def read_result(result_dir: Path) -> RunResult | None:
    path = Path(result_dir) / "result.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return RunResult(**data)


def is_root() -> bool:
    return os.geteuid() == 0


def isolated_or_refuse(spec: RunSpec, what: str) -> None:
    """Real data only runs where the kernel can be cut off and made unprivileged."""
    if not is_root():
        raise ReviewError(
            f"{what} needs root (to cut the network and run the notebook as an unprivileged "
            "account); run `hackgap review verify` as root inside the secure zone."
        )
    if not spec.user:
        raise ReviewError(f"{what} has no account to run as; this is a bug in hackgap review.")


def run_notebook(spec: RunSpec, executor: Executor | None = None) -> RunResult:
    """prepare -> execute -> finalize -> cleanup; a finished result for spec.key is reused."""
    executor = executor or LocalExecutor()
    done = read_result(spec.result_dir)
    if done is not None and done.key == spec.key:
        executor.cleanup(spec)
        return done
    work = executor.prepare(spec)
    try:
        raw = executor.execute(spec, work)
        return executor.finalize(spec, work, raw)
    finally:
        executor.cleanup(spec)


# -- the local executor -----------------------------------------------------------------------


def _ids(user: str | None) -> tuple[int, int] | None:
    if user is None or not is_root():
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ReviewError(
            f"the account '{user}' does not exist; run the review as root so it is created "
            f"(or create it: useradd --system --user-group {user})."
        ) from None
    return entry.pw_uid, entry.pw_gid


def _chown(path: Path, uid: int, gid: int, mode: int) -> None:
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def ensure_user(user: str) -> None:
    """Create an unprivileged system account with no home and no login (root only)."""
    try:
        pwd.getpwnam(user)
        return
    except KeyError:
        pass
    subprocess.run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            user,
        ],
        check=True,
        capture_output=True,
    )


def _dir_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def _kill_tree(pid: int) -> None:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [*proc.children(recursive=True), proc]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=10)


def _kill_leftovers(ids: tuple[int, int] | None) -> None:
    """Kill what a notebook left running: the run account's processes in another network
    namespace than ours (the team's own server, if any, shares ours and is left alone)."""
    if ids is None:
        return
    import psutil

    ours = os.readlink("/proc/self/ns/net")
    for proc in psutil.process_iter(["uids"]):
        try:
            if proc.info["uids"].real != ids[0]:
                continue
            if os.readlink(f"/proc/{proc.pid}/ns/net") != ours:
                proc.kill()
        except (psutil.Error, OSError):
            pass


STAGE_ROOT = Path("/run/hackgap-runs")  # where the work tree is held while /tmp is replaced
IPC_ROOT = Path("/run/hackgap-ipc")  # kernels' socket folders (short paths)


# Runs as root inside fresh mount (and network) namespaces, then becomes the run's account.
# The work tree may itself live under /tmp (tests), so it is bind-mounted aside, the tmpfs
# mounts go on, and it is bound back at the same path.
def _kill_run(work: Path) -> None:
    """Kill every process of one run (its driver and kernel name its work tree or socket
    folder), e.g. left by a run killed midway or a kernel that outlived its driver."""
    import psutil

    marks = (str(work), f"/{work.name[-16:]}/")
    me = os.getpid()
    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            if proc.pid != me and any(m in cmdline for m in marks):
                proc.kill()
        except psutil.Error:
            pass


_SANDBOX_SH = (
    'set -e; stage="$HG_STAGE"; mkdir -p "$stage"; mount --bind "$HG_WORK" "$stage"; '
    "mount -t tmpfs -o size=256m,mode=1777 tmpfs /tmp; "
    "mount -t tmpfs -o size=64m,mode=1777 tmpfs /var/tmp; "
    "mount -t tmpfs -o size=64m,mode=1777 tmpfs /dev/shm; "
    'mkdir -p "$HG_WORK"; mount --bind "$stage" "$HG_WORK"; '
    'conn="$1"; shift; chown "$HG_UID:$HG_GID" "$conn"; '
    'exec setpriv --reuid="$HG_UID" --regid="$HG_GID" --clear-groups --no-new-privs '
    '--inh-caps=-all --bounding-set=-all -- "$@"'
)


class LocalExecutor:
    """Fresh process and work tree per run on this machine (the `local` sandbox backend)."""

    def _work(self, spec: RunSpec) -> Path | None:
        marker = Path(spec.result_dir).parent / f".{Path(spec.result_dir).name}.work"
        if marker.is_file():
            return Path(marker.read_text(encoding="utf-8").strip())
        return None

    @staticmethod
    def _runtime(work: Path) -> Path:
        """The kernel's socket folder: a short path (a Unix socket path has at most 107
        characters), outside /tmp on a root host (the kernel gets its own /tmp there)."""
        root = IPC_ROOT if is_root() else Path(tempfile.gettempdir()) / "hackgap-ipc"
        return root / work.name[-16:]

    def prepare(self, spec: RunSpec) -> Path:
        """A new work tree (any left by a killed run, and its processes, are removed first)."""
        ids = self._owner(spec)
        _kill_leftovers(_ids(spec.user))
        self.cleanup(spec)
        runs_root = Path(spec.runs_root).resolve()
        runs_root.mkdir(parents=True, exist_ok=True)
        os.chmod(runs_root, 0o711)  # traversable, not listable: a run's name is its secret
        work = runs_root / f"run-{secrets.token_hex(12)}"
        work.mkdir(mode=0o700)
        marker = Path(spec.result_dir).parent / f".{Path(spec.result_dir).name}.work"
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(str(work), encoding="utf-8")
        for name in ("twin", "submission", "driver"):
            (work / name).mkdir()
        for name, source in spec.data.items():
            shutil.copyfile(source, work / "twin" / name)
        shutil.copyfile(spec.notebook, work / "submission" / Path(spec.notebook).name)
        (work / "submission" / "outputs").mkdir()
        (work / "home").mkdir()
        runtime = self._runtime(work)
        runtime.mkdir(parents=True, mode=0o700)
        if ids:
            uid, gid = ids
            _chown(work, 0, gid, 0o710)
            for sub in ("twin", "submission"):
                _chown(work / sub, 0, gid, 0o750)
                for f in (work / sub).iterdir():
                    if f.is_file():
                        _chown(f, 0, gid, 0o440)
            for sub in ("submission/outputs", "home"):
                _chown(work / sub, uid, gid, 0o700)
            _chown(runtime, uid, gid, 0o700)
        return work

    def _owner(self, spec: RunSpec) -> tuple[int, int] | None:
        """(uid, gid) the kernel runs as, for the work tree's ownership (None: ourselves)."""
        return _ids(spec.user)

    def _seen(self, spec: RunSpec, work: Path) -> Path:
        """Where the kernel sees the work tree: on a root host also at the stage path (under
        /run, traversable), so its account never traverses the private folders above it."""
        return STAGE_ROOT / work.name if _ids(spec.user) else work

    def _kernel_prefix(self, spec: RunSpec, work: Path, env_vars: dict) -> list[str]:
        env_args = ["env", "-i", *(f"{k}={v}" for k, v in env_vars.items())]
        fsize = ["prlimit", f"--fsize={spec.disk_limit}", "--"]
        if not _ids(spec.user):
            return [*fsize, *env_args]
        isolate = ["unshare", "--mount", "--propagation", "private"]
        if not spec.network:
            isolate.insert(1, "--net")
        prefix = [*isolate, "sh", "-c", _SANDBOX_SH, "sandbox", "{connection_file}"]
        return [*prefix, *fsize, *env_args]

    def _command(self, spec: RunSpec, work: Path) -> tuple[list[str], dict]:
        ids = self._owner(spec)
        seen = self._seen(spec, work)
        env_vars = {
            "HOME": str(seen / "home"),
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "MPLBACKEND": "Agg",
            "PYTHONDONTWRITEBYTECODE": "1",
            "HACKGAP_TWIN": str(seen / "twin" / "twin.parquet"),
        }
        prefix = self._kernel_prefix(spec, work, env_vars)
        driver_spec = {
            "notebook": str(work / "submission" / Path(spec.notebook).name),
            "out_dir": str(work / "driver"),
            "runtime_dir": str(self._runtime(work)),
            "cwd": str(work / "submission"),
            "python": spec.python,
            "kernel_prefix": prefix,
            "time_limit": spec.time_limit,
            "params": {
                "TWIN_PATH": str(seen / "twin" / "twin.parquet"),
                "CODEBOOK_PATH": str(seen / "twin" / "codebook.md"),
                **spec.params,
            },
        }
        spec_file = work / "driver" / "spec.json"
        spec_file.write_text(json.dumps(driver_spec), encoding="utf-8")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(work / "driver"),
            "JUPYTER_RUNTIME_DIR": str(work / "driver"),
            "JUPYTER_DATA_DIR": str(work / "driver"),
            "JUPYTER_PLATFORM_DIRS": "1",
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        }
        if ids:
            env.update(
                HG_UID=str(ids[0]),
                HG_GID=str(ids[1]),
                HG_WORK=str(work),
                HG_STAGE=str(STAGE_ROOT / work.name),
            )
        return [sys.executable, "-m", "judging.nbrun", str(spec_file)], env

    def execute(self, spec: RunSpec, work: Path) -> dict:
        """Start the driver; kill its whole tree past the time, memory or disk limit."""
        cmd, env = self._command(spec, work)
        log = open(work / "driver" / "driver.log", "wb")  # noqa: SIM115 (closed below)
        started = time.monotonic()
        proc = subprocess.Popen(
            cmd, env=env, cwd=work / "driver", stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        reason, last_disk = None, 0.0
        try:
            while proc.poll() is None:
                time.sleep(POLL_SECONDS)
                elapsed = time.monotonic() - started
                if elapsed > spec.time_limit + GRACE_SECONDS:
                    reason = "timeout"
                elif _tree_rss(proc.pid) > spec.mem_limit:
                    reason = "memory"
                elif elapsed - last_disk > 1.0:
                    last_disk = elapsed
                    if _dir_bytes(work) > spec.disk_limit + self._data_bytes(spec):
                        reason = "disk"
                if reason:
                    _kill_tree(proc.pid)
                    break
        finally:
            if proc.poll() is None:
                _kill_tree(proc.pid)
            proc.wait()
            log.close()
            _kill_leftovers(_ids(spec.user))
            self._stop(work)
        return {"killed": reason, "seconds": round(time.monotonic() - started, 3)}

    def _stop(self, work: Path) -> None:
        """Stop whatever the run left outside our process tree (containers)."""

    @staticmethod
    def _data_bytes(spec: RunSpec) -> int:
        return (
            sum(Path(p).stat().st_size for p in spec.data.values())
            + Path(spec.notebook).stat().st_size * 2
        )

    def finalize(self, spec: RunSpec, work: Path, raw: dict) -> RunResult:
        """Move the executed notebook and outputs into result_dir; result.json last."""
        driver = work / "driver"
        driven = {}
        if (driver / "result.json").is_file():
            driven = json.loads((driver / "result.json").read_text(encoding="utf-8"))
        status = raw["killed"] or driven.get("status") or "error"
        message = _MESSAGES.get(raw["killed"] or "", driven.get("message", ""))
        if status == "error" and not message:
            message = "the notebook could not be run (the kernel did not start)"
        if status == "died" and raw["killed"] is None:
            message = "the kernel died (it may have run out of memory)"
        result_dir = Path(spec.result_dir)
        tmp = Path(tempfile.mkdtemp(prefix=f".{result_dir.name}-", dir=result_dir.parent))
        os.chmod(tmp, 0o700)
        outputs = tmp / "outputs"
        outputs.mkdir()
        names = []
        if status not in ("disk",):
            names = _copy_outputs(work / "submission" / "outputs", outputs)
        for name in ("executed.ipynb", "driver.log"):  # private: never released as such
            if (driver / name).is_file():
                shutil.copyfile(driver / name, tmp / name)
        result = RunResult(
            key=spec.key,
            status=status,
            seconds=driven.get("seconds", raw["seconds"]),
            message=message,
            cell=driven.get("cell"),
            error=driven.get("error"),
            outputs=names,
        )
        (tmp / "result.json").write_text(json.dumps(result.to_json(), indent=2), encoding="utf-8")
        if result_dir.exists():
            old = result_dir.with_name(f".{result_dir.name}-old-{secrets.token_hex(4)}")
            result_dir.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        tmp.rename(result_dir)
        return result

    def cleanup(self, spec: RunSpec) -> None:
        marker = Path(spec.result_dir).parent / f".{Path(spec.result_dir).name}.work"
        work = self._work(spec)
        if work is not None:
            _kill_run(work)
            if work.exists():
                _make_removable(work)
                shutil.rmtree(work, ignore_errors=True)
            with contextlib.suppress(OSError):
                (STAGE_ROOT / work.name).rmdir()
            shutil.rmtree(self._runtime(work), ignore_errors=True)
        marker.unlink(missing_ok=True)
        parent = Path(spec.result_dir).parent
        if parent.is_dir():
            for stale in parent.glob(f".{Path(spec.result_dir).name}-*"):
                shutil.rmtree(stale, ignore_errors=True)


_MESSAGES = {
    "timeout": "the notebook ran past the review time limit and was stopped",
    "memory": "the notebook used more memory than the review memory limit and was stopped",
    "disk": "the notebook wrote more than the review disk limit and was stopped",
}

MAX_OUTPUT_FILES = 50


def _copy_outputs(src: Path, dest: Path) -> list[str]:
    """Regular files directly or below outputs/ (no links, at most 50), as relative names."""
    names = []
    if not src.is_dir():
        return names
    for path in sorted(src.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        rel = path.relative_to(src).as_posix()
        if len(names) >= MAX_OUTPUT_FILES:
            break
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        with os.fdopen(fd, "rb") as fin, open(target, "wb") as fout:
            shutil.copyfileobj(fin, fout)
        names.append(rel)
    return names


def _make_removable(work: Path) -> None:
    for root, dirs, _files in os.walk(work):
        for d in dirs:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(root, d), 0o700)


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


class DockerExecutor(LocalExecutor):
    """The kernel in a fresh container of the sandbox image (the `docker` backend): no network,
    memory and process limits, no capabilities, read-only root, the work tree bind-mounted at
    its own path and the sockets' folder beside it; the driver stays on the host."""

    def __init__(self, image: str, uid: int = 1000, python: str = "/opt/venv/bin/python"):
        self.image, self.uid, self.python = image, uid, python

    def _owner(self, spec: RunSpec) -> tuple[int, int]:
        return self.uid, self.uid

    def _seen(self, spec: RunSpec, work: Path) -> Path:
        return work

    @staticmethod
    def _name(work: Path) -> str:
        return f"hackgap-run-{work.name[-16:]}"

    def _kernel_prefix(self, spec: RunSpec, work: Path, env_vars: dict) -> list[str]:
        runtime = self._runtime(work)
        env = {**env_vars, "HOME": "/tmp", "PATH": "/opt/venv/bin:/usr/bin:/bin"}
        docker = [
            "docker", "run", "--rm", "-i", "--name", self._name(work),
            "--label", "hackgap.review=1",
            "--network", "none" if not spec.network else "bridge",
            "--memory", str(spec.mem_limit), "--memory-swap", str(spec.mem_limit),
            "--pids-limit", "256", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "--user", f"{self.uid}:{self.uid}",
            "--read-only", "--tmpfs", "/tmp:rw,size=256m,mode=1777",
            "-v", f"{work / 'twin'}:{work / 'twin'}:ro",
            "-v", f"{work / 'submission'}:{work / 'submission'}",
            "-v", f"{runtime}:{runtime}",
            "-w", str(work / "submission"),
            *(a for k, v in env.items() for a in ("-e", f"{k}={v}")),
            self.image,
        ]  # fmt: skip
        chown = 'chown "$HG_UID:$HG_GID" "$1"; shift; exec "$@"'
        return ["sh", "-c", chown, "sandbox", "{connection_file}", *docker]

    def _command(self, spec: RunSpec, work: Path) -> tuple[list[str], dict]:
        spec = _replace(spec, python=self.python)
        cmd, env = super()._command(spec, work)
        env.update(HG_UID=str(self.uid), HG_GID=str(self.uid))
        return cmd, env

    def cleanup(self, spec: RunSpec) -> None:
        work = self._work(spec)
        if work is not None:
            self._stop(work)  # a container left by a killed run
        super().cleanup(spec)

    def _stop(self, work: Path) -> None:
        subprocess.run(["docker", "rm", "-f", self._name(work)], capture_output=True, check=False)


def _replace(spec: RunSpec, **changes) -> RunSpec:
    from dataclasses import replace

    return replace(spec, **changes)
