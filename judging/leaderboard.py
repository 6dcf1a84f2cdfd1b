"""The leaderboard: raw weighted scores, per-judge normalised scores, agreement, disagreements.

Only submitted sheets count (a draft may still change). Raw: each judge's scores weighted
by the challenge's rubric, averaged over the judges. Normalised: each judge's weighted
scores (as a share of the rubric's scale, so packs with different scales compare) turned
into z-scores over everything that judge submitted, then averaged per submission, so a
strict or lenient judge moves every team they scored alike and does not sink or lift them
against teams scored by others. Agreement per criterion is Krippendorff's alpha (ordinal,
over the rubric's whole scale) from the `krippendorff` package. Teams appear as their blind
codes until the organiser reveals names.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import krippendorff
import numpy as np

from judging.scores import Sheet, Submission


class Rubric(Protocol):
    """What the leaderboard needs of a challenge's rubric (challenges.pack.Rubric fits)."""

    scale_min: int
    scale_max: int
    criteria: Sequence  # items with .id and .weight


@dataclass(frozen=True)
class Row:
    rank: int | None
    code: str
    team: str | None
    challenge: str
    judges: int
    raw: float | None
    normalised: float | None
    flags: int


@dataclass(frozen=True)
class Agreement:
    challenge: str
    criterion: str
    alpha: float | None
    submissions: int
    note: str


@dataclass(frozen=True)
class Flag:
    code: str
    team: str | None
    criterion: str
    low: int
    high: int
    scores: dict[str, int]


@dataclass(frozen=True)
class Leaderboard:
    rows: list[Row]
    agreement: list[Agreement]
    flags: list[Flag]
    revealed: bool
    margin: float

    def to_dict(self) -> dict:
        return {
            "revealed": self.revealed,
            "disagreement_margin": self.margin,
            "rows": [asdict(r) for r in self.rows],
            "agreement": [asdict(a) for a in self.agreement],
            "flags": [asdict(f) for f in self.flags],
        }

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(
            ["rank", "code", "team", "challenge", "judges", "raw", "normalised", "flags"]
        )
        for r in self.rows:
            writer.writerow(
                [
                    "" if r.rank is None else r.rank,
                    r.code,
                    r.team or "",
                    r.challenge,
                    r.judges,
                    "" if r.raw is None else f"{r.raw:.3f}",
                    "" if r.normalised is None else f"{r.normalised:.3f}",
                    r.flags,
                ]
            )
        return out.getvalue()


def _share(rubric: Rubric, weighted: float) -> float:
    return (weighted - rubric.scale_min) / (rubric.scale_max - rubric.scale_min)


def _weighted(rubric: Rubric, scores: Mapping[str, int]) -> float:
    return sum(c.weight * scores[c.id] for c in rubric.criteria)


def judge_z_scores(shares: Mapping[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    """(team, judge) -> z of that judge's score among everything the judge scored.

    A judge with one sheet, or who gave every team the same score, says nothing about their
    own scale: their z is 0 (the submission's other judges then decide).
    """
    by_judge: dict[str, list[float]] = {}
    for (_, judge), value in shares.items():
        by_judge.setdefault(judge, []).append(value)
    out = {}
    for (team, judge), value in shares.items():
        values = by_judge[judge]
        sd = statistics.pstdev(values) if len(values) > 1 else 0.0
        out[(team, judge)] = 0.0 if sd < 1e-12 else (value - statistics.fmean(values)) / sd
    return out


def agreement(challenge: str, rubric: Rubric, sheets: Iterable[Sheet]) -> list[Agreement]:
    """Krippendorff's alpha per criterion over the submitted sheets of one challenge."""
    sheets = list(sheets)
    judges = sorted({s.judge for s in sheets})
    teams = sorted({s.team for s in sheets})
    domain = list(range(rubric.scale_min, rubric.scale_max + 1))
    out = []
    for criterion in rubric.criteria:
        data = np.full((len(judges), len(teams)), np.nan)
        for s in sheets:
            if criterion.id in s.scores:
                data[judges.index(s.judge), teams.index(s.team)] = s.scores[criterion.id]
        pairable = int((np.sum(~np.isnan(data), axis=0) >= 2).sum())
        alpha, note = None, ""
        if pairable < 2:
            note = "needs two submissions each scored by two judges"
        else:
            try:
                with np.errstate(invalid="ignore", divide="ignore"):  # no variation: nan
                    value = float(
                        krippendorff.alpha(
                            data, value_domain=domain, level_of_measurement="ordinal"
                        )
                    )
            except ValueError:
                value = math.nan
            if math.isnan(value):
                note = "every score is the same: nothing to compare"
            else:
                alpha = round(value, 4)
        out.append(Agreement(challenge, criterion.id, alpha, pairable, note))
    return out


def build(
    submissions: Sequence[Submission],
    sheets: Iterable[Sheet],
    rubrics: Mapping[str, Rubric],
    *,
    revealed: bool,
    margin: float,
) -> Leaderboard:
    """The leaderboard over submitted sheets; rubrics maps challenge id -> rubric."""
    by_team = {s.team: s for s in submissions}
    done = [s for s in sheets if s.submitted and s.team in by_team]
    shares = {
        (s.team, s.judge): _share(rubrics[by_team[s.team].challenge],
                                  _weighted(rubrics[by_team[s.team].challenge], s.scores))
        for s in done
    }  # fmt: skip
    z = judge_z_scores(shares)

    flags: list[Flag] = []
    for sub in submissions:
        mine = [s for s in done if s.team == sub.team]
        for criterion in rubrics[sub.challenge].criteria:
            given = {s.judge: s.scores[criterion.id] for s in mine if criterion.id in s.scores}
            if len(given) >= 2 and max(given.values()) - min(given.values()) > margin:
                flags.append(
                    Flag(sub.code, sub.team if revealed else None, criterion.id,
                         min(given.values()), max(given.values()),
                         dict(sorted(given.items())))
                )  # fmt: skip

    rows = []
    for sub in submissions:
        rubric = rubrics[sub.challenge]
        mine = [s for s in done if s.team == sub.team]
        raw = statistics.fmean(_weighted(rubric, s.scores) for s in mine) if mine else None
        norm = statistics.fmean(z[(sub.team, s.judge)] for s in mine) if mine else None
        rows.append(
            Row(None, sub.code, sub.team if revealed else None, sub.challenge, len(mine),
                None if raw is None else round(raw, 4),
                None if norm is None else round(norm, 4),
                sum(1 for f in flags if f.code == sub.code))
        )  # fmt: skip
    scored = sorted(
        (r for r in rows if r.judges),
        key=lambda r: (-(r.normalised or 0.0), -(r.raw or 0.0), r.code),
    )
    ranked = [Row(i + 1, *list(asdict(r).values())[1:]) for i, r in enumerate(scored)]
    ranked += sorted((r for r in rows if not r.judges), key=lambda r: r.code)

    agreements = []
    for challenge in sorted({s.challenge for s in submissions}):
        teams = {s.team for s in submissions if s.challenge == challenge}
        agreements += agreement(challenge, rubrics[challenge], [s for s in done if s.team in teams])
    return Leaderboard(ranked, agreements, flags, revealed, margin)
