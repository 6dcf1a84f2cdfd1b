"""The judges' database: submissions (blind codes), assignments, score sheets, the reveal switch.

One SQLite file under the workdir (layout.judging_db), spoken to through SQLAlchemy Core.
Every write is one transaction opened with BEGIN IMMEDIATE, so the judge page and the CLI
(assignment) never interleave half-done changes and a reload always finds what was saved.
The store knows nothing about who is asking: the judge page passes the logged-in judge and
the store only ever reads or writes that judge's own sheet.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import (
    Column,
    Connection,
    ForeignKeyConstraint,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Engine

metadata = MetaData()

submissions = Table(
    "submissions",
    metadata,
    Column("team", String, primary_key=True),
    Column("code", String, nullable=False, unique=True),
    Column("challenge", String, nullable=False),
)
assignments = Table(
    "assignments",
    metadata,
    Column("team", String, primary_key=True),
    Column("judge", String, primary_key=True),
    Column("assigned_at", String, nullable=False),
    ForeignKeyConstraint(["team"], ["submissions.team"]),
)
sheets = Table(
    "sheets",
    metadata,
    Column("team", String, primary_key=True),
    Column("judge", String, primary_key=True),
    Column("comment", Text, nullable=False, default=""),
    Column("updated_at", String, nullable=False),
    Column("submitted_at", String, nullable=True),
    ForeignKeyConstraint(["team", "judge"], ["assignments.team", "assignments.judge"]),
)
scores = Table(
    "scores",
    metadata,
    Column("team", String, primary_key=True),
    Column("judge", String, primary_key=True),
    Column("criterion", String, primary_key=True),
    Column("value", Integer, nullable=False),
    ForeignKeyConstraint(["team", "judge"], ["sheets.team", "sheets.judge"]),
)
settings = Table(
    "settings",
    metadata,
    Column("key", String, primary_key=True),
    Column("value", String, nullable=False),
)

MAX_COMMENT = 20_000


class ScoreError(Exception):
    """A score or sheet change that is not allowed (wrong value, submitted sheet, not assigned)."""

    hackgap_user_error = True


@dataclass(frozen=True)
class Submission:
    team: str
    code: str
    challenge: str


@dataclass(frozen=True)
class Sheet:
    """One judge's scores and comment for one submission."""

    team: str
    judge: str
    scores: dict[str, int] = field(default_factory=dict)
    comment: str = ""
    updated_at: str | None = None
    submitted_at: str | None = None

    @property
    def submitted(self) -> bool:
        return self.submitted_at is not None


@dataclass(frozen=True)
class Progress:
    judge: str
    assigned: int
    started: int
    submitted: int


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class ScoreStore:
    """Scores and assignments in one SQLite file; safe to open from several processes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        # Team servers run on this machine: the judging folder (scores, and the judge views
        # the review stage writes under it) is for the judge page (root) only.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.parent.chmod(0o700)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        self.engine: Engine = create_engine(
            f"sqlite+pysqlite:///{self.path}", connect_args={"timeout": 30}
        )
        event.listen(self.engine, "connect", _on_connect)
        event.listen(self.engine, "begin", _on_begin)
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # -- submissions and their blind codes ---------------------------------------------------

    def register(self, challenges: Mapping[str, str], seed: int) -> dict[str, str]:
        """Give every new team a blind code (S01, S02, ... in a seeded shuffle); keep old codes.

        `challenges` maps team -> challenge pack id; a team's challenge is updated if changed.
        Returns team -> code for every registered team.
        """
        with self._tx() as conn:
            known = {r.team: r for r in conn.execute(select(submissions))}
            new = sorted(set(challenges) - set(known))
            random.Random(f"codes:{seed}").shuffle(new)
            used = {int(r.code[1:]) for r in known.values()}
            number = max(used, default=0)
            for team in new:
                number += 1
                conn.execute(
                    submissions.insert().values(
                        team=team, code=f"S{number:02d}", challenge=challenges[team]
                    )
                )
            for team, row in known.items():
                if team in challenges and row.challenge != challenges[team]:
                    conn.execute(
                        submissions.update()
                        .where(submissions.c.team == team)
                        .values(challenge=challenges[team])
                    )
        return {s.team: s.code for s in self.submissions()}

    def submissions(self) -> list[Submission]:
        with self._tx() as conn:
            rows = conn.execute(select(submissions).order_by(submissions.c.code))
            return [Submission(r.team, r.code, r.challenge) for r in rows]

    def by_code(self, code: str) -> Submission | None:
        with self._tx() as conn:
            row = conn.execute(select(submissions).where(submissions.c.code == code)).first()
        return Submission(row.team, row.code, row.challenge) if row else None

    # -- assignments ---------------------------------------------------------------------------

    def assignment(self) -> dict[str, tuple[str, ...]]:
        """team -> its judges (sorted)."""
        out: dict[str, list[str]] = {}
        with self._tx() as conn:
            for r in conn.execute(select(assignments).order_by("team", "judge")):
                out.setdefault(r.team, []).append(r.judge)
        return {t: tuple(js) for t, js in out.items()}

    def locked(self) -> set[tuple[str, str]]:
        """(team, judge) pairs with a saved sheet: an assignment may never drop these."""
        with self._tx() as conn:
            return {(r.team, r.judge) for r in conn.execute(select(sheets.c.team, sheets.c.judge))}

    def replace_assignment(self, new: Mapping[str, Iterable[str]]) -> tuple[int, int]:
        """Make the stored assignment equal `new`; returns (pairs added, pairs removed).

        Refuses (ScoreError, nothing changed) to remove a pair whose judge saved a sheet.
        """
        wanted = {(t, j) for t, js in new.items() for j in js}
        with self._tx() as conn:
            have = {(r.team, r.judge) for r in conn.execute(select(assignments))}
            saved = {(r.team, r.judge) for r in conn.execute(select(sheets.c.team, sheets.c.judge))}
            dropped = sorted((have - wanted) & saved)
            if dropped:
                team, judge = dropped[0]
                raise ScoreError(
                    f"judge '{judge}' already saved scores for team '{team}', so that assignment "
                    "cannot be removed; keep the judge in event.yaml and not in conflict with "
                    "the team."
                )
            now = _now()
            for team, judge in sorted(have - wanted):
                conn.execute(
                    assignments.delete().where(
                        (assignments.c.team == team) & (assignments.c.judge == judge)
                    )
                )
            for team, judge in sorted(wanted - have):
                conn.execute(assignments.insert().values(team=team, judge=judge, assigned_at=now))
        return len(wanted - have), len(have - wanted)

    def assigned_to(self, judge: str) -> list[Submission]:
        """The submissions a judge scores, by code."""
        query = (
            select(submissions)
            .join(assignments, assignments.c.team == submissions.c.team)
            .where(assignments.c.judge == judge)
            .order_by(submissions.c.code)
        )
        with self._tx() as conn:
            return [Submission(r.team, r.code, r.challenge) for r in conn.execute(query)]

    def is_assigned(self, judge: str, team: str) -> bool:
        with self._tx() as conn:
            return _assigned(conn, judge, team)

    # -- one judge's sheet ------------------------------------------------------------------

    def sheet(self, judge: str, team: str) -> Sheet:
        """The judge's own sheet for a team (empty if nothing saved yet)."""
        with self._tx() as conn:
            return _sheet(conn, judge, team)

    def save(
        self,
        judge: str,
        team: str,
        values: Mapping[str, int | None],
        comment: str | None,
        *,
        criteria: Iterable[str],
        scale: tuple[int, int],
    ) -> Sheet:
        """Save some scores (None clears one) and/or the comment; the sheet stays a draft.

        ScoreError if the judge is not assigned, the sheet was submitted, or a value is off
        the rubric's scale or names an unknown criterion.
        """
        known = set(criteria)
        low, high = scale
        for criterion, value in values.items():
            if criterion not in known:
                raise ScoreError(f"unknown criterion '{criterion}'; use one of the rubric's.")
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high
            ):
                raise ScoreError(
                    f"score for '{criterion}' must be a whole number from {low} to {high}."
                )
        if comment is not None and len(comment) > MAX_COMMENT:
            raise ScoreError(f"the comment is longer than {MAX_COMMENT} characters; shorten it.")
        with self._tx() as conn:
            current = _writable(conn, judge, team)
            now = _now()
            key = (sheets.c.team == team) & (sheets.c.judge == judge)
            if current.updated_at is None:
                conn.execute(
                    sheets.insert().values(
                        team=team, judge=judge, comment=comment or "", updated_at=now
                    )
                )
            else:
                change = {"updated_at": now}
                if comment is not None:
                    change["comment"] = comment
                conn.execute(sheets.update().where(key).values(**change))
            for criterion, value in values.items():
                one = (
                    (scores.c.team == team)
                    & (scores.c.judge == judge)
                    & (scores.c.criterion == criterion)
                )
                conn.execute(scores.delete().where(one))
                if value is not None:
                    conn.execute(
                        scores.insert().values(
                            team=team, judge=judge, criterion=criterion, value=value
                        )
                    )
            return _sheet(conn, judge, team)

    def submit(self, judge: str, team: str, *, criteria: Iterable[str]) -> Sheet:
        """Close the sheet: every criterion must be scored; afterwards it cannot change."""
        with self._tx() as conn:
            current = _writable(conn, judge, team)
            missing = [c for c in criteria if c not in current.scores]
            if missing:
                raise ScoreError(
                    f"score every criterion before submitting; missing: {', '.join(missing)}."
                )
            conn.execute(
                sheets.update()
                .where((sheets.c.team == team) & (sheets.c.judge == judge))
                .values(submitted_at=_now())
            )
            return _sheet(conn, judge, team)

    # -- organiser ---------------------------------------------------------------------------

    def all_sheets(self) -> list[Sheet]:
        """Every saved sheet (drafts and submitted): for the organiser's leaderboard only."""
        with self._tx() as conn:
            rows = conn.execute(select(sheets).order_by("team", "judge")).all()
            values: dict[tuple[str, str], dict[str, int]] = {}
            for r in conn.execute(select(scores)):
                values.setdefault((r.team, r.judge), {})[r.criterion] = r.value
        return [
            Sheet(r.team, r.judge, values.get((r.team, r.judge), {}), r.comment, r.updated_at,
                  r.submitted_at)
            for r in rows
        ]  # fmt: skip

    def progress(self, judges: Iterable[str] = ()) -> list[Progress]:
        """Per judge: submissions assigned, sheets started, sheets submitted."""
        counts: dict[str, list[int]] = {j: [0, 0, 0] for j in judges}
        with self._tx() as conn:
            for r in conn.execute(select(assignments.c.judge)):
                counts.setdefault(r.judge, [0, 0, 0])[0] += 1
            for r in conn.execute(select(sheets.c.judge, sheets.c.submitted_at)):
                entry = counts.setdefault(r.judge, [0, 0, 0])
                entry[1] += 1
                entry[2] += r.submitted_at is not None
        return [Progress(j, *c) for j, c in sorted(counts.items())]

    def revealed(self) -> bool:
        with self._tx() as conn:
            return _flag(conn, "revealed")

    def set_revealed(self, revealed: bool) -> None:
        with self._tx() as conn:
            _set_flag(conn, "revealed", revealed)

    def closed(self) -> bool:
        with self._tx() as conn:
            return _flag(conn, "closed")

    def close_judging(self) -> None:
        """No sheet changes from now on (the export that follows is final)."""
        with self._tx() as conn:
            _set_flag(conn, "closed", True)

    def backup(self, dest: Path) -> Path:
        """A consistent copy of the database (SQLite's online backup), e.g. for export."""
        dest = Path(dest)
        raw = self.engine.raw_connection()
        try:
            target = sqlite3.connect(dest)
            try:
                raw.driver_connection.backup(target)
            finally:
                target.close()
        finally:
            raw.close()
        return dest

    def export(self) -> dict:
        """Everything in the database as plain JSON-able data (for the submissions bucket)."""
        return {
            "revealed": self.revealed(),
            "closed": self.closed(),
            "submissions": [s.__dict__ for s in self.submissions()],
            "assignments": {t: list(js) for t, js in self.assignment().items()},
            "sheets": [
                {**s.__dict__, "scores": dict(sorted(s.scores.items()))} for s in self.all_sheets()
            ],
        }


def _on_connect(dbapi_connection, _record) -> None:
    # Let SQLAlchemy's "begin" event open the transaction (pysqlite would open it lazily,
    # which lets a read-then-write transaction fail halfway with "database is locked").
    dbapi_connection.isolation_level = None
    dbapi_connection.execute("PRAGMA journal_mode=WAL")
    dbapi_connection.execute("PRAGMA foreign_keys=ON")


def _on_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _flag(conn: Connection, key: str) -> bool:
    row = conn.execute(select(settings).where(settings.c.key == key)).first()
    return bool(row and row.value == "1")


def _set_flag(conn: Connection, key: str, value: bool) -> None:
    conn.execute(settings.delete().where(settings.c.key == key))
    conn.execute(settings.insert().values(key=key, value="1" if value else "0"))


def _assigned(conn: Connection, judge: str, team: str) -> bool:
    query = select(assignments.c.team).where(
        (assignments.c.team == team) & (assignments.c.judge == judge)
    )
    return conn.execute(query).first() is not None


def _sheet(conn: Connection, judge: str, team: str) -> Sheet:
    row = conn.execute(
        select(sheets).where((sheets.c.team == team) & (sheets.c.judge == judge))
    ).first()
    if row is None:
        return Sheet(team, judge)
    values = {
        r.criterion: r.value
        for r in conn.execute(
            select(scores.c.criterion, scores.c.value).where(
                (scores.c.team == team) & (scores.c.judge == judge)
            )
        )
    }
    return Sheet(team, judge, values, row.comment, row.updated_at, row.submitted_at)


def _writable(conn: Connection, judge: str, team: str) -> Sheet:
    if _flag(conn, "closed"):
        raise ScoreError("judging is closed; sheets can no longer be changed.")
    if not _assigned(conn, judge, team):
        raise ScoreError("this submission is not assigned to you.")
    current = _sheet(conn, judge, team)
    if current.submitted:
        raise ScoreError("this sheet was submitted and can no longer be changed.")
    return current
