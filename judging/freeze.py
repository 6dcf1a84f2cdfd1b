"""Freeze: take each team's `submission/` as it is at the deadline, once.

`snapshot` reads a submission folder (which notebook, every file's sha256, the submission
hash, or the one sentence saying what is wrong). `freeze_team` keeps a private copy with a
`frozen.json` record; after that the record never changes except to note a later change,
which is refused (the frozen copy counts). The flow publishes the copy to the submissions
bucket and writes the audit log; `make_read_only` takes write access away from the team.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from judging import submit_tool
from judging.errors import ReviewError

FROZEN_DIR = "frozen"
FROZEN_RECORD = "frozen.json"
MAX_FILES = 200


@dataclass
class Snapshot:
    """A submission folder read at one moment: status ok | missing | invalid."""

    team: str
    status: str
    message: str = ""
    notebook: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    sha256: str | None = None
    submitted_at: str | None = None


@dataclass
class FreezeOutcome:
    """What one freeze did: frozen | unchanged | refused (a later change), plus the record."""

    team: str
    action: str
    record: dict
    message: str = ""


def snapshot(folder: Path, team: str) -> Snapshot:
    """Read `folder` (a team's submission/) without changing it."""
    folder = Path(folder)
    if not folder.is_dir() or not any(folder.glob("*.ipynb")):
        return Snapshot(
            team,
            "missing",
            f"team {team} submitted nothing: there is no notebook in its submission/ folder.",
        )
    files = submit_tool.submission_files(folder)[:MAX_FILES]
    digests = submit_tool.files_digest(folder, files)
    snap = Snapshot(team, "ok", files=digests, sha256=submit_tool.submission_hash(digests))
    record = folder / submit_tool.SUBMITTED_RECORD
    if record.is_file():
        try:
            snap.submitted_at = json.loads(record.read_text(encoding="utf-8")).get("submitted_at")
        except (ValueError, OSError, AttributeError):
            snap.submitted_at = None
    try:
        notebook = submit_tool.find_notebook(folder)
        snap.notebook = notebook.name
        submit_tool.check_notebook(notebook)
    except submit_tool.SubmitError as exc:
        snap.status, snap.message = "invalid", f"team {team}: {exc}"
    return snap


def read_record(team_dir: Path) -> dict | None:
    path = Path(team_dir) / FROZEN_RECORD
    if not path.is_file() or not (Path(team_dir) / FROZEN_DIR).is_dir():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def write_json(path: Path, data: dict) -> None:
    """Write JSON via a temporary name, so readers see the old or the new file, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
    os.replace(tmp, path)


def freeze_team(
    snap: Snapshot, folder: Path, team_dir: Path, now: dt.datetime | None = None
) -> FreezeOutcome:
    """Copy the submission into team_dir/frozen once; later calls compare hashes only."""
    team_dir = Path(team_dir)
    existing = read_record(team_dir)
    if existing is not None:
        if existing.get("sha256") == snap.sha256:
            return FreezeOutcome(snap.team, "unchanged", existing)
        late = existing.setdefault("late_changes", [])
        seen = snap.sha256 or "deleted"
        if seen not in late:
            late.append(seen)
            write_json(team_dir / FROZEN_RECORD, existing)
        return FreezeOutcome(
            snap.team,
            "refused",
            existing,
            f"team {snap.team} changed its submission after the freeze (sha256 {seen[:12]} "
            f"instead of {str(existing.get('sha256'))[:12]}); the change is refused and the "
            "frozen copy counts.",
        )
    team_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(team_dir, 0o700)
    tmp = Path(tempfile.mkdtemp(prefix=".frozen-", dir=team_dir))
    for rel in snap.files:
        target = tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(folder) / rel, target)
    copied = submit_tool.files_digest(tmp, [tmp / rel for rel in snap.files])
    if copied != snap.files:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ReviewError(
            f"team {snap.team}'s submission changed while it was being frozen; run the freeze "
            "again."
        )
    target = team_dir / FROZEN_DIR
    if target.exists():
        shutil.rmtree(target)  # left by a freeze killed before its record was written
    tmp.rename(target)
    record = {
        **asdict(snap),
        "frozen_at": (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
    }
    write_json(team_dir / FROZEN_RECORD, record)
    return FreezeOutcome(snap.team, "frozen", record)


def make_read_only(folder: Path) -> None:
    """Take write access away: root owns it (when we are root) and nobody may write."""
    folder = Path(folder)
    if not folder.exists():
        return
    root = os.geteuid() == 0
    paths = [folder, *folder.rglob("*")]
    for path in paths:
        if path.is_symlink():
            continue
        if root:
            os.chown(path, 0, os.stat(path).st_gid)
        os.chmod(path, 0o555 if path.is_dir() else 0o444)


def deadline_reached(deadline: dt.datetime, now: dt.datetime | None = None) -> bool:
    """Naive deadlines (event.yaml without a zone) are local time."""
    if deadline.tzinfo is None:
        return (now or dt.datetime.now()).replace(tzinfo=None) >= deadline
    return (now or dt.datetime.now(dt.UTC)) >= deadline
