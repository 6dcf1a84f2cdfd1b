"""The image's base tarball: the team environment moved to /opt/venv without a stale path."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from sandboxes import image


def _fake_env(root: Path) -> Path:
    """A venv-shaped directory as sandboxes.singleuser leaves it."""
    env = root / "singleuser-abc123"
    (env / "bin").mkdir(parents=True)
    (env / "lib" / "python3.11" / "site-packages" / "pkg").mkdir(parents=True)
    (env / "lib" / "python3.11" / "site-packages" / "pkg" / "__init__.py").write_text("x = 1\n")
    (env / "lib64").symlink_to("lib")
    (env / "pyvenv.cfg").write_text(
        f"home = /usr/bin\nversion = 3.11.2\ncommand = /usr/bin/python3.11 -m venv {env}\n"
    )
    (env / "bin" / "python3.11").symlink_to("/usr/bin/python3.11")
    (env / "bin" / "python").symlink_to("python3.11")
    tool = env / "bin" / "jupyterhub-singleuser"
    tool.write_text(f"#!{env}/bin/python\nimport sys\n")
    tool.chmod(0o755)
    (env / ".hackgap-complete").write_text("abc123\n")
    return env


def _rootfs(path: Path) -> Path:
    with tarfile.open(path, "w") as tar:
        for name in ("./", "./opt/", "./usr/"):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        data = b"bookworm\n"
        info = tarfile.TarInfo("./etc/debian_version")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_base_tarball_holds_the_env_at_opt_venv_with_its_paths_rewritten(tmp_path):
    env = _fake_env(tmp_path / "opt-hackgap")
    dest = tmp_path / "base.tar"
    image._base_tarball(dest, _rootfs(tmp_path / "rootfs.tar"), env)

    with tarfile.open(dest) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        by_name = {m.name: m for m in members}
        assert len(names) == len(set(names)), "docker import refuses a path twice"
        assert "./etc/debian_version" in names  # the rootfs is kept
        assert "./opt/venv/lib/python3.11/site-packages/pkg/__init__.py" in names
        assert by_name["./opt/venv/lib64"].linkname == "lib"
        assert by_name["./opt/venv/bin/python3.11"].linkname == "/usr/bin/python3.11"
        assert by_name["./opt/venv/bin/python"].linkname == "python3.11"
        tool = by_name["./opt/venv/bin/jupyterhub-singleuser"]
        assert tool.mode & 0o111 and tool.uid == 0
        script = tar.extractfile(tool).read().decode()
        cfg = tar.extractfile("./opt/venv/pyvenv.cfg").read().decode()
        assert not [n for n in names if ".hackgap-complete" in n or "singleuser-abc123" in n]
    assert script.startswith("#!/opt/venv/bin/python\n")
    assert "venv /opt/venv" in cfg and str(env) not in cfg
    assert not dest.with_suffix(".partial").exists()


def test_a_venv_of_another_python_points_at_debians_python(tmp_path):
    env = _fake_env(tmp_path)
    (env / "bin" / "python3.11").unlink()
    (env / "bin" / "python3.11").symlink_to("/root/.pyenv/versions/3.11.7/bin/python3.11")
    stage = tmp_path / "stage"
    image._relocate(env, stage)
    assert os.readlink(stage / "bin" / "python3.11") == "/usr/bin/python3.11"


def test_team_env_of_another_python_version_is_refused(tmp_path, monkeypatch):
    from sandboxes import singleuser

    env = _fake_env(tmp_path)
    (env / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.12.1\n")
    monkeypatch.setattr(singleuser, "is_ready", lambda: True)
    monkeypatch.setattr(singleuser, "ensure", lambda: env)
    with pytest.raises(image.ImageError, match=r"is not Python 3\.11"):
        image.team_env(say=lambda m: None)
