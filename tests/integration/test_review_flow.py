"""The review stage end to end against the real S3 server and real notebook runs (as root:
unprivileged accounts, no network, private /tmp): freeze, re-run on the twin, verify on the
real table, output checks, airlock, judge view, status; a hostile submission releases nothing
real, and every bad input ends in one sentence in the status."""

from __future__ import annotations

import io
import json
import os
import socket
import threading
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from flows import review
from flows.event import EventDir, parse_event
from flows.pipeline.audit import read_audit
from sandboxes import layout

pytestmark = [pytest.mark.services, pytest.mark.slow]

MARKER = "31.4159"  # every real wijk_gem_inkomen starts with it; the twin never has it
RARE = "xqz-real"  # a real-only category of 3 rows
TEAMS = {
    "good": {"open_data_only": False, "members": ["ann"]},
    "small": {"open_data_only": False, "members": ["bob"]},
    "hostile": {"open_data_only": False, "members": ["eve"]},
    "empty": {"members": ["dan"]},
    "twonb": {"members": ["tim"]},
    "broken": {"members": ["bea"]},
    "forever": {"members": ["fay"]},
    "hog": {"members": ["hal"]},
    "filler": {"members": ["fil"]},
}


def _tables(seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n = 400

    def table(real: bool) -> pd.DataFrame:
        advice = rng.choice(["vmbo-gt", "havo", "vwo"], n).astype(object)
        advice[:3] = RARE if real else "pro"
        return pd.DataFrame(
            {
                "eindtoets_score": rng.integers(500, 550, n),
                "schooladvies": advice,
                "inkomen_decile": rng.integers(1, 11, n),
                "geslacht": rng.choice(["M", "V"], n),
                "wijk_ses_tertiel": rng.integers(1, 4, n),
                "wijk_gem_inkomen": (
                    [float(f"{MARKER}{i:04d}") for i in range(n)]
                    if real
                    else rng.uniform(20, 30, n).round(1)
                ),
            }
        )

    real = table(True)
    real.insert(0, "pupil_id", [f"pseudo{i:06d}deadbeef" for i in range(n)])
    return table(False), real


PARAMS = 'TWIN_PATH = "../twin/twin.parquet"\nCODEBOOK_PATH = "../twin/codebook.md"\n'

GOOD = """
import os
import pandas as pd
df = pd.read_parquet(TWIN_PATH)
os.makedirs("outputs", exist_ok=True)
df["band"] = pd.cut(df["inkomen_decile"], [0, 5, 10], labels=["laag", "hoog"])
counts = df.groupby(["geslacht", "band"], observed=True).size().unstack()
((counts / 5).round() * 5).astype(int).to_csv("outputs/counts.csv")
means = df.groupby("band", observed=True)["eindtoets_score"].agg(mean="mean", count="size")
means["count"] = ((means["count"] / 5).round() * 5).astype(int)
means.round(1).to_csv("outputs/means.csv")
"""

SMALL = """
import pandas as pd
df = pd.read_parquet(TWIN_PATH)
table = pd.crosstab(df["schooladvies"], df["geslacht"])
((table / 5).round() * 5).astype(int).to_csv("outputs/advice_by_sex.csv")
"""

HOSTILE = """
import glob, json, os, socket
import pandas as pd
df = pd.read_parquet(TWIN_PATH)
print(df.to_string())
df.to_csv("outputs/rows.csv", index=False)
pd.crosstab(df["schooladvies"], df["geslacht"]).to_csv("outputs/crosstab.csv")
one = df.groupby(df.index)["wijk_gem_inkomen"].agg(["mean", "size"])
one.rename(columns={"size": "count"}).to_csv("outputs/means_of_one.csv")
tried = {}
for port in PORTS:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=3).close()
        tried[f"net:{port}"] = "connected"
    except OSError as exc:
        tried[f"net:{port}"] = type(exc).__name__
for path in SECRETS:
    try:
        tried[path] = "read " + str(len(open(path, "rb").read()))
    except OSError as exc:
        tried[path] = type(exc).__name__
tried["listing"] = [p for p in glob.glob(WORKDIR + "/**", recursive=True) if "real-" in p]
df.to_csv("/tmp/hg-leak.csv")
tried["tmp"] = os.path.exists("/tmp/hg-leak.csv")
json.dump(tried, open("outputs/attempts.json", "w"))
print(tried)
"""

FOREVER = "import time\nwhile True:\n    time.sleep(1)\n"
HOG = 'blocks = []\nwhile True:\n    blocks.append(b"x" * (200 * 2**20))  # touched pages count\n'
FILLER = (
    "import os\nfor i in range(60):\n"
    "    with open(f'outputs/junk{i}.bin', 'wb') as f:\n"
    "        f.write(os.urandom(10 * 2**20))\n"
)


def _notebook(path: Path, body: str, head: str = PARAMS) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(head, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(body),
    ]
    nbformat.write(nb, path)


class Listener:
    """A TCP listener on the host's loopback that counts connections."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()


@pytest.fixture(scope="module")
def listener():
    lst = Listener()
    yield lst
    lst.sock.close()


def _secret(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.fixture
def event(tmp_path, store, listener, s3_server):
    if os.geteuid() != 0:
        pytest.fail("the review integration tests need root (accounts, network namespaces)")
    if not os.environ.get(review.KERNEL_PYTHON_ENV):
        from sandboxes import singleuser

        singleuser.ensure()  # the notebook environment, once per machine (1-3 minutes)
    doc = {
        "name": "review-test",
        "title": "Review test",
        "start": "2026-01-01T09:00",
        "deadline": "2026-01-02T09:00",
        "end": "2026-01-02T12:00",
        "sources": {
            w: {"path": f"{w}.csv", "format": "x"}
            for w in ("municipal", "cbs", "postcodes", "school")
        },
        "challenges": ["advieskloof"],
        "teams": [{"name": n, **t} for n, t in TEAMS.items()],
        "organisers": ["olga", "otto"],
        "review": {
            # the executor stops a run at time_limit + its 30 s grace (kernel start included):
            # enough for the quick notebooks on a busy machine; `forever` costs 50 s, not 70 s
            "time_limit": 20,
            "mem_limit": "1G",
            "disk_limit": "200M",
            "workers": 2,
            "two_reviewers": True,
        },
    }
    event_dir = EventDir(tmp_path, parse_event(doc))
    twin, real = _tables()
    twin_buf, real_buf = io.BytesIO(), io.BytesIO()
    twin.to_parquet(twin_buf, index=False)
    real.to_parquet(real_buf, index=False)
    store.publish(
        "open",
        "twins/review-test/v-test",
        {"twin.parquet": twin_buf.getvalue(), "codebook.md": b"# codebook\n"},
    )
    store.publish("secure", "review-test/linked", {"analysis.parquet": real_buf.getvalue()})
    workdir = event_dir.workdir
    secrets = [
        _secret(tmp_path / ".hackgap" / "secure" / "pseudonym.key", "KEY" * 20),
        _secret(layout.credentials_file(workdir), "olga,password123"),
        _secret(workdir / "services" / "state.json", json.dumps(s3_server)),
        _secret(layout.workspace_dir(workdir, "good") / "private.txt", "good's work"),
    ]
    frozen_good = review.team_dir(event_dir, "good") / "frozen" / "good.ipynb"
    endpoint_port = int(s3_server["HACKGAP_S3_ENDPOINT"].rsplit(":", 1)[1])
    head = PARAMS + (
        f"PORTS = [{listener.port}, {endpoint_port}]\n"
        f"SECRETS = {[str(p) for p in secrets] + [str(frozen_good)]!r}\n"
        f"WORKDIR = {str(workdir)!r}\n"
    )
    bodies = {"good": GOOD, "small": SMALL, "hostile": HOSTILE, "forever": FOREVER}
    bodies |= {"hog": HOG, "filler": FILLER}
    for name in TEAMS:
        sub = layout.submission_dir(layout.workspace_dir(workdir, name))
        (sub / "outputs").mkdir(parents=True, exist_ok=True)
        if name in bodies:
            _notebook(sub / f"{name}.ipynb", bodies[name], head)
    twonb = layout.submission_dir(layout.workspace_dir(workdir, "twonb"))
    _notebook(twonb / "a.ipynb", GOOD)
    _notebook(twonb / "b.ipynb", GOOD)
    broken = layout.submission_dir(layout.workspace_dir(workdir, "broken"))
    (broken / "analysis.ipynb").write_text("{ this is not json")
    return event_dir


def test_review_end_to_end(event, store, listener):
    workdir = event.workdir
    # deadline in the past in this event; freezing twice changes nothing
    frozen = {r["team"]: r for r in review.run_freeze(event, store)}
    assert frozen["good"]["action"] == "frozen" and frozen["good"]["status"] == "ok"
    manifest = store.read_manifest("submissions", "review-test/good")
    assert manifest["submission_sha256"] == frozen["good"]["sha256"]
    assert set(manifest["files"]) == {"good.ipynb"}
    objects = store.list("submissions")
    again = {r["team"]: r for r in review.run_freeze(event, store)}
    assert {r["action"] for r in again.values()} == {"unchanged"}
    assert store.list("submissions") == objects
    good_nb = layout.submission_dir(layout.workspace_dir(workdir, "good")) / "good.ipynb"
    assert good_nb.stat().st_mode & 0o222 == 0 and good_nb.stat().st_uid == 0

    reruns = {r["team"]: r for r in review.run_rerun(event, store)}
    assert reruns["good"]["status"] == "ok", reruns["good"]
    assert reruns["forever"]["status"] == "timeout"
    assert reruns["hog"]["status"] in ("memory", "died")
    assert reruns["filler"]["status"] in ("disk", "failed")
    assert reruns["empty"]["status"] == "not run"

    verified = {r["team"]: r for r in review.run_verify(event, store)}
    assert verified["good"]["status"] == "ok"
    assert verified["empty"]["status"] == "not requested"
    assert verified["good"]["outputs"] == {"counts.csv": "safe", "means.csv": "safe"}
    assert verified["small"]["outputs"] == {"advice_by_sex.csv": "unsafe"}

    # the hostile notebook: no network, no secrets, nothing real outside the secure zone
    real_outputs = review.team_dir(event, "hostile") / "real" / "outputs"
    tried = json.loads((real_outputs / "attempts.json").read_text())
    assert all(v != "connected" for k, v in tried.items() if k.startswith("net:"))
    assert listener.accepted == 0
    for path, outcome in tried.items():  # under /tmp (as here) the kernel sees its own /tmp
        if path.startswith("/"):
            assert outcome in ("PermissionError", "FileNotFoundError"), (path, outcome)
    assert tried["listing"] == []
    assert not Path("/tmp/hg-leak.csv").exists()
    status = {s["team"]: s for s in review.review_status(event)}
    hostile = {o["name"]: o for o in status["hostile"]["outputs"]}
    assert hostile["rows.csv"]["verdict"] == "unsafe" and "row-level" in hostile["rows.csv"]["rule"]
    assert "below 10" in hostile["crosstab.csv"]["rule"]
    assert "400 cell(s) below 10" in hostile["means_of_one.csv"]["rule"]
    assert hostile["attempts.json"]["verdict"] == "review"
    assert {o["status"] for o in hostile.values()} <= {"withheld", "pending"}
    assert MARKER not in json.dumps(status) and RARE not in json.dumps(status)

    # one sentence per bad input
    assert "submitted nothing" in status["empty"]["submission"]["message"]
    assert "holds 2 notebooks" in status["twonb"]["submission"]["message"]
    assert "not valid notebook JSON" in status["broken"]["submission"]["message"]
    assert "time limit" in status["forever"]["rerun"]["message"]
    for team in ("empty", "twonb", "broken"):  # nothing for judges to read
        assert not (layout.judge_view_dir(workdir, team) / "view.json").exists()
    assert (layout.judge_view_dir(workdir, "forever") / "view.json").exists()
    assert status["forever"]["verification"]["status"] == "not requested"

    # airlock: two organisers release; an author cannot; every decision audited
    with pytest.raises(review.ReviewError, match="not an organiser"):
        review.decide(
            event, store, "good", "counts.csv", reviewer="ann", decision="approve", comment="x"
        )
    statuses = []
    for who in ("olga", "otto"):
        entry = review.decide(
            event, store, "good", "counts.csv", reviewer=who, decision="approve", comment="ok"
        )
        statuses.append(entry["status"])
    assert statuses == ["pending", "released"]
    view_dir = layout.judge_view_dir(workdir, "good")
    view = json.loads((view_dir / "view.json").read_text())
    counts = next(o for o in view["outputs"] if o["name"] == "counts.csv")
    assert counts == {
        "name": "counts.csv",
        "twin": "twin_outputs/counts.csv",
        "real": "released/counts.csv",
        "real_status": "released",
    }
    assert (view_dir / "released" / "counts.csv").is_file()
    assert not (view_dir / "released" / "means.csv").exists()
    assert (view_dir / "twin.ipynb").is_file() and view["rerun"]["status"] == "ok"
    actions = [e["action"] for e in read_audit(store, "review-test") if e["stage"] == "airlock"]
    assert actions.count("approve") == 2 and actions.count("release") == 1

    # nothing real anywhere a judge or a team can see
    _assert_no_real_rows(event, store)


def _assert_no_real_rows(event: EventDir, store) -> None:
    workdir = event.workdir
    seen = [
        workdir / "judging",
        layout.teams_root(workdir),
        workdir / "logs",
    ]
    texts = []
    for root in seen:
        for path in Path(root).rglob("*") if Path(root).exists() else []:
            if path.is_file():
                texts.append((str(path), path.read_bytes()))
    for bucket in ("submissions", "open", "audit"):
        for key in store.list(bucket):
            texts.append((f"{bucket}/{key}", store.get_bytes(bucket, key)))
    assert texts
    for where, data in texts:
        assert MARKER.encode() not in data, where
        assert RARE.encode() not in data, where
        assert b"deadbeef" not in data, where


def test_a_change_after_the_freeze_is_refused_in_the_status(event, store):
    review.run_freeze(event, store)
    sub = layout.submission_dir(layout.workspace_dir(event.workdir, "good"))
    os.chmod(sub, 0o755)
    os.chmod(sub / "good.ipynb", 0o644)
    _notebook(sub / "good.ipynb", "print('late work')")
    result = {r["team"]: r for r in review.run_freeze(event, store)}["good"]
    assert result["action"] == "refused" and "frozen copy counts" in result["message"]
    status = {s["team"]: s for s in review.review_status(event)}["good"]
    assert "refused" in status["submission"]["message"]
    frozen = store.get_bytes("submissions", "review-test/good/good.ipynb")
    assert b"late work" not in frozen


def test_before_the_deadline_freeze_is_one_sentence_unless_forced(tmp_path, store):
    doc = {
        "name": "early",
        "title": "Early",
        "start": "2099-01-01T09:00",
        "deadline": "2099-01-02T09:00",
        "end": "2099-01-02T12:00",
        "sources": {
            w: {"path": f"{w}.csv", "format": "x"}
            for w in ("municipal", "cbs", "postcodes", "school")
        },
        "challenges": ["advieskloof"],
        "teams": [{"name": "red", "members": ["ann"]}],
    }
    event_dir = EventDir(tmp_path, parse_event(doc))
    with pytest.raises(review.ReviewError, match="has not been reached"):
        review.run_freeze(event_dir, store)
    status = review.review_status(event_dir)[0]
    assert "has not been reached" in status["submission"]["message"]
    forced = review.run_freeze(event_dir, store, force=True)
    assert forced[0]["status"] == "missing"
