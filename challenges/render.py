"""Render a pack for an event: the brief teams read and their starter notebook.

The brief is Markdown with Jinja placeholders; the starter notebook is a normal notebook
whose code cell tagged `parameters` is replaced by the event's paths (the papermill
convention) and whose Markdown cells may hold the same placeholders as the brief.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import jinja2
import nbformat

from challenges.errors import ChallengeError, where
from challenges.pack import Pack

PARAMETERS_TAG = "parameters"
_MONTHS_NL = [
    "januari", "februari", "maart", "april", "mei", "juni",
    "juli", "augustus", "september", "oktober", "november", "december",
]  # fmt: skip


@dataclass(frozen=True)
class RenderContext:
    """What an event adds to a pack: dates, data version and where the twin lives."""

    event_title: str = "Hack the gap"
    start: dt.datetime | None = None
    deadline: dt.datetime | None = None
    end: dt.datetime | None = None
    data_version: str = "demo"
    codebook_url: str = "codebook.md"
    twin_path: str = "twin.parquet"
    codebook_path: str = "codebook.md"
    column_descriptions: dict = field(default_factory=dict)

    @classmethod
    def coerce(cls, context: RenderContext | Mapping[str, Any] | None) -> RenderContext:
        if context is None:
            return cls()
        if isinstance(context, RenderContext):
            return context
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(context) - known)
        if unknown:
            raise TypeError(f"unknown render context key(s): {', '.join(unknown)}")
        return cls(**dict(context))


def _nl(value: dt.datetime | None) -> str:
    if value is None:
        return "nog niet bekend"
    return f"{value.day} {_MONTHS_NL[value.month - 1]} {value.year}, {value:%H:%M} uur"


def _en(value: dt.datetime | None) -> str:
    if value is None:
        return "to be announced"
    return f"{value.day} {value:%B %Y}, {value:%H:%M}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["nl"] = _nl
    env.filters["en"] = _en
    env.filters["pct"] = lambda x: f"{100 * x:.0f}%"
    return env


def template_variables(pack: Pack, context: RenderContext) -> dict[str, Any]:
    """The names a brief or notebook Markdown cell can use."""
    return {
        "challenge": pack,
        "event": {
            "title": context.event_title,
            "start": context.start,
            "deadline": context.deadline,
            "end": context.end,
        },
        "data": {
            "version": context.data_version,
            "codebook": context.codebook_url,
            "twin": context.twin_path,
        },
        "columns": [
            {
                "name": c,
                "description": context.column_descriptions.get(c) or "zie codeboek / see codebook",
            }
            for c in pack.columns
        ],
        "rules": asdict(pack.output_rules),
    }


def _render_text(pack: Pack, file: str, text: str, variables: dict[str, Any]) -> str:
    try:
        return _environment().from_string(text).render(variables)
    except jinja2.TemplateSyntaxError as exc:
        raise ChallengeError(
            f"{where(pack.id, file, f'line {exc.lineno}')}: template error ({exc.message}); "
            "fix the {{ }} or {% %} there."
        ) from None
    except jinja2.UndefinedError as exc:
        raise ChallengeError(
            f"{where(pack.id, file)}: {exc.message}; use only event, data, challenge, columns "
            "and rules (see docs/challenges.md)."
        ) from None


def render_brief(pack: Pack, context: RenderContext | Mapping[str, Any] | None = None) -> str:
    """The brief as Markdown, with the event's dates, data version and codebook link."""
    ctx = RenderContext.coerce(context)
    text = pack.brief_path.read_text(encoding="utf-8")
    return _render_text(pack, pack.brief_path.name, text, template_variables(pack, ctx))


def _parameters_source(ctx: RenderContext) -> str:
    return "\n".join(
        [
            "# Parameters, filled in by hackgap: paths to the synthetic twin (never real data).",
            f"TWIN_PATH = {ctx.twin_path!r}",
            f"CODEBOOK_PATH = {ctx.codebook_path!r}",
            f"DATA_VERSION = {ctx.data_version!r}",
        ]
    )


def _read_notebook(pack: Pack) -> nbformat.NotebookNode:
    name = pack.notebook_path.name
    try:
        nb = nbformat.read(pack.notebook_path, as_version=4)
        nbformat.validate(nb)
    except (nbformat.ValidationError, ValueError, KeyError) as exc:
        raise ChallengeError(
            f"{where(pack.id, name)}: not a valid Jupyter notebook ({type(exc).__name__}); save "
            "it again from Jupyter."
        ) from None
    tagged = [c for c in nb.cells if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1 or tagged[0].cell_type != "code":
        raise ChallengeError(
            f"{where(pack.id, name, 'cells')}: found {len(tagged)} cells tagged "
            f"'{PARAMETERS_TAG}'; tag exactly one code cell (it receives TWIN_PATH and "
            "CODEBOOK_PATH)."
        )
    return nb


def render_notebook(
    pack: Pack, context: RenderContext | Mapping[str, Any] | None = None
) -> nbformat.NotebookNode:
    """The starter notebook for an event: parameters filled in, outputs cleared."""
    ctx = RenderContext.coerce(context)
    nb = _read_notebook(pack)
    variables = template_variables(pack, ctx)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = _render_text(pack, pack.notebook_path.name, cell.source, variables)
        elif cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            if PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
                cell.source = _parameters_source(ctx)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["hackgap"] = {
        "challenge": pack.id,
        "challenge_version": pack.version,
        "data_version": ctx.data_version,
    }
    return nb


def check_templates(pack: Pack) -> list[str]:
    """Problems rendering the pack's brief and notebook with a sample event."""
    ctx = RenderContext(
        start=dt.datetime(2026, 11, 26, 9), deadline=dt.datetime(2026, 11, 27, 15),
        end=dt.datetime(2026, 11, 27, 17),
    )  # fmt: skip
    problems = []
    for render in (render_brief, render_notebook):
        try:
            render(pack, ctx)
        except ChallengeError as exc:
            problems.extend(exc.problems)
    return problems


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_rendered(
    pack: Pack, out_dir: Path, context: RenderContext | Mapping[str, Any] | None = None
) -> tuple[Path, Path]:
    """Write brief.md and starter.ipynb into out_dir (each atomically); return both paths."""
    ctx = RenderContext.coerce(context)
    brief = render_brief(pack, ctx)
    notebook = nbformat.writes(render_notebook(pack, ctx))
    brief_path, notebook_path = out_dir / "brief.md", out_dir / "starter.ipynb"
    _atomic_write(brief_path, brief)
    _atomic_write(notebook_path, notebook)
    return brief_path, notebook_path
