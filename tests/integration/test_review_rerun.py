"""Re-runs are idempotent: killing `hackgap review rerun` midway and running it again gives
the same final state as one clean run (nothing lost, nothing duplicated); the Prefect flow
gives the same results as the plain functions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import yaml

from flows import review
from flows.event import load_event
from judging.execute import IPC_ROOT
from sandboxes import layout

pytestmark = [pytest.mark.services, pytest.mark.slow]

SLOW = """
import os, time
import pandas as pd
df = pd.read_parquet(TWIN_PATH)
time.sleep(3)
pd.DataFrame({"groep": ["a"], "count": [len(df) // 5 * 5]}).to_csv("outputs/n.csv", index=False)
"""


def _event(tmp_path: Path, store, body: str = SLOW) -> Path:
    if os.geteuid() != 0:
        pytest.fail("the review integration tests need root (accounts, network namespaces)")
    from sandboxes import singleuser

    singleuser.ensure()
    for name in ("municipal", "cbs", "postcodes", "school"):
        (tmp_path / f"{name}.csv").write_text("x\n")
    doc = {
        "name": "rerun-test",
        "title": "Rerun test",
        "start": "2026-01-01T09:00",
        "deadline": "2026-01-02T09:00",
        "end": "2026-01-02T12:00",
        "sources": {w: {"path": f"{w}.csv", "format": "x"}
                    for w in ("municipal", "cbs", "postcodes", "school")},
        "challenges": ["advieskloof"],
        "teams": [{"name": n, "members": [f"m{n}"]} for n in ("alpha", "beta", "gamma")],
        "review": {"time_limit": 60, "workers": 2},
    }  # fmt: skip
    (tmp_path / "event.yaml").write_text(yaml.safe_dump(doc))
    import io

    import pandas as pd

    buf = io.BytesIO()
    pd.DataFrame({"eindtoets_score": range(500, 600)}).to_parquet(buf, index=False)
    store.publish("open", "twins/rerun-test/v-1", {"twin.parquet": buf.getvalue(),
                                                     "codebook.md": b"# c\n"})  # fmt: skip
    event_dir = load_event(tmp_path)
    for team in ("alpha", "beta", "gamma"):
        sub = layout.submission_dir(layout.workspace_dir(event_dir.workdir, team))
        (sub / "outputs").mkdir(parents=True)
        nb = nbformat.v4.new_notebook()
        nb.cells = [
            nbformat.v4.new_code_cell('TWIN_PATH = "x"', metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell(body),
        ]
        nbformat.write(nb, sub / "analysis.ipynb")
    review.run_freeze(event_dir, store)
    return tmp_path


def _final_state(event_dir) -> dict:
    state = {}
    for team in event_dir.event.teams:
        view_dir = layout.judge_view_dir(event_dir.workdir, team.name)
        view = json.loads((view_dir / "view.json").read_text())
        files = sorted(p.relative_to(view_dir).as_posix() for p in view_dir.rglob("*")
                       if p.is_file())  # fmt: skip
        state[team.name] = (view["rerun"]["status"], view["outputs"], files)
    return state


def test_killing_a_rerun_midway_and_running_again_ends_in_the_clean_state(
    tmp_path, store, s3_server
):
    directory = _event(tmp_path, store)
    env = {**os.environ, **s3_server}
    env.pop("PREFECT_API_URL", None)
    cmd = [sys.executable, "-m", "flows.cli", "review", "rerun", str(directory), "--no-prefect"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    event_dir = load_event(directory)
    runs = layout.review_dir(event_dir.workdir) / "runs"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(runs.glob("run-*/driver/spec.json")):
        time.sleep(0.2)
    time.sleep(2)  # kernels are running
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not all(
        (review.team_dir(event_dir, t) / "twin" / "result.json").is_file()
        for t in ("alpha", "beta", "gamma")
    ), "killed too late: every run had finished"

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    after_kill = _final_state(event_dir)
    assert {s[0] for s in after_kill.values()} == {"ok"}
    assert all(s[1][0]["twin"] == "twin_outputs/n.csv" for s in after_kill.values())
    assert list(runs.glob("run-*")) == []
    assert not IPC_ROOT.exists() or not any(
        p.name in {r.name[-16:] for r in runs.glob("*")} for p in IPC_ROOT.iterdir()
    )
    submissions = store.list("submissions")

    # a clean run of the same frozen submissions gives the same state, and a third run
    # reuses every result (nothing redone, nothing duplicated)
    for team in ("alpha", "beta", "gamma"):
        review.clear_team(event_dir, team)
    review.run_freeze(event_dir, store)
    review.run_rerun(event_dir, store)
    assert _final_state(event_dir) == after_kill
    results = [review.team_dir(event_dir, t) / "twin" / "result.json" for t in ("alpha", "beta")]
    stamps = [p.stat().st_mtime_ns for p in results]
    reruns = review.run_rerun(event_dir, store)
    assert [p.stat().st_mtime_ns for p in results] == stamps  # reused, not redone
    assert {r["status"] for r in reruns} == {"ok"}
    assert store.list("submissions") == submissions


def test_the_prefect_flow_runs_every_team_in_parallel(
    tmp_path, store, s3_server, prefect_server, monkeypatch
):
    from prefect.task_runners import ThreadPoolTaskRunner

    directory = _event(tmp_path, store, body=SLOW.replace("time.sleep(3)", ""))  # no kill here
    event_dir = load_event(directory)
    for key, value in s3_server.items():
        monkeypatch.setenv(key, value)
    flow = review.review_rerun_flow.with_options(task_runner=ThreadPoolTaskRunner(max_workers=2))
    results = {r["team"]: r for r in flow(str(directory))}
    assert {r["status"] for r in results.values()} == {"ok"}
    assert all(
        (layout.judge_view_dir(event_dir.workdir, t) / "view.json").is_file() for t in results
    )

    # the freeze is scheduled once, at the deadline, on the event's Prefect server
    from prefect.client.orchestration import get_client

    deployment_id = review.schedule_freeze(event_dir)
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment(deployment_id)
    assert deployment.name == "rerun-test" and deployment.parameters["force"] is False
    [schedule] = deployment.schedules
    assert schedule.schedule.rrule.startswith("DTSTART:20260102T090000")
    assert "COUNT=1" in schedule.schedule.rrule
