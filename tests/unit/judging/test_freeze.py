"""Freeze: one private copy per team, taken once; later changes are refused."""

from __future__ import annotations

import datetime as dt
import os

import nbformat
import pytest

from judging import freeze


def _notebook(path, source="print(1)"):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source)]
    nbformat.write(nb, path)


@pytest.fixture
def folder(tmp_path):
    sub = tmp_path / "ws" / "submission"
    (sub / "outputs").mkdir(parents=True)
    _notebook(sub / "analysis.ipynb")
    (sub / "outputs" / "t.csv").write_text("a,count\nx,15\n")
    return sub


def test_freeze_copies_once_and_a_second_freeze_changes_nothing(folder, tmp_path):
    team_dir = tmp_path / "review" / "red"
    first = freeze.freeze_team(freeze.snapshot(folder, "red"), folder, team_dir)
    assert first.action == "frozen" and first.record["status"] == "ok"
    copied = (team_dir / "frozen" / "outputs" / "t.csv").read_text()
    assert copied == "a,count\nx,15\n"
    before = (team_dir / "frozen.json").read_text()
    second = freeze.freeze_team(freeze.snapshot(folder, "red"), folder, team_dir)
    assert second.action == "unchanged" and (team_dir / "frozen.json").read_text() == before


def test_a_change_after_the_freeze_is_refused_and_the_frozen_copy_counts(folder, tmp_path):
    team_dir = tmp_path / "review" / "red"
    first = freeze.freeze_team(freeze.snapshot(folder, "red"), folder, team_dir)
    _notebook(folder / "analysis.ipynb", "print('late')")
    late = freeze.freeze_team(freeze.snapshot(folder, "red"), folder, team_dir)
    assert late.action == "refused" and "refused" in late.message
    assert late.record["sha256"] == first.record["sha256"]
    assert len(late.record["late_changes"]) == 1
    frozen_nb = (team_dir / "frozen" / "analysis.ipynb").read_text()
    assert "late" not in frozen_nb


def test_read_only_after_freeze(folder):
    freeze.make_read_only(folder)
    mode = (folder / "analysis.ipynb").stat().st_mode & 0o777
    assert mode == 0o444 and (folder.stat().st_mode & 0o222) == 0
    if os.geteuid() == 0:
        assert (folder / "analysis.ipynb").stat().st_uid == 0


def test_bad_submissions_are_frozen_with_one_sentence(tmp_path):
    empty = tmp_path / "a" / "submission"
    empty.mkdir(parents=True)
    assert "submitted nothing" in freeze.snapshot(empty, "a").message
    two = tmp_path / "b" / "submission"
    two.mkdir(parents=True)
    _notebook(two / "x.ipynb")
    _notebook(two / "y.ipynb")
    snap = freeze.snapshot(two, "b")
    assert snap.status == "invalid" and "2 notebooks" in snap.message
    bad = tmp_path / "c" / "submission"
    bad.mkdir(parents=True)
    (bad / "x.ipynb").write_text("{oops")
    snap = freeze.snapshot(bad, "c")
    assert snap.status == "invalid" and "not valid notebook JSON" in snap.message
    assert snap.sha256  # the bytes are frozen anyway, as evidence


def test_deadline():
    deadline = dt.datetime(2026, 12, 1, 15, 0)
    assert not freeze.deadline_reached(deadline, dt.datetime(2026, 12, 1, 14, 59))
    assert freeze.deadline_reached(deadline, dt.datetime(2026, 12, 1, 15, 0))
    aware = dt.datetime(2026, 12, 1, 15, 0, tzinfo=dt.UTC)
    assert freeze.deadline_reached(aware, dt.datetime(2026, 12, 1, 16, 0, tzinfo=dt.UTC))
