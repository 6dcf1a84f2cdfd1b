"""A submission as judges may see it: only what the review stage wrote to judge_view_dir.

`view.json` (written last by the review stage) says the submission is ready and lists the
executed twin notebook, the re-run result and the outputs ("twin says / real data says").
Paths are only ever taken from that file and must stay inside the team's view directory.
"""

from __future__ import annotations

import csv
import functools
import json
from dataclasses import dataclass
from pathlib import Path

from sandboxes import layout

VIEW_FILE = "view.json"
MAX_TABLE_ROWS = 200
TEXT_SUFFIXES = {".txt", ".md", ".json"}
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


class ViewError(Exception):
    """A judge view the review stage wrote is unreadable; the sentence names the file."""

    hackgap_user_error = True


@dataclass(frozen=True)
class Output:
    name: str
    twin: str | None
    real: str | None
    real_status: str


@dataclass(frozen=True)
class View:
    team: str
    challenge: str | None  # None: the notebook named none (the flows fall back to event.yaml)
    root: Path
    notebook: str | None
    rerun: dict
    outputs: tuple[Output, ...]
    submitted_at: str | None = None

    def file(self, relative: str | None) -> Path | None:
        """The file behind a path from view.json, if it exists inside this view directory."""
        if not relative:
            return None
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root.resolve()) or not path.is_file():
            return None
        return path


def ready_teams(workdir: Path, teams: list[str]) -> dict[str, str | None]:
    """team -> challenge (None if unnamed) for every team whose submission is ready."""
    out = {}
    for team in teams:
        view = load_view(workdir, team)
        if view is not None:
            out[team] = view.challenge
    return out


def load_view(workdir: Path, team: str) -> View | None:
    """The team's judge view, or None while the review stage has not finished it."""
    root = layout.judge_view_dir(workdir, team)
    path = root / VIEW_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError
    except ValueError:
        raise ViewError(
            f"{path}: not a judge view (a JSON object); run the review stage for this team again."
        ) from None
    challenge = data.get("challenge")
    return View(
        team=team,
        challenge=str(challenge) if challenge else None,
        root=root,
        notebook=data.get("notebook"),
        rerun=dict(data.get("rerun") or {}),
        outputs=tuple(
            Output(
                name=str(o.get("name", "")),
                twin=o.get("twin"),
                real=o.get("real"),
                real_status=str(o.get("real_status", "not requested")),
            )
            for o in data.get("outputs", [])
        ),
        submitted_at=data.get("submitted_at"),
    )


def preview(path: Path) -> dict:
    """How the page shows one output file: a table (CSV), text, or an image link."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_TYPES:
        return {"kind": "image"}
    if suffix == ".csv":
        with path.open(encoding="utf-8", errors="replace", newline="") as handle:
            rows = []
            for i, row in enumerate(csv.reader(handle)):
                if i > MAX_TABLE_ROWS:
                    break
                rows.append(row)
        return {"kind": "table", "header": rows[:1], "rows": rows[1:MAX_TABLE_ROWS + 1],
                "cut": len(rows) > MAX_TABLE_ROWS + 1}  # fmt: skip
    if suffix in TEXT_SUFFIXES:
        return {"kind": "text", "text": path.read_text(encoding="utf-8", errors="replace")[:20000]}
    return {"kind": "file"}


@functools.lru_cache(maxsize=64)
def _render(path: str, mtime_ns: int) -> str:
    import nbformat
    from nbconvert import HTMLExporter

    notebook = nbformat.read(path, as_version=4)
    exporter = HTMLExporter(template_name="lab", embed_images=True)
    html, _ = exporter.from_notebook_node(notebook)
    return html


def notebook_html(view: View) -> str | None:
    """The executed notebook as HTML (nbconvert, lab template), cached while unchanged.

    The HTML may hold anything the notebook printed, scripts included: it is served only
    with a content-security policy that runs no script at all.
    """
    path = view.file(view.notebook)
    if path is None:
        return None
    return _render(str(path), path.stat().st_mtime_ns)
