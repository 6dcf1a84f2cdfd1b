"""The judge page on the real hub: `hackgap services up` starts JupyterHub with the judge
service, provisioning gives judges, organisers and team members their accounts and hub
groups, and headless Chromium logs in through the hub's own log-in page and OAuth.

One hub for the module (starting it costs ~10-30 s on two busy cores). Screenshots go to
$HACKGAP_TEST_ARTIFACTS (default tests/artifacts/judge_page/).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import nbformat
import pytest
import yaml

pytestmark = [pytest.mark.hub, pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = (
    Path(
        os.environ.get("HACKGAP_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts")
    )
    / "judge_page"
)
TEAMS = {"team-noord": ["anna"], "team-zuid": ["chaima"], "team-oost": ["daan"]}
JUDGES = ["judge-eva", "judge-femke", "judge-gijs"]
ORGANISER = "org-olga"
# What a hostile notebook tries: a script, an inline handler, a fetch to the judge API.
ATTACK = (
    "<div id='nb-marker'>plot</div>"
    "<script>document.body.setAttribute('data-pwned', 'script');"
    "fetch('/services/judge/api/sheets').then(r => document.title = 'leak ' + r.status)</script>"
    "<img src='x' onerror=\"document.body.setAttribute('data-pwned-img', 'onerror')\">"
)
TIMEOUT_MS = 60_000  # two cores shared with the rest of the suite: pages can be slow
RUBRIC = {"vraag": 4, "methode": 3, "inzicht": 4, "privacy": 5, "communicatie": 2}


def _write_event(root: Path) -> None:
    from flows.event import render_event_yaml

    data = yaml.safe_load(render_event_yaml("judge-test", seed=1234))
    data["teams"] = [
        {"name": t, "members": m, "challenge": "advieskloof"} for t, m in TEAMS.items()
    ]
    data["judges"] = JUDGES
    data["organisers"] = [ORGANISER]
    data["judging"] = {"judges_per_submission": 2, "conflicts": {"judge-gijs": ["team-noord"]}}
    (root / "event.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    for source in data["sources"].values():
        path = root / source["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")  # the judge page never reads sources; the event loader wants them


def _write_view(workdir: Path, team: str) -> None:
    """What the review stage leaves for judges (the view.json contract in INTERFACES.md)."""
    from sandboxes import layout

    root = layout.judge_view_dir(workdir, team)
    (root / "twin_outputs").mkdir(parents=True)
    (root / "released").mkdir()
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("plot_gap()", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": ATTACK})]
    nb.cells = [nbformat.v4.new_markdown_cell("# Our analysis"), cell]
    nbformat.write(nb, root / "twin.ipynb")
    (root / "twin_outputs" / "gap.csv").write_text("group,gap\nlow,0.21\nhigh,0.05\n")
    (root / "released" / "gap.csv").write_text("group,gap\nlow,0.25\nhigh,0.05\n")
    view = {
        "team": team, "challenge": "advieskloof", "submitted_at": "2026-11-27T14:00:00+00:00",
        "sha256": "0" * 64, "notebook": "twin.ipynb",
        "rerun": {"status": "ok", "seconds": 12.5, "message": ""},
        "outputs": [{"name": "gap.csv", "twin": "twin_outputs/gap.csv",
                     "real": "released/gap.csv", "real_status": "released"}],
    }  # fmt: skip
    (root / "view.json").write_text(json.dumps(view))


@pytest.fixture(scope="module")
def judge_hub(chromium):
    """An event with three reviewed submissions, judges assigned, the hub up and people in it."""
    from flows import services
    from flows.commands.judge import assign_judges
    from flows.event import load_event
    from flows.provision import roster
    from sandboxes import provision
    from sandboxes.hubapi import HubAPI

    # under /tmp itself: as root the hub checks that team users can traverse the event path
    base = Path(tempfile.mkdtemp(prefix="hackgap-judge-test-", dir="/tmp"))
    base.chmod(0o711)
    root = base / "event"
    root.mkdir()
    _write_event(root)
    event_dir = load_event(root)
    workdir = event_dir.workdir
    for team in TEAMS:
        _write_view(workdir, team)
    assignment, codes = assign_judges(event_dir)
    try:
        state = services.hub_up(event_dir)
        api = HubAPI(state.hub.api_url, services.hub_token(workdir))
        result = provision.apply(
            api, workdir, event_dir.event.name, roster(event_dir), isolate=False,
            restart_hub=lambda: services.restart_hub(event_dir),
            fill_workspace=lambda spec, owner: False, archive=lambda team, ws: None, start=False,
        )  # fmt: skip
        hub = services.status(workdir).hub
        _wait_for_judge_page(hub.url.rstrip("/"))
        yield {
            "url": hub.url.rstrip("/"),
            "passwords": result.passwords,
            "codes": codes,
            "assignment": assignment.judges_of,
            "workdir": workdir,
        }
    finally:
        services.down(workdir)
        shutil.rmtree(base, ignore_errors=True)


def _wait_for_judge_page(url: str, timeout: float = 180) -> None:
    """The hub answers before its managed services do: wait until the judge page is routed
    (it then sends a stranger to the hub's OAuth authorize URL)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url + "/services/judge/", timeout=10)
            if response.headers.get("location", "").startswith("/hub/api/oauth2/authorize"):
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail(f"the judge page did not come up behind {url} within {timeout:.0f} s")


def _login(hub, user: str) -> httpx.Client:
    """A hub session (log-in form with its _xsrf), as a browser would have."""
    client = httpx.Client(base_url=hub["url"], follow_redirects=True, timeout=120)
    client.get("/hub/login")
    xsrf = client.cookies.get("_xsrf", path="/hub/")
    response = client.post(
        "/hub/login",
        data={"username": user, "password": hub["passwords"][user], "_xsrf": xsrf},
        follow_redirects=False,
    )  # a member then lands on their team's server, which is not started here (424)
    assert response.status_code == 302, user
    assert "/hub/login" not in response.headers["location"], user
    return client


def _token(hub, user: str) -> str:
    """A hub API token the user made for themselves (POST /hub/api/users/<me>/tokens)."""
    client = _login(hub, user)
    xsrf = client.cookies.get("_xsrf", path="/hub/")
    response = client.post(
        f"/hub/api/users/{user}/tokens", headers={"X-XSRFToken": xsrf}, json={"note": "test"}
    )
    assert response.status_code == 201, response.text
    return response.json()["token"]


def _api(hub, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=hub["url"] + "/services/judge/",
        headers={"Authorization": f"token {token}"},
        timeout=120,
    )


def _judges_of(hub, team):
    return hub["assignment"][team]


def test_scores_are_private_to_each_judge_through_the_real_hub(judge_hub):
    hub = judge_hub
    shared = next(t for t, js in hub["assignment"].items() if len(js) == 2)
    a, b = _judges_of(hub, shared)
    only_b = next(t for t, js in hub["assignment"].items() if b in js and a not in js)
    code, code_b = hub["codes"][shared], hub["codes"][only_b]
    as_a, as_b = _api(hub, _token(hub, a)), _api(hub, _token(hub, b))

    saved = as_b.put(f"api/sheets/{code}", json={"scores": {"vraag": 1}, "comment": "b-private"})
    assert saved.status_code == 200
    assert as_b.put(f"api/sheets/{code_b}", json={"scores": {"vraag": 2}}).status_code == 200
    mine = as_a.get(f"api/sheets/{code}").json()
    assert mine["scores"] == {} and mine["comment"] == ""
    assert "b-private" not in as_a.get(f"s/{code}").text
    assert as_a.get(f"api/sheets/{code_b}").status_code == 403
    assert as_a.get(f"s/{code_b}").status_code == 403
    assert as_a.put(f"api/sheets/{code_b}", json={"scores": {"vraag": 5}}).status_code == 403
    assert as_a.post(f"api/sheets/{code_b}/submit").status_code == 403
    assert as_b.get(f"api/sheets/{code_b}").json()["scores"] == {"vraag": 2}
    assert as_b.get(f"api/sheets/{code}").json()["comment"] == "b-private"
    # the conflicted judge never got the team they are linked to
    assert "judge-gijs" not in hub["assignment"]["team-noord"]


def test_team_members_and_judges_outside_their_role_are_refused(judge_hub):
    hub = judge_hub
    member = _api(hub, _token(hub, "anna"))
    for path in ("", "api/sheets", "api/leaderboard", f"s/{hub['codes']['team-noord']}"):
        assert member.get(path).status_code == 403, path
    assert (
        member.put(
            f"api/sheets/{hub['codes']['team-noord']}", json={"scores": {"vraag": 5}}
        ).status_code
        == 403
    )
    # through the browser's route (hub log-in, then OAuth): the hub itself refuses
    assert _login(hub, "anna").get("/services/judge/").status_code == 403
    judge = _api(hub, _token(hub, JUDGES[0]))
    assert judge.get("api/leaderboard").status_code == 403
    assert judge.post("api/reveal", json={"revealed": True}).status_code == 403
    organiser = _api(hub, _token(hub, ORGANISER))
    board = organiser.get("api/leaderboard").json()
    assert board["revealed"] is False
    assert not any(team in json.dumps(board) for team in TEAMS)
    assert not any(team in organiser.get("organiser").text for team in TEAMS)


def _new_page(browser):
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    # tall enough for the whole sheet: a full-page capture draws the notebook frame blank
    page = browser.new_context(viewport={"width": 1280, "height": 1800}).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return page


def _browser_login(page, hub, user: str) -> None:
    page.goto(hub["url"] + "/services/judge/")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", hub["passwords"][user])
    page.click("#login_submit")
    page.wait_for_url(re.compile(r".*/services/judge/(organiser)?$"))


def test_judge_scores_in_the_browser_and_the_organiser_sees_the_leaderboard(judge_hub, chromium):
    from playwright.sync_api import expect, sync_playwright

    hub = judge_hub
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    judge = "judge-gijs"  # scores nothing in the other tests
    team = next(t for t, js in hub["assignment"].items() if judge in js)
    code = hub["codes"][team]
    with sync_playwright() as p:
        browser = p.chromium.launch(**chromium)
        try:
            organiser = _new_page(browser)
            _browser_login(organiser, hub, ORGANISER)
            row = organiser.locator(f"#leaderboard tr[data-code='{code}']")
            expect(row.locator("td.judges")).to_have_text("0")  # before the judge submits

            member = _new_page(browser)
            member.goto(hub["url"] + "/services/judge/")
            member.fill("input[name=username]", "anna")
            member.fill("input[name=password]", hub["passwords"]["anna"])
            with member.expect_response(re.compile(r".*/hub/api/oauth2/authorize.*")) as refused:
                member.click("#login_submit")
            assert refused.value.status == 403
            expect(member.locator("body")).to_contain_text("403")
            assert not any(f"S0{i}" in member.content() for i in range(1, 4))
            member.screenshot(path=ARTIFACTS / "team-member-refused.png", full_page=True)

            page = _new_page(browser)
            page.on("dialog", lambda dialog: dialog.accept())
            _browser_login(page, hub, judge)
            rows = page.locator("#assigned tbody tr")
            listed = {rows.nth(i).get_attribute("data-code") for i in range(rows.count())}
            mine = {hub["codes"][t] for t, js in hub["assignment"].items() if judge in js}
            assert listed == mine
            assert not any(t in page.content() for t in TEAMS)  # blind: codes only

            page.click(f"#assigned a[href$='/s/{code}']")
            expect(page.locator("#submission-label")).to_have_text(f"Submission {code}")
            expect(page.locator("#rerun strong")).to_have_text("ok")
            expect(page.locator("#outputs .side-real")).to_contain_text("0.25")
            frame = page.frame_locator("#notebook")
            expect(frame.locator("#nb-marker")).to_have_text("plot")
            for name, value in list(RUBRIC.items())[:3]:
                page.check(f"input[name={name}][value='{value}']")
                expect(page.locator("#save-status")).to_have_text(re.compile(r"^Saved "))
            page.fill("#comment", "Clear question; the method needs the income overlap.")
            expect(page.locator("#save-status")).to_have_text(re.compile(r"^Saved "))
            page.screenshot(path=ARTIFACTS / "judge-sheet-draft.png")

            page.reload()  # nothing lost
            for name, value in list(RUBRIC.items())[:3]:
                assert page.is_checked(f"input[name={name}][value='{value}']"), name
            expect(page.locator("#comment")).to_have_value(
                "Clear question; the method needs the income overlap."
            )
            for name, value in list(RUBRIC.items())[3:]:
                page.check(f"input[name={name}][value='{value}']")
                expect(page.locator("#save-status")).to_have_text(re.compile(r"^Saved "))
            page.click("#submit-sheet")
            expect(page.locator("#save-status")).to_have_text(re.compile(r"^Submitted "))
            page.reload()
            assert page.is_disabled("input[name=vraag][value='1']")
            assert page.is_checked(f"input[name=vraag][value='{RUBRIC['vraag']}']")
            expect(page.frame_locator("#notebook").locator("#nb-marker")).to_have_text("plot")
            page.screenshot(path=ARTIFACTS / "judge-sheet-submitted.png")

            organiser.reload()
            expect(row.locator("td.judges")).to_have_text("1")
            expect(row.locator("td.raw")).to_have_text("3.45")  # .2*4+.25*3+.25*4+.1*5+.2*2
            progress = organiser.locator("#progress").inner_text()
            assert re.search(rf"{judge}\s+2\s+1\s+1", progress), progress
            assert team not in organiser.content()
            organiser.screenshot(path=ARTIFACTS / "leaderboard-blind.png", full_page=True)
            organiser.click("#reveal-button")
            expect(organiser.locator("#reveal-state")).to_have_text("revealed")
            expect(row.locator("td").nth(2)).to_have_text(team)
            organiser.screenshot(path=ARTIFACTS / "leaderboard-revealed.png", full_page=True)
            csv = organiser.request.get(hub["url"] + "/services/judge/organiser/leaderboard.csv")
            assert csv.status == 200 and team in csv.text()
        finally:
            browser.close()


def test_a_notebook_cannot_run_script_in_the_judges_browser(judge_hub, chromium):
    from playwright.sync_api import expect, sync_playwright

    hub = judge_hub
    judge = "judge-eva"
    team = next(t for t, js in hub["assignment"].items() if judge in js)
    url = hub["url"] + f"/services/judge/s/{hub['codes'][team]}"
    with sync_playwright() as p:
        browser = p.chromium.launch(**chromium)
        try:
            expect.set_options(timeout=TIMEOUT_MS)
            context = browser.new_context(viewport={"width": 1280, "height": 1800})
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            _browser_login(page, hub, judge)
            # the payload works where nothing stops it (a page without our policy) ...
            control = context.new_page()
            control.set_content(f"<html><body>{ATTACK}</body></html>")
            expect(control.locator("body")).to_have_attribute("data-pwned", "script")
            expect(control.locator("body")).to_have_attribute("data-pwned-img", "onerror")
            control.close()
            # ... but not inside the judge page's frame, nor opened as a page of its own
            page.goto(url)
            frame = page.frame_locator("#notebook")
            expect(frame.locator("#nb-marker")).to_have_text("plot")
            page.goto(url + "/notebook")
            expect(page.locator("#nb-marker")).to_have_text("plot")
            page.wait_for_timeout(500)  # give an (allowed) script time to run
            for where in (page, *[f for f in page.frames]):
                assert where.evaluate("document.body.getAttribute('data-pwned')") is None
                assert where.evaluate("document.body.getAttribute('data-pwned-img')") is None
            assert not page.title().startswith("leak")
            page.goto(url)
            notebook = next(f for f in page.frames if f.url.endswith("/notebook"))
            notebook.wait_for_selector("#nb-marker")
            page.wait_for_timeout(500)
            assert notebook.evaluate("document.body.getAttribute('data-pwned')") is None
            assert notebook.evaluate("document.body.getAttribute('data-pwned-img')") is None
            page.screenshot(path=ARTIFACTS / "judge-notebook-no-script.png")
        finally:
            browser.close()
