"""The CBS postcode table and the DUO school data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from flows.pipeline.errors import SourceError
from flows.pipeline.readers import read_postcodes, read_school

FIXTURES = Path(__file__).with_name("fixtures_sources")


def test_postcode_codes_are_padded_and_prefixed() -> None:
    result = read_postcodes(FIXTURES / "pc6hnr_2023_gwb.csv")
    frame = result.frame
    assert list(frame.columns) == [
        "postcode",
        "huisnummer",
        "buurt_code",
        "wijk_code",
        "gemeente_code",
    ]
    assert frame.iloc[0].tolist() == ["9711AB", 12, "BU00140101", "WK001401", "GM0014"]
    assert frame.iloc[-1].tolist() == ["1012JS", 1, "BU03630000", "WK036300", "GM0363"]
    assert result.detected["year"] == 2023
    assert str(frame["huisnummer"].dtype) == "Int64"


def test_postcode_table_with_other_year_suffix_and_prefixed_codes(tmp_path: Path) -> None:
    path = tmp_path / "pc6hnr_2024_gwb.csv"
    path.write_text(
        "PC6,Huisnummer,Buurt2024,Wijk2024,Gemeente2024\n9711 ab,7,BU00140101,1401,14\n"
    )
    result = read_postcodes(path)
    assert result.detected == {
        "encoding": "utf-8",
        "delimiter": ",",
        "decimal": ".",
        "shape": "cbs-pc6hnr",
        "year": 2024,
    }
    assert result.frame.iloc[0].tolist() == ["9711AB", 7, "BU00140101", "WK001401", "GM0014"]


def test_postcode_bad_code(tmp_path: Path) -> None:
    path = tmp_path / "pc6hnr_2023_gwb.csv"
    path.write_text("PC6;Huisnummer;Buurt2023;Wijk2023;Gemeente2023\n9711AB;7;14010X;1401;14\n")
    with pytest.raises(SourceError, match=r"'buurt_code' \(file column 'Buurt2023'\) has 1 value"):
        read_postcodes(path)


def test_school_rows_normalised() -> None:
    result = read_school(FIXTURES / "duo_onderwijs.csv")
    frame = result.frame
    assert len(frame) == 5
    assert frame["postcode"].tolist()[:3] == ["9711AB", "9711AB", "9711NV"]
    assert frame["geboortedatum"].iloc[0] == pd.Timestamp("2010-03-15")
    assert str(frame["vsv"].dtype) == "boolean"
    assert frame["vsv"].tolist() == [False, False, False, True, False]
    assert frame["eindtoets_score"].tolist()[:2] == [538, pd.NA]
    assert str(frame["leerjaar"].dtype) == "Int64"
    assert frame["leerweg"].iloc[3] == "BBL"
    assert result.detected["person_number"] is True


def test_school_bsn_failing_elfproef_is_blanked_and_counted() -> None:
    result = read_school(FIXTURES / "duo_onderwijs.csv")
    assert result.rejected == {"bsn fails elfproef (left empty, linked without it)": 1}
    assert result.frame["bsn"].isna().sum() == 2  # one empty in the file, one blanked
    assert result.detected["rows_without_bsn"] == 2


def test_school_without_person_number() -> None:
    result = read_school(FIXTURES / "duo_zonder_bsn.csv")
    assert result.frame["bsn"].isna().all()
    assert result.detected["person_number"] is False
    assert result.warnings == ["duo_zonder_bsn.csv: optional columns not found, left empty: bsn."]


def test_school_value_outside_the_contract(tmp_path: Path) -> None:
    text = (FIXTURES / "duo_onderwijs.csv").read_text().replace(";538;", ";600;")
    path = tmp_path / "duo.csv"
    path.write_text(text)
    with pytest.raises(SourceError) as err:
        read_school(path)
    assert str(err.value) == (
        "duo.csv: column 'eindtoets_score' has 1 value that is not between 501 and 550 (first "
        "at line 2); fix those rows in the extract, or map the right column under "
        "sources.school.columns."
    )


def test_school_header_only(tmp_path: Path) -> None:
    path = tmp_path / "duo.csv"
    path.write_text((FIXTURES / "duo_onderwijs.csv").read_text().splitlines()[0])
    with pytest.raises(SourceError, match=r"duo.csv: the file has a header but no data rows"):
        read_school(path)
