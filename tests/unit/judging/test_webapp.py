"""The judge page's rules, through FastAPI's test client.

The hub's answers (who owns a token) come from a stand-in HubOAuth here; the same app runs
against a real JupyterHub in tests/integration/test_judge_service.py and
tests/e2e/test_judge_page_browser.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from fastapi.testclient import TestClient
from jupyterhub.services.auth import check_scopes

from judging.scores import ScoreStore
from judging.webapp.app import create_app
from judging.webapp.auth import SESSION_COOKIE, HubIdentity
from judging.webapp.config import JudgingConfig, write_config
from sandboxes import layout

PREFIX = "/services/judge/"
SCOPE = "access:services!service=judge"
USERS = {
    "tok-eva": {"name": "eva", "groups": ["judges"]},
    "tok-femke": {"name": "femke", "groups": ["judges"]},
    "tok-olga": {"name": "olga", "groups": ["organisers"]},
    "tok-anna": {"name": "anna", "groups": ["team-noord"]},  # a team member
}
SCRIPT_MARKER = "<script>document.title='pwned'</script>"


class StandInHubOAuth:
    """Answers like jupyterhub.services.auth.HubOAuth for a fixed set of tokens."""

    api_token = "service-secret"
    base_url = PREFIX
    hub_prefix = "/hub/"
    access_scopes = frozenset({SCOPE})
    login_url = "/hub/api/oauth2/authorize?client_id=service-judge&response_type=code"

    async def user_for_token(self, token, sync=True):
        user = USERS.get(token)
        if user is None:
            return None
        scopes = [SCOPE] if set(user["groups"]) & {"judges", "organisers"} else []
        return {"kind": "user", **user, "scopes": scopes}

    def check_scopes(self, required, model):
        return check_scopes(required, set(model["scopes"]))

    def generate_pkce_code_challenge(self):
        return "verifier", "challenge", "S256"

    async def token_for_code(self, code, code_verifier=None, sync=True):
        return "tok-eva" if code == "good" and code_verifier == "verifier" else None


def write_view(workdir: Path, team: str, *, outputs=None, notebook_html=SCRIPT_MARKER) -> None:
    root = layout.judge_view_dir(workdir, team)
    (root / "twin_outputs").mkdir(parents=True)
    (root / "released").mkdir()
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("show()", execution_count=1)
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={"text/html": notebook_html}),
        nbformat.v4.new_output("stream", name="stdout", text="gap 0.21\n"),
    ]
    nb.cells = [nbformat.v4.new_markdown_cell("# Our analysis"), cell]
    nbformat.write(nb, root / "twin.ipynb")
    (root / "twin_outputs" / "gap.csv").write_text("group,gap\nlow,0.21\nhigh,0.05\n")
    (root / "released" / "gap.csv").write_text("group,gap\nlow,0.25\nhigh,0.05\n")
    outs = outputs or [
        {"name": "gap.csv", "twin": "twin_outputs/gap.csv", "real": "released/gap.csv",
         "real_status": "released"}
    ]  # fmt: skip
    view = {"team": team, "challenge": "advieskloof", "submitted_at": "2026-11-27T14:00:00",
            "notebook": "twin.ipynb", "rerun": {"status": "ok", "seconds": 12.5, "message": ""},
            "outputs": outs}  # fmt: skip
    (root / "view.json").write_text(json.dumps(view))


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    write_config(tmp_path, JudgingConfig(
        event="demo", title="Hack the gap test", event_dir=str(tmp_path), seed=1,
        judges=["eva", "femke"], organisers=["olga"], per_submission=1, margin=1.5,
    ))  # fmt: skip
    write_view(tmp_path, "team-noord")
    write_view(tmp_path, "team-zuid")
    write_view(
        tmp_path, "team-oost",
        outputs=[{"name": "secret", "twin": "../../../../etc/passwd", "real": None,
                  "real_status": "withheld"}],
    )  # fmt: skip
    store = ScoreStore(layout.judging_db(tmp_path))
    store.register({t: "advieskloof" for t in ("team-noord", "team-zuid", "team-oost")}, 1)
    store.replace_assignment(
        {"team-noord": ["eva", "femke"], "team-zuid": ["femke"], "team-oost": ["eva"]}
    )
    store.close()
    return tmp_path


@pytest.fixture
def app(workdir):
    identity = HubIdentity(StandInHubOAuth())
    return create_app(workdir, identity), identity


def _client(app, token=None):
    headers = {"Authorization": f"token {token}"} if token else {}
    return TestClient(app[0], headers=headers, follow_redirects=False)


def _codes(workdir):
    store = ScoreStore(layout.judging_db(workdir))
    return {s.team: s.code for s in store.submissions()}


ALL = {"vraag": 4, "methode": 3, "inzicht": 4, "privacy": 5, "communicatie": 3}


def test_a_team_member_or_stranger_is_refused(app):
    for path in ("", "organiser", "api/sheets", "api/leaderboard", "s/S01", "s/S01/notebook"):
        assert _client(app, "tok-anna").get(PREFIX + path).status_code == 403, path
        assert _client(app, "tok-unknown").get(PREFIX + "api/sheets").status_code == 401
    response = _client(app, "tok-anna").put(
        PREFIX + "api/sheets/S01", json={"scores": {"vraag": 1}}
    )
    assert response.status_code == 403


def test_a_browser_without_session_goes_through_hub_oauth(app):
    response = _client(app).get(PREFIX + "s/S02")
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith("/hub/api/oauth2/authorize?client_id=service-judge")
    assert "code_challenge=challenge" in location and "state=" in location
    state = location.split("state=")[1].split("&")[0]
    client = _client(app)
    client.cookies.update(response.cookies)
    bad = client.get(PREFIX + "oauth_callback", params={"code": "good", "state": "forged"})
    assert bad.status_code == 400
    good = client.get(PREFIX + "oauth_callback", params={"code": "good", "state": state})
    assert good.status_code == 302 and good.headers["location"] == PREFIX + "s/S02"
    client.cookies.update(good.cookies)
    assert client.get(PREFIX + "api/sheets").status_code == 200
    assert _client(app).get(PREFIX + "api/sheets").status_code == 401


def test_a_judge_sees_only_assigned_submissions_by_code(app, workdir):
    codes = _codes(workdir)
    page = _client(app, "tok-eva").get(PREFIX)
    assert page.status_code == 200
    assert codes["team-noord"] in page.text and codes["team-oost"] in page.text
    assert codes["team-zuid"] not in page.text
    for team in codes:
        assert team not in page.text
    detail = _client(app, "tok-eva").get(PREFIX + f"s/{codes['team-noord']}")
    assert detail.status_code == 200
    assert "team-noord" not in detail.text
    assert "Question and relevance" in detail.text  # the rubric
    assert "0.25" in detail.text and "0.21" in detail.text  # real data says / twin says
    for path in (f"s/{codes['team-zuid']}", f"api/sheets/{codes['team-zuid']}"):
        assert _client(app, "tok-eva").get(PREFIX + path).status_code == 403


def test_judge_a_cannot_read_or_change_judge_bs_scores(app, workdir):
    codes = _codes(workdir)
    noord, zuid = codes["team-noord"], codes["team-zuid"]
    femke = _client(app, "tok-femke")
    assert (
        femke.put(
            PREFIX + f"api/sheets/{noord}",
            json={"scores": {"vraag": 1}, "comment": "femke-private-note"},
        ).status_code
        == 200
    )
    assert (
        femke.put(PREFIX + f"api/sheets/{zuid}", json={"scores": {"vraag": 2}}).status_code == 200
    )
    eva = _client(app, "tok-eva")
    mine = eva.get(PREFIX + f"api/sheets/{noord}").json()
    assert mine["scores"] == {} and mine["comment"] == ""
    assert "femke-private-note" not in eva.get(PREFIX + f"s/{noord}").text
    assert eva.put(PREFIX + f"api/sheets/{zuid}", json={"scores": {"vraag": 5}}).status_code == 403
    assert eva.post(PREFIX + f"api/sheets/{zuid}/submit").status_code == 403
    eva.put(PREFIX + f"api/sheets/{noord}", json={"scores": {"vraag": 5}})
    theirs = femke.get(PREFIX + f"api/sheets/{noord}").json()
    assert theirs["scores"] == {"vraag": 1} and theirs["comment"] == "femke-private-note"
    assert femke.get(PREFIX + f"api/sheets/{zuid}").json()["scores"] == {"vraag": 2}


def test_sheet_saves_as_you_go_until_submitted(app, workdir):
    code = _codes(workdir)["team-oost"]
    eva = _client(app, "tok-eva")
    url = PREFIX + f"api/sheets/{code}"
    assert eva.put(url, json={"scores": {"vraag": 9}}).status_code == 422
    assert eva.put(url, json={"scores": {"vraag": 4}}).json()["scores"] == {"vraag": 4}
    assert eva.put(url, json={"comment": "clear"}).json()["comment"] == "clear"
    page = eva.get(PREFIX + f"s/{code}").text
    assert re.search(r'name="vraag" value="4"\s+checked', page)  # kept on reload
    assert not re.search(r'name="vraag" value="3"\s+checked', page)
    assert eva.post(url + "/submit").status_code == 409  # not every criterion scored
    eva.put(url, json={"scores": ALL})
    done = eva.post(url + "/submit")
    assert done.status_code == 200 and done.json()["submitted_at"]
    assert eva.put(url, json={"scores": {"vraag": 1}}).status_code == 409
    assert eva.get(url).json()["scores"] == ALL


def test_cookie_sessions_need_the_page_token_to_write(app, workdir):
    code = _codes(workdir)["team-oost"]
    identity = app[1]
    client = _client(app)
    client.cookies.set(SESSION_COOKIE, identity._sign({"token": "tok-eva"}))
    url = PREFIX + f"api/sheets/{code}"
    assert client.get(url).status_code == 200
    assert client.put(url, json={"scores": {"vraag": 2}}).status_code == 403
    ok = client.put(
        url, json={"scores": {"vraag": 2}}, headers={"X-CSRF-Token": identity.csrf_for("tok-eva")}
    )
    assert ok.status_code == 200
    forged = _client(app)
    forged.cookies.set(SESSION_COOKIE, identity._sign({"token": "tok-eva"})[:-4] + "0000")
    assert forged.get(url).status_code == 401


def test_notebook_html_is_served_with_a_policy_that_runs_no_script(app, workdir):
    code = _codes(workdir)["team-noord"]
    response = _client(app, "tok-eva").get(PREFIX + f"s/{code}/notebook")
    assert response.status_code == 200
    assert SCRIPT_MARKER in response.text  # the notebook's own script is there ...
    csp = response.headers["content-security-policy"]
    directives = {d.strip().split(" ")[0]: d.strip() for d in csp.split(";")}
    assert directives["default-src"] == "default-src 'none'"  # ... and may not run
    assert "script-src" not in directives and "sandbox" in directives
    assert response.headers["x-content-type-options"] == "nosniff"
    page = _client(app, "tok-eva").get(PREFIX + f"s/{code}")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<iframe class="notebook" id="notebook" title="Executed notebook" sandbox' in page.text


def test_output_paths_cannot_leave_the_view_directory(app, workdir):
    code = _codes(workdir)["team-oost"]
    eva = _client(app, "tok-eva")
    assert eva.get(PREFIX + f"s/{code}/out/0/twin").status_code == 404
    assert "root:" not in eva.get(PREFIX + f"s/{code}").text
    noord = _codes(workdir)["team-noord"]
    served = eva.get(PREFIX + f"s/{noord}/out/0/real")
    assert served.status_code == 200 and "0.25" in served.text


def test_organiser_sees_leaderboard_names_only_after_reveal(app, workdir):
    codes = _codes(workdir)
    femke = _client(app, "tok-femke")
    femke.put(PREFIX + f"api/sheets/{codes['team-zuid']}", json={"scores": ALL})
    femke.post(PREFIX + f"api/sheets/{codes['team-zuid']}/submit")
    olga = _client(app, "tok-olga")
    assert olga.get(PREFIX).headers["location"] == PREFIX + "organiser"
    board = olga.get(PREFIX + "api/leaderboard").json()
    assert board["rows"][0]["code"] == codes["team-zuid"] and board["rows"][0]["team"] is None
    page = olga.get(PREFIX + "organiser").text
    assert "team-zuid" not in page and "femke" in page  # progress per judge
    assert "team-zuid" not in olga.get(PREFIX + "organiser/leaderboard.csv").text
    assert (
        _client(app, "tok-eva").post(PREFIX + "api/reveal", json={"revealed": True}).status_code
        == 403
    )
    assert _client(app, "tok-eva").get(PREFIX + "api/leaderboard").status_code == 403
    assert olga.get(PREFIX + f"api/sheets/{codes['team-zuid']}").status_code == 403
    assert olga.post(PREFIX + "api/reveal", json={"revealed": True}).json() == {"revealed": True}
    assert "team-zuid" in olga.get(PREFIX + "organiser/leaderboard.csv").text
    assert "team-noord" in _client(app, "tok-eva").get(PREFIX).text  # judges see names too now


def test_an_unreadable_view_is_a_clear_page_not_a_crash(app, workdir):
    code = _codes(workdir)["team-oost"]
    (layout.judge_view_dir(workdir, "team-oost") / "view.json").write_text("{broken")
    page = _client(app, "tok-eva").get(PREFIX + f"s/{code}")
    assert page.status_code == 503
    assert "ask an organiser to review it again" in page.text
    assert str(workdir) not in page.text


def test_after_judging_closes_sheets_cannot_change(app, workdir):
    code = _codes(workdir)["team-oost"]
    eva = _client(app, "tok-eva")
    assert eva.put(PREFIX + f"api/sheets/{code}", json={"scores": {"vraag": 3}}).status_code == 200
    ScoreStore(layout.judging_db(workdir)).close_judging()
    refused = eva.put(PREFIX + f"api/sheets/{code}", json={"scores": {"vraag": 5}})
    assert refused.status_code == 409 and "closed" in refused.json()["detail"]
    assert eva.get(PREFIX + f"api/sheets/{code}").json()["scores"] == {"vraag": 3}
    assert "Judging is closed" in _client(app, "tok-olga").get(PREFIX + "organiser").text


def test_reads_what_the_review_stage_writes(tmp_path):
    """The contract with judging.view.write_view (the review stage's writer), not a copy."""
    from judging.view import write_view
    from judging.webapp.view import load_view, notebook_html, preview

    rerun = tmp_path / "rerun"
    (rerun / "outputs").mkdir(parents=True)
    (rerun / "outputs" / "gap.csv").write_text("group,gap\nlow,0.21\n")
    (rerun / "outputs" / "note.txt").write_text("twin only")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Executed on the twin")]
    nbformat.write(nb, rerun / "executed.ipynb")
    (rerun / "result.json").write_text(
        json.dumps({"status": "ok", "seconds": 3.2, "outputs": ["gap.csv", "note.txt"]})
    )
    real = tmp_path / "real"
    (real / "outputs").mkdir(parents=True)
    (real / "outputs" / "gap.csv").write_text("group,gap\nlow,0.25\n")
    (real / "outputs" / "note.txt").write_text("real, withheld")
    write_view(
        layout.judge_view_dir(tmp_path, "team-noord"), team="team-noord",
        challenge="advieskloof", frozen={"submitted_at": "2026-11-27T14:00:00", "sha256": "ab"},
        rerun_dir=rerun, real_dir=real, verification="done",
        airlock_entries=[{"name": "gap.csv", "status": "released"},
                         {"name": "note.txt", "status": "rejected"}],
    )  # fmt: skip
    view = load_view(tmp_path, "team-noord")
    assert (view.challenge, view.rerun["status"]) == ("advieskloof", "ok")
    by_name = {o.name: o for o in view.outputs}
    assert preview(view.file(by_name["gap.csv"].real))["rows"] == [["low", "0.25"]]
    assert preview(view.file(by_name["gap.csv"].twin))["rows"] == [["low", "0.21"]]
    assert by_name["note.txt"].real is None and by_name["note.txt"].real_status == "withheld"
    assert "Executed on the twin" in notebook_html(view)


def test_a_challenge_pack_that_does_not_load_is_a_clear_page(app, workdir):
    store = ScoreStore(layout.judging_db(workdir))
    store.register({"team-west": "no-such-pack"}, 1)
    store.replace_assignment({**store.assignment(), "team-west": ["eva"]})
    code = _codes(workdir)["team-west"]
    write_view(workdir, "team-west")
    page = _client(app, "tok-eva").get(PREFIX + f"s/{code}")
    assert page.status_code == 503 and "an organiser is told why" in page.text
