"""A team works in its sandbox as people would: headless Chromium against a real hub.

The session hub (`hub_event`: teams provisioned through the production path, a small
released twin with the analysis table's columns; a 20,000-person demo twin does not pass
the release gate, and the full demo takes too long for this test). Alice (team A) logs in,
accepts the OAuth consent page, runs the starter notebook and sees the twin's row count;
Amir (same team) opens the same notebook and sees Alice's output (jupyter-collaboration);
Bob (team B) is refused; Bob puts a notebook in his team's submission/ through the team
server's contents API and `hackgap teams status` sees it there. The same scenario runs on
both sandbox backends: the local one (`hub_event`, screenshots in
tests/artifacts/team_sandbox/) and `sandbox.backend: docker` (`docker_hub_event`, a
container per team, screenshots in tests/artifacts/team_sandbox_docker/).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests

from sandboxes import layout
from sandboxes.provision import released_twin_dir
from tests.integration.hubclient import user_token

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
BACKENDS = [  # (hub fixture, screenshot folder under tests/artifacts/)
    pytest.param("hub_event", "team_sandbox", id="local"),
    pytest.param("docker_hub_event", "team_sandbox_docker", id="docker",
                 marks=pytest.mark.docker),
]  # fmt: skip
NOTEBOOK = "challenges/advieskloof/starter.ipynb"
ROWS = re.compile(r"Synthetische tweeling \S+: ([\d,.]+) rijen")


def _log_in(browser, url: str, user: str, password: str):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(f"{url}hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", password)
    page.click("#login_submit")
    return page


def _accept_consent(page) -> None:
    """First visit to the team server: the hub asks the member to authorise it (OAuth)."""
    page.wait_for_load_state()
    if "/hub/api/oauth2/authorize" in page.url:
        page.click("form button[type=submit]")


def _open_notebook(page, url: str, account: str) -> None:
    page.goto(f"{url}user/{account}/lab/tree/{NOTEBOOK}")
    _accept_consent(page)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=180_000)


def _shot(page, folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=False)
    print(f"screenshot: {folder / f'{name}.png'}")


def _submission_notebooks(event_root: Path, monkeypatch, capsys) -> dict[str, bool]:
    """What `hackgap teams status --json` says: {team: notebook in submission/} (the real
    entry point, in this process: a new Python would cost seconds per call)."""
    from flows import cli

    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["hackgap", "teams", "status", str(event_root), "--json"])
    try:
        cli.main()
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr().err
    out = capsys.readouterr().out
    return {row["team"]: row["submission_notebook"] for row in json.loads(out)}


@pytest.mark.parametrize(("hub_fixture", "artifacts"), BACKENDS)
def test_team_runs_the_starter_and_shares_it_live(
    hub_fixture, artifacts, request, chromium, monkeypatch, capsys
):
    from playwright.sync_api import sync_playwright

    hub_event = request.getfixturevalue(hub_fixture)
    folder = ARTIFACTS / artifacts
    url = hub_event.url
    passwords = hub_event.passwords
    team_a, team_b = sorted(hub_event.teams)
    account = layout.team_account(team_a)
    twin = released_twin_dir(hub_event.workdir) / "twin.parquet"  # what every team is given
    rows = pq.ParquetFile(twin).metadata.num_rows

    with sync_playwright() as p:
        browser = p.chromium.launch(**chromium)
        alice = _log_in(browser, url, "alice", passwords["alice"])
        _accept_consent(alice)  # the hub sends members straight to their team's server
        _open_notebook(alice, url, account)
        _shot(alice, folder, "1-alice-opens-starter")
        alice.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        alice.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        output = alice.locator(".jp-OutputArea-output", has_text="rijen").first
        output.wait_for(timeout=240_000)
        shown = ROWS.search(output.inner_text())
        output.scroll_into_view_if_needed()
        _shot(alice, folder, "2-alice-ran-starter")
        assert shown, output.inner_text()
        assert int(re.sub(r"[,.]", "", shown.group(1))) == rows

        amir = _log_in(browser, url, "amir", passwords["amir"])
        _open_notebook(amir, url, account)
        seen = amir.locator(".jp-OutputArea-output", has_text="rijen").first
        seen.wait_for(timeout=120_000)
        seen.scroll_into_view_if_needed()
        _shot(amir, folder, "3-amir-sees-alices-output")
        assert ROWS.search(seen.inner_text()).group(1) == shown.group(1)

        bob = _log_in(browser, url, "bob", passwords["bob"])
        response = bob.goto(f"{url}user/{account}/lab")
        _shot(bob, folder, "4-bob-refused")
        assert response.status == 403 or "403" in bob.content()
        assert bob.locator(".jp-Notebook").count() == 0
        browser.close()

    # Bob saves a notebook in his team's submission/ (contents API of its server): the
    # organiser's status reads it where that backend keeps the team's files.
    root = hub_event.event_dir.root
    assert _submission_notebooks(root, monkeypatch, capsys) == {team_a: False, team_b: False}
    contents = f"{url}user/{layout.team_account(team_b)}/api/contents/submission/analyse.ipynb"
    auth = {"Authorization": f"token {user_token(url, 'bob', passwords['bob'])}"}
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}
    saved = requests.put(contents, json={"type": "notebook", "content": notebook},
                         headers=auth, timeout=60)  # fmt: skip
    try:
        assert saved.status_code in (200, 201), saved.text[:300]
        assert _submission_notebooks(root, monkeypatch, capsys) == {team_a: False, team_b: True}
    finally:  # the session's local hub is shared with other tests: leave submission/ empty
        requests.delete(contents, headers=auth, timeout=60)
