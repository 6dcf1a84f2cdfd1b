"""Automatic output checks: ACRO's rules on the files a real-data run wrote."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from judging.outputcheck import Rules, check_outputs

LABELS = {"inkomen_decile", "geslacht", "schooladvies", "eindtoets_score", "wijk_ses_tertiel"}


def _verdicts(folder, rules=None):
    return {v.name: v for v in check_outputs(folder, rules or Rules(), LABELS)}


def _write(folder, name, text):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_counts_means_and_models_that_follow_the_rules_are_safe(tmp_path):
    _write(tmp_path, "counts.csv", "geslacht,laag,hoog\nM,35,40\nV,25,50\n")
    _write(tmp_path, "means.csv", "inkomen,share_havo,count\nlaag,0.41,120\nhoog,0.72,95\n")
    _write(tmp_path, "model.csv", "term,coef,std_err,dof\ninkomen_decile,0.08,0.01,4400\n")
    _write(tmp_path, "gap.json", json.dumps({"gap": 0.12, "n": 2345}))
    got = _verdicts(tmp_path)
    assert {n: v.verdict for n, v in got.items()} == dict.fromkeys(got, "safe")
    assert got["counts.csv"].kind == "crosstab of counts"
    assert got["means.csv"].kind == "means with counts"
    assert "MinimumThresholdCheck" in got["counts.csv"].checked


@pytest.mark.parametrize(
    ("name", "text", "rule"),
    [
        ("crosstab.csv", "geslacht,laag,hoog\nM,35,40\nV,3,50\n", "1 cell(s) below 10"),
        ("means.csv", "groep,mean,count\na,0.5,120\nb,0.7,1\n", "1 cell(s) below 10"),
        ("zero.csv", "geslacht,laag,hoog\nM,35,0\nV,25,50\n", "zeros are disclosive"),
        ("unrounded.csv", "geslacht,laag,hoog\nM,36,40\nV,25,50\n", "not a multiple of 5"),
        ("model.csv", "term,coef,dof\nx,0.2,5\n", "degrees of freedom 5 < 10"),
        ("extremes.csv", "groep,max,count\na,97,120\n", "one person's value"),
        ("ids.csv", "pupil_id,count\nab12,15\n", "person key"),
        ("few.json", json.dumps({"share": 0.5, "n": 4}), "below 10"),
        ("dof.json", json.dumps({"coef": {"x": 0.1}, "df_resid": 3}), "degrees of freedom 3"),
    ],
)
def test_each_broken_rule_is_named(tmp_path, name, text, rule):
    _write(tmp_path, name, text)
    verdict = _verdicts(tmp_path)[name]
    assert verdict.verdict == "unsafe" and rule in verdict.rule


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("notes.txt", "the gap is large", "not a table"),
        ("broken.json", "{nope", "not valid JSON"),
        ("floats.csv", "groep,mean\na,0.5\nb,0.7\n", "without their counts"),
        ("coef.csv", "term,coef\nx,0.2\n", "without their residual degrees of freedom"),
        ("sums.csv", "groep,sum,count\na,12000,120\n", "dominance"),
        ("plain.json", json.dumps({"gap": 0.12}), "without their counts"),
    ],
)
def test_what_cannot_be_classified_needs_manual_review(tmp_path, name, text, reason):
    _write(tmp_path, name, text)
    verdict = _verdicts(tmp_path)[name]
    assert verdict.verdict == "review" and reason in verdict.rule


def test_a_dump_of_rows_is_unsafe(tmp_path):
    rng = np.random.default_rng(1)
    rows = pd.DataFrame(
        {
            "eindtoets_score": rng.integers(500, 550, 300),
            "schooladvies": rng.choice(["havo", "vwo"], 300),
            "inkomen_decile": rng.integers(1, 11, 300),
            "geslacht": rng.choice(["M", "V"], 300),
        }
    )
    rows.to_csv(tmp_path / "real.csv", index=False)
    verdict = _verdicts(tmp_path)["real.csv"]
    assert verdict.verdict == "unsafe" and "row-level data" in verdict.rule


def test_a_challenge_never_loosens_acros_threshold():
    class Loose:
        min_cell_count, round_to, dominance_n, dominance_k = 3, 1, 2, 0.99

    rules = Rules.from_output_rules(Loose())
    assert rules.min_cell_count == 10 and rules.nk_k == 0.9


# -- ACRO's own results ------------------------------------------------------------------------


def _acro_session(folder, small_cell: bool):
    from acro import ACRO

    rng = np.random.default_rng(0)
    n = 400
    p = [0.49, 0.49, 0.02] if small_cell else [0.34, 0.33, 0.33]
    df = pd.DataFrame({"a": rng.choice(["x", "y"], n), "b": rng.choice(["p", "q", "r"], n, p=p)})
    session = ACRO(suppress=False)
    session.crosstab(df.a, df.b)
    session.finalise(str(folder), "json")


def test_acro_failures_are_withheld_and_its_bookkeeping_is_never_a_candidate(tmp_path):
    _acro_session(tmp_path / "acro", small_cell=True)
    got = _verdicts(tmp_path)
    table = got["acro/output_0_0.csv"]
    assert table.verdict == "unsafe" and "below 10" in table.rule
    for name in ("acro/results.json", "acro/config.json"):
        assert got[name].verdict == "unsafe"
    assert got["acro/session_summary.json"].verdict == "unsafe"


def test_a_file_changed_after_acro_checked_it_is_unsafe(tmp_path):
    _acro_session(tmp_path / "acro", small_cell=False)
    _write(tmp_path / "acro", "output_0_0.csv", "a,p,q,r\nx,135,140,135\ny,125,130,140\n")
    verdict = _verdicts(tmp_path)["acro/output_0_0.csv"]
    assert verdict.verdict == "unsafe" and "differs from what ACRO checked" in verdict.rule


def test_acro_run_with_a_looser_threshold_is_not_trusted(tmp_path):
    _acro_session(tmp_path / "acro", small_cell=False)
    config = json.loads((tmp_path / "acro" / "config.json").read_text())
    config["safe_threshold"] = 2
    (tmp_path / "acro" / "config.json").write_text(json.dumps(config))
    results = json.loads((tmp_path / "acro" / "results.json").read_text())
    results["results"]["output_0"]["status"] = "pass"
    (tmp_path / "acro" / "results.json").write_text(json.dumps(results))
    _write(tmp_path / "acro", "regression.csv", "term,coef\nx,0.2\n")
    verdict = _verdicts(tmp_path)["acro/output_0_0.csv"]
    assert verdict.verdict != "safe"
