"""Ingest into the real embedded S3 server: idempotent, complete, logs without contents."""

from __future__ import annotations

import hashlib
import json
import logging
import urllib.request
from pathlib import Path

import pytest

from flows.event import load_event, render_event_yaml
from flows.ingest import ingest_flow, ingest_sources
from flows.objectstore import ObjectStore
from flows.pipeline.audit import read_audit

pytestmark = pytest.mark.services
CONTENTS = {
    "brp_personen.csv": "bsn;voornamen\n123456782;Anna Maria\n",
    "kwb_2023_statline.csv": '\ufeff"Wijken en buurten";"Bevolking"\n"Groningen";"1"\n',
    "pc6hnr_2023_gwb.csv": "PC6;Huisnummer;Buurt2023\n9711AB;1;140101\n",
    "duo_onderwijs.csv": "bsn;schooljaar\n123456782;2019-2020\n",
}


@pytest.fixture
def event(tmp_path: Path) -> Path:
    event = tmp_path / "my-event"
    (event / "sources").mkdir(parents=True)
    (event / "event.yaml").write_text(render_event_yaml("my-event"), encoding="utf-8")
    for name, text in CONTENTS.items():
        (event / "sources" / name).write_text(text, encoding="utf-8")
    return event


def test_ingest_uploads_all_sources_with_hashes_and_complete(store: ObjectStore, event) -> None:
    records = ingest_sources(event, store)
    assert [r["source"] for r in records] == ["municipal", "cbs", "postcodes", "school"]
    assert all(r["uploaded"] for r in records)
    prefix = "my-event/sources"
    assert store.list("secure", prefix + "/") == sorted(
        [f"{prefix}/{name}" for name in CONTENTS] + [f"{prefix}/_COMPLETE"]
    )
    for name, text in CONTENTS.items():
        data = text.encode("utf-8")
        assert store.get_bytes("secure", f"{prefix}/{name}") == data
        assert store.stat("secure", f"{prefix}/{name}").sha256 == hashlib.sha256(data).hexdigest()
    manifest = store.read_manifest("secure", prefix)
    assert manifest["event"] == "my-event" and set(manifest["files"]) == set(CONTENTS)
    audited = read_audit(store, "my-event")
    assert sorted(e["object"] for e in audited) == sorted(f"secure/{prefix}/{n}" for n in CONTENTS)
    assert {e["action"] for e in audited} == {"write"} and all(e["sha256"] for e in audited)


def test_second_ingest_uploads_nothing(store: ObjectStore, event, monkeypatch) -> None:
    ingest_sources(event, store)
    complete_before = store.get_bytes("secure", "my-event/sources/_COMPLETE")
    writes: list[str] = []
    monkeypatch.setattr(store, "put_file", lambda *a, **k: writes.append(a[1]))
    monkeypatch.setattr(store, "put_bytes", lambda *a, **k: writes.append(a[1]))
    records = ingest_sources(load_event(event), store)
    assert writes == []
    assert not any(r["uploaded"] for r in records)
    assert store.get_bytes("secure", "my-event/sources/_COMPLETE") == complete_before


def test_changed_file_is_uploaded_alone_and_set_completed_again(store, event) -> None:
    ingest_sources(event, store)
    (event / "sources" / "duo_onderwijs.csv").write_text("bsn;schooljaar\n", encoding="utf-8")
    records = ingest_sources(event, store)
    assert [r["source"] for r in records if r["uploaded"]] == ["school"]
    assert store.get_bytes("secure", "my-event/sources/duo_onderwijs.csv") == b"bsn;schooljaar\n"
    manifest = store.read_manifest("secure", "my-event/sources")
    assert manifest["files"]["duo_onderwijs.csv"]["size"] == len(b"bsn;schooljaar\n")


def test_ingest_logs_names_sizes_hashes_never_contents(store, event, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="hackgap.ingest"):
        records = ingest_sources(event, store)
    text = caplog.text
    assert records[0]["sha256"] in text and "brp_personen.csv" in text
    assert "123456782" not in text and "Anna" not in text


@pytest.mark.slow
def test_ingest_flow_runs_on_the_prefect_server(
    prefect_server: str, s3_server: dict[str, str], store: ObjectStore, event, monkeypatch
) -> None:
    for name, value in s3_server.items():
        monkeypatch.setenv(name, value)  # the event's own workdir runs no services
    first = ingest_flow(str(event))
    second = ingest_flow(str(event))
    assert all(r["uploaded"] for r in first)
    assert not any(r["uploaded"] for r in second)
    assert store.is_complete("secure", "my-event/sources")
    request = urllib.request.Request(
        f"{prefect_server}/flow_runs/filter",
        data=b"{}",
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        runs = json.loads(response.read())
    ingest_runs = [r for r in runs if r["parameters"].get("event_path") == str(event)]
    assert [r["state_type"] for r in ingest_runs] == ["COMPLETED", "COMPLETED"]
