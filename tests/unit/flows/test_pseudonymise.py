"""Pseudonymisation: keyed HMAC pseudonyms, key handling, identifiers dropped."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pandas as pd
import pytest

from flows.event import SecureZone
from flows.pipeline.pseudonymise import (
    DIRECT_IDENTIFIERS,
    PseudonymKeyError,
    generalise,
    hmac_hex,
    key_fingerprint,
    load_key,
    pseudonymise_columns,
    pseudonymise_persons,
    pseudonymise_school,
)

KEY = b"0123456789abcdef0123456789abcdef-test"
OTHER = b"fedcba9876543210fedcba9876543210-test"


def test_key_from_environment_variable_named_in_event():
    zone = SecureZone(pseudonym_key_env="MY_KEY")
    assert load_key(zone, environ={"MY_KEY": KEY.decode()}) == KEY


def test_key_file_used_when_variable_unset(tmp_path: Path):
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "k").write_bytes(KEY + b"\n")
    zone = SecureZone(pseudonym_key_file=Path("keys/k"))
    assert load_key(zone, tmp_path, environ={}) == KEY


def test_missing_key_names_the_variable_and_how_to_make_one():
    with pytest.raises(PseudonymKeyError) as err:
        load_key(SecureZone(), environ={})
    msg = str(err.value)
    assert "HACKGAP_PSEUDONYM_KEY" in msg
    assert "secrets.token_hex(32)" in msg
    assert PseudonymKeyError.hackgap_user_error


def test_unreadable_key_file_names_the_file(tmp_path: Path):
    zone = SecureZone(pseudonym_key_file=tmp_path / "absent.key")
    with pytest.raises(PseudonymKeyError, match=r"absent\.key"):
        load_key(zone, environ={})


def test_short_key_is_refused_without_echoing_it():
    short = "tooshort-secret-value"
    with pytest.raises(PseudonymKeyError) as err:
        load_key(SecureZone(), environ={"HACKGAP_PSEUDONYM_KEY": short})
    assert "32 bytes" in str(err.value)
    assert short not in str(err.value)


def test_pseudonyms_are_hmac_sha256_of_the_normalised_number():
    frame = pd.DataFrame({"bsn": ["123456782", " 111222333 ", None, ""]})
    out = pseudonymise_columns(frame, ["bsn"], KEY)["bsn"]
    expected = hmac.new(KEY, b"123456782", hashlib.sha256).hexdigest()
    assert out[0] == expected == hmac_hex("123456782", KEY)
    assert out[1] == hmac_hex("111222333", KEY)
    assert out.isna().tolist() == [False, False, True, True]


def test_numeric_person_numbers_keep_their_leading_zero():
    as_int = pseudonymise_columns(pd.DataFrame({"bsn": [12345672]}), ["bsn"], KEY)["bsn"]
    as_text = pseudonymise_columns(pd.DataFrame({"bsn": ["012345672"]}), ["bsn"], KEY)["bsn"]
    assert as_int[0] == as_text[0]


def test_other_key_gives_other_pseudonyms_and_same_key_the_same():
    frame = pd.DataFrame({"bsn": ["123456782", "111222333"]})
    a = pseudonymise_columns(frame, ["bsn"], KEY)["bsn"].tolist()
    b = pseudonymise_columns(frame, ["bsn"], KEY)["bsn"].tolist()
    c = pseudonymise_columns(frame, ["bsn"], OTHER)["bsn"].tolist()
    assert a == b
    assert not set(a) & set(c)
    assert key_fingerprint(KEY) != key_fingerprint(OTHER)
    assert KEY.hex() not in key_fingerprint(KEY)


def test_persons_lose_direct_identifiers_and_parents_share_the_key():
    persons = pd.DataFrame(
        {
            "bsn": ["111111110", "222222220"],
            "voornamen": ["Jan", "Piet"],
            "geslachtsnaam": ["Jansen", "Pietersen"],
            "straatnaam": ["Dorpsstraat", "Dorpsstraat"],
            "huisletter": ["", "A"],
            "woonplaats": ["Groningen", "Groningen"],
            "bsn_ouder1": [None, "111111110"],
            "bsn_ouder2": [None, None],
            "huishoudnummer": ["HH00000001", "HH00000001"],
            "postcode": ["9711AB", "9711AB"],
        }
    )
    out = pseudonymise_persons(persons, KEY)
    assert not set(DIRECT_IDENTIFIERS) & set(out.columns)
    assert out.loc[1, "bsn_ouder1"] == out.loc[0, "bsn"]
    assert "huishoudnummer" not in out.columns
    assert not out.isin(["111111110", "222222220"]).any().any()
    assert out["postcode"].tolist() == ["9711AB", "9711AB"]  # kept for the buurt join


def test_school_numbers_hash_to_the_register_pseudonym():
    persons = pseudonymise_persons(pd.DataFrame({"bsn": ["111111110"]}), KEY)
    school = pseudonymise_school(pd.DataFrame({"bsn": ["111111110", None]}), KEY)
    assert school.loc[0, "bsn"] == persons.loc[0, "bsn"]
    assert pd.isna(school.loc[1, "bsn"])


def test_generalise_keeps_schema_columns_only_and_refuses_identifiers():
    table = pd.DataFrame({"pupil_id": ["p"], "geboortejaar": [2010], "geboortedatum": ["x"]})
    assert generalise(table, ["pupil_id", "geboortejaar"]).columns.tolist() == [
        "pupil_id",
        "geboortejaar",
    ]
    with pytest.raises(ValueError, match="geboortedatum"):
        generalise(table, ["pupil_id", "geboortedatum"])
