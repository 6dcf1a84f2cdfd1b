"""Which judges score which submission.

Every submission gets at least `per_submission` judges, no judge scores a team they are
linked to, judges' loads differ by at most one, and a re-run keeps as many earlier
assignments as it can (never one whose judge already saved scores). Solved as one small
integer programme (scipy's HiGHS `milp`): binary x[team, judge] for each allowed pair,
with cost 1 for a pair that is new, a tiny seeded tie-break per pair (so the same event
seed always gives the same answer, whatever order names arrive in), and a large weight on
the gap between the busiest and the least busy judge.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import lil_array


class AssignmentError(Exception):
    """No assignment can meet the settings; the sentence names what to change."""

    hackgap_user_error = True


@dataclass(frozen=True)
class Assignment:
    """team -> its judges (sorted), plus what changed against the previous assignment."""

    judges_of: dict[str, tuple[str, ...]]
    added: int = 0
    removed: int = 0

    def load(self, judges: Iterable[str] = ()) -> dict[str, int]:
        """Submissions per judge (judges with none included when listed)."""
        counts = dict.fromkeys(judges, 0)
        for js in self.judges_of.values():
            for j in js:
                counts[j] = counts.get(j, 0) + 1
        return dict(sorted(counts.items()))

    def teams_of(self, judge: str) -> list[str]:
        return sorted(t for t, js in self.judges_of.items() if judge in js)


def _tiebreak(seed: int, team: str, judge: str) -> float:
    """A number in [0, 1) fixed by (seed, team, judge) alone."""
    digest = hashlib.sha256(f"{seed}\0{team}\0{judge}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign(
    teams: Sequence[str],
    judges: Sequence[str],
    per_submission: int,
    *,
    conflicts: Mapping[str, Iterable[str]] | None = None,
    seed: int = 0,
    previous: Mapping[str, Iterable[str]] | None = None,
    locked: Iterable[tuple[str, str]] = (),
) -> Assignment:
    """Assign judges to teams; AssignmentError (one sentence) if the settings make it impossible.

    previous: the stored assignment (kept where possible). locked: (team, judge) pairs with
    saved scores, which are always kept (a team may then have more than per_submission).
    """
    teams = sorted(set(teams))
    judges = sorted(set(judges))
    previous_pairs = {(t, j) for t, js in (previous or {}).items() for j in js}
    locked = {(t, j) for t, j in locked if t in teams}
    blocked = {(j, t) for j, ts in (conflicts or {}).items() for t in ts}
    if not teams:
        return Assignment({}, 0, len(previous_pairs))
    if not judges:
        raise AssignmentError("event.yaml lists no judges; add them under `judges:`.")
    if per_submission > len(judges):
        raise AssignmentError(
            f"judging.judges_per_submission is {per_submission} but event.yaml lists only "
            f"{len(judges)} judge(s); add judges or lower the setting."
        )
    for team, judge in sorted(locked):
        if judge not in judges:
            raise AssignmentError(
                f"judge '{judge}' already saved scores for team '{team}' but is no longer in "
                "`judges`; put the judge back in event.yaml."
            )
        if (judge, team) in blocked:
            raise AssignmentError(
                f"judge '{judge}' already saved scores for team '{team}' but judging.conflicts "
                "now links them; remove that conflict or ask the organiser to clear the scores."
            )
    for team in teams:
        free = [j for j in judges if (j, team) not in blocked]
        if len(free) < per_submission:
            raise AssignmentError(
                f"team '{team}' has only {len(free)} judge(s) without a conflict but needs "
                f"{per_submission}; add judges or lower judging.judges_per_submission."
            )

    pairs = [(t, j) for t in teams for j in judges if (j, t) not in blocked]
    index = {p: i for i, p in enumerate(pairs)}
    demand = {t: max(per_submission, sum(1 for (lt, _) in locked if lt == t)) for t in teams}
    n_pairs = len(pairs)
    lo, hi = n_pairs, n_pairs + 1  # two continuous variables: least and largest load
    total = sum(demand.values())
    eps = 1.0 / (n_pairs + 1)
    cost = np.zeros(n_pairs + 2)
    for i, (t, j) in enumerate(pairs):
        cost[i] = (0.0 if (t, j) in previous_pairs else 1.0) + eps * _tiebreak(seed, t, j)
    spread_weight = total + 2.0  # more than any number of changes can cost
    cost[hi], cost[lo] = spread_weight, -spread_weight

    rows = lil_array((len(teams) + 2 * len(judges), n_pairs + 2))
    lower, upper = [], []
    for r, team in enumerate(teams):
        for j in judges:
            if (team, j) in index:
                rows[r, index[(team, j)]] = 1
        lower.append(demand[team])
        upper.append(demand[team])
    for k, judge in enumerate(judges):
        up, down = len(teams) + 2 * k, len(teams) + 2 * k + 1
        for t in teams:
            if (t, judge) in index:
                rows[up, index[(t, judge)]] = 1
                rows[down, index[(t, judge)]] = 1
        rows[up, hi] = -1  # load - hi <= 0
        lower.append(-np.inf)
        upper.append(0)
        rows[down, lo] = -1  # load - lo >= 0
        lower.append(0)
        upper.append(np.inf)

    low_bounds = np.zeros(n_pairs + 2)
    high_bounds = np.ones(n_pairs + 2)
    for p in locked:
        low_bounds[index[p]] = 1
    high_bounds[lo] = high_bounds[hi] = len(teams)
    integrality = np.ones(n_pairs + 2)
    integrality[[lo, hi]] = 0
    result = milp(
        cost,
        constraints=LinearConstraint(rows.tocsr(), lower, upper),
        bounds=Bounds(low_bounds, high_bounds),
        integrality=integrality,
        options={"mip_rel_gap": 0, "presolve": True},
    )
    if result.x is None:
        raise AssignmentError(
            "no assignment meets judging.conflicts with "
            f"{per_submission} judges per submission; add judges or remove conflicts."
        )
    chosen = {pairs[i] for i in range(n_pairs) if result.x[i] > 0.5}
    judges_of = {t: tuple(sorted(j for (ct, j) in chosen if ct == t)) for t in teams}
    return Assignment(
        judges_of, added=len(chosen - previous_pairs), removed=len(previous_pairs - chosen)
    )
