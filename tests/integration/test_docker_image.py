"""The sandbox image: built offline from the lock, cached by its inputs, what a team needs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sandboxes import docker as sd
from sandboxes import image

pytestmark = pytest.mark.docker


def test_image_carries_its_inputs_hash_and_rebuild_is_a_no_op(docker_engine, sandbox_image):
    assert sandbox_image == image.image_tag()
    built = docker_engine.images.get(sandbox_image)
    assert built.labels[image.LABEL] == image.inputs_hash()
    assert docker_engine.images.get(f"{image.IMAGE_REPO}:latest").id == built.id
    run = subprocess.run(
        [sys.executable, "-m", "flows.cli", "sandbox-image", "build"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert f"up to date: {sandbox_image}" in run.stdout
    status = subprocess.run(
        [sys.executable, "-m", "flows.cli", "sandbox-image", "status", sandbox_image],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "current" in status.stdout and "older" not in status.stdout


def test_image_has_the_locked_packages_and_runs_unprivileged(docker_engine, sandbox_image):
    pins = image.locked_requirements()
    code = (
        "import os, sys, importlib.metadata as md\n"
        "import jupyterlab, jupyter_collaboration, pandas, pyarrow, matplotlib, statsmodels\n"
        "import sklearn, acro, nbformat, nbclient, ipykernel\n"
        "names = ['jupyterhub', 'jupyterlab', 'pandas', 'acro', 'scikit-learn']\n"
        "print(os.getuid(), sys.version.split()[0])\n"
        "print(' '.join(f'{n}=={md.version(n)}' for n in names))\n"
        "print(os.path.exists('/usr/local/bin/hackgap-submit'))\n"
    )
    out = docker_engine.containers.run(
        sandbox_image, ["python", "-c", code], network_mode="none", remove=True
    ).decode()
    first, versions, submit = out.strip().splitlines()
    uid, python = first.split()
    assert uid == str(sd.SANDBOX_UID) and python.startswith("3.11.")
    for pin in versions.split():
        name, version = pin.split("==")
        assert pins[image._norm(name)] == version
    assert submit == str(image.SUBMIT_TOOL.is_file())


def test_hackgap_submit_runs_in_the_image(docker_engine, sandbox_image):
    if not image.SUBMIT_TOOL.is_file():
        pytest.fail("judging/submit_tool.py is missing; the image cannot ship hackgap-submit")
    out = docker_engine.containers.run(
        sandbox_image, ["hackgap-submit", "--help"], network_mode="none", remove=True,
        stderr=True,
    ).decode()  # fmt: skip
    assert "submission" in out.lower()


def test_services_status_shows_engine_and_image(docker_engine, sandbox_image, tmp_path):
    from tests.conftest import make_hub_event

    sandbox = f"sandbox:\n  backend: docker\n  image: {sandbox_image}\n"
    event = make_hub_event(tmp_path / "event", {"alpha": ["ann"]}, sandbox=sandbox)
    run = subprocess.run(
        [sys.executable, "-m", "flows.cli", "services", "status", str(event)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    version = docker_engine.version()["Version"]
    assert f"Docker {version}" in run.stdout, run.stdout + run.stderr
    assert f"{sandbox_image}" in run.stdout and "current" in run.stdout
    missing = "hackgap/sandbox:never-built"
    (event / "event.yaml").write_text(
        (event / "event.yaml").read_text().replace(sandbox_image, missing)
    )
    run = subprocess.run(
        [sys.executable, "-m", "flows.cli", "services", "status", str(event)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert f"{missing} not built (run `hackgap sandbox-image build`)" in run.stdout
