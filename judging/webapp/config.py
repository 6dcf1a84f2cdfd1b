"""What the judge page knows of the event, written by the flows (`hackgap review assign`).

The judging room never imports the flows, so the flows hand the page the few event facts
it needs in one JSON file next to the scores database, written atomically.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sandboxes import layout

CONFIG_NAME = "event.json"


@dataclass(frozen=True)
class JudgingConfig:
    event: str
    title: str
    event_dir: str
    seed: int
    judges: list[str]
    organisers: list[str]
    per_submission: int
    margin: float
    start: str | None = None
    deadline: str | None = None
    end: str | None = None
    conflicts: dict[str, list[str]] = field(default_factory=dict)

    @property
    def challenge_search_path(self) -> list[Path]:
        """The event's own challenges/ folder first, then the usual search path."""
        return [Path(self.event_dir) / "challenges"]

    def date(self, which: str) -> dt.datetime | None:
        value = getattr(self, which)
        return dt.datetime.fromisoformat(value) if value else None


def config_path(workdir: Path) -> Path:
    return layout.judging_db(workdir).parent / CONFIG_NAME


def write_config(workdir: Path, config: JudgingConfig) -> Path:
    path = config_path(workdir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)  # next to the scores: the judge page's only
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(asdict(config), handle, indent=2, sort_keys=True)
    os.replace(tmp, path)
    return path


def read_config(workdir: Path) -> JudgingConfig | None:
    """The event facts, or None before `hackgap review assign` has run."""
    path = config_path(workdir)
    if not path.is_file():
        return None
    return JudgingConfig(**json.loads(path.read_text(encoding="utf-8")))
