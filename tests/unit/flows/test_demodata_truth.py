"""The truth table follows the schema; the world frames pass the readers' canonical schemas."""

from __future__ import annotations

import pandas as pd
import pytest

from flows.demodata import demo_analysis_table, simulate, truth_analysis_table
from flows.pipeline import schemas
from flows.pipeline.analysis import load_schema


@pytest.fixture(scope="module")
def world():
    return simulate(3_000, 5)


@pytest.fixture(scope="module")
def truth(world) -> pd.DataFrame:
    return truth_analysis_table(world)


def test_truth_table_has_schema_columns_types_and_orders(truth):
    spec = load_schema()["columns"]
    assert list(truth.columns) == list(spec)
    for name, col in spec.items():
        s = truth[name]
        if col["type"] == "ordinal":
            assert isinstance(s.dtype, pd.CategoricalDtype) and s.dtype.ordered, name
            assert list(s.dtype.categories) == list(col["order"]), name
        elif col["type"] == "boolean":
            assert str(s.dtype) == "boolean", name
        elif col["type"] == "numerical":
            assert pd.api.types.is_numeric_dtype(s), name
        elif col.get("values"):
            assert set(s.dropna()) <= set(col["values"]), name


def test_one_row_per_pupil_with_true_bsn_and_link_method(world, truth):
    pupils = set(world.school["true_bsn"])
    assert truth["pupil_id"].is_unique and set(truth["pupil_id"]) == pupils
    no_bsn = set(world.school.loc[world.school["bsn"].isna(), "true_bsn"])
    prob = truth.set_index("pupil_id")["link_method"]
    assert set(prob[prob == "probabilistic"].index) == no_bsn
    assert (truth["link_method"] == "exact").mean() > 0.8


def test_truth_values_are_in_range_and_stages_null_when_unobserved(truth):
    assert truth["eindtoets_score"].dropna().between(501, 550).all()
    assert truth["geboortemaand"].dropna().between(1, 12).all()
    no_po = truth["po_schooljaar"].isna()
    assert truth.loc[no_po, "schooladvies"].isna().all()
    no_mbo = truth["mbo_niveau"].isna()
    assert truth.loc[no_mbo, ["mbo_uitval_jaar1", "mbo_diploma"]].isna().all().all()
    assert truth["wijk_ses_tertiel"].notna().all()
    assert truth["buurt_code"].str.fullmatch(r"BU\d{8}").all()


def test_world_frames_pass_the_readers_canonical_schemas(world):
    schemas.MUNICIPAL.schema().validate(world.persons)
    schemas.SCHOOL.schema().validate(world.school.drop(columns=["true_bsn"]))
    schemas.POSTCODES.schema().validate(world.postcodes)
    schemas.CBS.schema().validate(world.cbs)


def test_demo_analysis_table_is_memoised_and_copied():
    a = demo_analysis_table(2_000, 3)
    a.loc[:, "vsv"] = True
    b = demo_analysis_table(2_000, 3)
    assert not b["vsv"].all()
    assert len(b) > 100


def test_duo_noise_birth_date_typos_and_outdated_postcodes(world):
    reg = world.persons.set_index("bsn")
    pupils = world.school.drop_duplicates("true_bsn").set_index("true_bsn")
    true_birth = reg.loc[pupils.index, "geboortedatum"]
    wrong = pupils["geboortedatum"] != true_birth
    assert wrong.mean() < 0.02
    for duo, real in zip(pupils["geboortedatum"][wrong], true_birth[wrong], strict=True):
        swapped = (duo.year, duo.month, duo.day) == (real.year, real.day, real.month)
        assert swapped or abs((duo - real).days) == 1
    moved = pupils["postcode"] != reg.loc[pupils.index, "postcode"]
    assert 0.01 < moved.mean() < 0.06
