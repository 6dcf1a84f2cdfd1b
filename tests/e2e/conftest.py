"""How the browser tests start Debian's Chromium (no browser download: none is reachable)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
# As root Chromium needs --no-sandbox; the rest keeps it off this machine's closed network.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def chromium() -> dict[str, Any]:
    """Keyword arguments for Playwright's `chromium.launch`; fails with the fix when missing."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing; run `scripts/bootstrap.sh system` (as root).")
    return {"executable_path": CHROMIUM, "args": ARGS}
