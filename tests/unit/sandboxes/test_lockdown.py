"""Others lose every permission on the event's files; the way to the workspaces stays open."""

from __future__ import annotations

from sandboxes import layout
from sandboxes.lockdown import protect_event, unreachable_ancestor


def test_protect_event_strips_others_but_keeps_the_path_to_workspaces(tmp_path):
    event = tmp_path / "event"
    workdir = event / ".hackgap"
    (event / "sources").mkdir(parents=True)
    (event / "sources" / "brp.csv").write_text("bsn")
    (event / "event.yaml").write_text("name: x")
    for name in ("services", "prefect", "logs", "secure"):
        (workdir / name).mkdir(parents=True)
        (workdir / name).chmod(0o755)
    (workdir / "prefect" / "prefect.db").write_text("db")
    protect_event(event, workdir)
    mode = lambda p: p.stat().st_mode & 0o777  # noqa: E731
    assert mode(event / "sources") & 0o077 == 0
    assert mode(event / "event.yaml") & 0o077 == 0
    for name in ("services", "prefect", "logs", "secure"):
        assert mode(workdir / name) & 0o077 == 0, name
    assert mode(event) == mode(workdir) == mode(layout.teams_root(workdir)) == 0o711


def test_unreachable_ancestor_names_the_closed_directory():
    import shutil
    import tempfile
    from pathlib import Path

    base = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        base.chmod(0o711)
        closed = base / "closed"
        (closed / "a" / "b").mkdir(parents=True)
        closed.chmod(0o700)
        assert unreachable_ancestor(closed / "a" / "b") == closed
        closed.chmod(0o711)
        assert unreachable_ancestor(closed / "a" / "b") is None
    finally:
        shutil.rmtree(base, ignore_errors=True)
