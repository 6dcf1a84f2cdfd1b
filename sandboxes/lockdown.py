"""Keep team users out of the event's secure parts on the local backend (root only).

Extracts arrive as 644 files in 755 directories and the Prefect database, logs and result
storage under the workdir are 644: any team user could read the register. Team servers
run as other Unix users, so we take every permission for "others" away from everything in
the event directory and the workdir, except the path down to the team workspaces, which
others may traverse (x) but not list (r): event dir and workdir 0711, teams root 0711,
each workspace 0700 owned by its team user.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sandboxes import layout


def _strip_others(path: Path) -> None:
    try:
        mode = path.lstat().st_mode
    except OSError:
        return
    if stat.S_ISLNK(mode):
        return
    if mode & 0o077:
        path.chmod(stat.S_IMODE(mode) & ~0o077)


def _traversable(path: Path) -> None:
    """rwx for the owner, x only for group and others (walk through, never list)."""
    path.chmod(0o711)


def protect_event(event_root: Path, workdir: Path) -> list[Path]:
    """Make everything of the event unreadable to others, except the way to the workspaces."""
    event_root, workdir = Path(event_root).resolve(), Path(workdir).resolve()
    teams = layout.teams_root(workdir)
    keep = {teams}
    # the chain of directories from the event root down to the teams root stays traversable
    chain = [workdir, *[p for p in workdir.parents if event_root in (p, *p.parents)]]
    if event_root not in (workdir, *workdir.parents):
        chain = [workdir]
        _strip_children(event_root, keep | {workdir})
        _traversable(event_root)
    changed = []
    for directory in chain:
        _strip_children(directory, keep | set(chain))
        _traversable(directory)
        changed.append(directory)
    teams.mkdir(parents=True, exist_ok=True)
    _traversable(teams)
    return changed


def _strip_children(directory: Path, keep: set[Path]) -> None:
    try:
        entries = list(directory.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.resolve() in keep:
            continue
        _strip_others(entry)


def world_readable(path: Path) -> bool:
    """True when others can list or read `path` (for `hackgap event validate`)."""
    return bool(os.stat(path).st_mode & stat.S_IROTH)


def unreachable_ancestor(path: Path) -> Path | None:
    """The first directory above `path` that others cannot traverse (team users then cannot
    reach their workspace), or None."""
    for parent in reversed(Path(path).resolve().parents):
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            return parent
    return None
