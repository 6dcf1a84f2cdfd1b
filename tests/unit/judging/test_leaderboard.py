"""Leaderboard: weighted raw scores, per-judge z, agreement, disagreement flags, blindness."""

from __future__ import annotations

import csv
import io

import krippendorff
import numpy as np
import pytest

from challenges import load_pack
from judging.leaderboard import build, judge_z_scores
from judging.scores import Sheet, Submission

RUBRIC = load_pack(
    "advieskloof"
).rubric  # vraag .2, methode .25, inzicht .25, privacy .1, communicatie .2
IDS = [c.id for c in RUBRIC.criteria]
DONE = "2026-11-27T16:00:00+00:00"


def _sheet(team, judge, values, submitted=True):
    scores = dict(zip(IDS, values, strict=True)) if isinstance(values, list) else values
    return Sheet(team, judge, scores, "", DONE, DONE if submitted else None)


def _subs(*teams):
    return [Submission(t, f"S{i + 1:02d}", "advieskloof") for i, t in enumerate(teams)]


def _board(subs, sheets, revealed=False, margin=1.5):
    return build(subs, sheets, {"advieskloof": RUBRIC}, revealed=revealed, margin=margin)


def test_raw_score_is_the_rubric_weighted_mean_over_judges_of_submitted_sheets():
    subs = _subs("noord")
    sheets = [
        _sheet("noord", "eva", [5, 4, 3, 2, 1]),  # 1.0+1.0+0.75+0.2+0.2 = 3.15
        _sheet("noord", "femke", [3, 3, 3, 3, 3]),  # 3.0
        _sheet("noord", "gijs", [1, 1, 1, 1, 1], submitted=False),  # a draft: not counted
    ]
    row = _board(subs, sheets).rows[0]
    assert row.raw == pytest.approx((3.15 + 3.0) / 2)
    assert row.judges == 2


def test_a_strict_judge_does_not_sink_the_teams_they_scored():
    # True order t1 > t2 > ... > t6. "strict" scores 1.5 below the truth, "lenient" 1 above,
    # each team is scored by two of the three judges.
    given = {
        "t1": {"strict": 4, "neutral": 5}, "t2": {"strict": 2, "lenient": 5},
        "t3": {"neutral": 4, "lenient": 4}, "t4": {"strict": 2, "neutral": 3},
        "t5": {"strict": 1, "lenient": 3}, "t6": {"neutral": 2, "lenient": 2},
    }  # fmt: skip
    subs = _subs(*given)
    sheets = [_sheet(t, j, [v] * 5) for t, js in given.items() for j, v in js.items()]
    board = _board(subs, sheets, revealed=True)
    by_team = {r.team: r for r in board.rows}
    assert by_team["t2"].raw < by_team["t3"].raw  # raw: the strict judge sinks t2
    assert [r.team for r in board.rows] == ["t1", "t2", "t3", "t4", "t5", "t6"]
    assert [r.rank for r in board.rows] == [1, 2, 3, 4, 5, 6]
    assert by_team["t2"].normalised > by_team["t3"].normalised


def test_z_scores_per_judge():
    z = judge_z_scores({("a", "eva"): 0.2, ("b", "eva"): 0.6, ("a", "femke"): 0.9})
    assert z[("a", "eva")] == pytest.approx(-1.0)
    assert z[("b", "eva")] == pytest.approx(1.0)
    assert z[("a", "femke")] == 0.0  # one sheet says nothing about femke's own scale


def test_agreement_is_krippendorffs_alpha_per_criterion():
    subs = _subs("a", "b", "c", "d")
    eva = {"a": [5, 4, 2, 3, 1], "b": [3, 3, 3, 3, 3], "c": [1, 2, 4, 5, 2], "d": [4, 4, 4, 4, 4]}
    femke = {"a": [5, 3, 2, 3, 2], "b": [3, 4, 2, 3, 3], "c": [2, 2, 5, 4, 2], "d": [4, 5, 4, 4, 4]}
    sheets = [_sheet(t, "eva", v) for t, v in eva.items()]
    sheets += [_sheet(t, "femke", v) for t, v in femke.items()]
    board = _board(subs, sheets)
    alphas = {a.criterion: a for a in board.agreement}
    for i, criterion in enumerate(IDS):
        data = np.array([[eva[t][i] for t in "abcd"], [femke[t][i] for t in "abcd"]], float)
        expected = krippendorff.alpha(
            data, value_domain=[1, 2, 3, 4, 5], level_of_measurement="ordinal"
        )
        assert alphas[criterion].alpha == pytest.approx(expected, abs=1e-4)
        assert alphas[criterion].submissions == 4
    assert alphas["vraag"].alpha > alphas["methode"].alpha  # they agree more on the question


def test_agreement_needs_overlap():
    board = _board(_subs("a", "b"), [_sheet("a", "eva", [3] * 5), _sheet("b", "femke", [4] * 5)])
    assert {a.alpha for a in board.agreement} == {None}
    assert "two judges" in board.agreement[0].note


def test_disagreement_flags_beyond_the_margin_only():
    subs = _subs("a")
    sheets = [_sheet("a", "eva", [5, 4, 3, 3, 3]), _sheet("a", "femke", [2, 3, 3, 3, 3])]
    board = _board(subs, sheets, margin=1.5)
    assert [(f.code, f.criterion, f.low, f.high) for f in board.flags] == [("S01", "vraag", 2, 5)]
    assert board.flags[0].scores == {"eva": 5, "femke": 2}
    assert board.rows[0].flags == 1
    assert _board(subs, sheets, margin=3).flags == []


def test_names_stay_hidden_until_revealed_in_rows_flags_and_csv():
    subs = _subs("team-noord", "team-zuid")
    sheets = [
        _sheet("team-noord", "eva", [5, 1, 1, 1, 1]),
        _sheet("team-noord", "femke", [1, 1, 1, 1, 1]),
    ]
    hidden = _board(subs, sheets)
    text = hidden.to_csv() + str(hidden.to_dict())
    assert "team-noord" not in text and "team-zuid" not in text
    shown = _board(subs, sheets, revealed=True)
    rows = list(csv.DictReader(io.StringIO(shown.to_csv())))
    assert [r["team"] for r in rows] == ["team-noord", "team-zuid"]
    assert rows[1]["rank"] == "" and rows[1]["raw"] == ""  # not scored yet: listed last
    assert shown.flags[0].team == "team-noord"
