"""`hackgap review assign|leaderboard|close-judging`: the judging half of the review commands.

Thin over judging.assign, judging.scores and judging.leaderboard; registered on the
`review` Typer app in flows/commands/review.py.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from flows.event import EventDir, load_event
from judging import leaderboard as boards
from judging.assign import Assignment, assign
from judging.scores import ScoreStore
from judging.webapp.config import JudgingConfig, write_config
from judging.webapp.view import ready_teams
from sandboxes import layout

console = Console()
DIRECTORY = typer.Argument(Path("."), help="Event directory or event.yaml.")
JUDGING_PREFIX = "judging"  # <event>/judging/ in the submissions bucket


def judging_config(event_dir: EventDir) -> JudgingConfig:
    """The event facts the judge page needs (it never reads event.yaml itself)."""
    event = event_dir.event
    return JudgingConfig(
        event=event.name,
        title=event.title,
        event_dir=str(event_dir.root),
        seed=event.seed,
        judges=list(event.judges),
        organisers=list(event.organisers),
        per_submission=event.judging.judges_per_submission,
        margin=event.judging.disagreement_margin,
        start=event.start.isoformat(),
        deadline=event.deadline.isoformat(),
        end=event.end.isoformat(),
        conflicts={j: list(ts) for j, ts in event.judging.conflicts.items()},
    )


class JudgingError(Exception):
    """The event cannot be judged as it stands; the sentence names the fix."""

    hackgap_user_error = True


def _challenge(event_dir: EventDir, team: str, named: str | None) -> str:
    """The challenge a submission is scored on: the one its notebook names, else the team's
    choice in event.yaml, else the event's only challenge."""
    event = event_dir.event
    chosen = next((t.challenge for t in event.teams if t.name == team), None)
    challenge = named or chosen or (event.challenges[0] if len(event.challenges) == 1 else None)
    if challenge is None:
        raise JudgingError(
            f"team '{team}': its submission names no challenge and the event has several; set "
            "`challenge:` for the team in event.yaml and run `hackgap review assign` again."
        )
    return challenge


def assign_judges(event_dir: EventDir) -> tuple[Assignment, dict[str, str]]:
    """Register ready submissions, (re)assign judges and store it; returns it and team codes."""
    event = event_dir.event
    workdir = event_dir.workdir
    write_config(workdir, judging_config(event_dir))
    store = ScoreStore(layout.judging_db(workdir))
    try:
        ready = {
            team: _challenge(event_dir, team, named)
            for team, named in ready_teams(workdir, [t.name for t in event.teams]).items()
        }
        codes = store.register(ready, event.seed)
        locked = store.locked()
        # a team whose view is being rebuilt (review re-run) keeps its judges and scores
        scored = {team for team, _ in locked}
        result = assign(
            sorted(set(ready) | scored),
            event.judges,
            event.judging.judges_per_submission,
            conflicts=event.judging.conflicts,
            seed=event.seed,
            previous=store.assignment(),
            locked=locked,
        )
        store.replace_assignment(result.judges_of)
    finally:
        store.close()
    return result, codes


def assign_command(directory: Path = DIRECTORY) -> None:
    """Give every reviewed submission its judges: balanced, no conflicts, stable on re-runs."""
    event_dir = load_event(directory)
    result, codes = assign_judges(event_dir)
    if not result.judges_of:
        console.print(
            "No submission is ready for judges yet (the review stage writes them); "
            "run `hackgap review assign` again after it.",
            markup=False,
        )
        return
    table = Table("judge", "submissions", "codes")
    for judge, count in result.load(event_dir.event.judges).items():
        table.add_row(judge, str(count), " ".join(sorted(codes[t] for t in result.teams_of(judge))))
    console.print(table)
    console.print(
        f"{len(result.judges_of)} submission(s), {event_dir.event.judging.judges_per_submission} "
        f"judge(s) each; {result.added} assignment(s) added, {result.removed} removed.",
        markup=False,
    )


def load_board(event_dir: EventDir) -> boards.Leaderboard:
    from challenges import load_pack

    store = ScoreStore(layout.judging_db(event_dir.workdir))
    try:
        submissions = store.submissions()
        search = [event_dir.root / "challenges"]
        rubrics = {s.challenge: load_pack(s.challenge, search).rubric for s in submissions}
        return boards.build(
            submissions,
            store.all_sheets(),
            rubrics,
            revealed=store.revealed(),
            margin=event_dir.event.judging.disagreement_margin,
        )
    finally:
        store.close()


def leaderboard_command(
    directory: Path = DIRECTORY,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    csv: Path = typer.Option(None, "--csv", help="Also write the leaderboard as CSV here."),
) -> None:
    """Print the leaderboard the organiser's judge page shows (codes until names are revealed)."""
    event_dir = load_event(directory)
    board = load_board(event_dir)
    if csv is not None:
        tmp = csv.with_name(f".{csv.name}.tmp")
        tmp.write_text(board.to_csv(), encoding="utf-8")
        tmp.replace(csv)
    if as_json:
        typer.echo(json.dumps(board.to_dict(), indent=2))
        return
    table = Table("rank", "submission", "team", "challenge", "judges", "raw", "normalised", "flags")
    for r in board.rows:
        table.add_row(
            "–" if r.rank is None else str(r.rank), r.code, r.team or "", r.challenge,
            str(r.judges), "–" if r.raw is None else f"{r.raw:.2f}",
            "–" if r.normalised is None else f"{r.normalised:+.2f}", str(r.flags),
        )  # fmt: skip
    console.print(table)
    agreement = Table("challenge", "criterion", "alpha", "submissions", "note",
                      title="agreement (Krippendorff's alpha, ordinal)")  # fmt: skip
    for a in board.agreement:
        alpha = "–" if a.alpha is None else f"{a.alpha:.2f}"
        agreement.add_row(a.challenge, a.criterion, alpha, str(a.submissions), a.note)
    console.print(agreement)
    for f in board.flags:
        scores = ", ".join(f"{j}: {v}" for j, v in f.scores.items())
        console.print(
            f"disagreement: {f.code} {f.criterion} spread {f.high - f.low} ({scores})",
            markup=False,
        )
    if not board.revealed:
        console.print("Team names are hidden until an organiser reveals them on the judge page.")


def close_judging_command(directory: Path = DIRECTORY) -> None:
    """Close judging (no more changes) and export scores and leaderboard to the bucket."""
    from flows.objectstore import ObjectStore

    event_dir = load_event(directory)
    prefix = export_judging(event_dir, ObjectStore.for_workdir(event_dir.workdir))
    console.print(f"exported judging to submissions/{prefix}/", markup=False)


def export_judging(event_dir: EventDir, objects) -> str:
    """Publish the scores (JSON and a consistent SQLite copy) and the leaderboard; the prefix."""
    store = ScoreStore(layout.judging_db(event_dir.workdir))
    store.close_judging()
    board = load_board(event_dir)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            export = store.export()
            copy = store.backup(Path(tmp) / "scores.sqlite")
        finally:
            store.close()
        prefix = f"{event_dir.event.name}/{JUDGING_PREFIX}"
        objects.publish(
            "submissions",
            prefix,
            {
                "scores.json": json.dumps(export, indent=2, sort_keys=True).encode(),
                "leaderboard.json": json.dumps(board.to_dict(), indent=2).encode(),
                "leaderboard.csv": board.to_csv().encode(),
                "scores.sqlite": copy,
            },
            manifest={"sheets": len(export["sheets"]), "revealed": export["revealed"]},
        )
    return prefix


def judge_page_url(workdir: Path) -> str | None:
    """The judge page behind the event's running hub, or None when the hub is down."""
    from flows import services

    state = services.status(workdir)
    if state is None or state.hub is None:
        return None
    return f"{state.hub.url.rstrip('/')}/services/judge/"


def demo_step(directory: Path, out: Console) -> None:
    """`hackgap demo`'s last step: assign judges to the reviewed submissions, print the URL."""
    event_dir = load_event(directory)
    result, codes = assign_judges(event_dir)
    loads = result.load(event_dir.event.judges)
    for judge, count in loads.items():
        mine = " ".join(sorted(codes[t] for t in result.teams_of(judge)))
        out.print(f"{judge:<16} {count} submission(s) {mine}", markup=False, highlight=False)
    if not result.judges_of:
        out.print("No submission is ready for judges yet.", markup=False)
    url = judge_page_url(event_dir.workdir)
    out.print(
        f"Judge page       {url or 'not running (start the hub: hackgap services up DIR)'}",
        markup=False,
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add the judging commands to `hackgap review`."""
    app.command("assign")(assign_command)
    app.command("leaderboard")(leaderboard_command)
    app.command("close-judging")(close_judging_command)
