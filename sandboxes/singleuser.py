"""The team servers' Python environment on the local backend, built once per lock file.

Team servers run as per-team system users, so their interpreter must be readable by them:
a venv made from a Python under /root (0700, e.g. pyenv) fails with `Permission denied`.
So the environment is a venv of Debian's /usr/bin/python3.11 in a world-readable place
outside any home (/opt/hackgap/singleuser-<hash of the lock>), installed from
infra/sandbox/requirements.lock by uv (parallel downloads; pip when uv is missing). The docker
image copies this same environment (sandboxes/image.py), so the lock is installed once per
machine. A new lock gives a new directory; a finished one is marked by a stamp file written
last (a directory without it is an interrupted build and is made again).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "infra" / "sandbox" / "requirements.lock"
SUBMIT_TOOL = REPO / "judging" / "submit_tool.py"
SYSTEM_PYTHON = "/usr/bin/python3.11"
ROOT_ENV = "HACKGAP_SINGLEUSER_ROOT"
STAMP = ".hackgap-complete"


class SingleUserError(Exception):
    """The team servers' Python environment cannot be built."""

    hackgap_user_error = True


def lock_hash(lock: Path = LOCK) -> str:
    return hashlib.sha256(lock.read_bytes()).hexdigest()[:12]


def env_root() -> Path:
    """Where environments live: /opt/hackgap as root, else a cache dir of the user."""
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV])
    if os.geteuid() == 0:
        return Path("/opt/hackgap")
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hackgap"


def env_dir(lock: Path = LOCK) -> Path:
    return env_root() / f"singleuser-{lock_hash(lock)}"


def is_ready(lock: Path = LOCK) -> bool:
    return (env_dir(lock) / STAMP).is_file()


def _python() -> str:
    if Path(SYSTEM_PYTHON).is_file():
        return SYSTEM_PYTHON
    if os.geteuid() != 0:
        return sys.executable  # plain processes as ourselves: any interpreter we can run
    raise SingleUserError(
        f"{SYSTEM_PYTHON} is missing, and team servers need a system Python readable by every "
        "team user; install it with `apt-get install python3.11 python3.11-venv`."
    )


def ensure(lock: Path = LOCK, *, log: Path | None = None) -> Path:
    """Build the environment unless it exists; return its directory (about 1-2 minutes)."""
    target = env_dir(lock)
    if (target / STAMP).is_file():
        install_submit_tool(target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    target.parent.chmod(0o755)
    # One builder at a time: the image build and a hub test may both ask for it.
    with open(target.with_name(f".{target.name}.lock"), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if not (target / STAMP).is_file():
            _build(target, lock, log)
    install_submit_tool(target)
    return target


def _build(target: Path, lock: Path, log: Path | None) -> None:
    shutil.rmtree(target, ignore_errors=True)  # a build without its stamp is unfinished
    log = log or target.with_name(f"{target.name}.install.log")
    py = _python()
    env_python = str(target / "bin" / "python")
    uv = Path(sys.executable).parent / "uv"  # hackgap's own venv has uv (requirements.lock)
    install = (
        [str(uv), "pip", "install", "--python", env_python, "--compile-bytecode", "-q"]
        if uv.is_file()
        else [env_python, "-m", "pip", "install", "--no-cache-dir", "-q"]
    )
    steps = [[py, "-m", "venv", str(target)], [*install, "-r", str(lock)]]
    with open(log, "wb") as out:
        for cmd in steps:
            if subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                shutil.rmtree(target, ignore_errors=True)
                raise SingleUserError(
                    f"Building the team servers' Python environment failed; see {log} "
                    f"(e.g. `apt-get install python3.11-venv`, or a package index unreachable)."
                )
    for path in [target, *target.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o444 | (0o111 if path.is_dir() else 0))
    install_submit_tool(target)
    (target / STAMP).write_text(lock_hash(lock) + "\n", encoding="utf-8")


def install_submit_tool(target: Path) -> Path | None:
    """`hackgap-submit` in the environment's bin/, from judging/submit_tool.py when present."""
    if not SUBMIT_TOOL.is_file():
        return None
    script = target / "bin" / "hackgap-submit"
    body = SUBMIT_TOOL.read_text(encoding="utf-8")
    if body.startswith("#!"):
        body = body.split("\n", 1)[1]
    text = f"#!{target / 'bin' / 'python'}\n{body}"
    if not script.is_file() or script.read_text(encoding="utf-8") != text:
        tmp = script.with_name(".hackgap-submit.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o755)
        tmp.replace(script)
    return script


if __name__ == "__main__":  # scripts/bootstrap.sh hub
    print(ensure())
