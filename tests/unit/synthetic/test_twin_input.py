"""Bad input never reaches a synthesizer: each case is one sentence naming the column/setting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flows.event import EventError, parse_event
from synthetic.errors import TwinError
from synthetic.prepare import OTHER, check_input, coarsen
from synthetic.settings import Thresholds, TwinSettings


def test_missing_challenge_column_names_column_and_challenge(schema, small_table):
    real = small_table.drop(columns=["schooladvies"])
    with pytest.raises(TwinError, match=r"'schooladvies' needed by challenge 'advieskloof'"):
        check_input(real, schema, {"advieskloof": ["eindtoets_score", "schooladvies"]})


def test_single_value_column_is_refused(schema, small_table):
    real = small_table.assign(geslacht="M")
    with pytest.raises(TwinError, match=r"column 'geslacht' holds a single value"):
        check_input(real, schema)


def test_all_null_column_is_refused(schema, small_table):
    real = small_table.assign(mbo_sector=None)
    with pytest.raises(TwinError, match=r"column 'mbo_sector' is empty \(all null\)"):
        check_input(real, schema)


def test_category_with_one_member_never_reaches_the_model(schema, small_table):
    real = small_table.copy()
    real.loc[5, "po_brin"] = "99ZZ"
    frame, info = coarsen(real, schema, TwinSettings())
    assert "99ZZ" not in set(frame["po_brin"].dropna())
    assert "99ZZ" not in info.allowed["po_brin"]
    assert info.merged["po_brin"] == 1
    # one merged row is itself rare, so it is suppressed rather than shown as 'other'
    assert OTHER not in info.allowed["po_brin"]


def test_extreme_numbers_are_top_and_bottom_coded(schema, small_table):
    real = small_table.copy()
    real["eindtoets_score"] = real["eindtoets_score"].astype(float)
    real.loc[0, "eindtoets_score"] = 400.0
    frame, info = coarsen(real, schema, TwinSettings())
    lo, _hi = info.bounds["eindtoets_score"]
    assert frame["eindtoets_score"].min() == lo > 400
    assert np.sort(real["eindtoets_score"])[9] == lo


def test_unknown_synthesizer_is_a_user_error():
    with pytest.raises(TwinError, match=r"twin.synthesizer: 'copula' is not available"):
        TwinSettings(synthesizer="copula")
    with pytest.raises(TwinError, match=r"hma needs more than one table"):
        TwinSettings(synthesizer="hma")


def test_threshold_out_of_range_is_a_user_error():
    with pytest.raises(TwinError, match=r"twin.thresholds.min_quality: 1.5 is outside 0..1"):
        Thresholds(min_quality=1.5)


def test_event_yaml_threshold_out_of_range_is_one_sentence():
    doc = {
        "name": "demo",
        "title": "Demo",
        "start": "2026-01-01T09:00",
        "deadline": "2026-01-02T09:00",
        "end": "2026-01-02T12:00",
        "sources": {
            w: {"path": f"{w}.csv", "format": "x"}
            for w in ("municipal", "cbs", "postcodes", "school")
        },
        "challenges": ["advieskloof"],
        "twin": {"thresholds": {"dcr_overfitting_min": 2}},
    }
    with pytest.raises(EventError) as err:
        parse_event(doc)
    assert err.value.problems == [
        "twin.thresholds.dcr_overfitting_min: Input should be less than or equal to 1 (got 2);"
        " fix the value."
    ]


def test_event_yaml_workers_and_dask_address_are_checked_in_one_sentence():
    doc = {
        "name": "demo",
        "title": "Demo",
        "start": "2026-01-01T09:00",
        "deadline": "2026-01-02T09:00",
        "end": "2026-01-02T12:00",
        "sources": {
            w: {"path": f"{w}.csv", "format": "x"}
            for w in ("municipal", "cbs", "postcodes", "school")
        },
        "challenges": ["advieskloof"],
    }
    assert parse_event(doc).twin.workers == 1 and parse_event(doc).twin.dask_address is None
    ok = parse_event({**doc, "twin": {"workers": 4, "dask_address": "tls://10.0.0.5:8786"}})
    assert ok.twin.workers == 4 and ok.twin.dask_address == "tls://10.0.0.5:8786"
    with pytest.raises(EventError) as err:
        parse_event({**doc, "twin": {"workers": 0, "dask_address": "10.0.0.5"}})
    assert err.value.problems[0].startswith("twin.workers: Input should be greater than")
    assert err.value.problems[1].startswith("twin.dask_address: '10.0.0.5' does not match")


def test_too_few_rows_is_refused(schema, small_table):
    with pytest.raises(TwinError, match=r"too few to release a twin"):
        check_input(small_table.head(50), schema)


def test_coarsen_drops_keys_and_provenance(schema, small_table):
    frame, _ = coarsen(small_table, schema, TwinSettings())
    assert "pupil_id" not in frame.columns and "link_method" not in frame.columns
    assert isinstance(frame, pd.DataFrame) and len(frame) == len(small_table)
