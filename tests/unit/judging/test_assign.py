"""Judge assignment: coverage, balance, conflicts, determinism, stability on re-runs."""

from __future__ import annotations

import random

import pytest

from judging.assign import AssignmentError, assign


def _teams(n: int) -> list[str]:
    return [f"team-{i:02d}" for i in range(n)]


def _check(result, teams, judges, k, conflicts=None):
    loads = result.load(judges)
    assert set(result.judges_of) == set(teams)
    for team, js in result.judges_of.items():
        assert len(js) == k and len(set(js)) == k, team
        for judge in js:
            assert team not in (conflicts or {}).get(judge, []), (judge, team)
    assert max(loads.values()) - min(loads.values()) <= 1, loads


@pytest.mark.parametrize(
    ("n_teams", "n_judges", "k", "conflicts"),
    [
        (7, 3, 2, {}),
        (10, 5, 3, {"j0": ["team-01", "team-02"], "j3": ["team-01"]}),
        (2, 5, 2, {}),
        (23, 6, 2, {"j1": ["team-00", "team-05", "team-09"], "j2": ["team-05"]}),
    ],
)
def test_every_submission_gets_k_judges_balanced_and_without_conflicts(
    n_teams, n_judges, k, conflicts
):
    teams, judges = _teams(n_teams), [f"j{i}" for i in range(n_judges)]
    result = assign(teams, judges, k, conflicts=conflicts, seed=7)
    _check(result, teams, judges, k, conflicts)


def test_same_seed_same_answer_whatever_the_input_order():
    teams, judges = _teams(9), ["ann", "bob", "cas", "dee"]
    first = assign(teams, judges, 2, seed=11)
    shuffled_teams, shuffled_judges = teams[:], judges[:]
    random.Random(3).shuffle(shuffled_teams)
    random.Random(4).shuffle(shuffled_judges)
    assert assign(shuffled_teams, shuffled_judges, 2, seed=11).judges_of == first.judges_of
    others = {
        tuple(sorted(assign(teams, judges, 2, seed=s).judges_of.items())) for s in range(1, 6)
    }
    assert len(others) > 1  # the seed decides among equally good answers


def test_rerun_unchanged_moves_nothing():
    teams, judges = _teams(8), ["a", "b", "c"]
    first = assign(teams, judges, 2, seed=1)
    again = assign(teams, judges, 2, seed=1, previous=first.judges_of)
    assert again.judges_of == first.judges_of
    assert (again.added, again.removed) == (0, 0)


def test_adding_a_judge_moves_only_what_balance_needs():
    teams, judges = _teams(10), ["a", "b", "c"]
    first = assign(teams, judges, 2, seed=5)
    second = assign(teams, [*judges, "d"], 2, seed=5, previous=first.judges_of)
    _check(second, teams, [*judges, "d"], 2)
    new_load = second.load()["d"]
    assert new_load == 5  # 20 slots over 4 judges
    # every change is a slot handed to the new judge; nothing else is shuffled
    assert second.added == new_load and second.removed == new_load
    for team in teams:
        assert set(first.judges_of[team]) - set(second.judges_of[team]) <= set(
            first.judges_of[team]
        )
        assert set(second.judges_of[team]) - set(first.judges_of[team]) <= {"d"}


def test_adding_a_team_keeps_earlier_assignments():
    judges = ["a", "b", "c", "d"]
    first = assign(_teams(6), judges, 2, seed=2)
    second = assign(_teams(7), judges, 2, seed=2, previous=first.judges_of)
    assert second.added == 2 and second.removed == 0
    for team in _teams(6):
        assert second.judges_of[team] == first.judges_of[team]


def test_saved_scores_are_never_dropped_even_at_the_cost_of_balance():
    teams, judges = _teams(4), ["a", "b"]
    first = assign(teams, judges, 1, seed=3)
    locked = {(t, j) for t, js in first.judges_of.items() for j in js}
    second = assign(teams, [*judges, "c", "d"], 1, seed=3, previous=first.judges_of, locked=locked)
    for team, judge in locked:
        assert judge in second.judges_of[team]
    loads = second.load([*judges, "c", "d"])
    assert loads["c"] == 0 and loads["d"] == 0


def test_locked_pairs_above_the_quota_are_kept():
    result = assign(
        _teams(3), ["a", "b", "c"], 1, seed=1, locked={("team-00", "a"), ("team-00", "b")}
    )
    assert set(result.judges_of["team-00"]) == {"a", "b"}


@pytest.mark.parametrize(
    ("kwargs", "sentence"),
    [
        (
            {"judges": ["a", "b", "c"], "k": 2, "conflicts": {"a": ["team-01"], "b": ["team-01"]}},
            "team 'team-01' has only 1 judge(s) without a conflict but needs 2; add judges or "
            "lower judging.judges_per_submission.",
        ),
        (
            {"judges": ["a", "b"], "k": 3},
            "judging.judges_per_submission is 3 but event.yaml lists only 2 judge(s); add "
            "judges or lower the setting.",
        ),
        ({"judges": [], "k": 1}, "event.yaml lists no judges; add them under `judges:`."),
        (
            {"judges": ["a", "b"], "k": 1, "locked": {("team-00", "zed")}},
            "judge 'zed' already saved scores for team 'team-00' but is no longer in `judges`; "
            "put the judge back in event.yaml.",
        ),
    ],
)
def test_impossible_settings_end_in_one_sentence(kwargs, sentence):
    with pytest.raises(AssignmentError) as info:
        assign(
            _teams(3),
            kwargs["judges"],
            kwargs["k"],
            conflicts=kwargs.get("conflicts"),
            locked=kwargs.get("locked", ()),
            seed=1,
        )
    assert str(info.value) == sentence


def test_no_submissions_no_assignments():
    assert assign([], ["a"], 1, seed=1).judges_of == {}
