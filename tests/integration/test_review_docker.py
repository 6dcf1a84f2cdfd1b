"""The docker backend's executor: each re-run in a fresh container of the sandbox image, with no
network and the sandbox user, through the review stage (freeze, rerun, verify)."""

from __future__ import annotations

import io
import json
import subprocess

import nbformat
import pandas as pd
import pytest

from flows import review
from flows.event import EventDir, parse_event
from sandboxes import layout

pytestmark = [pytest.mark.docker, pytest.mark.services, pytest.mark.slow]

PROBE = """
import json, os, socket
import pandas as pd
df = pd.read_parquet(TWIN_PATH)
tried = {"uid": os.getuid(), "rows": len(df)}
try:
    socket.create_connection(("192.0.2.1", 80), timeout=2).close()
    tried["net"] = "connected"
except OSError as exc:
    tried["net"] = type(exc).__name__
json.dump(tried, open("outputs/probe.json", "w"))
pd.DataFrame({"groep": ["a"], "count": [len(df) // 5 * 5]}).to_csv("outputs/n.csv", index=False)
"""


def test_docker_reruns_and_verifies_in_fresh_containers(tmp_path, store, sandbox_image):
    doc = {
        "name": "docker-review",
        "title": "Docker review",
        "start": "2026-01-01T09:00",
        "deadline": "2026-01-02T09:00",
        "end": "2026-01-02T12:00",
        "sources": {w: {"path": f"{w}.csv", "format": "x"}
                    for w in ("municipal", "cbs", "postcodes", "school")},
        "challenges": ["advieskloof"],
        "teams": [{"name": "red", "members": ["ann"], "open_data_only": False}],
        "sandbox": {"backend": "docker", "image": sandbox_image},
        "review": {"time_limit": 120},
    }  # fmt: skip
    event_dir = EventDir(tmp_path, parse_event(doc))
    buf = io.BytesIO()
    pd.DataFrame({"eindtoets_score": range(500, 600)}).to_parquet(buf, index=False)
    store.publish("open", "twins/docker-review/v-1", {"twin.parquet": buf.getvalue(),
                                                       "codebook.md": b"# c\n"})  # fmt: skip
    store.publish("secure", "docker-review/linked", {"analysis.parquet": buf.getvalue()})
    # the workspace of the docker backend is the team volume's folder
    folder = layout.submission_dir(review.team_workspace(event_dir, "red"))
    (folder / "outputs").mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell('TWIN_PATH = "x"', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(PROBE),
    ]
    nbformat.write(nb, folder / "probe.ipynb")
    try:
        review.run_freeze(event_dir, store)
        [rerun] = review.run_rerun(event_dir, store)
        assert rerun["status"] == "ok", rerun
        [verified] = review.run_verify(event_dir, store)
        assert verified["status"] == "ok" and verified["outputs"]["n.csv"] == "safe"
        for kind in ("twin", "real"):
            probe = review.team_dir(event_dir, "red") / kind / "outputs" / "probe.json"
            tried = json.loads(probe.read_text())
            assert tried["uid"] == 1000 and tried["rows"] == 100
            assert tried["net"] != "connected"
        left = subprocess.run(
            ["docker", "ps", "-aq", "--filter", "label=hackgap.review=1"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        assert left == []
    finally:
        from sandboxes import docker

        docker.remove_team("docker-review", "red", None)
