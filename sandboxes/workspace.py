"""What a team's server starts with: briefs, starter notebooks, the twin (read-only), submission/.

    <workspace>/
      challenges/<id>/brief.md, starter.ipynb   rendered for the event (kept once written:
                                                 the team edits them)
      twin/twin.parquet, twin.csv, codebook.md   the latest released twin, owned by root and
                                                 read-only (0444 in a 0555 directory)
      twin/VERSION
      submission/outputs/                        empty; hackgap-submit freezes it

Nothing from the secure zone and no credentials: the only sources are the challenge packs
and the open bucket's released twin files.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from challenges.pack import Pack
from challenges.render import RenderContext, write_rendered
from sandboxes import layout

TWIN_FILES = ("twin.parquet", "twin.csv", "codebook.md")
VERSION_FILE = "VERSION"


def twin_version(workspace: Path) -> str | None:
    try:
        return (Path(workspace) / layout.TWIN_DIR / VERSION_FILE).read_text().strip()
    except OSError:
        return None


def fill(
    workspace: Path,
    *,
    packs: Iterable[Pack],
    context: RenderContext,
    twin_src: Path,
    twin_version_label: str,
    owner: tuple[int, int] | None = None,
) -> bool:
    """Create or refresh a workspace; True if anything changed. Idempotent.

    `owner` (uid, gid): the team's system user, who owns everything but twin/ (root only).
    """
    workspace = Path(workspace)
    changed = not workspace.is_dir()
    workspace.mkdir(parents=True, exist_ok=True)
    workspace.chmod(0o700)
    for pack in packs:
        out = workspace / layout.CHALLENGES_DIR / pack.id
        if not (out / "starter.ipynb").is_file():
            write_rendered(pack, out, context)
            changed = True
    outputs = layout.outputs_dir(workspace)
    if not outputs.is_dir():
        outputs.mkdir(parents=True)
        changed = True
    if twin_version(workspace) != twin_version_label:
        _copy_twin(workspace / layout.TWIN_DIR, twin_src, twin_version_label)
        changed = True
    if changed and owner is not None:
        _chown_tree(workspace, owner, skip=workspace / layout.TWIN_DIR)
    return changed


def _copy_twin(target: Path, source: Path, version: str) -> None:
    """Replace twin/ with the released files, read-only (write beside, then swap)."""
    tmp = target.with_name(f".{target.name}.new")
    if tmp.exists():
        _make_writable(tmp)
        shutil.rmtree(tmp)
    tmp.mkdir()
    for name in TWIN_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, tmp / name)
    (tmp / VERSION_FILE).write_text(version + "\n", encoding="utf-8")
    for path in tmp.iterdir():
        path.chmod(0o444)
    tmp.chmod(0o555)
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        _make_writable(target)
        target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(target)


def _make_writable(path: Path) -> None:
    path.chmod(0o755)


def _chown_tree(root: Path, owner: tuple[int, int], skip: Path) -> None:
    uid, gid = owner
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == skip:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path == skip:
                continue
            os.lchown(path, uid, gid)
    if skip.exists():
        os.chown(skip, 0, 0)


def has_notebook(workspace: Path) -> bool:
    """Whether submission/ holds a notebook (for `teams status`)."""
    try:
        return any(layout.submission_dir(workspace).glob("*.ipynb"))
    except OSError:
        return False
