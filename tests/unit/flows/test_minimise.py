"""Data minimisation: only pupils' birth cohorts (widened by a margin) and their parents
reach pseudonymisation; a pupil whose DUO birth date has a typo is still linked."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from flows.pipeline import linkage as lk
from flows.pipeline.minimise import needed_persons
from flows.pipeline.pseudonymise import PERSON_KEYS, pseudonymise_persons, pseudonymise_school
from flows.pipeline.steps import minimise_and_pseudonymise

TYPO_PUPIL = "c00000"  # the oldest child: its DUO birth date has day and month swapped


def _register() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Children born 2004-06..2012 with parents born in the 1970s, plus unrelated elderly;
    and a school file of most children, 10% (and the typo pupil) without person number."""
    rng = np.random.default_rng(3)
    n = 800
    pcs = [f"97{i:02d}{chr(65 + i % 26)}{chr(65 + i * 7 % 26)}" for i in range(200)]
    births = pd.Timestamp("2004-06-01") + pd.to_timedelta(rng.integers(0, 8 * 365, n), "D")
    births = births.to_series().reset_index(drop=True)
    births.iloc[0] = pd.Timestamp("2004-01-05")  # the typo pupil: 5 January 2004
    postcode = rng.choice(pcs, n)
    children = pd.DataFrame(
        {
            "bsn": [f"c{i:05d}" for i in range(n)],
            "geboortedatum": births,
            "geslacht": rng.choice(["M", "V"], n),
            "postcode": postcode,
            "bsn_ouder1": [f"m{i:05d}" for i in range(n)],
            "bsn_ouder2": [f"f{i:05d}" if i % 3 else None for i in range(n)],
        }
    )

    def adults(prefix: str, count: int, start: str, sex: str) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "bsn": [f"{prefix}{i:05d}" for i in range(count)],
                "geboortedatum": pd.Timestamp(start)
                + pd.to_timedelta(rng.integers(0, 3650, count), "D"),
                "geslacht": sex,
                "postcode": rng.choice(pcs, count),
                "bsn_ouder1": None,
                "bsn_ouder2": None,
            }
        )

    persons = pd.concat(
        [
            children,
            adults("m", n, "1970-01-01", "V"),
            adults("f", n, "1968-01-01", "M"),
            adults("e", 500, "1935-01-01", "V"),  # nobody's parent, not of school age
        ],
        ignore_index=True,
    )
    pupils = children[children["bsn"] != TYPO_PUPIL].sample(600, random_state=1)
    pupils = pd.concat([children[children["bsn"] == TYPO_PUPIL], pupils])
    school = pd.DataFrame(
        {
            "bsn": pupils["bsn"].to_numpy(),
            "geboortedatum": pupils["geboortedatum"].to_numpy(),
            "geslacht": pupils["geslacht"].to_numpy(),
            "postcode": pupils["postcode"].to_numpy(),
            "onderwijssoort": "vo",
        }
    ).reset_index(drop=True)
    school.loc[school.index % 10 == 0, "bsn"] = None
    school.loc[0, "geboortedatum"] = pd.Timestamp("2004-05-01")  # DUO: 1 May, not 5 January
    return persons, school


def test_keeps_birth_window_and_named_parents_drops_the_rest():
    persons, school = _register()
    kept, dropped = needed_persons(persons, school, margin_years=1.0)
    ids = set(kept["bsn"])
    named = set(persons["bsn_ouder1"].dropna()) | set(persons["bsn_ouder2"].dropna())
    unnamed_fathers = {b for b in persons["bsn"] if b[0] == "f" and b not in named}
    assert len(unnamed_fathers) == 267
    assert dropped == 500 + 267 == len(persons) - len(kept)
    assert not ids & unnamed_fathers
    assert not any(b.startswith("e") for b in ids)  # the unrelated elderly
    assert {b for b in persons["bsn"] if b[0] == "c"} | named <= ids  # children, parents
    assert kept["bsn"].is_unique and list(kept.index) == list(range(len(kept)))


def test_a_person_number_in_the_school_data_is_always_kept():
    persons, school = _register()
    elder = persons[persons["bsn"] == "e00007"].iloc[0]
    school.loc[1, ["bsn", "geboortedatum"]] = ["e00007", pd.Timestamp("2008-01-01")]
    kept, dropped = needed_persons(persons, school, margin_years=1.0)
    assert "e00007" in set(kept["bsn"]) and dropped == 499 + 267
    assert elder["geboortedatum"].year < 1950


def test_school_data_without_person_numbers_or_register_without_parents():
    """A DUO delivery without a bsn column keeps the window and the parents it names; a
    register without parent columns keeps the window alone."""
    persons, school = _register()
    with_numbers, dropped = needed_persons(persons, school, margin_years=1.0)
    kept, dropped_too = needed_persons(persons, school.drop(columns="bsn"), margin_years=1.0)
    pd.testing.assert_frame_equal(kept, with_numbers)  # every pupil is in the window here
    assert dropped_too == dropped
    orphans, dropped_orphans = needed_persons(
        persons.drop(columns=["bsn_ouder1", "bsn_ouder2"]), school, margin_years=1.0
    )
    assert set(orphans["bsn"]) == {b for b in persons["bsn"] if b[0] == "c"}
    assert dropped_orphans == len(persons) - len(orphans)


def test_minimised_and_pseudonymised_side_by_side_as_one_after_the_other():
    """The link stage's step (school hashed in a second thread) gives exactly what the
    three functions give one after the other, and no raw number survives it."""
    persons, school = _register()
    key = b"k" * 32
    read = {"municipal": SimpleNamespace(frame=persons), "school": SimpleNamespace(frame=school)}
    hashed_persons, hashed_school, not_needed = minimise_and_pseudonymise(read, key, 1.0)
    kept, dropped = needed_persons(persons, school, margin_years=1.0)
    pd.testing.assert_frame_equal(hashed_persons, pseudonymise_persons(kept, key))
    pd.testing.assert_frame_equal(hashed_school, pseudonymise_school(school, key))
    assert not_needed == dropped == 500 + 267
    raw = set(persons["bsn"])
    for frame, cols in ((hashed_persons, PERSON_KEYS), (hashed_school, ("bsn",))):
        assert not raw & set(frame[list(cols)].stack().dropna())


def test_school_data_without_birth_dates_drops_nobody():
    persons, school = _register()
    school["geboortedatum"] = pd.NaT
    kept, dropped = needed_persons(persons, school, margin_years=1.0)
    assert dropped == 0 and len(kept) == len(persons)


@pytest.mark.parametrize(("margin", "linked"), [(1.0, True), (0.0, False)])
def test_pupil_with_a_birth_date_typo_is_still_linked(margin, linked):
    """The typo moves the oldest pupil's DUO date four months past the register's; the
    one-year margin keeps the true person as a candidate, no margin would drop them."""
    persons, school = _register()
    assert school.loc[0, "bsn"] is None or pd.isna(school.loc[0, "bsn"])
    kept, _ = needed_persons(persons, school, margin_years=margin)
    assert (TYPO_PUPIL in set(kept["bsn"])) is linked
    result = lk.link_school(school, kept)
    row = result.school.loc[0]
    if linked:
        assert row["link_status"] == lk.PROBABILISTIC
        assert row["person_key"] == TYPO_PUPIL
    else:
        assert row["link_status"] != lk.PROBABILISTIC or row["person_key"] != TYPO_PUPIL
    others = result.school.iloc[1:]
    assert (others["link_method"].notna()).mean() > 0.95
