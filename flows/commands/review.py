"""`hackgap review ...`: freeze, re-run, verify, airlock, assign judges, leaderboard."""

from __future__ import annotations

import getpass
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(help="Review submissions and judge them.", no_args_is_help=True)
console = Console()

DIR = typer.Argument(Path("."), help="Event directory or event.yaml.")
NO_PREFECT = typer.Option(
    False, "--no-prefect", help="Run the plain functions without the Prefect server."
)


def _connect(directory: Path):
    """(event_dir, store, use_prefect) for the event's running services."""
    from flows.event import load_event
    from flows.objectstore import ObjectStore
    from flows.runtime import quiet_console, use_services

    event_dir = load_event(directory)
    use_services(event_dir.workdir)
    store = ObjectStore.for_workdir(event_dir.workdir)
    store.ping()
    use_prefect = bool(os.environ.get("PREFECT_API_URL"))
    if use_prefect:
        quiet_console()
    return event_dir, store, use_prefect


def _stage(label: str, run_plain, run_flow, no_prefect: bool, use_prefect: bool):
    from flows import review

    with console.status(f"{label}…") as status:

        def show(step: str) -> None:
            status.update(f"{label}: {escape(step)}…")
            console.print(f"  • {step}", highlight=False, markup=False)

        review.progress_hook = show
        try:
            if use_prefect and not no_prefect:
                return run_flow()
            return run_plain(show)
        finally:
            review.progress_hook = None


def _results_table(title: str, results: list[dict]) -> None:
    table = Table(title=title)
    for col in ("team", "status", "message"):
        table.add_column(col, overflow="fold")
    for r in results:
        table.add_row(
            escape(r["team"]),
            escape(str(r.get("action", r.get("status")))),
            escape(str(r.get("message", ""))),
        )
    console.print(table)


@app.command()
def freeze(
    directory: Path = DIR,
    force: bool = typer.Option(
        False, "--force", help="Organisers only: freeze before the deadline."
    ),
    no_prefect: bool = NO_PREFECT,
) -> None:
    """Freeze every team's submission: bucket copy with sha256 manifest, read-only, audited."""
    from flows import review

    event_dir, store, use_prefect = _connect(directory)
    results = _stage(
        "freeze",
        lambda show: review.run_freeze(event_dir, store, force=force, progress=show),
        lambda: review.review_freeze_flow(str(event_dir.root), force=force),
        no_prefect,
        use_prefect,
    )
    _results_table("freeze", results)


@app.command()
def rerun(directory: Path = DIR, no_prefect: bool = NO_PREFECT) -> None:
    """Re-run every frozen notebook on the twin in a clean, limited environment."""
    from flows import review

    event_dir, store, use_prefect = _connect(directory)

    def flow():
        from prefect.task_runners import ThreadPoolTaskRunner

        runner = ThreadPoolTaskRunner(max_workers=review.workers(event_dir))
        return review.review_rerun_flow.with_options(task_runner=runner)(str(event_dir.root))

    results = _stage(
        "re-run on the twin",
        lambda show: review.run_rerun(event_dir, store, progress=show),
        flow,
        no_prefect,
        use_prefect,
    )
    _results_table("re-run on the twin", results)


@app.command()
def verify(directory: Path = DIR, no_prefect: bool = NO_PREFECT) -> None:
    """Run eligible notebooks on the real data (secure zone, no network) and check outputs."""
    from flows import review

    event_dir, store, use_prefect = _connect(directory)
    results = _stage(
        "verify on the real data",
        lambda show: review.run_verify(event_dir, store, progress=show),
        lambda: review.review_verify_flow(str(event_dir.root)),
        no_prefect,
        use_prefect,
    )
    _results_table("verify on the real data", results)


def _reviewer() -> str:
    return os.environ.get("SUDO_USER") or getpass.getuser()


@app.command()
def airlock(
    directory: Path = DIR,
    team: str = typer.Option(None, "--team", help="Team whose output you decide on."),
    output: str = typer.Option(None, "--output", help="Output file name (as listed)."),
    approve: bool = typer.Option(False, "--approve", help="Release the output."),
    reject: bool = typer.Option(False, "--reject", help="Keep the output in the secure zone."),
    comment: str = typer.Option("", "--comment", help="Why (required with a decision)."),
    reviewer: str = typer.Option(
        None, "--reviewer", help="Your organiser name (default: your login name)."
    ),
) -> None:
    """List real-data outputs with the checker's verdict, or approve/reject one."""
    from flows import review
    from judging.errors import ReviewError

    event_dir, store, _ = _connect(directory)
    if approve or reject:
        if approve and reject:
            raise ReviewError("give --approve or --reject, not both.")
        if not team or not output:
            raise ReviewError("a decision needs --team and --output; list candidates first.")
        entry = review.decide(
            event_dir,
            store,
            team,
            output,
            reviewer=reviewer or _reviewer(),
            decision="approve" if approve else "reject",
            comment=comment,
        )
        console.print(
            f"{team}/{output}: {entry['status']} ({len(entry['decisions'])} decision(s) recorded)",
            markup=False,
            highlight=False,
        )
        return
    table = Table(title="airlock")
    for col in ("team", "output", "verdict", "rule", "status", "decisions"):
        table.add_column(col, overflow="fold")
    for status in review.review_status(event_dir):
        if team and status["team"] != team:
            continue
        for o in status["outputs"]:
            decisions = "; ".join(
                f"{d['reviewer']} {d['decision']}: {d['comment']}" for d in o["decisions"]
            )
            table.add_row(
                *(escape(str(x)) for x in (status["team"], o["name"], o["verdict"], o["rule"],
                                           o["status"], decisions))
            )  # fmt: skip
    console.print(table)


@app.command()
def status(
    directory: Path = DIR,
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Every team: submission hash, re-run result, verification result, output verdicts."""
    from flows import review
    from flows.event import load_event

    event_dir = load_event(directory)
    statuses = review.review_status(event_dir)
    if as_json:
        print(review.dumps(statuses))
        return
    table = Table(title=f"review: {event_dir.event.name}")
    for col in ("team", "submission", "re-run", "verification", "outputs"):
        table.add_column(col, overflow="fold")
    for s in statuses:
        sub = s["submission"]
        sub_text = f"{sub['status']} {str(sub.get('sha256') or '')[:12]} {sub.get('message') or ''}"
        rerun_text = f"{s['rerun']['status']} {s['rerun'].get('message') or ''}"
        ver = f"{s['verification']['status']} {s['verification'].get('message') or ''}"
        outs = ", ".join(f"{o['name']}: {o['status']}" for o in s["outputs"])
        table.add_row(*(escape(x.strip()) for x in (s["team"], sub_text, rerun_text, ver, outs)))
    console.print(table)


from flows.commands import judge as _judge  # noqa: E402  (assign, leaderboard, close-judging)

_judge.register(app)


def demo_step(directory: Path, out: Console) -> None:
    """`hackgap demo`: a demo submission per demo team, frozen, re-run on the twin, verified
    on the real data, checked, and waiting in the airlock."""
    from flows import review
    from flows.demo_submissions import DEMO_TEAMS, write_demo_notebook
    from flows.event import load_event
    from flows.objectstore import ObjectStore
    from judging import freeze as frozen
    from judging.errors import ReviewError
    from sandboxes import layout

    event_dir = load_event(directory)
    store = ObjectStore.for_workdir(event_dir.workdir)
    for team in event_dir.event.teams:
        if team.name not in DEMO_TEAMS or frozen.read_record(review.team_dir(event_dir, team.name)):
            continue
        workspace = review.team_workspace(event_dir, team.name)
        folder = layout.submission_dir(workspace)
        if not any(folder.glob("*.ipynb")):
            path = write_demo_notebook(team.name, folder, [event_dir.root / "challenges"])
            if workspace.is_dir() and os.geteuid() == 0:
                owner = workspace.stat()
                for p in (folder, folder.parent / layout.SUBMISSION_DIR, path):
                    os.chown(p, owner.st_uid, owner.st_gid)
            out.print(f"{team.name}: placed {path.name} in its submission folder", markup=False)

    def show(step: str) -> None:
        out.print(f"  • {step}", markup=False, highlight=False)

    try:
        review.run_freeze(event_dir, store, force=True, progress=show)
        review.run_rerun(event_dir, store, progress=show)
        review.run_verify(event_dir, store, progress=show)
    except ReviewError as exc:
        out.print(f"review stopped: {exc}", markup=False, style="red")
    airlock(directory=directory, team=None, output=None, approve=False, reject=False,
            comment="", reviewer=None)  # fmt: skip
    out.print(
        f"Decide with `hackgap review airlock {directory} --team TEAM --output NAME "
        "--approve|--reject --comment '...'`.",
        markup=False,
        highlight=False,
    )


@app.command()
def schedule(
    directory: Path = DIR,
    work_pool: str = typer.Option("hackgap-process", "--work-pool", help="Prefect work pool."),
) -> None:
    """Schedule the freeze at the event's deadline on its Prefect server."""
    from flows import review
    from judging.errors import ReviewError

    event_dir, _store, use_prefect = _connect(directory)
    if not use_prefect:
        raise ReviewError(
            "no Prefect server for this event; start it with `hackgap services up "
            f"{event_dir.root}` and schedule again."
        )
    deployment = review.schedule_freeze(event_dir, work_pool)
    console.print(
        f"review-freeze/{event_dir.event.name} ({deployment}) runs once at "
        f"{event_dir.event.deadline.isoformat(timespec='minutes')}; a worker of pool "
        f"{work_pool} runs it (see infra/README.md).",
        markup=False,
        highlight=False,
    )
