"""`hackgap link` on school data without person numbers, and the link-rate stop.

Through the real command line (a fresh process), the real S3 server and the real Prefect
server: a DUO extract without a `bsn` column links by a model trained without labels and
publishes; a school file that does not belong to the register stops with exit 2 and one
sentence (rate, main reason, setting), publishes nothing and withdraws the older set.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from flows.demodata import simulate, write_sources
from flows.demodata.extracts import BRP, DUO
from flows.event import load_event, render_event_yaml
from flows.pipeline.audit import read_audit

pytestmark = [pytest.mark.services, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
HACKGAP = REPO / ".venv" / "bin" / "hackgap"
KEY = "9e1c0b9e7d2a6c3e8b5f0a1d9c7e2b4a6f8d0c3e5a7b9d1f2c4e6a8b0d2f4a6c"
PERSONS = 12_000
EVENT = "ratetest"


@pytest.fixture(scope="module")
def world():
    return simulate(PERSONS, 11)


@pytest.fixture
def event_root(tmp_path: Path, world) -> Path:
    (tmp_path / "sources").mkdir()
    write_sources(world, tmp_path / "sources")
    (tmp_path / "event.yaml").write_text(render_event_yaml(EVENT), encoding="utf-8")
    return tmp_path


def _hackgap(root: Path, s3: dict[str, str], prefect: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **s3, "PREFECT_API_URL": prefect, "HACKGAP_PSEUDONYM_KEY": KEY}
    env.pop("HACKGAP_CHALLENGE_PATH", None)
    return subprocess.run(
        [str(HACKGAP), "link", str(root)],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "200"},
        timeout=600,
        check=False,
    )


def _drop_bsn_column(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("bsn;")
    path.write_text("\n".join(line.split(";", 1)[1] for line in lines) + "\n", encoding="utf-8")


def test_school_data_without_person_numbers_links_without_labels(
    event_root, world, s3_server, prefect_server, store
):
    _drop_bsn_column(event_root / "sources" / DUO)
    proc = _hackgap(event_root, s3_server, prefect_server)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "expectation-maximisation (no labels)" in proc.stdout
    prefix = f"{EVENT}/linked"
    assert store.is_complete("secure", prefix)
    manifest = json.loads(store.get_bytes("secure", f"{prefix}/manifest.json"))
    link = manifest["link"]
    assert link["exact"]["rows_with_bsn"] == 0
    assert link["probabilistic"]["training"] == "expectation-maximisation (no labels)"
    pupils = world.school["true_bsn"].nunique()
    assert manifest["rows"] >= 0.93 * pupils  # pupils in the published table
    assert link["school_pupils_linked"] / link["school_pupils"] >= 0.93
    report = store.get_bytes("secure", f"{prefix}/report.md").decode()
    assert "no labels: expectation-maximisation" in report
    not_needed = link["persons_not_needed"]
    assert 0.3 * PERSONS < not_needed < 0.8 * PERSONS
    assert f"register persons not needed (dropped before pseudonymisation) | {not_needed:,}" in (
        report
    )


def test_too_low_link_rate_stops_publishes_nothing_and_withdraws(
    event_root, s3_server, prefect_server, store
):
    from flows.link import run_link

    run_link(load_event(event_root), store, environ={"HACKGAP_PSEUDONYM_KEY": KEY})  # a good set
    prefix = f"{EVENT}/linked"
    assert store.is_complete("secure", prefix)
    before = store.get_bytes("secure", f"{prefix}/analysis.parquet")

    # the register of another municipality: the school's person numbers are not in it
    from flows.ingest import ingest_sources

    other = simulate(PERSONS, 99)
    tmp = event_root / "other"
    write_sources(other, tmp)
    (tmp / BRP).replace(event_root / "sources" / BRP)
    ingest_sources(load_event(event_root), store)

    bad = _hackgap(event_root, s3_server, prefect_server)
    assert bad.returncode == 2, bad.stdout[-2000:] + bad.stderr[-2000:]
    assert "Traceback" not in bad.stderr
    message = " ".join(bad.stderr.split("error: ", 1)[-1].split())
    print(message)
    assert message.startswith("Only ") and "% of the" in message
    assert "below secure_zone.min_link_rate 0.8" in message
    assert "their person number is not in the register" in message
    assert "lower secure_zone.min_link_rate in event.yaml" in message
    assert message.count(". ") == 0  # one sentence
    # nothing is complete any more; what was published stays unreadable to the stages
    assert not store.is_complete("secure", prefix)
    assert store.get_bytes("secure", f"{prefix}/analysis.parquet") == before
    actions = [e["action"] for e in read_audit(store, EVENT)]
    assert "withdraw" in actions
