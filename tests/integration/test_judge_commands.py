"""`hackgap review assign|leaderboard|close-judging` on an event directory, through the CLI.

close-judging publishes to the real embedded S3 server (the `submissions` bucket).
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest
import yaml

from judging.scores import ScoreError, ScoreStore
from sandboxes import layout

pytestmark = pytest.mark.services

TEAMS = ["team-noord", "team-zuid", "team-oost", "team-west"]
ALL = {"vraag": 4, "methode": 3, "inzicht": 4, "privacy": 5, "communicatie": 2}


def _event(root: Path, judges: list[str], conflicts: dict | None = None) -> None:
    from flows.event import render_event_yaml

    data = yaml.safe_load(render_event_yaml("judge-cli", seed=99))
    data["teams"] = [{"name": t, "members": [f"m-{t}"]} for t in TEAMS]
    data["judges"] = judges
    data["organisers"] = ["org-olga"]
    data["judging"] = {"judges_per_submission": 2, "conflicts": conflicts or {}}
    (root / "event.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    for source in data["sources"].values():
        (root / source["path"]).parent.mkdir(parents=True, exist_ok=True)
        (root / source["path"]).write_text("")


def _ready(workdir: Path, team: str, challenge: str | None = "advieskloof") -> None:
    root = layout.judge_view_dir(workdir, team)
    root.mkdir(parents=True)
    view = {"team": team, "challenge": challenge, "notebook": "twin.ipynb",
            "rerun": {"status": "ok"}, "outputs": []}  # fmt: skip
    (root / "view.json").write_text(json.dumps(view))


def _hackgap(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI as a user would (flows.cli.main: user errors -> one sentence, exit 2)."""
    from flows import cli

    old = sys.argv
    sys.argv = ["hackgap", *args]
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    finally:
        sys.argv = old
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def event(tmp_path: Path) -> Path:
    _event(tmp_path, ["eva", "femke", "gijs"], {"gijs": ["team-noord"]})
    workdir = tmp_path / ".hackgap"
    for team in TEAMS[:3]:  # team-west has not been reviewed yet
        _ready(workdir, team)
    return tmp_path


def test_assign_balances_and_a_rerun_after_a_new_judge_keeps_saved_scores(event, capsys):
    code, out, _ = _hackgap(capsys, "review", "assign", str(event))
    assert code == 0, out
    store = ScoreStore(layout.judging_db(event / ".hackgap"))
    first = store.assignment()
    assert set(first) == {"team-noord", "team-zuid", "team-oost"}
    assert all(len(js) == 2 for js in first.values())
    assert "gijs" not in first["team-noord"]
    assert "3 submission(s), 2 judge(s) each; 6 assignment(s) added, 0 removed." in out
    code, out, _ = _hackgap(capsys, "review", "assign", str(event))
    assert "0 assignment(s) added, 0 removed." in out
    # every judge of every team saves something; then a judge and a submission arrive
    for team, judges in first.items():
        for judge in judges:
            store.save(judge, team, {"vraag": 3}, None, criteria=list(ALL), scale=(1, 5))
    _event(event, ["eva", "femke", "gijs", "hans"], {"gijs": ["team-noord"]})
    _ready(event / ".hackgap", "team-west")
    code, out, _ = _hackgap(capsys, "review", "assign", str(event))
    assert code == 0, out
    second = store.assignment()
    for team, judges in first.items():
        assert set(judges) <= set(second[team])  # nothing scored was dropped
    assert len(second["team-west"]) == 2
    assert "2 assignment(s) added, 0 removed." in out
    codes = {s.team: s.code for s in store.submissions()}
    assert codes["team-west"] == "S04"
    # the review stage rebuilds a view (removes it first): a re-run meanwhile keeps its judges
    view = layout.judge_view_dir(event / ".hackgap", "team-noord") / "view.json"
    view.unlink()
    code, out, _ = _hackgap(capsys, "review", "assign", str(event))
    assert code == 0, out
    assert store.assignment() == second


def test_impossible_assignment_is_one_sentence(tmp_path, capsys):
    _event(tmp_path, ["eva", "femke"], {"eva": ["team-noord"]})
    _ready(tmp_path / ".hackgap", "team-noord")
    code, out, err = _hackgap(capsys, "review", "assign", str(tmp_path))
    assert code == 2
    assert " ".join(err.split()) == (
        "error: team 'team-noord' has only 1 judge(s) without a conflict but needs 2; add "
        "judges or lower judging.judges_per_submission."
    )
    assert "Traceback" not in out + err


def test_leaderboard_json_and_close_judging_export(event, capsys, store, s3_server, monkeypatch):
    for key, value in s3_server.items():
        monkeypatch.setenv(key, value)
    _hackgap(capsys, "review", "assign", str(event))
    scores = ScoreStore(layout.judging_db(event / ".hackgap"))
    for team, judges in scores.assignment().items():
        for i, judge in enumerate(judges):
            values = {**ALL, "vraag": 5 if i == 0 else 1}  # they disagree on the question
            scores.save(judge, team, values, "ok", criteria=list(ALL), scale=(1, 5))
            scores.submit(judge, team, criteria=list(ALL))
    code, out, _ = _hackgap(capsys, "review", "leaderboard", str(event), "--json")
    assert code == 0
    board = json.loads(out)
    assert [r["judges"] for r in board["rows"]] == [2, 2, 2]
    assert {f["criterion"] for f in board["flags"]} == {"vraag"}
    assert not any(t in out for t in TEAMS)
    code, out, _ = _hackgap(capsys, "review", "leaderboard", str(event))
    assert "disagreement: S0" in out and "Team names are hidden" in out

    code, out, _ = _hackgap(capsys, "review", "close-judging", str(event))
    assert code == 0, out
    with pytest.raises(ScoreError, match="judging is closed"):
        scores.save("eva", "team-zuid", {"vraag": 1}, None, criteria=list(ALL), scale=(1, 5))
    prefix = "judge-cli/judging"
    assert store.is_complete("submissions", prefix)
    exported = json.loads(store.get_bytes("submissions", f"{prefix}/scores.json"))
    assert len(exported["sheets"]) == 6 and exported["closed"] is True
    csv = store.get_bytes("submissions", f"{prefix}/leaderboard.csv").decode()
    assert csv.splitlines()[0] == "rank,code,team,challenge,judges,raw,normalised,flags"
    copy = event / "copy.sqlite"
    store.get_file("submissions", f"{prefix}/scores.sqlite", copy)
    count = sqlite3.connect(copy).execute("select count(*) from sheets").fetchone()[0]
    assert count == 6


def test_an_unreadable_judge_view_is_one_sentence(tmp_path, capsys):
    _event(tmp_path, ["eva", "femke"])
    view = layout.judge_view_dir(tmp_path / ".hackgap", "team-noord") / "view.json"
    view.parent.mkdir(parents=True)
    view.write_text("{not json")
    code, _, err = _hackgap(capsys, "review", "assign", str(tmp_path))
    assert code == 2
    assert " ".join(err.split()) == (
        f"error: {view.resolve()}: not a judge view (a JSON object); run the review stage for "
        "this team again."
    )


def test_a_submission_without_a_challenge_uses_the_teams_choice_or_says_so(tmp_path, capsys):
    _event(tmp_path, ["eva", "femke"])
    _ready(tmp_path / ".hackgap", "team-noord", challenge=None)
    code, _, err = _hackgap(capsys, "review", "assign", str(tmp_path))
    assert code == 2
    assert "team 'team-noord': its submission names no challenge" in " ".join(err.split())
    data = yaml.safe_load((tmp_path / "event.yaml").read_text())
    data["teams"][0]["challenge"] = "doorstroom"
    (tmp_path / "event.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    code, out, _ = _hackgap(capsys, "review", "assign", str(tmp_path))
    assert code == 0, out
    store = ScoreStore(layout.judging_db(tmp_path / ".hackgap"))
    assert [(s.team, s.challenge) for s in store.submissions()] == [("team-noord", "doorstroom")]
