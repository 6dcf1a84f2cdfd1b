"""Linkage report and audit log: counts only, small cells suppressed, one entry per access."""

from __future__ import annotations

import json

import pandas as pd

from flows.pipeline import linkage as lk
from flows.pipeline import report as rp
from flows.pipeline.audit import AuditLog, read_audit


def _result() -> tuple[lk.LinkResult, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    n_exact, n_prob = 40, 12
    school = pd.DataFrame(
        {
            "bsn": [f"h{i}" for i in range(n_exact)] + [None] * (n_prob + 3) + ["hx"],
            "postcode": ["9711AB"] * 30 + ["9722CD"] * (n_exact - 30 + n_prob + 3 + 1),
            "onderwijssoort": ["vo"] * 25 + ["mbo"] * (n_exact - 25 + n_prob + 3 + 1),
            "schooljaar": "2020-2021",
            "brin": "12AB",
        }
    )
    status = [lk.EXACT] * n_exact + [lk.PROBABILISTIC] * n_prob + [lk.TIE] * 3
    school["link_status"] = [*status, lk.NOT_IN_REGISTER]
    method = school["link_status"].where(school["link_status"].isin([lk.EXACT, lk.PROBABILISTIC]))
    school["link_method"] = method
    school["person_key"] = [f"h{i}" for i in range(n_exact + n_prob)] + [None] * 4
    persons = pd.DataFrame(
        {
            "bsn": [f"h{i}" for i in range(n_exact + n_prob)],
            "bsn_ouder1": ["ghost"] * 3 + [None] * (n_exact + n_prob - 3),
            "bsn_ouder2": None,
            "postcode": ["0000ZZ"] * 2 + ["9711AB"] * (n_exact + n_prob - 2),
        }
    )
    postcodes = pd.DataFrame(
        {
            "postcode": ["9711AB", "9722CD"],
            "huisnummer": [1, 1],
            "wijk_code": ["WK001401", "WK001402"],
            "buurt_code": ["BU00140101", "BU00140201"],
        }
    )
    cbs = pd.DataFrame(
        {
            "region_code": ["BU00140101"],
            "gem_inkomen_per_inwoner": [None],
            "pct_laag_inkomen": [12.0],
        }
    )
    exact = lk.ExactStats(rows_with_bsn=n_exact + 1, rows_linked=n_exact, rows_not_in_register=1)
    prob = lk.ProbabilisticStats(
        rows=n_prob + 3,
        rows_linked=n_prob,
        identities=n_prob + 1,
        identities_linked=n_prob,
        reasons={lk.TIE: 1, lk.NO_CANDIDATE: 0, lk.BELOW_THRESHOLD: 0},
        pairs_compared=500,
        weight_histogram={5: 1, 12: n_prob},
    )
    return lk.LinkResult(school, exact, prob), persons, postcodes, cbs


def _report() -> rp.LinkReport:
    result, persons, postcodes, cbs = _result()
    return rp.build_report(
        event="demo",
        key_version="v1",
        settings=lk.LinkSettings(),
        min_cell=10,
        sources=[rp.SourceCounts("school", 56, {"bad date": 3}), rp.SourceCounts("cbs", 20)],
        result=result,
        persons=persons,
        postcodes=postcodes,
        cbs=cbs,
    )


def test_cells_below_minimum_are_shown_as_less_than():
    assert rp.cell(0, 10) == "0"
    assert rp.cell(3, 10) == "<10"
    assert rp.cell(10, 10) == "10"
    assert rp.cell(12345, 10) == "12,345"
    assert rp.rate(3, 9, 10) == "n/a"
    assert rp.rate(9, 10, 10) == "90.0%"


def test_report_counts_bad_input_and_link_outcomes():
    r = _report()
    assert r.missing_parent == 3  # pupils naming a parent not in the register
    assert r.postcode_not_found == 2
    assert r.pupils == 52 and r.pupils_exact == 40 and r.pupils_probabilistic == 12
    assert r.rows_by_status[lk.TIE] == 3
    assert r.by_school_type["vo"]["rows"] == 25
    assert r.by_wijk["WK001401"][lk.EXACT] == 30
    assert r.cbs_suppressed["gem_inkomen_per_inwoner"] == 1


def test_markdown_and_html_carry_suppressed_counts_and_no_keys():
    r = _report()
    md, page = rp.to_markdown(r), rp.to_html(r)
    for text in (md, page):
        assert "<10" in text or "&lt;10" in text
        assert "h1 " not in text and "ghost" not in text and "9711AB" not in text
    assert "| exact (person number) | 41 | 40 | 97.6% |" in md
    assert "bad date: <10" in md
    assert "<table>" in page and "Match-weight distribution" in page
    json.dumps(r.as_dict())  # serialisable for the manifest


class _MemoryStore:
    def __init__(self):
        self.objects: dict[tuple[str, str], bytes] = {}

    def put_bytes(self, bucket, key, data):
        self.objects[(bucket, key)] = data
        return "sha"

    def get_bytes(self, bucket, key):
        return self.objects[(bucket, key)]

    def list(self, bucket, prefix=""):
        return sorted(k for b, k in self.objects if b == bucket and k.startswith(prefix))


def test_audit_appends_one_object_per_access_with_who_when_what_hash():
    store = _MemoryStore()
    log = AuditLog(store, "demo", actor="tester@host")
    log.record("read", "secure", "demo/sources/a.csv", "abc", 10)
    log.record("write", "secure", "demo/linked/analysis.parquet", "def", 20)
    keys = store.list("audit", "demo/")
    assert len(keys) == 2 and all(k.endswith(".json") for k in keys)
    entries = read_audit(store, "demo")
    assert [e["action"] for e in entries] == ["read", "write"]
    assert entries[0]["who"] == "tester@host"
    assert entries[1]["object"] == "secure/demo/linked/analysis.parquet"
    assert entries[1]["sha256"] == "def" and entries[0]["when"].endswith("+00:00")
