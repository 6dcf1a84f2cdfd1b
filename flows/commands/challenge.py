"""`hackgap challenge list|validate|show|render|statistics|schema`: challenge packs.

The flows own the analysis-table schema, so this module hands its columns (and their
descriptions, for the brief) to the `challenges` room.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import typer
import yaml
from rich.console import Console
from rich.table import Table

from challenges import ChallengeError, Pack, load_pack, load_packs, pack_ids, validate_pack
from challenges.pack import challenge_schema, search_dirs
from challenges.statistics import PARAMETERS, STATISTICS

app = typer.Typer(help="List, validate, show and render challenge packs.", no_args_is_help=True)
console = Console()

ANALYSIS_SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "analysis_table.yaml"
EVENT_OPTION = typer.Option(
    None, "--event", help="Event directory: its challenges/ folder is searched first."
)


def analysis_columns() -> dict[str, str]:
    """Column name -> description of the linked analysis table."""
    data = yaml.safe_load(ANALYSIS_SCHEMA.read_text(encoding="utf-8"))
    return {
        name: " ".join(str(spec.get("description", "")).split())
        for name, spec in data["columns"].items()
    }


def _search_path(event: Path | None) -> list[Path]:
    return [event / "challenges"] if event else []


def _where_from(pack: Pack) -> str:
    for directory in search_dirs():
        if pack.path.parent == directory.resolve():
            return "built-in" if directory.name == "packs" else str(directory)
    return str(pack.path.parent)


@app.command("list")
def list_packs(event: Path = EVENT_OPTION) -> None:
    """Show every pack on the search path: id, title, fidelity checks, rubric criteria."""
    packs = load_packs(search_path=_search_path(event))
    table = Table("id", "title", "checks", "criteria", "from")
    for pack in packs:
        table.add_row(
            pack.id,
            f"{pack.title['nl']} / {pack.title['en']}",
            str(len(pack.fidelity)),
            str(len(pack.rubric.criteria)),
            _where_from(pack),
        )
    console.print(table)


@app.command("validate")
def validate(
    packs: list[str] = typer.Argument(None, help="Pack ids or pack directories (default: all)."),
    event: Path = EVENT_OPTION,
) -> None:
    """Check packs against the schema, the statistics library and the analysis table."""
    search_path = _search_path(event)
    targets = packs or pack_ids(search_path)
    columns = analysis_columns()
    problems: list[str] = []
    for target in targets:
        try:
            pack = load_pack(Path(target) if Path(target).is_dir() else target, search_path)
            validate_pack(pack, available_columns=columns)
        except ChallengeError as exc:
            problems.extend(exc.problems)
            continue
        console.print(
            f"[green]ok[/] {pack.id}: fidelity checks {len(pack.fidelity)}, "
            f"rubric criteria {len(pack.rubric.criteria)}, columns {len(pack.columns)}."
        )
    if problems:
        raise ChallengeError(problems)


@app.command("show")
def show(pack_id: str = typer.Argument(..., help="Pack id."), event: Path = EVENT_OPTION) -> None:
    """Print a pack: question, columns, fidelity checks, rubric and output rules."""
    pack = load_pack(pack_id, _search_path(event))
    console.print(f"[bold]{pack.id}[/] (version {pack.version}) — {pack.path}")
    console.print(f"[bold]{pack.title['nl']}[/] / {pack.title['en']}")
    console.print(f"nl: {pack.question['nl']}\nen: {pack.question['en']}\n")
    console.print(f"datasets: {', '.join(pack.datasets)}")
    console.print(f"columns: {', '.join(pack.columns)}\n")
    checks = Table("check", "statistic", "tolerance", "description", title="fidelity")
    for check in pack.fidelity:
        key = " (key)" if check.name == pack.key_check.name else ""
        checks.add_row(
            check.name + key, check.statistic, f"±{check.tolerance:g}", check.description
        )
    console.print(checks)
    rubric = Table(
        "criterion",
        "weight",
        "description",
        title=f"rubric (scale {pack.rubric.scale_min}-{pack.rubric.scale_max})",
    )
    for criterion in pack.rubric.criteria:
        rubric.add_row(
            f"{criterion.id}: {criterion.title['en']}",
            f"{criterion.weight:g}",
            criterion.description["en"],
        )
    console.print(rubric)
    rules = pack.output_rules
    console.print(
        f"output rules: min cell count {rules.min_cell_count}, round to {rules.round_to}, "
        f"dominance n={rules.dominance_n} k={rules.dominance_k:g}"
    )


@app.command("render")
def render(
    pack_id: str = typer.Argument(..., help="Pack id or pack directory."),
    out: Path = typer.Option(..., "--out", help="Directory for brief.md and starter.ipynb."),
    twin: str = typer.Option(
        "twin.parquet", "--twin", help="Path of the twin (parquet or csv) as the team sees it."
    ),
    codebook: str = typer.Option(
        "codebook.md", "--codebook", help="Path of the codebook as the team sees it."
    ),
    codebook_url: str = typer.Option(
        None, "--codebook-url", help="Link to the codebook in the brief (default: --codebook)."
    ),
    data_version: str = typer.Option(
        None, "--data-version", help="Twin version (default: the twin's directory name)."
    ),
    event: Path = EVENT_OPTION,
) -> None:
    """Render a pack for an event: the brief and the parametrised starter notebook."""
    from challenges.render import RenderContext, write_rendered  # nbformat is slow to import

    search_path = _search_path(event)
    target: str | Path = Path(pack_id) if Path(pack_id).is_dir() else pack_id
    pack = load_pack(target, search_path)
    title, start, deadline, end = "Hack the gap", None, None, None
    if event is not None:
        from flows.event import load_event

        ev = load_event(event).event
        title, start, deadline, end = ev.title, ev.start, ev.deadline, ev.end
    twin_parent = Path(twin).parent.name
    context = RenderContext(
        event_title=title,
        start=start,
        deadline=deadline,
        end=end,
        data_version=data_version or twin_parent or "demo",
        codebook_url=codebook_url or codebook,
        twin_path=twin,
        codebook_path=codebook,
        column_descriptions=analysis_columns(),
    )
    brief, notebook = write_rendered(pack, out, context)
    console.print(f"Wrote [bold]{brief}[/] and [bold]{notebook}[/] for {pack.id}.")


@app.command("statistics")
def statistics() -> None:
    """List the statistics a pack's fidelity checks can name, with their parameters."""
    table = Table("statistic", "parameters (? = optional)", "what it computes")
    for name, func in STATISTICS.items():
        params = ", ".join(
            f"{p}{'?' if k.endswith('?') else ''}" for p, k in PARAMETERS[name].items()
        )
        table.add_row(name, params, (inspect.getdoc(func) or "").split("\n\n")[0])
    console.print(table)


@app.command("schema")
def schema(
    output: Path = typer.Option(None, "--output", "-o", help="Write to this file."),
) -> None:
    """Print the JSON Schema of challenge.yaml (for editor validation)."""
    text = json.dumps(challenge_schema(), indent=2, ensure_ascii=False)
    if output:
        output.write_text(text + "\n", encoding="utf-8")
    else:
        typer.echo(text)
