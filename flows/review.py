"""The review stage: freeze, re-run on the twin, verify on real data, check, airlock, status.

Thin over `judging/`: this module knows the event, the object store, the audit log and
Prefect; `judging` takes paths and returns small records. State lives in the review folder
(layout.review_dir, 0711 with a private 0700 folder per team) and the submissions bucket;
every step is idempotent, so killing one and running it again ends in the same state.
Only `judging.view` writes what judges see (layout.judge_view_dir).

Real rows: `verify` reads the linked table from the secure bucket (audited), keeps the
twin's columns, and hands it to notebook runs that have no network and write only their
outputs/; nothing here prints, logs or returns a value from it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import shutil
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from flows.event import EventDir, Team, load_event
from flows.objectstore import ObjectStore
from flows.pipeline.audit import AuditLog
from judging import airlock, freeze, outputcheck, view
from judging.errors import ReviewError
from judging.execute import (
    DockerExecutor,
    Executor,
    LocalExecutor,
    RunSpec,
    ensure_user,
    is_root,
    parse_size,
    read_result,
    run_notebook,
)
from sandboxes import layout

SUBMISSIONS, OPEN, SECURE = "submissions", "open", "secure"
KERNEL_PYTHON_ENV = "HACKGAP_KERNEL_PYTHON"
Progress = Callable[[str], None]
progress_hook: Progress | None = None  # set by the CLI so Prefect tasks can report on screen


def _say(progress: Progress | None, message: str) -> None:
    if progress:
        progress(message)
    elif progress_hook:
        progress_hook(message)


# -- where things are -----------------------------------------------------------------------


def team_workspace(event_dir: EventDir, team: str) -> Path:
    """The host path of a team's workspace, whatever the sandbox backend."""
    backend = event_dir.event.sandbox.backend
    if backend == "docker":
        from sandboxes import docker

        return Path(docker.team_volume_dir(event_dir.event.name, team))
    return layout.workspace_dir(event_dir.workdir, team)


def team_dir(event_dir: EventDir, team: str) -> Path:
    """The team's private review folder (frozen copy, runs, checks, airlock)."""
    return layout.review_dir(event_dir.workdir) / team


def _review_root(event_dir: EventDir) -> Path:
    root = layout.review_dir(event_dir.workdir)
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o711)  # run folders below are reachable by name only
    return root


def kernel_python(event_dir: EventDir) -> str:
    """The Python a notebook's kernel runs with: the team servers' environment (built once
    per machine by sandboxes.singleuser), which unprivileged accounts can run."""
    explicit = os.environ.get(KERNEL_PYTHON_ENV)
    if explicit:
        return explicit
    from sandboxes import singleuser

    if singleuser.is_ready():
        return str(singleuser.env_dir() / "bin" / "python")
    if not is_root():
        return sys.executable
    _say(None, "building the notebook environment (once per machine, 1-3 minutes)")
    return str(singleuser.ensure() / "bin" / "python")


def default_executor(event_dir: EventDir) -> Executor:
    """A fresh container per run on the docker backend, else a fresh local process."""
    if event_dir.event.sandbox.backend == "docker":
        from sandboxes import docker

        return DockerExecutor(event_dir.event.sandbox.image, docker.SANDBOX_UID)
    return LocalExecutor()


def _docker(event_dir: EventDir) -> bool:
    return event_dir.event.sandbox.backend == "docker"


def run_account(kind: str, team: str) -> str | None:
    """The unprivileged account a run uses on a root host (made on first use)."""
    if not is_root():
        return None
    user = layout.review_system_user(team) if kind == "twin" else layout.verify_system_user(team)
    ensure_user(user)
    return user


def _team(event_dir: EventDir, name: str) -> Team:
    for team in event_dir.event.teams:
        if team.name == name:
            return team
    names = ", ".join(t.name for t in event_dir.event.teams) or "none"
    raise ReviewError(f"team '{name}' is not in event.yaml (teams: {names}); check the name.")


def _packs(event_dir: EventDir) -> dict:
    from challenges import load_packs

    packs = load_packs(event_dir.event.challenges, [event_dir.root / "challenges"])
    return {p.id: p for p in packs}


def team_challenge(event_dir: EventDir, team: Team) -> str | None:
    """The team's choice in event.yaml, else the one its frozen notebook names (starter
    notebooks carry metadata.hackgap.challenge), else the event's only challenge."""
    if team.challenge:
        return team.challenge
    record = freeze.read_record(team_dir(event_dir, team.name))
    if record and record.get("notebook"):
        path = team_dir(event_dir, team.name) / freeze.FROZEN_DIR / record["notebook"]
        try:
            meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
            named = (meta.get("hackgap") or {}).get("challenge")
        except (OSError, ValueError, AttributeError):
            named = None
        if named in event_dir.event.challenges:
            return named
    if len(event_dir.event.challenges) == 1:
        return event_dir.event.challenges[0]
    return None


def _audit(event_dir: EventDir, store: ObjectStore, stage: str) -> AuditLog:
    return AuditLog(store, event_dir.event.name, stage=stage)


# -- freeze ---------------------------------------------------------------------------------


def freeze_team(
    event_dir: EventDir, store: ObjectStore, team: Team, now: dt.datetime | None = None
) -> dict:
    """Freeze one team: private copy, submissions bucket (with manifest), read-only, audit."""
    _review_root(event_dir)
    folder = layout.submission_dir(team_workspace(event_dir, team.name))
    snap = freeze.snapshot(folder, team.name)
    outcome = freeze.freeze_team(snap, folder, team_dir(event_dir, team.name), now)
    record = outcome.record
    prefix = f"{event_dir.event.name}/{team.name}"
    audit = _audit(event_dir, store, "freeze")
    manifest = store.read_manifest(SUBMISSIONS, prefix)
    if record["status"] != "missing" and (
        manifest is None or manifest.get("submission_sha256") != record["sha256"]
    ):
        frozen_dir = team_dir(event_dir, team.name) / freeze.FROZEN_DIR
        files = {rel: frozen_dir / rel for rel in record["files"]}
        store.publish(
            SUBMISSIONS,
            prefix,
            files,
            {
                "team": team.name,
                "challenge": team_challenge(event_dir, team),
                "submission_sha256": record["sha256"],
                "notebook": record.get("notebook"),
                "submitted_at": record.get("submitted_at"),
                "frozen_at": record.get("frozen_at"),
                "status": record["status"],
            },
        )
        audit.record("freeze", SUBMISSIONS, f"{prefix}/_COMPLETE", record["sha256"])
    if (
        outcome.action == "refused"
        and len(record.get("late_changes", []))
        and (record["late_changes"][-1] == (snap.sha256 or "deleted"))
    ):
        audit.record("refuse-late-change", SUBMISSIONS, prefix, snap.sha256)
    if outcome.action == "frozen":
        freeze.make_read_only(folder)
    return {
        "team": team.name,
        "action": outcome.action,
        "status": record["status"],
        "sha256": record.get("sha256"),
        "message": outcome.message or record.get("message", ""),
    }


def run_freeze(
    event_dir: EventDir,
    store: ObjectStore,
    *,
    force: bool = False,
    now: dt.datetime | None = None,
    progress: Progress | None = None,
) -> list[dict]:
    """Freeze every team of the event; refuses before the deadline unless forced."""
    deadline = event_dir.event.deadline
    if not force and not freeze.deadline_reached(deadline, now):
        raise ReviewError(
            f"the deadline ({deadline.isoformat(timespec='minutes')}) has not been reached; "
            "submissions freeze then (or give --force to freeze now as an organiser)."
        )
    store.ensure_buckets()
    results = []
    for team in event_dir.event.teams:
        result = freeze_team(event_dir, store, team, now)
        _say(progress, f"{team.name}: {result['action']} {result['status']}")
        results.append(result)
        refresh_view(event_dir, team.name)
    return results


# -- the twin and the real table ------------------------------------------------------------


def latest_twin(store: ObjectStore, event: str) -> tuple[str, str]:
    """(version, prefix) of the newest complete twin in the open bucket."""
    best: tuple[str, str, str] | None = None
    for key in store.list(OPEN, f"twins/{event}/"):
        if key.endswith("/_COMPLETE"):
            prefix = key.rsplit("/", 1)[0]
            created = str((store.read_manifest(OPEN, prefix) or {}).get("created", ""))
            if best is None or created > best[0]:
                best = (created, prefix.rsplit("/", 1)[-1], prefix)
    if best is None:
        raise ReviewError(
            f"no released twin for event {event} in the open bucket; run `hackgap synthesize` "
            "first."
        )
    return best[1], best[2]


def fetch_twin(event_dir: EventDir, store: ObjectStore) -> tuple[str, dict[str, Path]]:
    """Download the newest twin (twin.parquet, codebook.md) once per version."""
    version, prefix = latest_twin(store, event_dir.event.name)
    dest = _review_root(event_dir) / "_data" / f"twin-{version}"
    files = {}
    for name in ("twin.parquet", "codebook.md"):
        if not (dest / name).is_file():
            store.get_file(OPEN, f"{prefix}/{name}", dest / name)
        files[name] = dest / name
    os.chmod(dest.parent, 0o700)
    return version, files


def fetch_real(event_dir: EventDir, store: ObjectStore, columns: list[str]) -> tuple[str, Path]:
    """The linked table with the twin's columns only, in the private review folder."""
    import pandas as pd

    prefix = f"{event_dir.event.name}/linked"
    if not store.is_complete(SECURE, prefix):
        raise ReviewError(
            f"secure/{prefix}/analysis.parquet: no complete linked table; run `hackgap link` first."
        )
    key = f"{prefix}/analysis.parquet"
    data = store.get_bytes(SECURE, key)
    digest = hashlib.sha256(data).hexdigest()
    _audit(event_dir, store, "verify").record("read", SECURE, key, digest, len(data))
    dest = _review_root(event_dir) / "_data" / f"real-{digest[:12]}" / "twin.parquet"
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(dest.parent.parent, 0o700)
        os.chmod(dest.parent, 0o700)
        table = pd.read_parquet(io.BytesIO(data))
        keep = [c for c in columns if c in table.columns]
        tmp = dest.with_suffix(".tmp")
        table[keep].to_parquet(tmp, index=False)
        tmp.replace(dest)
    return digest, dest


def _twin_columns(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)


# -- re-run and verify ----------------------------------------------------------------------


def _limits(event_dir: EventDir) -> dict:
    review = event_dir.event.review
    return {
        "time_limit": review.time_limit,
        "mem_limit": parse_size(review.mem_limit),
        "disk_limit": parse_size(review.disk_limit),
    }


def rerun_team(
    event_dir: EventDir,
    team: Team,
    twin: tuple[str, dict[str, Path]],
    executor: Executor | None = None,
) -> dict:
    """Re-run one frozen notebook on the twin (reuses a finished run of the same hash)."""
    record = freeze.read_record(team_dir(event_dir, team.name))
    if record is None or record["status"] != "ok":
        message = (
            record.get("message") if record else f"team {team.name} is not frozen yet"
        ) or "nothing to run"
        return {"team": team.name, "status": "not run", "message": message}
    version, files = twin
    tdir = team_dir(event_dir, team.name)
    spec = RunSpec(
        key=f"{record['sha256']}/twin/{version}",
        notebook=tdir / freeze.FROZEN_DIR / record["notebook"],
        data=files,
        result_dir=tdir / "twin",
        runs_root=_review_root(event_dir) / "runs",
        python=sys.executable if _docker(event_dir) else kernel_python(event_dir),
        user=None if _docker(event_dir) else run_account("twin", team.name),
        **_limits(event_dir),
    )
    result = run_notebook(spec, executor or default_executor(event_dir))
    refresh_view(event_dir, team.name)
    return {"team": team.name, **result.to_json()}


def _parallel(fn: Callable[[Team], dict], teams: list[Team], workers: int) -> list[dict]:
    """Run fn per team, `workers` at a time; one team's failure never stops the others."""

    def guarded(team: Team) -> dict:
        try:
            return fn(team)
        except Exception as exc:
            message = (
                str(exc)
                if getattr(type(exc), "hackgap_user_error", False)
                else (f"internal error ({type(exc).__name__}); see the review log")
            )
            return {"team": team.name, "status": "error", "message": message}

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(guarded, teams))


def workers(event_dir: EventDir) -> int:
    return event_dir.event.review.workers or os.cpu_count() or 1


def run_rerun(
    event_dir: EventDir,
    store: ObjectStore,
    *,
    executor: Executor | None = None,
    progress: Progress | None = None,
) -> list[dict]:
    """Re-run every frozen notebook on the newest twin, in parallel."""
    twin = fetch_twin(event_dir, store)
    if not _docker(event_dir):
        kernel_python(event_dir)  # one clear sentence before any run starts

    def one(team: Team) -> dict:
        result = rerun_team(event_dir, team, twin, executor)
        _say(progress, f"{team.name}: {result['status']} {result.get('message', '')}".strip())
        return result

    return _parallel(one, list(event_dir.event.teams), workers(event_dir))


def verification_wanted(event_dir: EventDir, team: Team, packs: dict | None = None) -> str:
    """'' when the team's notebook may run on real data, else the reason it does not."""
    if team.open_data_only:
        return "not requested"
    packs = packs if packs is not None else _packs(event_dir)
    challenge = team_challenge(event_dir, team)
    ids = [challenge] if challenge else list(event_dir.event.challenges)
    if not all(getattr(packs.get(i), "verification", True) for i in ids):
        return "not allowed by the challenge"
    return ""


def _rules(event_dir: EventDir, team: Team, packs: dict) -> outputcheck.Rules:
    pack = packs.get(team_challenge(event_dir, team) or "")
    return outputcheck.Rules.from_output_rules(pack.output_rules if pack else None)


def verify_team(
    event_dir: EventDir,
    store: ObjectStore,
    team: Team,
    real: tuple[str, Path],
    packs: dict,
    twin_columns: list[str],
    executor: Executor | None = None,
) -> dict:
    """Run one frozen notebook on the real table, check its outputs, open the airlock."""
    reason = verification_wanted(event_dir, team, packs)
    if reason:
        return {"team": team.name, "status": reason, "message": ""}
    record = freeze.read_record(team_dir(event_dir, team.name))
    if record is None or record["status"] != "ok":
        return {"team": team.name, "status": "not run", "message": "no valid frozen notebook"}
    digest, path = real
    tdir = team_dir(event_dir, team.name)
    spec = RunSpec(
        key=f"{record['sha256']}/real/{digest}",
        notebook=tdir / freeze.FROZEN_DIR / record["notebook"],
        data={"twin.parquet": path},
        result_dir=tdir / "real",
        runs_root=_review_root(event_dir) / "runs",
        python=sys.executable if _docker(event_dir) else kernel_python(event_dir),
        user=None if _docker(event_dir) else run_account("real", team.name),
        network=False,
        **_limits(event_dir),
    )
    if not _docker(event_dir):
        from judging.execute import isolated_or_refuse

        isolated_or_refuse(spec, f"verifying team {team.name} on real data")
    result = run_notebook(spec, executor or default_executor(event_dir))
    verdicts = outputcheck.check_outputs(
        tdir / "real" / "outputs", _rules(event_dir, team, packs), set(twin_columns)
    )
    state = airlock.load(tdir)
    if state.get("key") != spec.key or set(state["outputs"]) != {v.name for v in verdicts}:
        audit = _audit(event_dir, store, "verify")
        for v in verdicts:
            audit.record("candidate", "review", f"{team.name}/real/{v.name}", v.sha256)
    airlock.open_candidates(tdir, spec.key, [v.to_json() for v in verdicts])
    freeze.write_json(
        tdir / "checks.json", {"key": spec.key, "outputs": [v.to_json() for v in verdicts]}
    )
    refresh_view(event_dir, team.name)
    return {
        "team": team.name,
        "status": result.status,
        "message": _real_message(result.to_json()),
        "outputs": {v.name: v.verdict for v in verdicts},
    }


def _real_message(result: dict) -> str:
    """What may be said about a real run: no error text (it could quote a value)."""
    if result["status"] == "failed":
        return f"failed at code cell {result.get('cell')} ({result.get('error')})"
    if result["status"] in ("ok",):
        return ""
    if result["status"] in ("timeout", "memory", "disk"):
        return result.get("message", "")
    return "the notebook could not be run on the real data"


def run_verify(
    event_dir: EventDir,
    store: ObjectStore,
    *,
    executor: Executor | None = None,
    progress: Progress | None = None,
) -> list[dict]:
    """Verify every eligible team on the real table (secure zone), in parallel."""
    packs = _packs(event_dir)
    eligible = [t for t in event_dir.event.teams if not verification_wanted(event_dir, t, packs)]
    results = {
        t.name: {"team": t.name, "status": verification_wanted(event_dir, t, packs), "message": ""}
        for t in event_dir.event.teams
        if t not in eligible
    }
    if eligible:
        _version, twin_files = fetch_twin(event_dir, store)
        columns = _twin_columns(twin_files["twin.parquet"])
        real = fetch_real(event_dir, store, columns)

        def one(team: Team) -> dict:
            result = verify_team(event_dir, store, team, real, packs, columns, executor)
            _say(progress, f"{team.name}: {result['status']}")
            return result

        for result in _parallel(one, eligible, workers(event_dir)):
            results[result["team"]] = result
    return [results[t.name] for t in event_dir.event.teams]


# -- airlock and judge view -----------------------------------------------------------------


def decide(
    event_dir: EventDir,
    store: ObjectStore,
    team_name: str,
    output: str,
    *,
    reviewer: str,
    decision: str,
    comment: str,
) -> dict:
    """One airlock decision by an organiser; audited; releases when enough approvals."""
    team = _team(event_dir, team_name)
    organisers = event_dir.event.organisers
    if organisers and reviewer not in organisers:
        raise ReviewError(
            f"{reviewer} is not an organiser of this event (organisers: "
            f"{', '.join(organisers)}); only organisers decide in the airlock."
        )
    tdir = team_dir(event_dir, team.name)
    two = event_dir.event.review.two_reviewers
    before = {e["name"]: e["status"] for e in airlock.listing(tdir, two)}.get(output)
    entry = airlock.decide(
        tdir,
        team.name,
        output,
        reviewer=reviewer,
        decision=decision,
        comment=comment,
        authors=set(team.members),
        two_reviewers=two,
    )
    audit = AuditLog(store, event_dir.event.name, actor=reviewer, stage="airlock")
    audit.record(decision, "review", f"{team.name}/real/{output}", entry.get("sha256"))
    if entry["status"] == "released" and before != "released":
        audit.record("release", "judging", f"{team.name}/released/{output}", entry.get("sha256"))
    refresh_view(event_dir, team.name)
    return entry


def refresh_view(event_dir: EventDir, team_name: str) -> dict | None:
    """Rebuild what judges see of one team from its review folder."""
    team = _team(event_dir, team_name)
    tdir = team_dir(event_dir, team_name)
    record = freeze.read_record(tdir)
    if record is None or record["status"] != "ok":
        # nothing a judge could read: no view.json, so no judges are assigned to it
        shutil.rmtree(layout.judge_view_dir(event_dir.workdir, team_name), ignore_errors=True)
        return None
    two = event_dir.event.review.two_reviewers
    reason = verification_wanted(event_dir, team)
    entries = airlock.listing(tdir, two)
    if reason:
        verification = "not requested"
    else:
        verification = "done" if read_result(tdir / "real") else "pending"
    rerun_dir = tdir / "twin" if (tdir / "twin" / "result.json").is_file() else None
    return view.write_view(
        layout.judge_view_dir(event_dir.workdir, team_name),
        team=team_name,
        challenge=team_challenge(event_dir, team),
        frozen=record,
        rerun_dir=rerun_dir,
        real_dir=tdir / "real",
        airlock_entries=entries,
        verification=verification,
    )


# -- status ---------------------------------------------------------------------------------


def team_status(event_dir: EventDir, team: Team, packs: dict | None = None) -> dict:
    """Everything about one team's submission, with one sentence per problem."""
    tdir = team_dir(event_dir, team.name)
    record = freeze.read_record(tdir)
    if record is None:
        deadline = event_dir.event.deadline
        reached = freeze.deadline_reached(deadline)
        submission = {
            "status": "not frozen",
            "sha256": None,
            "message": "not frozen yet: run `hackgap review freeze`."
            if reached
            else f"not frozen: the deadline ({deadline.isoformat(timespec='minutes')}) has not "
            "been reached.",
        }
    else:
        submission = {
            k: record.get(k)
            for k in ("status", "sha256", "notebook", "submitted_at", "frozen_at", "message")
        }
        if record.get("late_changes"):
            submission["late_changes"] = record["late_changes"]
            submission["message"] = (
                (submission["message"] or "")
                + " Changed after the freeze: refused, the frozen copy counts."
            ).strip()
    twin = read_result(tdir / "twin")
    rerun = (
        {k: v for k, v in twin.to_json().items() if k != "key"}
        if twin
        else {"status": "not run", "message": "not re-run yet"}
    )
    reason = verification_wanted(event_dir, team, packs)
    real = read_result(tdir / "real")
    if reason:
        verification = {"status": reason, "message": ""}
    elif real is None:
        verification = {"status": "not run", "message": "not verified yet"}
    else:
        verification = {
            "status": real.status,
            "seconds": real.seconds,
            "message": _real_message(real.to_json()),
        }
    outputs = [
        {
            "name": e["name"],
            "verdict": e["verdict"],
            "kind": e.get("kind"),
            "rule": e.get("rule", ""),
            "status": e["status"],
            "decisions": [
                {k: d[k] for k in ("reviewer", "decision", "comment", "at")}
                for d in e.get("decisions", [])
            ],
        }
        for e in airlock.listing(tdir, event_dir.event.review.two_reviewers)
    ]
    return {
        "team": team.name,
        "challenge": team_challenge(event_dir, team),
        "submission": submission,
        "rerun": rerun,
        "verification": verification,
        "outputs": outputs,
    }


def review_status(event_dir: EventDir) -> list[dict]:
    packs = _packs(event_dir)
    return [team_status(event_dir, t, packs) for t in event_dir.event.teams]


# -- Prefect flows --------------------------------------------------------------------------


def _prefect_flows() -> dict[str, Any]:
    """Built lazily so importing this module does not import Prefect."""
    from prefect import flow, get_run_logger, task
    from prefect.cache_policies import NO_CACHE
    from prefect.task_runners import ThreadPoolTaskRunner

    def load(event_path: str) -> tuple[EventDir, ObjectStore]:
        event_dir = load_event(Path(event_path))
        return event_dir, ObjectStore.for_workdir(event_dir.workdir)

    @flow(name="review-freeze", log_prints=False)
    def review_freeze_flow(event_path: str, force: bool = False) -> list[dict]:
        """Freeze every team's submission (scheduled at the event's deadline)."""
        event_dir, store = load(event_path)
        results = run_freeze(event_dir, store, force=force)
        for r in results:
            get_run_logger().info("%s: %s (%s)", r["team"], r["action"], r["status"])
        return results

    @task(name="rerun-team", cache_policy=NO_CACHE)
    def rerun_task(event_path: str, team_name: str, twin: tuple) -> dict:
        event_dir = load_event(Path(event_path))
        return rerun_team(event_dir, _team(event_dir, team_name), twin)

    def _collect(futures: list, names: list[str]) -> list[dict]:
        results = []
        for name, future in zip(names, futures, strict=True):
            try:
                results.append(future.result())
            except Exception as exc:
                results.append({"team": name, "status": "error", "message": str(exc)[:300]})
        return results

    @flow(
        name="review-rerun",
        log_prints=False,
        task_runner=ThreadPoolTaskRunner(max_workers=os.cpu_count() or 1),
    )
    def review_rerun_flow(event_path: str) -> list[dict]:
        """Re-run every frozen notebook on the twin; one task per team, in parallel
        (`review.workers` at once: the CLI sets the task runner with `with_options`)."""
        event_dir, store = load(event_path)
        twin = fetch_twin(event_dir, store)
        if not _docker(event_dir):
            kernel_python(event_dir)
        names = [t.name for t in event_dir.event.teams]
        futures = [rerun_task.submit(event_path, name, twin) for name in names]
        results = _collect(futures, names)
        for r in results:
            get_run_logger().info("%s: %s", r["team"], r["status"])
            _say(None, f"{r['team']}: {r['status']} {r.get('message', '')}".strip())
        return results

    @flow(name="review-verify", log_prints=False)
    def review_verify_flow(event_path: str) -> list[dict]:
        """Run eligible notebooks on the real table in the secure zone; check; open the airlock."""
        event_dir, store = load(event_path)
        results = run_verify(event_dir, store)
        for r in results:
            get_run_logger().info("%s: %s", r["team"], r["status"])  # statuses only, no values
        return results

    return {
        "review_freeze_flow": review_freeze_flow,
        "review_rerun_flow": review_rerun_flow,
        "review_verify_flow": review_verify_flow,
    }


def __getattr__(name: str) -> Any:
    if name in ("review_freeze_flow", "review_rerun_flow", "review_verify_flow"):
        flows = _prefect_flows()
        globals().update(flows)
        return flows[name]
    raise AttributeError(name)


def clear_team(event_dir: EventDir, team_name: str) -> None:
    """Forget a team's review state (tests and re-provisioning only)."""
    shutil.rmtree(team_dir(event_dir, team_name), ignore_errors=True)
    shutil.rmtree(layout.judge_view_dir(event_dir.workdir, team_name), ignore_errors=True)


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=str)


def _local_zone() -> str:
    """The machine's IANA time zone (naive deadlines in event.yaml are local time)."""
    if os.environ.get("TZ"):
        return os.environ["TZ"].lstrip(":")
    path = Path("/etc/timezone")
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    return "UTC"


def freeze_rrule(event_dir: EventDir) -> tuple[str, str]:
    """(RFC 5545 rule firing once at the deadline, timezone) for the freeze schedule."""
    deadline = event_dir.event.deadline
    zone = "UTC" if deadline.tzinfo is not None else _local_zone()
    local = deadline.astimezone(dt.UTC) if deadline.tzinfo is not None else deadline
    return f"DTSTART:{local:%Y%m%dT%H%M%S}\nRRULE:FREQ=DAILY;COUNT=1", zone


def schedule_freeze(event_dir: EventDir, work_pool: str = "hackgap-process") -> str:
    """Register `review-freeze/<event>` on the event's Prefect server, run once at the deadline
    by a worker of `work_pool` (infra/README.md); re-registering replaces it. Returns its id."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.client.schemas.schedules import RRuleSchedule
    from prefect.exceptions import ObjectAlreadyExists

    # the pool its worker serves, made once
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name=work_pool, type="process"))
    rule, zone = freeze_rrule(event_dir)
    deployment = _prefect_flows()["review_freeze_flow"].to_deployment(
        name=event_dir.event.name,
        schedule=RRuleSchedule(rrule=rule, timezone=zone),
        parameters={"event_path": str(event_dir.root), "force": False},
        description=f"Freeze the submissions of {event_dir.event.title} at its deadline.",
        tags=["hackgap", "review"],
        work_pool_name=work_pool,
        work_queue_name="secure",
    )
    return str(deployment.apply())
