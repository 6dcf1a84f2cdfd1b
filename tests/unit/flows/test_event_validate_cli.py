"""`hackgap event validate` through the real entry point: messages print verbatim, and the
organiser hears when other users on the machine can read the event's secure parts."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flows import cli
from flows.event import render_event_yaml

SOURCE_FILES = ["brp_personen.csv", "kwb_2023_statline.csv", "pc6hnr_2023_gwb.csv"]
SOURCE_FILES += ["duo_onderwijs.csv"]


def _event_dir(tmp_path: Path, data: dict | None = None) -> Path:
    root = tmp_path / "event"
    (root / "sources").mkdir(parents=True)
    for name in SOURCE_FILES:
        (root / "sources" / name).write_text("x\n")
    text = yaml.safe_dump(data) if data else render_event_yaml("test-event")
    (root / "event.yaml").write_text(text)
    return root


def test_a_pattern_in_an_error_prints_with_its_brackets(tmp_path):
    data = yaml.safe_load(render_event_yaml("test-event"))
    data["teams"][1]["name"] = "Team Zuid"
    root = _event_dir(tmp_path, data)
    res = subprocess.run(
        [sys.executable, "-m", "flows.cli", "event", "validate", str(root)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "80", "HOME": str(Path.home())},
    )
    assert res.returncode == 2
    assert res.stderr == (
        "error: teams.1.name: 'Team Zuid' does not match the required pattern "
        "^[a-z0-9][a-z0-9-]{0,29}$; fix it.\n"
    )


def _validate(monkeypatch, capsys, root: Path) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["hackgap", "event", "validate", str(root)])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    out, err = capsys.readouterr()
    return exc.value.code or 0, out, err


def test_world_readable_event_parts_are_named_with_their_fix(monkeypatch, capsys, tmp_path):
    root = _event_dir(tmp_path)
    workdir = root / ".hackgap"
    workdir.mkdir()
    for path in (root, root / "sources", workdir):
        path.chmod(0o755)
    code, out, err = _validate(monkeypatch, capsys, root)
    assert code == 0 and out.startswith("ok test-event:")
    warnings = err.splitlines()
    assert warnings == [
        f"warning: {root} can be read by every user on this machine (mode 0755); "
        f"run `chmod o-r {root}`.",
        f"warning: {root / 'sources'} can be read by every user on this machine (mode 0755); "
        f"run `chmod -R o-rwx {root / 'sources'}`.",
        f"warning: {workdir} can be read by every user on this machine (mode 0755); "
        f"run `chmod o-r {workdir}`.",
    ]
    # the fixes as printed are enough: afterwards validate is silent
    for line in warnings:
        subprocess.run(shlex.split(line.split("run `")[1].rstrip("`.")), check=True)
    assert (root / "sources").stat().st_mode & 0o777 == 0o750
    code, out, err = _validate(monkeypatch, capsys, root)
    assert code == 0 and err == ""


def test_a_private_event_gets_no_warning(monkeypatch, capsys, tmp_path):
    root = _event_dir(tmp_path)
    (root / ".hackgap").mkdir(mode=0o711)
    (root / ".hackgap").chmod(0o711)  # traversable for team workspaces, not listable
    root.chmod(0o711)
    (root / "sources").chmod(0o700)
    code, _, err = _validate(monkeypatch, capsys, root)
    assert code == 0 and err == ""


def test_init_prints_a_path_with_brackets_verbatim(monkeypatch, capsys, tmp_path):
    target = tmp_path / "hack[bold]"
    monkeypatch.setattr(sys, "argv", ["hackgap", "init", str(target)])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    out, _ = capsys.readouterr()
    assert (exc.value.code or 0) == 0
    assert f"Created {target / 'event.yaml'}." in out
    assert f"hackgap event validate {target}`" in out
