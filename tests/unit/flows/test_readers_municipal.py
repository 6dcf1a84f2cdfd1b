"""The register reader: formats, column mapping and every bad-input case the issue lists."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from flows.event import Source
from flows.pipeline.errors import SourceError
from flows.pipeline.readers import read_municipal

FIXTURES = Path(__file__).with_name("fixtures_sources")


def person_values(path: Path) -> set[str]:
    """Every cell of the data rows that could identify someone (5+ characters)."""
    text = path.read_bytes().decode("cp1252")
    lines = text.splitlines()
    cells = {c for line in lines[1:] for c in re.split(r"[;,]", line)}
    return {c for c in cells if len(c) >= 5}


def assert_no_values(message: str, path: Path) -> None:
    leaked = [v for v in person_values(path) if v in message]
    assert not leaked, f"message repeats {len(leaked)} cell values"


def source(path: str, **kw: object) -> Source:
    return Source(path=Path(path), format="brp-csv", **kw)


def test_reads_cp1252_register_into_canonical_frame() -> None:
    result = read_municipal(FIXTURES / "brp_personen.csv")
    frame = result.frame
    assert result.source == "brp_personen.csv"
    assert result.detected == {
        "encoding": "cp1252",
        "delimiter": ";",
        "decimal": ".",
        "shape": "brp-csv",
    }
    assert result.rows_read == 8
    assert list(frame.columns[:4]) == ["bsn", "voornamen", "geslachtsnaam", "geboortedatum"]
    assert len(frame) == 7
    noel = frame[frame["bsn"] == "688136138"].iloc[0]
    assert noel["voornamen"] == "Noël"
    assert noel["geboortedatum"] == pd.Timestamp("2009-09-01")
    assert noel["datum_vertrek"] == pd.Timestamp("2021-08-15")
    assert noel["huisletter"] == "a"
    assert str(frame["huisnummer"].dtype) == "Int64"
    assert str(frame["inkomen_huishouden"].dtype) == "Float64"
    assert str(frame["inkomen_decile"].dtype) == "Int64"
    assert pd.isna(frame.loc[frame["bsn"] == "192285142", "bsn_ouder1"].iloc[0])
    assert frame["datum_vertrek"].isna().sum() == 5
    assert frame.index.tolist() == list(range(7))


def test_bsn_failing_elfproef_is_dropped_and_counted() -> None:
    result = read_municipal(FIXTURES / "brp_personen.csv")
    assert result.rejected == {"bsn fails elfproef": 1}
    assert "123456789" not in set(result.frame["bsn"])


def test_comma_separated_file_is_detected() -> None:
    result = read_municipal(FIXTURES / "brp_comma.csv")
    assert result.detected["delimiter"] == ","
    assert len(result.frame) == 7


def test_missing_required_column_names_it_and_the_mapping_fix() -> None:
    with pytest.raises(SourceError) as err:
        read_municipal(FIXTURES / "brp_missing_column.csv")
    assert str(err.value) == (
        "brp_missing_column.csv: required column 'geboortedatum' is missing; add it or map "
        "your column name under sources.municipal.columns (e.g. geboortedatum: <name in your "
        "file>)."
    )


def test_extra_columns_warn_and_reading_goes_on() -> None:
    result = read_municipal(FIXTURES / "brp_extra_columns.csv")
    assert result.warnings == [
        "brp_extra_columns.csv: ignored 2 columns hackgap does not use: telefoon, opmerking."
    ]
    assert "telefoon" not in result.frame.columns
    assert len(result.frame) == 7


def test_column_mapping_from_event_yaml() -> None:
    src = source("brp_own_names.csv", columns={"bsn": "BSN_NUMMER", "geboortedatum": "GEB_DATUM"})
    result = read_municipal(FIXTURES / "brp_own_names.csv", src)
    assert len(result.frame) == 7
    assert result.frame["geboortedatum"].notna().all()


def test_column_mapping_to_absent_column_says_so() -> None:
    src = source("brp_own_names.csv", columns={"bsn": "BSN_NR", "geboortedatum": "GEB_DATUM"})
    with pytest.raises(SourceError, match=r"sources.municipal.columns maps 'bsn' to 'BSN_NR'"):
        read_municipal(FIXTURES / "brp_own_names.csv", src)


def test_mapping_an_unknown_target_name_is_refused() -> None:
    src = source("x.csv", columns={"burgerservicenummer": "BSN_NUMMER"})
    with pytest.raises(SourceError, match=r"'burgerservicenummer' is not a column hackgap reads"):
        read_municipal(FIXTURES / "brp_own_names.csv", src)


def test_wrong_declared_delimiter_names_the_detected_one() -> None:
    with pytest.raises(SourceError) as err:
        read_municipal(FIXTURES / "brp_personen.csv", source("b.csv", delimiter=","))
    assert str(err.value) == (
        "brp_personen.csv: declared delimiter ',' does not split the header into columns; "
        "the file looks ';'-separated — set sources.municipal.delimiter: ';' or auto."
    )


def test_latin1_file_declared_utf8_names_byte_line_and_fix() -> None:
    with pytest.raises(SourceError) as err:
        read_municipal(FIXTURES / "brp_latin1.csv", source("b.csv", encoding="UTF-8"))
    assert str(err.value) == (
        "brp_latin1.csv: declared UTF-8 but byte 0xEB at line 5 is not UTF-8; it looks like "
        "cp1252 — set sources.municipal.encoding: cp1252 or auto."
    )


def test_utf8_file_declared_cp1252_is_refused_instead_of_garbling_names() -> None:
    with pytest.raises(SourceError, match=r"declared cp1252 but the file is UTF-8 .*line 5"):
        read_municipal(FIXTURES / "brp_utf8.csv", source("b.csv", encoding="cp1252"))


def test_declared_encoding_that_matches_is_used() -> None:
    result = read_municipal(FIXTURES / "brp_utf8.csv", source("b.csv", encoding="utf-8"))
    assert result.detected["encoding"] == "utf-8"
    assert "Zoë" in set(result.frame["voornamen"])


def test_empty_file() -> None:
    with pytest.raises(SourceError) as err:
        read_municipal(FIXTURES / "empty.csv")
    assert str(err.value) == "empty.csv: the file is empty; export the extract again."


def test_header_only() -> None:
    with pytest.raises(SourceError) as err:
        read_municipal(FIXTURES / "brp_header_only.csv")
    assert str(err.value) == (
        "brp_header_only.csv: the file has a header but no data rows; export the extract "
        "again with its rows."
    )


def test_duplicate_bsn_names_count_and_line_numbers_never_values() -> None:
    path = FIXTURES / "brp_duplicate_bsn.csv"
    with pytest.raises(SourceError) as err:
        read_municipal(path)
    assert str(err.value) == (
        "brp_duplicate_bsn.csv: 2 BSNs occur more than once (4 rows, first at lines 2, 3, 10); "
        "the register must have one row per person — remove the duplicate rows or export the "
        "extract again."
    )
    assert_no_values(str(err.value), path)


def test_truncated_file_names_the_cut_line() -> None:
    with pytest.raises(SourceError) as err:
        read_municipal(FIXTURES / "brp_truncated.csv")
    assert str(err.value) == (
        "brp_truncated.csv: the last line (9) is cut off, so the file looks truncated; "
        "export it again."
    )


def test_bad_value_names_column_and_line_not_the_value() -> None:
    path = FIXTURES / "brp_bad_date.csv"
    with pytest.raises(SourceError) as err:
        read_municipal(path)
    assert str(err.value) == (
        "brp_bad_date.csv: column 'geboortedatum' has 1 value that is not an existing calendar "
        "date (first at line 3); fix those rows in the extract, or map the right column under "
        "sources.municipal.columns."
    )
    assert_no_values(str(err.value), path)


def test_bad_value_in_mapped_column_names_the_file_column(tmp_path: Path) -> None:
    text = (FIXTURES / "brp_own_names.csv").read_text(encoding="utf-8")
    bad = tmp_path / "brp.csv"
    bad.write_text(text.replace(";M;", ";X;", 1), encoding="utf-8")
    src = source("brp.csv", columns={"bsn": "BSN_NUMMER", "geboortedatum": "GEB_DATUM"})
    with pytest.raises(SourceError, match=r"column 'geslacht' has 1 value that is not M or V"):
        read_municipal(bad, src)
    bad.write_text(text.replace("20100315", "2010-03-15"), encoding="utf-8")
    with pytest.raises(SourceError, match=r"'geboortedatum' \(file column 'GEB_DATUM'\)"):
        read_municipal(bad, src)


def test_row_with_too_many_fields_names_its_line(tmp_path: Path) -> None:
    lines = (FIXTURES / "brp_utf8.csv").read_text(encoding="utf-8").splitlines()
    lines[4] += ";extra"
    bad = tmp_path / "brp.csv"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(SourceError) as err:
        read_municipal(bad)
    assert str(err.value) == (
        "brp.csv: line 5 has 18 fields where the header has 17; quote values that contain "
        "';' or export the file again."
    )


def test_required_value_missing_is_reported_as_empty(tmp_path: Path) -> None:
    lines = (FIXTURES / "brp_utf8.csv").read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace(";9711AB;", ";;")
    bad = tmp_path / "brp.csv"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(SourceError, match=r"column 'postcode' is empty in 1 row where a value"):
        read_municipal(bad)


def test_missing_file_points_at_the_path_setting(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"correct sources.municipal.path in event.yaml"):
        read_municipal(tmp_path / "nope.csv")
