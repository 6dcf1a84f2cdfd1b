"""The docker backend refuses bad settings with one sentence and leaves nothing half-made."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest

from sandboxes import docker as sd

pytestmark = pytest.mark.docker


def _sandbox(image: str, **overrides) -> SimpleNamespace:
    settings = dict(image=image, cpu_limit=1.0, mem_limit="1G", start_timeout=60, network=None)
    settings.update(overrides)
    return SimpleNamespace(**settings)


def _leftovers(client, event_name: str) -> list[str]:
    label = {"label": [f"{sd.LABEL_EVENT}={event_name}"]}
    found = [c.name for c in client.containers.list(all=True, filters=label)]
    found += [v.name for v in client.volumes.list(filters=label)]
    found += [n.name for n in client.networks.list(filters=label)]
    found += sd._rules_with_comment(f"hackgap:hackgap-{event_name}")
    return found


def _one_sentence(message: str) -> None:
    assert message.count(". ") == 0 and message.endswith("."), message
    assert "\n" not in message and "Traceback" not in message


def test_no_engine_and_not_root(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix:///tmp/no-engine-{uuid.uuid4().hex}.sock")
    monkeypatch.setattr(sd.os, "geteuid", lambda: 1000)
    with pytest.raises(sd.SandboxError) as info:
        sd.spawner_config("ev", _sandbox("hackgap/sandbox:latest"), hub_port=8081)
    message = str(info.value)
    _one_sentence(message)
    assert "no Docker engine answers" in message and "not running as root" in message


def test_no_engine_as_root_names_the_bootstrap_step(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix:///tmp/no-engine-{uuid.uuid4().hex}.sock")
    monkeypatch.setattr(sd.os, "geteuid", lambda: 0)
    with pytest.raises(sd.SandboxError, match=r"scripts/bootstrap\.sh docker") as info:
        sd.engine()
    _one_sentence(str(info.value))


def test_image_not_built(docker_engine):
    event_name = "hgt-" + uuid.uuid4().hex[:6]
    missing = f"hackgap/sandbox:never-built-{uuid.uuid4().hex[:8]}"
    with pytest.raises(sd.SandboxError) as info:
        sd.spawner_config(event_name, _sandbox(missing), hub_port=8081)
    _one_sentence(str(info.value))
    assert missing in str(info.value) and "hackgap sandbox-image build" in str(info.value)
    with pytest.raises(sd.SandboxError):
        sd.run_team_container(docker_engine, event_name, _sandbox(missing), "alpha")
    assert _leftovers(docker_engine, event_name) == []


def test_mem_limit_below_what_jupyterlab_needs(docker_engine, sandbox_image):
    event_name = "hgt-" + uuid.uuid4().hex[:6]
    with pytest.raises(sd.SandboxError) as info:
        sd.spawner_config(event_name, _sandbox(sandbox_image, mem_limit="128M"), hub_port=8081)
    _one_sentence(str(info.value))
    assert "sandbox.mem_limit 128M" in str(info.value)
    with pytest.raises(sd.SandboxError):
        sd.run_team_container(
            docker_engine, event_name, _sandbox(sandbox_image, mem_limit="128M"), "alpha"
        )
    assert _leftovers(docker_engine, event_name) == []


def test_network_name_taken_by_something_else(docker_engine, sandbox_image):
    event_name = "hgt-" + uuid.uuid4().hex[:6]
    taken = f"someone-elses-{uuid.uuid4().hex[:6]}"
    other = docker_engine.networks.create(taken, driver="bridge", internal=True)
    try:
        sandbox = _sandbox(sandbox_image, network=taken)
        with pytest.raises(sd.SandboxError) as info:
            sd.spawner_config(event_name, sandbox, hub_port=8081)
        _one_sentence(str(info.value))
        assert f"'{taken}' exists and was not made by hackgap" in str(info.value)
        with pytest.raises(sd.SandboxError):
            sd.run_team_container(docker_engine, event_name, sandbox, "alpha")
        assert _leftovers(docker_engine, event_name) == []
        assert sd._rules_with_comment(f"hackgap:{taken}") == []
        other.reload()
        assert other.attrs.get("Containers") in ({}, None)  # nothing was attached to it
    finally:
        other.remove()


def test_image_build_without_engine_is_one_sentence_and_exit_2(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    run = subprocess.run(
        [sys.executable, "-m", "flows.cli", "sandbox-image", "build"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2
    message = run.stderr.strip().removeprefix("error: ")
    _one_sentence(message)
    assert "no Docker engine answers" in message and "Traceback" not in run.stderr
