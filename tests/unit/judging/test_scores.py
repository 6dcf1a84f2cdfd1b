"""The scores database: blind codes, own sheets only, drafts vs submitted, transactions."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from judging.scores import ScoreError, ScoreStore

CRITERIA = ["vraag", "methode", "inzicht"]
SCALE = (1, 5)


@pytest.fixture
def store(tmp_path):
    s = ScoreStore(tmp_path / "judging" / "scores.sqlite")
    s.register(
        {"team-noord": "advieskloof", "team-zuid": "advieskloof", "team-oost": "doorstroom"}, 42
    )
    s.replace_assignment(
        {"team-noord": ["eva", "femke"], "team-zuid": ["eva"], "team-oost": ["femke"]}
    )
    yield s
    s.close()


def _save(store, judge, team, values, comment=None):
    return store.save(judge, team, values, comment, criteria=CRITERIA, scale=SCALE)


def test_codes_are_blind_stable_and_new_teams_get_new_ones(tmp_path, store):
    codes = {s.team: s.code for s in store.submissions()}
    assert sorted(codes.values()) == ["S01", "S02", "S03"]
    assert all(team not in code for team, code in codes.items())
    again = store.register({"team-noord": "advieskloof", "team-west": "doorstroom"}, 42)
    assert {t: again[t] for t in codes} == codes
    assert again["team-west"] == "S04"
    other = ScoreStore(tmp_path / "other.sqlite")
    other.register({"team-noord": "a", "team-zuid": "a", "team-oost": "d"}, 42)
    assert {s.team: s.code for s in other.submissions()} == codes  # the seed decides the order


def test_saved_scores_survive_a_new_connection_and_stay_editable(tmp_path, store):
    _save(store, "eva", "team-noord", {"vraag": 4}, "Sharp question")
    _save(store, "eva", "team-noord", {"methode": 2, "vraag": 5})
    reopened = ScoreStore(tmp_path / "judging" / "scores.sqlite")
    sheet = reopened.sheet("eva", "team-noord")
    assert sheet.scores == {"vraag": 5, "methode": 2}
    assert sheet.comment == "Sharp question"
    assert not sheet.submitted
    _save(reopened, "eva", "team-noord", {"methode": None})
    assert reopened.sheet("eva", "team-noord").scores == {"vraag": 5}


def test_a_judge_reads_and_writes_only_their_own_sheet(store):
    _save(store, "femke", "team-noord", {"vraag": 1}, "femke's note")
    assert store.sheet("eva", "team-noord").scores == {}
    assert store.sheet("eva", "team-noord").comment == ""
    _save(store, "eva", "team-noord", {"vraag": 5})
    assert store.sheet("femke", "team-noord").scores == {"vraag": 1}
    with pytest.raises(ScoreError, match="not assigned to you"):
        _save(store, "eva", "team-oost", {"vraag": 3})
    assert store.sheet("femke", "team-oost").scores == {}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"vraag": 6}, "must be a whole number from 1 to 5"),
        ({"vraag": 0}, "must be a whole number from 1 to 5"),
        ({"vraag": 2.5}, "must be a whole number from 1 to 5"),
        ({"vraag": True}, "must be a whole number from 1 to 5"),
        ({"vraag": "4"}, "must be a whole number from 1 to 5"),
        ({"privacy-hack": 3}, "unknown criterion 'privacy-hack'"),
    ],
)
def test_bad_values_are_refused_and_nothing_is_written(store, values, message):
    with pytest.raises(ScoreError, match=message):
        _save(store, "eva", "team-noord", {"methode": 3, **values})
    assert store.sheet("eva", "team-noord").updated_at is None


def test_submit_needs_every_criterion_then_locks_the_sheet(store):
    _save(store, "eva", "team-noord", {"vraag": 4, "methode": 3})
    with pytest.raises(ScoreError, match="missing: inzicht"):
        store.submit("eva", "team-noord", criteria=CRITERIA)
    _save(store, "eva", "team-noord", {"inzicht": 2})
    sheet = store.submit("eva", "team-noord", criteria=CRITERIA)
    assert sheet.submitted
    with pytest.raises(ScoreError, match="submitted"):
        _save(store, "eva", "team-noord", {"vraag": 1})
    with pytest.raises(ScoreError, match="submitted"):
        store.submit("eva", "team-noord", criteria=CRITERIA)
    assert store.sheet("eva", "team-noord").scores == {"vraag": 4, "methode": 3, "inzicht": 2}


def test_an_assignment_change_never_drops_a_saved_sheet(store):
    _save(store, "eva", "team-zuid", {"vraag": 3})
    with pytest.raises(ScoreError, match="judge 'eva' already saved scores for team 'team-zuid'"):
        store.replace_assignment({"team-noord": ["eva", "femke"], "team-zuid": ["femke"]})
    assert store.assignment()["team-zuid"] == ("eva",)  # unchanged: one transaction
    assert store.locked() == {("team-zuid", "eva")}
    added, removed = store.replace_assignment(
        {"team-noord": ["eva"], "team-zuid": ["eva", "femke"], "team-oost": ["femke"]}
    )
    assert (added, removed) == (1, 1)


def test_progress_and_reveal_switch(store):
    _save(store, "eva", "team-noord", {"vraag": 4, "methode": 3, "inzicht": 2})
    store.submit("eva", "team-noord", criteria=CRITERIA)
    _save(store, "eva", "team-zuid", {"vraag": 4})
    progress = {
        p.judge: (p.assigned, p.started, p.submitted)
        for p in store.progress(["eva", "femke", "gijs"])
    }
    assert progress == {"eva": (2, 2, 1), "femke": (2, 0, 0), "gijs": (0, 0, 0)}
    assert store.revealed() is False
    store.set_revealed(True)
    assert store.revealed() is True


def test_concurrent_writers_lose_nothing(tmp_path, store):
    """Two processes' worth of connections saving at once: every save lands, none errors."""
    path = store.path
    errors: list[BaseException] = []

    def judge(name: str, team: str) -> None:
        own = ScoreStore(path)
        try:
            for i in range(40):
                _save(own, name, team, {"vraag": 1 + i % 5}, f"note {i}")
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.close()

    threads = [
        threading.Thread(target=judge, args=a)
        for a in (("eva", "team-zuid"), ("femke", "team-oost"))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.sheet("eva", "team-zuid").comment == "note 39"
    assert store.sheet("femke", "team-oost").comment == "note 39"


def test_backup_is_a_readable_sqlite_copy(tmp_path, store):
    _save(store, "eva", "team-noord", {"vraag": 4})
    copy = store.backup(tmp_path / "copy.sqlite")
    rows = sqlite3.connect(copy).execute("select judge, criterion, value from scores").fetchall()
    assert rows == [("eva", "vraag", 4)]
    exported = store.export()
    assert exported["sheets"][0]["scores"] == {"vraag": 4}


def test_a_save_that_fails_halfway_leaves_the_sheet_as_it_was(store, monkeypatch):
    import judging.scores as scores_module

    _save(store, "eva", "team-noord", {"vraag": 4}, "first")
    real_sheet = scores_module._sheet
    calls = {"n": 0}

    def failing_read_back(conn, judge, team):
        calls["n"] += 1
        if calls["n"] == 2:  # the read-back after the writes, still inside the transaction
            raise RuntimeError("disk went away")
        return real_sheet(conn, judge, team)

    monkeypatch.setattr(scores_module, "_sheet", failing_read_back)
    with pytest.raises(RuntimeError):
        _save(store, "eva", "team-noord", {"vraag": 1, "methode": 2}, "second")
    monkeypatch.undo()
    sheet = store.sheet("eva", "team-noord")
    assert (sheet.scores, sheet.comment) == ({"vraag": 4}, "first")


def test_the_judging_folder_and_database_are_private(tmp_path, store):
    assert store.path.parent.stat().st_mode & 0o777 == 0o700
    assert store.path.stat().st_mode & 0o077 == 0
