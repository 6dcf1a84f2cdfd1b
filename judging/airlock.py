"""The airlock: people decide which checked real-data outputs leave the secure zone.

One JSON file per team (`airlock.json` in its private review folder) holds, per output, the
checker's verdict and every decision (reviewer, approve/reject, comment, time). An output is
released when enough different reviewers approved it (two when `review.two_reviewers`) and
nobody rejected it. Authors (the team's members) cannot review their own outputs; an output
that breaks a rule cannot be approved at all (the team must fix the notebook). The flow
writes each decision to the audit log.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from judging.errors import ReviewError
from judging.freeze import write_json

AIRLOCK_FILE = "airlock.json"


class AirlockError(ReviewError):
    """A decision the airlock cannot accept; the sentence says why."""


def load(team_dir: Path) -> dict:
    path = Path(team_dir) / AIRLOCK_FILE
    if not path.is_file():
        return {"key": None, "outputs": {}}
    return json.loads(path.read_text(encoding="utf-8"))


def open_candidates(team_dir: Path, key: str, verdicts: list[dict]) -> dict:
    """Put a real-data run's checked outputs in the airlock; decisions for the same run stay."""
    state = load(team_dir)
    if state.get("key") == key:
        known = state["outputs"]
        for v in verdicts:
            entry = known.get(v["name"])
            if entry is None or entry.get("sha256") != v.get("sha256"):
                known[v["name"]] = {**v, "decisions": []}
        for name in list(known):
            if name not in {v["name"] for v in verdicts}:
                del known[name]
    else:
        state = {"key": key, "outputs": {v["name"]: {**v, "decisions": []} for v in verdicts}}
    write_json(Path(team_dir) / AIRLOCK_FILE, state)
    return state


def status_of(entry: dict, two_reviewers: bool) -> str:
    """withheld (the checker said no) | rejected | released | pending."""
    decisions = entry.get("decisions", [])
    if any(d["decision"] == "reject" for d in decisions):
        return "rejected"
    if entry.get("verdict") == "unsafe":
        return "withheld"
    approvers = {d["reviewer"] for d in decisions if d["decision"] == "approve"}
    return "released" if len(approvers) >= (2 if two_reviewers else 1) else "pending"


def decide(
    team_dir: Path,
    team: str,
    name: str,
    *,
    reviewer: str,
    decision: str,
    comment: str,
    authors: set[str],
    two_reviewers: bool,
    now: dt.datetime | None = None,
) -> dict:
    """Record one decision; return the output's entry with its new status."""
    if decision not in ("approve", "reject"):
        raise AirlockError(f"decision '{decision}' is unknown; use approve or reject.")
    if not comment.strip():
        raise AirlockError("a decision needs a comment; give one with --comment.")
    if reviewer in authors:
        raise AirlockError(
            f"{reviewer} is a member of team {team} and cannot review its outputs; ask "
            "another organiser."
        )
    state = load(team_dir)
    entry = state["outputs"].get(name)
    if entry is None:
        known = ", ".join(sorted(state["outputs"])) or "none"
        raise AirlockError(
            f"team {team} has no output '{name}' in the airlock (candidates: {known}); run "
            "`hackgap review verify` first or check the name."
        )
    if decision == "approve" and entry.get("verdict") == "unsafe":
        raise AirlockError(
            f"{name} breaks a disclosure rule ({entry.get('rule')}); it cannot be approved: "
            "the team must change its notebook."
        )
    if any(d["reviewer"] == reviewer for d in entry["decisions"]):
        raise AirlockError(
            f"{reviewer} already decided on {team}/{name}; a second review must come from "
            "another organiser."
        )
    entry["decisions"].append(
        {
            "reviewer": reviewer,
            "decision": decision,
            "comment": comment.strip(),
            "at": (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
        }
    )
    entry["status"] = status_of(entry, two_reviewers)
    write_json(Path(team_dir) / AIRLOCK_FILE, state)
    return entry


def listing(team_dir: Path, two_reviewers: bool) -> list[dict]:
    """Every candidate with its verdict, rule, decisions and status."""
    state = load(team_dir)
    return [
        {**entry, "status": status_of(entry, two_reviewers)}
        for _name, entry in sorted(state["outputs"].items())
    ]
