"""CBS kerncijfers in the three shapes (StatLine export, OData, kwb-YYYY) -> one frame."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from flows.event import Source
from flows.pipeline.errors import SourceError
from flows.pipeline.readers import read_cbs
from flows.pipeline.readers.cbs import detect_shape

FIXTURES = Path(__file__).with_name("fixtures_sources")
SHAPES = [
    ("kwb_2023_statline.csv", "statline", 2023),
    ("kwb_2023_odata.json", "odata", 2023),
    ("cbs_odata_wijken.csv", "odata", 2021),
    ("kwb-2023.csv", "kwb", 2023),
]


def _read(name: str, year: int = 2023, **kw: object):
    return read_cbs(FIXTURES / name, municipality="GM0014", year=year, **kw)


@pytest.mark.parametrize(("name", "shape", "year"), SHAPES)
def test_every_shape_gives_the_same_canonical_frame(name: str, shape: str, year: int) -> None:
    expected = _read("kwb_2023_statline.csv").frame
    result = _read(name, year)
    assert result.detected["shape"] == shape
    assert result.detected["year"] == year
    assert result.detected["suppressed_cells"] == 4
    pd.testing.assert_frame_equal(result.frame, expected)


def test_statline_values_are_stripped_decimal_comma_and_suppression_is_na() -> None:
    result = _read("kwb_2023_statline.csv")
    frame = result.frame.set_index("region_code")
    assert result.detected["decimal"] == ","
    assert result.detected["encoding"] == "utf-8-sig"
    assert list(frame.index[:3]) == ["GM0014", "WK001401", "BU00140101"]
    assert list(frame["region_type"][:3]) == ["gemeente", "wijk", "buurt"]
    assert frame.loc["GM0014", "gem_inkomen_per_inwoner"] == 28.4
    assert frame.loc["BU00140202", "pct_laag_inkomen"] is pd.NA
    assert frame.loc["BU00140102", "inwoners"] == 45  # a real number stays, never 0 for '.'
    assert frame["gem_inkomen_per_inwoner"].isna().sum() == 1
    assert str(frame["inwoners"].dtype) == "Float64"


def test_odata_names_are_matched_by_stem_not_by_suffix() -> None:
    csv = pd.read_csv(FIXTURES / "cbs_odata_wijken.csv")
    assert "GemiddeldInkomenPerInwoner_66" in csv.columns
    js = json.loads((FIXTURES / "kwb_2023_odata.json").read_text())
    assert "GemiddeldInkomenPerInwoner_78" in js[0]
    assert _read("cbs_odata_wijken.csv", 2021).frame["gem_inkomen_per_inwoner"].iloc[0] == 28.4
    assert _read("kwb_2023_odata.json").frame["gem_inkomen_per_inwoner"].iloc[0] == 28.4


def test_odata_api_envelope_is_accepted(tmp_path: Path) -> None:
    records = json.loads((FIXTURES / "kwb_2023_odata.json").read_text())
    path = tmp_path / "kwb_2023_typed.json"
    path.write_text(json.dumps({"odata.metadata": "x", "value": records}))
    assert len(read_cbs(path, municipality="GM0014", year=2023).frame) == 7


def test_kwb_national_file_keeps_the_event_municipality_and_says_so() -> None:
    result = _read("kwb-2023.csv")
    assert set(result.frame["region_code"].str[2:6]) == {"0014"}
    assert result.rows_read == 11
    assert "kwb-2023.csv: kept the 7 regions of GM0014; ignored 4 rows of 1 other " in (
        " ".join(result.warnings)
    )


def test_kwb_xlsx_workbook(tmp_path: Path) -> None:
    frame = pd.read_csv(FIXTURES / "kwb-2023.csv", sep=";", dtype=str, keep_default_na=False)
    path = tmp_path / "kwb-2023.xlsx"
    frame.to_excel(path, index=False)
    result = read_cbs(path, municipality="GM0014", year=2023)
    assert result.detected["shape"] == "kwb"
    assert result.detected["format"] == "xlsx"
    assert result.frame["gem_inkomen_per_inwoner"].iloc[0] == 28.4


def test_kwb_uses_persons_low_income_only_when_households_are_absent(tmp_path: Path) -> None:
    text = (FIXTURES / "kwb-2023.csv").read_text().replace("p_hh_li", "p_hh_xx")
    path = tmp_path / "kwb-2023.csv"
    path.write_text(text)
    result = read_cbs(path, municipality="GM0014", year=2023)
    assert any("used p_ink_li" in w for w in result.warnings)


def test_another_year_is_refused() -> None:
    with pytest.raises(SourceError) as err:
        _read("kwb_2022_statline.csv")
    assert str(err.value) == (
        "kwb_2022_statline.csv: the figures are for 2022 (from the file name) but the event's "
        "data_year is 2023; use the 2023 figures or set data_year: 2022 in event.yaml."
    )


def test_year_from_perioden_column_wins_over_file_name(tmp_path: Path) -> None:
    path = tmp_path / "kwb_2023_odata.csv"
    shutil.copy(FIXTURES / "cbs_odata_wijken.csv", path)  # Perioden 2021JJ00
    with pytest.raises(SourceError, match=r"figures are for 2021 \(from the column\)"):
        read_cbs(path, municipality="GM0014", year=2023)


def test_unknown_year_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "kerncijfers.csv"
    shutil.copy(FIXTURES / "kwb_2023_statline.csv", path)
    result = read_cbs(path, municipality="GM0014", year=2023)
    assert result.detected["year"] is None
    assert any("cannot tell the year" in w for w in result.warnings)


def test_another_municipality_is_refused() -> None:
    with pytest.raises(SourceError) as err:
        _read("kwb_2023_statline_amsterdam.csv")
    assert str(err.value) == (
        "kwb_2023_statline_amsterdam.csv: no rows for the event's municipality GM0014 (the file "
        "covers GM0363); download the figures for GM0014 or correct municipality in event.yaml."
    )


def test_unrecognised_header(tmp_path: Path) -> None:
    path = tmp_path / "kwb_2023.csv"
    path.write_text("a;b;c\n1;2;3\n")
    with pytest.raises(SourceError, match=r"matches none of the CBS kerncijfers shapes"):
        read_cbs(path, municipality="GM0014", year=2023)


def test_declared_columns_override_detection(tmp_path: Path) -> None:
    text = (FIXTURES / "kwb_2023_statline.csv").read_text(encoding="utf-8-sig")
    text = text.replace("Gemiddeld inkomen per inwoner", "Inkomen per hoofd")
    path = tmp_path / "kwb_2023_statline.csv"
    path.write_text(text, encoding="utf-8-sig")
    with pytest.raises(SourceError, match=r"required column 'gem_inkomen_per_inwoner' is missing"):
        read_cbs(path, municipality="GM0014", year=2023)
    label = "Inkomen/Inkomen van personen/Inkomen per hoofd (x 1 000 euro)"
    src = Source(path=path, format="statline-csv", columns={"gem_inkomen_per_inwoner": label})
    result = read_cbs(path, src, municipality="GM0014", year=2023)
    assert result.frame["gem_inkomen_per_inwoner"].iloc[0] == 28.4


def test_bad_number_names_column_and_line(tmp_path: Path) -> None:
    text = (FIXTURES / "kwb_2023_statline.csv").read_text(encoding="utf-8-sig")
    path = tmp_path / "kwb_2023_statline.csv"
    path.write_text(text.replace('"26,1"', '"26 1"'), encoding="utf-8-sig")
    with pytest.raises(SourceError) as err:
        read_cbs(path, municipality="GM0014", year=2023)
    assert str(err.value).startswith(
        "kwb_2023_statline.csv: column 'gem_inkomen_per_inwoner' (file column "
        "'Inkomen/Inkomen van personen/Gemiddeld inkomen per inwoner (x 1 000 euro)') has 1 "
        "value that is not a number or '.' (suppressed) (first at line 3)"
    )


def test_truncated_statline_export(tmp_path: Path) -> None:
    text = (FIXTURES / "kwb_2023_statline.csv").read_text(encoding="utf-8-sig")
    path = tmp_path / "kwb_2023_statline.csv"
    path.write_text(text[: text.rstrip().rfind("stedelijk")], encoding="utf-8-sig")
    with pytest.raises(SourceError, match=r"the last line \(8\) is cut off"):
        read_cbs(path, municipality="GM0014", year=2023)


def test_truncated_json(tmp_path: Path) -> None:
    text = (FIXTURES / "kwb_2023_odata.json").read_text()
    path = tmp_path / "kwb_2023_odata.json"
    path.write_text(text[: len(text) // 2])
    with pytest.raises(SourceError, match=r"the JSON ends early .* looks truncated"):
        read_cbs(path, municipality="GM0014", year=2023)


def test_detect_shape() -> None:
    assert detect_shape(["gwb_code_10", "regio", "a_inw"]) == "kwb"
    assert detect_shape(["ID", "WijkenEnBuurten", "Codering_3"]) == "odata"
    assert detect_shape(["Wijken en buurten", "Regioaanduiding/Codering (code)"]) == "statline"
    assert detect_shape(["bsn", "naam"]) == ""


def test_declared_format_that_differs_from_the_file_is_a_warning() -> None:
    src = Source(path=Path("kwb-2023.csv"), format="statline-csv")
    result = read_cbs(FIXTURES / "kwb-2023.csv", src, municipality="GM0014", year=2023)
    assert result.detected["shape"] == "kwb"
    assert (
        "kwb-2023.csv: sources.cbs.format says statline-csv but the file is the kwb shape; "
        "read it as kwb." in result.warnings
    )
