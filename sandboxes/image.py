"""The team sandbox image, built without a registry.

No container registry is reachable from the machines hackgap runs on, so the image is made
from parts the host already has or can get: a Debian base from `mmdebstrap` (imported with
`docker import`) and the team servers' Python environment that the local backend uses
(`sandboxes.singleuser`, built once per lock from Debian's python3.11), copied into the image
at /opt/venv by `docker build --network none` on `infra/sandbox/Dockerfile`. So the lock is
downloaded and installed once per machine, not twice. The image is tagged with the hash of its
inputs (recipe, Dockerfile, lock, hackgap-submit), so a second build with the same inputs does
nothing; the rootfs tarball is cached on disk by its own inputs, so even after the engine lost
its images a rebuild downloads nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SANDBOX_DIR = REPO_ROOT / "infra" / "sandbox"
DOCKERFILE = SANDBOX_DIR / "Dockerfile"
LOCK = SANDBOX_DIR / "requirements.lock"
SUBMIT_TOOL = REPO_ROOT / "judging" / "submit_tool.py"

IMAGE_REPO = "hackgap/sandbox"
BASE_REPO = "hackgap/sandbox-base"
LABEL = "org.hackgap.inputs"

SUITE = "bookworm"
BASE_PACKAGES = ("python3", "ca-certificates")
PYTHON_VERSION = "3.11"  # bookworm's python3, the same as the host's /usr/bin/python3.11
VENV = "/opt/venv"  # where the team environment sits in the image
RECIPE_VERSION = "2"  # bump when this module changes what goes into the image

Progress = Callable[[str], None]


class ImageError(Exception):
    """The sandbox image cannot be built or found, for a reason the organiser can fix."""

    hackgap_user_error = True


@dataclass(frozen=True)
class BuildResult:
    tag: str
    built: bool  # False: the tag already existed
    seconds: float


def cache_dir() -> Path:
    """Where the rootfs tarball is kept between builds (and the build context, briefly)."""
    env = os.environ.get("HACKGAP_CACHE_DIR")
    base = Path(env) if env else Path(os.path.expanduser("~/.cache/hackgap"))
    return base / "sandbox-image"


def _sha(parts: list[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def base_inputs_hash() -> str:
    return _sha([SUITE.encode(), b"mmdebstrap minbase nodoc", " ".join(BASE_PACKAGES).encode()])


def base_tag() -> str:
    """The imported base: the Debian rootfs with the team environment at /opt/venv."""
    if not LOCK.is_file():
        raise ImageError(f"{LOCK} is missing; restore it from the repository.")
    digest = _sha([RECIPE_VERSION.encode(), base_inputs_hash().encode(), LOCK.read_bytes()])
    return f"{BASE_REPO}:{digest[:16]}"


def _submit_script() -> bytes | None:
    """hackgap-submit as an executable script for the image, when the judging room ships it."""
    if not SUBMIT_TOOL.is_file():
        return None
    return b"#!/opt/venv/bin/python\n" + SUBMIT_TOOL.read_bytes()


def inputs_hash() -> str:
    """The hash of everything that goes into the image; its tag."""
    if not LOCK.is_file():
        raise ImageError(f"{LOCK} is missing; restore it from the repository.")
    return _sha(
        [
            RECIPE_VERSION.encode(),
            base_inputs_hash().encode(),
            DOCKERFILE.read_bytes(),
            LOCK.read_bytes(),
            _submit_script() or b"",
        ]
    )


def image_tag() -> str:
    return f"{IMAGE_REPO}:{inputs_hash()[:16]}"


def locked_requirements() -> dict[str, str]:
    """name -> version from the sandbox lock (names normalised as in wheel file names)."""
    pins = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[_norm(name)] = version.strip()
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name.strip()).lower()


# -- engine ---------------------------------------------------------------------------------


def _client():
    """The engine (same sentence as the docker backend's when none answers), slow calls allowed."""
    from sandboxes.docker import engine

    client = engine(need="The sandbox image is built by Docker")
    client.api.timeout = 600  # a build streams for minutes
    return client


def image_exists(client, ref: str) -> bool:
    import docker

    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


# -- base: mmdebstrap + docker import --------------------------------------------------------


def _debian_mirror() -> str:
    if os.environ.get("HACKGAP_DEBIAN_MIRROR"):
        return os.environ["HACKGAP_DEBIAN_MIRROR"]
    for path in (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")):
        try:
            text = path.read_text()
        except OSError:
            continue
        match = re.search(r"^URIs:\s*(\S+)", text, re.M) or re.search(
            r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+", text, re.M
        )
        if match:
            return match.group(1)
    return "http://deb.debian.org/debian"


def _make_rootfs_tarball(dest: Path, say: Progress) -> None:
    """A minimal bookworm with python3, as a tar (mmdebstrap: one apt download, one dpkg run)."""
    if os.geteuid() != 0:
        raise ImageError(
            "Building the sandbox base image needs root (mmdebstrap); run "
            "`hackgap sandbox-image build` as root once."
        )
    if not shutil.which("mmdebstrap"):
        raise ImageError(
            "mmdebstrap is not installed; install it (as root: `scripts/bootstrap.sh docker`)."
        )
    mirror = _debian_mirror()
    say(f"mmdebstrap {SUITE} from {mirror} (1-3 minutes, mostly the mirror)")
    partial = dest.with_suffix(".partial.tar")
    cmd = [
        "mmdebstrap", "--quiet", "--variant=minbase", "--mode=root",
        f"--include={','.join(BASE_PACKAGES)}",
        *[f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "info")],
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        SUITE, str(partial), mirror,
    ]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        partial.unlink(missing_ok=True)
        tail = (run.stdout + run.stderr).strip().splitlines()[-3:]
        raise ImageError(
            f"mmdebstrap of {SUITE} from {mirror} failed ({' / '.join(tail)}); check that "
            "the Debian mirror answers or set HACKGAP_DEBIAN_MIRROR."
        )
    partial.rename(dest)


# -- the team environment: built once on the host, copied into the base -----------------------


def team_env(say: Progress = print) -> Path:
    """The local backend's team environment (sandboxes.singleuser), built if missing.

    It is a venv of Debian's python3.11 holding exactly the lock; the image's python3 is the
    same Debian 3.11, so the environment runs there unchanged once its paths say /opt/venv.
    """
    from sandboxes import singleuser

    if not singleuser.is_ready():
        say("building the team Python environment first (sandboxes.singleuser)")
    env = singleuser.ensure()
    cfg = (env / "pyvenv.cfg").read_text(encoding="utf-8")
    if not re.search(rf"^version\s*=\s*{re.escape(PYTHON_VERSION)}\.", cfg, re.M):
        raise ImageError(
            f"The team environment {env} is not Python {PYTHON_VERSION}, the image's Python; "
            f"install Debian's python{PYTHON_VERSION} (`scripts/bootstrap.sh hub` as root) and "
            "build again."
        )
    return env


def _relocate(env: Path, stage: Path) -> None:
    """bin/ and pyvenv.cfg of `env` under `stage`, with the env's own path replaced by VENV."""
    (stage / "bin").mkdir(parents=True)
    cfg = (env / "pyvenv.cfg").read_text(encoding="utf-8")
    (stage / "pyvenv.cfg").write_text(cfg.replace(str(env), VENV), encoding="utf-8")
    for path in (env / "bin").iterdir():
        target = stage / "bin" / path.name
        if path.is_symlink():
            link = os.readlink(path)
            if os.path.isabs(link) and not link.startswith("/usr/"):
                link = f"/usr/bin/python{PYTHON_VERSION}"  # a venv of a non-Debian Python
            target.symlink_to(link)
        else:
            target.write_bytes(path.read_bytes().replace(str(env).encode(), VENV.encode()))
            target.chmod(path.stat().st_mode & 0o7777)


def _base_tarball(dest: Path, rootfs: Path, env: Path) -> None:
    """The rootfs tar with the team environment appended at /opt/venv (GNU tar, one pass)."""
    partial = dest.with_suffix(".partial")
    shutil.copyfile(rootfs, partial)
    with tempfile.TemporaryDirectory(prefix="hackgap-venv-", dir=dest.parent) as tmp:
        stage = Path(tmp)
        _relocate(env, stage / VENV.lstrip("/"))
        name = env.name
        # docker import refuses a path twice, so no directory comes from the stage twice
        cmd = [
            "tar", "-rf", str(partial), "--owner=0", "--group=0", "--numeric-owner",
            "-C", str(env.parent), f"--exclude={name}/bin", f"--exclude={name}/pyvenv.cfg",
            f"--exclude={name}/.hackgap-complete", f"--transform=s,^{name},.{VENV},S", name,
            "-C", str(stage), f".{VENV}/pyvenv.cfg", f".{VENV}/bin",
        ]  # fmt: skip
        run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        partial.unlink(missing_ok=True)
        raise ImageError(f"Packing {env} for the sandbox image failed: {run.stderr.strip()}.")
    partial.rename(dest)


def ensure_base(client, say: Progress = print) -> str:
    """Debian + the team environment, imported as one layer when the engine lacks it."""
    tag = base_tag()
    if image_exists(client, tag):
        return tag
    env = team_env(say)
    rootfs = cache_dir() / f"rootfs-{base_inputs_hash()[:16]}.tar"
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    if not rootfs.is_file():
        _make_rootfs_tarball(rootfs, say)
    with tempfile.TemporaryDirectory(prefix="hackgap-base-", dir=cache_dir()) as tmp:
        tarball = Path(tmp) / "base.tar"
        say(f"docker import {rootfs.name} + {env} (at {VENV}) as {tag}")
        _base_tarball(tarball, rootfs, env)
        repo, _, version = tag.partition(":")
        with open(tarball, "rb") as fh:
            client.api.import_image_from_data(fh, repository=repo, tag=version)
    if not image_exists(client, tag):
        raise ImageError(f"docker import of {rootfs} and {env} did not produce {tag}.")
    return tag


def _context(directory: Path) -> None:
    shutil.copy2(DOCKERFILE, directory / "Dockerfile")
    (directory / "bin").mkdir()
    script = _submit_script()
    if script is not None:
        tool = directory / "bin" / "hackgap-submit"
        tool.write_bytes(script)
        tool.chmod(0o755)


# -- build ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    """One build at a time per cache dir (two test sessions may ask for the image at once)."""
    import fcntl

    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / "build.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def build(force: bool = False, say: Progress = print) -> BuildResult:
    """Build the sandbox image unless an image with the same inputs exists; tag it :latest."""
    started = time.monotonic()
    client = _client()
    tag = image_tag()
    latest = f"{IMAGE_REPO}:latest"
    if image_exists(client, tag) and not force:
        client.images.get(tag).tag(IMAGE_REPO, "latest")
        return BuildResult(tag, False, time.monotonic() - started)
    with _build_lock():
        if image_exists(client, tag) and not force:  # another process built it meanwhile
            client.images.get(tag).tag(IMAGE_REPO, "latest")
            return BuildResult(tag, False, time.monotonic() - started)
        base = ensure_base(client, say)
        say(f"docker build --network none -> {tag}")
        with tempfile.TemporaryDirectory(prefix="hackgap-image-", dir=cache_dir()) as tmp:
            _context(Path(tmp))
            log: list[str] = []
            error = None
            for chunk in client.api.build(
                path=tmp,
                tag=tag,
                network_mode="none",
                buildargs={"BASE": base},
                labels={LABEL: inputs_hash()},
                rm=True,
                forcerm=True,
                decode=True,
            ):
                if "stream" in chunk:
                    log.append(chunk["stream"].rstrip())
                if "error" in chunk:
                    error = chunk["error"].strip()
            if error or not image_exists(client, tag):
                tail = " / ".join(line for line in log[-4:] if line)
                raise ImageError(f"docker build of the sandbox image failed: {error or tail}.")
    client.images.get(tag).tag(IMAGE_REPO, "latest")
    _untag_older(client, tag, say)
    say(f"built {tag} (also {latest})")
    return BuildResult(tag, True, time.monotonic() - started)


def _untag_older(client, keep: str, say: Progress) -> None:
    """Drop the tags of earlier builds (their layers stay as long as the new image uses them)."""
    import docker

    for old in client.images.list(name=IMAGE_REPO, filters={"label": LABEL}):
        for ref in old.tags:
            if ref not in (keep, f"{IMAGE_REPO}:latest"):
                try:
                    client.images.remove(ref, noprune=False)
                    say(f"untagged {ref}")
                except docker.errors.APIError:
                    pass  # still used by a container: kept


def status(client, ref: str) -> str:
    """One line for `services status`: is the image the event names there, and is it current."""
    if not image_exists(client, ref):
        return f"{ref} not built (run `hackgap sandbox-image build`)"
    image = client.images.get(ref)
    size = image.attrs.get("Size", 0) / 2**20
    current = image.labels.get(LABEL) == inputs_hash()
    state = "current" if current else "older than infra/sandbox (rebuild to update)"
    return f"{ref} {image.short_id.removeprefix('sha256:')} {size:.0f} MiB, {state}"


def json_summary(result: BuildResult) -> str:
    return json.dumps({"tag": result.tag, "built": result.built, "seconds": result.seconds})
