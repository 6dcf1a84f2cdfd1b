"""The link flow end to end on the demo sources: real S3 server, real Prefect server.

Proves: outputs + manifest + report + audit lines land in the buckets; match rates on the
demo data; the planted effects survive linkage; a re-run is cached and byte-identical;
and no BSN, pseudonym, name or postcode shows up in any log, artifact, report or error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.demodata import simulate, truth_analysis_table, write_sources
from flows.event import load_event, render_event_yaml
from flows.pipeline.audit import read_audit
from flows.pipeline.pseudonymise import PseudonymKeyError, pseudonymise_columns

pytestmark = [pytest.mark.services, pytest.mark.slow]

KEY = "4f1c0b9e7d2a6c3e8b5f0a1d9c7e2b4a6f8d0c3e5a7b9d1f2c4e6a8b0d2f4a6c"
PERSONS = 12_000
EVENT = "linktest"


@pytest.fixture(scope="module")
def world():
    return simulate(PERSONS, 11)


@pytest.fixture
def event_dir(tmp_path: Path, world, monkeypatch, s3_server):
    (tmp_path / "sources").mkdir()
    write_sources(world, tmp_path / "sources")
    (tmp_path / "event.yaml").write_text(render_event_yaml(EVENT), encoding="utf-8")
    monkeypatch.setenv("HACKGAP_PSEUDONYM_KEY", KEY)
    for name, value in s3_server.items():
        monkeypatch.setenv(name, value)
    return load_event(tmp_path)


def _pseudonyms(values: pd.Series) -> pd.Series:
    return pseudonymise_columns(pd.DataFrame({"v": values}), ["v"], KEY.encode())["v"]


def _advice_slope(table: pd.DataFrame) -> float:
    """OLS slope of advice rank on parents' income decile at equal eindtoets score."""
    t = table.dropna(subset=["schooladvies", "eindtoets_score", "inkomen_decile"])
    y = t["schooladvies"].cat.codes.to_numpy(float)
    x = np.column_stack(
        [np.ones(len(t)), t["eindtoets_score"].to_numpy(float), t["inkomen_decile"].astype(float)]
    )
    return float(np.linalg.lstsq(x, y, rcond=None)[0][2])


def _vsv_gap(table: pd.DataFrame) -> float:
    rate = table.groupby("wijk_ses_tertiel", observed=True)["vsv"].mean()
    return float(rate.loc[1] - rate.loc[3])


def _read_parquet(store, key: str, tmp: Path) -> tuple[bytes, pd.DataFrame]:
    data = store.get_bytes("secure", key)
    path = tmp / "a.parquet"
    path.write_bytes(data)
    return data, pd.read_parquet(path)


def test_link_flow_writes_outputs_audits_and_reruns_identically(
    event_dir, store, prefect_server, world, tmp_path
):
    from flows.link import link_flow

    first = link_flow(str(event_dir.root))
    prefix = f"{EVENT}/linked"
    assert store.is_complete("secure", prefix)
    for name in ("analysis.parquet", "manifest.json", "report.md", "report.html"):
        assert store.exists("secure", f"{prefix}/{name}")
    manifest = json.loads(store.get_bytes("secure", f"{prefix}/manifest.json"))
    data1, table = _read_parquet(store, f"{prefix}/analysis.parquet", tmp_path)
    assert manifest["rows"] == len(table) == first["pupils"]
    assert manifest["key_version"] == "v1"
    assert set(manifest["sources"]) == {"municipal", "cbs", "postcodes", "school"}
    assert all(len(s["sha256"]) == 64 for s in manifest["sources"].values())
    assert [c["name"] for c in manifest["columns"]] == list(table.columns)
    assert "geboortedatum" not in table.columns and "postcode" not in table.columns

    # match rates on the demo data (the generator knows the truth)
    assert first["exact_rate"] > 0.99
    assert first["probabilistic_rate"] > 0.90
    truth = truth_analysis_table(world)
    truth["pupil_id"] = _pseudonyms(truth["pupil_id"]).to_numpy()
    assert set(table["pupil_id"]) <= set(truth["pupil_id"])  # no pupil invented
    assert len(table) / len(truth) > 0.98

    # the planted effects are still measurable, at about the true size
    true_slope, linked_slope = _advice_slope(truth), _advice_slope(table)
    assert linked_slope > 0
    assert linked_slope == pytest.approx(true_slope, rel=0.15)
    assert _vsv_gap(table) > 0
    assert _vsv_gap(table) == pytest.approx(_vsv_gap(truth), rel=0.15)

    # every read and write in the secure zone is in the audit log
    entries = read_audit(store, EVENT)
    reads = {e["object"] for e in entries if e["action"] == "read"}
    writes = {e["object"] for e in entries if e["action"] == "write"}
    assert {
        f"secure/{EVENT}/sources/{p.name}" for p in (event_dir.root / "sources").iterdir()
    } <= reads
    assert {f"secure/{prefix}/{n}" for n in ("analysis.parquet", "_COMPLETE")} <= writes
    assert all(e["sha256"] and e["who"] and e["when"] for e in entries)

    # a re-run with unchanged inputs is served from the cache and gives the same bytes
    second = link_flow(str(event_dir.root))
    assert second["cached"] is True and first["cached"] is False
    data2, _ = _read_parquet(store, f"{prefix}/analysis.parquet", tmp_path)
    assert data1 == data2
    assert len(read_audit(store, EVENT)) > len(entries)


async def _prefect_texts() -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        FlowRunFilter,
        LogFilter,
        TaskRunFilter,
    )
    from prefect.client.schemas.sorting import ArtifactSort, FlowRunSort

    async with get_client() as client:
        logs = await client.read_logs(log_filter=LogFilter(), limit=200, offset=0)
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(),
            flow_run_filter=FlowRunFilter(),
            task_run_filter=TaskRunFilter(),
            limit=200,
            offset=0,
            sort=ArtifactSort.CREATED_DESC,
        )
        runs = await client.read_flow_runs(limit=50, offset=0, sort=FlowRunSort.ID_DESC)
        texts = [log.message for log in logs]
        texts += [json.dumps(a.data, default=str) for a in artifacts]
        texts += [json.dumps(r.parameters, default=str) for r in runs]
    return texts


def test_no_key_or_row_reaches_logs_artifacts_reports_or_errors(
    event_dir, store, prefect_server, world, caplog, capfd
):
    from flows.link import link_flow

    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="prefect")
    link_flow(str(event_dir.root))
    texts = [r.getMessage() for r in caplog.records]
    texts += list(capfd.readouterr())
    texts += asyncio.run(_prefect_texts())
    for name in ("report.md", "report.html", "_COMPLETE", "manifest.json"):
        texts.append(store.get_bytes("secure", f"{EVENT}/linked/{name}").decode())
    for entry in read_audit(store, EVENT):
        texts.append(json.dumps(entry))
    # errors a user can cause: a missing key, and a school file that is not CSV
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("HACKGAP_PSEUDONYM_KEY")
        with pytest.raises(PseudonymKeyError) as err:
            link_flow(str(event_dir.root))
        texts.append(str(err.value))
    assert any("Linkage report" in t for t in texts)  # the artifact was read back
    assert any("linked" in t and "pupils" in t for t in texts)  # the run log was read back

    persons = world.persons
    bsns = set(persons["bsn"].dropna()) | set(world.school["true_bsn"].dropna())
    pseudonyms = set(_pseudonyms(pd.Series(sorted(bsns))))
    postcodes = set(persons["postcode"].dropna()) | set(world.postcodes["postcode"].dropna())
    full_names = set((persons["voornamen"] + " " + persons["geslachtsnaam"]).dropna())
    surnames = {s for s in persons["geslachtsnaam"].dropna() if len(s) >= 7}
    blob = "\n".join(texts)
    assert len(blob) > 1000
    found_numbers = set(re.findall(r"(?<!\d)\d{9}(?!\d)", blob)) & bsns
    found_hex = set(re.findall(r"[0-9a-f]{64}", blob)) & pseudonyms
    found_hex |= {p[:16] for p in pseudonyms if p[:16] in blob}
    spaced = {f"{p[:4]} {p[4:]}" for p in postcodes}
    found_pc = {p for p in postcodes | spaced if re.search(rf"\b{p}\b", blob)}
    found_names = {n for n in full_names if n in blob}
    found_names |= {s for s in surnames if re.search(rf"\b{re.escape(s)}\b", blob)}
    assert not found_numbers, "a BSN leaked"
    assert not found_hex, "a pseudonym leaked"
    assert not found_pc, "a postcode leaked"
    assert not found_names, "a name leaked"
    assert KEY not in blob
