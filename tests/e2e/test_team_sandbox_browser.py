"""A team works in its sandbox as people would: headless Chromium against a real hub.

The session hub (`hub_event`: teams provisioned through the production path, a small
released twin with the analysis table's columns; a 20,000-person demo twin does not pass
the release gate, and the full demo takes too long for this test). Alice (team A) logs in,
accepts the OAuth consent page, runs the starter notebook and sees the twin's row count;
Amir (same team) opens the same notebook and sees Alice's output (jupyter-collaboration);
Bob (team B) is refused. Screenshots go to tests/artifacts/team_sandbox/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sandboxes import layout

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "team_sandbox"
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


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)
    print(f"screenshot: {ARTIFACTS / f'{name}.png'}")


def test_team_runs_the_starter_and_shares_it_live(hub_event, chromium):
    from playwright.sync_api import sync_playwright

    url = hub_event.url
    passwords = hub_event.passwords
    team_a, _ = sorted(hub_event.teams)
    account = layout.team_account(team_a)
    twin = layout.workspace_dir(hub_event.workdir, team_a) / "twin" / "twin.parquet"
    rows = pq.ParquetFile(twin).metadata.num_rows

    with sync_playwright() as p:
        browser = p.chromium.launch(**chromium)
        alice = _log_in(browser, url, "alice", passwords["alice"])
        _accept_consent(alice)  # the hub sends members straight to their team's server
        _open_notebook(alice, url, account)
        _shot(alice, "1-alice-opens-starter")
        alice.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        alice.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        output = alice.locator(".jp-OutputArea-output", has_text="rijen").first
        output.wait_for(timeout=240_000)
        shown = ROWS.search(output.inner_text())
        output.scroll_into_view_if_needed()
        _shot(alice, "2-alice-ran-starter")
        assert shown, output.inner_text()
        assert int(re.sub(r"[,.]", "", shown.group(1))) == rows

        amir = _log_in(browser, url, "amir", passwords["amir"])
        _open_notebook(amir, url, account)
        seen = amir.locator(".jp-OutputArea-output", has_text="rijen").first
        seen.wait_for(timeout=120_000)
        seen.scroll_into_view_if_needed()
        _shot(amir, "3-amir-sees-alices-output")
        assert ROWS.search(seen.inner_text()).group(1) == shown.group(1)

        bob = _log_in(browser, url, "bob", passwords["bob"])
        response = bob.goto(f"{url}user/{account}/lab")
        _shot(bob, "4-bob-refused")
        assert response.status == 403 or "403" in bob.content()
        assert bob.locator(".jp-Notebook").count() == 0
        browser.close()
