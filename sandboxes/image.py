"""The team sandbox image, built without a registry.

No container registry is reachable from the machines hackgap runs on, so the image is made
from parts the host can get: a Debian base from `debootstrap` (imported with `docker
import`), Python packages from a local wheelhouse the host fills with `pip download`, and
`docker build --network none` on `infra/sandbox/Dockerfile`. The image is tagged with the
hash of its inputs (recipe, Dockerfile, lock, hackgap-submit), so a second build with the
same inputs does nothing; the debootstrap rootfs and the wheels are cached on disk by their
own inputs, so even after the engine lost its images a rebuild downloads nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
PYTHON_VERSION = "3.11"  # bookworm's python3
GLIBC_MINOR = 36  # bookworm's glibc 2.36: every manylinux tag up to it is acceptable
RECIPE_VERSION = "1"  # bump when this module changes what goes into the image

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
    """Where the rootfs tarball and the wheelhouse are kept between builds."""
    env = os.environ.get("HACKGAP_CACHE_DIR")
    base = Path(env) if env else Path(os.path.expanduser("~/.cache/hackgap"))
    return base / "sandbox-image"


def _sha(parts: list[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def base_inputs_hash() -> str:
    return _sha([SUITE.encode(), b"minbase", " ".join(BASE_PACKAGES).encode()])


def base_tag() -> str:
    return f"{BASE_REPO}:{base_inputs_hash()[:16]}"


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


# -- base: debootstrap + docker import -------------------------------------------------------


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
    if os.geteuid() != 0:
        raise ImageError(
            "Building the sandbox base image needs root (debootstrap); run "
            "`hackgap sandbox-image build` as root once."
        )
    if not shutil.which("debootstrap"):
        raise ImageError(
            "debootstrap is not installed; install it (as root: `scripts/bootstrap.sh docker`)."
        )
    mirror = _debian_mirror()
    say(f"debootstrap {SUITE} from {mirror} (about 75 s)")
    with tempfile.TemporaryDirectory(prefix="hackgap-rootfs-", dir=dest.parent) as tmp:
        rootfs = Path(tmp) / "rootfs"
        cmd = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            SUITE,
            str(rootfs),
            mirror,
        ]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0:
            tail = (run.stdout + run.stderr).strip().splitlines()[-3:]
            raise ImageError(
                f"debootstrap of {SUITE} from {mirror} failed ({' / '.join(tail)}); check that "
                "the Debian mirror answers or set HACKGAP_DEBIAN_MIRROR."
            )
        for junk in ("var/lib/apt/lists", "var/cache/apt/archives", "var/log"):
            for child in (rootfs / junk).glob("*"):
                if child.is_file():
                    child.unlink()
        partial = dest.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(rootfs), "-czf", str(partial), "."], check=True)
        partial.rename(dest)


def ensure_base(client, say: Progress = print) -> str:
    """The debootstrap base image, imported from the cached rootfs tarball when needed."""
    tag = base_tag()
    if image_exists(client, tag):
        return tag
    tarball = cache_dir() / f"rootfs-{base_inputs_hash()[:16]}.tar.gz"
    tarball.parent.mkdir(parents=True, exist_ok=True)
    if not tarball.is_file():
        _make_rootfs_tarball(tarball, say)
    say(f"docker import {tarball.name} as {tag}")
    repo, _, version = tag.partition(":")
    with open(tarball, "rb") as fh:
        client.api.import_image_from_data(fh.read(), repository=repo, tag=version)
    if not image_exists(client, tag):
        raise ImageError(f"docker import of {tarball} did not produce {tag}; delete the tarball.")
    return tag


# -- wheelhouse: pip download for the container's platform ------------------------------------


def wheelhouse() -> Path:
    return cache_dir() / "wheelhouse"


def _platform_args() -> list[str]:
    # Every manylinux tag up to the container's glibc, else pip picks older wheels.
    args = ["--platform", "manylinux2014_x86_64"]
    for minor in range(17, GLIBC_MINOR + 1):
        args += ["--platform", f"manylinux_2_{minor}_x86_64"]
    return args


def _wheels_for_lock(directory: Path) -> dict[str, Path]:
    """The wheel files in `directory` that match a pin of the lock, by normalised name."""
    pins = locked_requirements()
    found = {}
    for wheel in directory.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        if pins.get(_norm(name)) == version:
            found[_norm(name)] = wheel
    return found


def ensure_wheelhouse(say: Progress = print) -> dict[str, Path]:
    """Download the lock's wheels for the container (cp311, manylinux x86_64) once."""
    house = wheelhouse()
    house.mkdir(parents=True, exist_ok=True)
    pins = locked_requirements()
    have = _wheels_for_lock(house)
    if set(have) >= set(pins):
        return have
    say(f"pip download {len(pins) - len(have)} wheels into {house}")
    cmd = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
        "--only-binary=:all:", "--python-version", PYTHON_VERSION,
        "--implementation", "cp", "--abi", f"cp{PYTHON_VERSION.replace('.', '')}",
        *_platform_args(), "-d", str(house), "-r", str(LOCK),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"}
    run = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if run.returncode != 0:
        tail = run.stderr.strip().splitlines()[-2:]
        raise ImageError(
            f"pip download for the sandbox image failed ({' / '.join(tail)}); check that the "
            f"package index answers and that every pin in {LOCK} has a cp311 manylinux wheel."
        )
    have = _wheels_for_lock(house)
    missing = sorted(set(pins) - set(have))
    if missing:
        raise ImageError(
            f"The wheelhouse {house} lacks {', '.join(missing)} after pip download; delete it "
            "and build again."
        )
    return have


# -- build ------------------------------------------------------------------------------------


def _context(directory: Path, wheels: dict[str, Path]) -> None:
    shutil.copy2(DOCKERFILE, directory / "Dockerfile")
    shutil.copy2(LOCK, directory / "requirements.lock")
    (directory / "wheels").mkdir()
    for wheel in wheels.values():
        target = directory / "wheels" / wheel.name
        try:
            os.link(wheel, target)
        except OSError:
            shutil.copy2(wheel, target)
    (directory / "bin").mkdir()
    script = _submit_script()
    if script is not None:
        tool = directory / "bin" / "hackgap-submit"
        tool.write_bytes(script)
        tool.chmod(0o755)


def build(force: bool = False, say: Progress = print) -> BuildResult:
    """Build the sandbox image unless an image with the same inputs exists; tag it :latest."""
    started = time.monotonic()
    client = _client()
    tag = image_tag()
    latest = f"{IMAGE_REPO}:latest"
    if image_exists(client, tag) and not force:
        client.images.get(tag).tag(IMAGE_REPO, "latest")
        return BuildResult(tag, False, time.monotonic() - started)
    base = ensure_base(client, say)
    wheels = ensure_wheelhouse(say)
    say(f"docker build --network none -> {tag}")
    with tempfile.TemporaryDirectory(prefix="hackgap-image-", dir=cache_dir()) as tmp:
        _context(Path(tmp), wheels)
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
