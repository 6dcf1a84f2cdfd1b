"""Airlock: organisers decide; two different reviewers when asked; authors never."""

from __future__ import annotations

import pytest

from judging import airlock


@pytest.fixture
def team_dir(tmp_path):
    airlock.open_candidates(
        tmp_path,
        "k1",
        [
            {"name": "ok.csv", "verdict": "safe", "rule": "", "sha256": "a"},
            {"name": "small.csv", "verdict": "unsafe", "rule": "minimum cell count", "sha256": "b"},
            {"name": "fig.png", "verdict": "review", "rule": "a figure", "sha256": "c"},
        ],
    )
    return tmp_path


def _decide(team_dir, name, reviewer, decision="approve", two=True, authors=("ann",)):
    return airlock.decide(
        team_dir, "red", name, reviewer=reviewer, decision=decision, comment="looked at it",
        authors=set(authors), two_reviewers=two,
    )  # fmt: skip


def test_two_different_reviewers_release_an_output(team_dir):
    assert _decide(team_dir, "ok.csv", "olga")["status"] == "pending"
    with pytest.raises(airlock.AirlockError, match="already decided"):
        _decide(team_dir, "ok.csv", "olga")
    assert _decide(team_dir, "ok.csv", "otto")["status"] == "released"


def test_one_reviewer_is_enough_when_the_event_says_so(team_dir):
    assert _decide(team_dir, "fig.png", "olga", two=False)["status"] == "released"


def test_authors_cannot_review_their_own_outputs(team_dir):
    with pytest.raises(airlock.AirlockError, match="member of team red"):
        _decide(team_dir, "ok.csv", "ann")


def test_unsafe_outputs_cannot_be_approved_but_can_be_rejected(team_dir):
    with pytest.raises(airlock.AirlockError, match="minimum cell count"):
        _decide(team_dir, "small.csv", "olga")
    assert _decide(team_dir, "small.csv", "olga", "reject")["status"] == "rejected"


def test_a_rejection_stops_a_release(team_dir):
    _decide(team_dir, "ok.csv", "olga", "reject")
    assert _decide(team_dir, "ok.csv", "otto")["status"] == "rejected"
    statuses = {e["name"]: e["status"] for e in airlock.listing(team_dir, True)}
    assert statuses == {"fig.png": "pending", "ok.csv": "rejected", "small.csv": "withheld"}


def test_reopening_the_same_run_keeps_decisions_and_a_new_run_resets_them(team_dir):
    _decide(team_dir, "ok.csv", "olga")
    same = [{"name": "ok.csv", "verdict": "safe", "rule": "", "sha256": "a"}]
    airlock.open_candidates(team_dir, "k1", same)
    assert len(airlock.load(team_dir)["outputs"]["ok.csv"]["decisions"]) == 1
    airlock.open_candidates(team_dir, "k2", same)
    assert airlock.load(team_dir)["outputs"]["ok.csv"]["decisions"] == []
