"""build_analysis_table on tiny hand-made canonical frames: each career column derived right."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from flows.pipeline.analysis import analysis_sql, build_analysis_table, ses_tertiles

S = "string[pyarrow]"


def _persons() -> pd.DataFrame:
    rows = [
        # bsn, birth, sex, postcode, nr, ouder1, ouder2, decile, migration, vertrek
        ("P1", "2004-03-15", "M", "9711AA", 1, "M1", None, None, "Nederland", None),
        ("P2", "2002-11-02", "V", "9711AB", 2, None, "F2", None, "Marokko", "2023-09-01"),
        ("P3", "2001-06-30", "V", "9711AA", 1, None, None, None, "Turkije", None),
        ("M1", "1975-01-01", "V", "9711AA", 1, None, None, 3, "Nederland", None),
        ("F2", "1970-01-01", "M", "9711AB", 2, None, None, 8, "Marokko", None),
    ]
    df = pd.DataFrame(
        rows,
        columns=[
            "bsn",
            "geboortedatum",
            "geslacht",
            "postcode",
            "huisnummer",
            "bsn_ouder1",
            "bsn_ouder2",
            "inkomen_decile",
            "migratieachtergrond",
            "datum_vertrek",
        ],
    )
    df["geboortedatum"] = pd.to_datetime(df["geboortedatum"])
    df["datum_vertrek"] = pd.to_datetime(df["datum_vertrek"])
    df["huisnummer"] = df["huisnummer"].astype("Int64")
    df["inkomen_decile"] = df["inkomen_decile"].astype("Int64")
    for c in ("bsn", "geslacht", "postcode", "bsn_ouder1", "bsn_ouder2", "migratieachtergrond"):
        df[c] = df[c].astype(S)
    return df


def _school() -> pd.DataFrame:
    cols = [
        "person_key",
        "schooljaar",
        "onderwijssoort",
        "leerjaar",
        "niveau",
        "leerweg",
        "sector",
        "schooladvies",
        "eindtoets_score",
        "diploma",
        "uitgeschreven",
        "vsv",
    ]
    rows = [
        # P1: groep 8, vo vmbo-gt with diploma, mbo-4 diploma, then hbo
        (
            "P1",
            "2015-2016",
            "po",
            8,
            "groep 8",
            None,
            None,
            "vmbo-gt/havo",
            531,
            False,
            False,
            False,
        ),
        ("P1", "2016-2017", "vo", 1, "havo", None, None, None, None, False, False, False),
        ("P1", "2017-2018", "vo", 2, "havo", None, None, None, None, False, False, False),
        ("P1", "2018-2019", "vo", 3, "vmbo-gt", None, None, None, None, False, False, False),
        ("P1", "2019-2020", "vo", 4, "vmbo-gt", None, None, None, None, True, False, False),
        ("P1", "2020-2021", "mbo", 1, "mbo-4", "BOL", "techniek", None, None, False, False, False),
        ("P1", "2021-2022", "mbo", 2, "mbo-4", "BOL", "techniek", None, None, False, False, False),
        ("P1", "2022-2023", "mbo", 3, "mbo-4", "BOL", "techniek", None, None, True, False, False),
        ("P1", "2023-2024", "hbo", 1, "hbo-ba", None, None, None, None, False, False, False),
        # P2: vo without diploma, mbo-2 switch to another sector, diploma, then moved out
        ("P2", "2018-2019", "vo", 4, "vmbo-b", None, None, None, None, False, False, False),
        (
            "P2",
            "2019-2020",
            "mbo",
            1,
            "mbo-2",
            "BBL",
            "zorg en welzijn",
            None,
            None,
            False,
            False,
            False,
        ),
        ("P2", "2020-2021", "mbo", 1, "mbo-2", "BBL", "economie", None, None, False, False, False),
        ("P2", "2021-2022", "mbo", 2, "mbo-2", "BBL", "economie", None, None, True, False, False),
        # P3: mbo-3 first-year dropout, early school leaver
        ("P3", "2017-2018", "mbo", 1, "mbo-3", "BOL", "groen", None, None, False, True, True),
        # a row without a link is ignored
        (None, "2017-2018", "vo", 1, "vwo", None, None, None, None, False, False, False),
    ]
    df = pd.DataFrame(rows, columns=cols)
    for c in ("diploma", "uitgeschreven", "vsv"):
        df[c] = df[c].astype("boolean")
    df["leerjaar"] = df["leerjaar"].astype("Int64")
    df["eindtoets_score"] = df["eindtoets_score"].astype("Int64")
    for c in (
        "person_key",
        "schooljaar",
        "onderwijssoort",
        "niveau",
        "leerweg",
        "sector",
        "schooladvies",
    ):
        df[c] = df[c].astype(S)
    df["brin"] = pd.Series(["12AB"] * len(df), dtype=S)
    df["geslacht"] = pd.Series(["M"] * len(df), dtype=S)
    df["geboortedatum"] = pd.Timestamp("2000-01-01")
    df["link_method"] = ["exact"] * 9 + ["probabilistic"] * 4 + ["exact"] * 2
    return df


def _postcodes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "postcode": pd.array(["9711AA", "9711AB"], dtype=S),
            "huisnummer": pd.array([1, 2], dtype="Int64"),
            "buurt_code": pd.array(["BU00140101", "BU00140201"], dtype=S),
            "wijk_code": pd.array(["WK001401", "WK001402"], dtype=S),
            "gemeente_code": pd.array(["GM0014", "GM0014"], dtype=S),
        }
    )


def _cbs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "region_code": pd.array(
                ["GM0014", "WK001401", "WK001402", "WK001403", "BU00140101", "BU00140201"], dtype=S
            ),
            "region_type": pd.array(
                ["gemeente", "wijk", "wijk", "wijk", "buurt", "buurt"], dtype=S
            ),
            "gem_inkomen_per_inwoner": pd.array(
                [27.0, 31.5, 22.0, 26.0, 30.0, None], dtype="Float64"
            ),
            "pct_laag_inkomen": pd.array([9.0, 5.0, 14.0, 9.0, 4.5, None], dtype="Float64"),
        }
    )


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    t = build_analysis_table(_persons(), _school(), _postcodes(), _cbs())
    return t.set_index("pupil_id")


def test_one_row_per_linked_pupil(table):
    assert sorted(table.index) == ["P1", "P2", "P3"]
    assert table.loc["P2", "link_method"] == "probabilistic"
    assert table.loc["P1", "link_method"] == "exact"


def test_register_and_neighbourhood_columns(table):
    p1, p2, p3 = table.loc["P1"], table.loc["P2"], table.loc["P3"]
    assert (p1["geboortejaar"], p1["geboortemaand"], p1["geslacht"]) == (2004, 3, "M")
    assert p1["inkomen_decile"] == 3  # via bsn_ouder1
    assert p2["inkomen_decile"] == 8  # via bsn_ouder2
    assert pd.isna(p3["inkomen_decile"])  # no parent known
    assert (p1["buurt_code"], p1["wijk_code"]) == ("BU00140101", "WK001401")
    assert p1["wijk_gem_inkomen"] == 31.5 and p1["buurt_pct_laag_inkomen"] == 4.5
    assert pd.isna(p2["buurt_pct_laag_inkomen"])  # suppressed by CBS
    assert p1["wijk_ses_tertiel"] == 3 and p2["wijk_ses_tertiel"] == 1


def test_ses_tertiles_split_wijken_by_income():
    assert ses_tertiles(_cbs()).to_dict() == {"WK001402": 1, "WK001403": 2, "WK001401": 3}


def test_career_columns(table):
    p1, p2, p3 = table.loc["P1"], table.loc["P2"], table.loc["P3"]
    assert (p1["po_schooljaar"], p1["eindtoets_score"], p1["schooladvies"]) == (
        "2015-2016",
        531,
        "vmbo-gt/havo",
    )
    assert p1["vo_niveau_leerjaar3"] == "vmbo-gt" and bool(p1["vo_diploma"])
    assert not bool(p2["vo_diploma"]) and pd.isna(p3["vo_diploma"])
    assert pd.isna(p2["schooladvies"])
    assert (p1["mbo_niveau"], p1["mbo_leerweg"], p1["mbo_sector"]) == ("mbo-4", "BOL", "techniek")
    assert p1["mbo_vooropleiding"] == "vmbo-gt" and p2["mbo_vooropleiding"] == "geen diploma"
    assert pd.isna(p3["mbo_vooropleiding"])  # no vo rows seen
    assert p1["mbo_instroom_schooljaar"] == "2020-2021"
    assert bool(p2["mbo_switch_jaar1"]) and not bool(p1["mbo_switch_jaar1"])
    assert bool(p3["mbo_uitval_jaar1"]) and not bool(p2["mbo_uitval_jaar1"])
    assert bool(p3["vsv"]) and not bool(p1["vsv"])
    assert bool(p1["mbo_diploma"]) and not bool(p3["mbo_diploma"])
    assert p1["mbo_uitstroom"] == "hbo"
    assert p2["mbo_uitstroom"] == "onbekend"  # diploma, then moved out
    assert p3["mbo_uitstroom"] == "zonder-startkwalificatie"


def test_forced_link_method_and_ordered_categories():
    t = build_analysis_table(_persons(), _school(), _postcodes(), _cbs(), link_method="exact")
    assert set(t["link_method"]) == {"exact"}
    assert t["schooladvies"].dtype.ordered
    assert list(t["wijk_ses_tertiel"].dtype.categories) == [1, 2, 3]


def _more_school(rows: list[dict]) -> pd.DataFrame:
    """_school() plus rows given as {column: value}; unspecified columns as in its first row."""
    base = _school()
    extra = pd.DataFrame([{**base.iloc[0].to_dict(), **r} for r in rows])
    return pd.concat([base, extra.astype(base.dtypes.to_dict())], ignore_index=True)


def test_ties_in_year_and_kind_keep_input_order():
    mbo = {"onderwijssoort": "mbo", "schooljaar": "2020-2021", "leerweg": "BOL", "diploma": False}
    school = _more_school(
        [
            {**mbo, "person_key": "X1", "niveau": "mbo-1", "sector": "groen"},
            {**mbo, "person_key": "X1", "niveau": "mbo-3", "sector": "techniek"},
        ]
    )
    t = build_analysis_table(_persons(), school, _postcodes(), _cbs()).set_index("pupil_id")
    assert (t.loc["X1", "mbo_niveau"], t.loc["X1", "mbo_sector"]) == ("mbo-1", "groen")


def test_pupil_missing_from_register_gets_duo_birth_and_sex():
    school = _more_school(
        [{"person_key": "X1", "onderwijssoort": "po", "geslacht": "V", "schooladvies": "havo"}]
    )
    t = build_analysis_table(_persons(), school, _postcodes(), _cbs()).set_index("pupil_id")
    x1 = t.loc["X1"]
    assert (x1["geboortejaar"], x1["geboortemaand"], x1["geslacht"]) == (2000, 1, "V")
    assert pd.isna(x1["inkomen_decile"]) and pd.isna(x1["buurt_code"])
    assert x1["schooladvies"] == "havo" and pd.isna(x1["mbo_uitstroom"])


def test_mbo_without_diploma_is_still_enrolled_only_in_the_last_year():
    mbo = {"onderwijssoort": "mbo", "niveau": "mbo-2", "leerweg": "BBL", "sector": "groen"}
    school = _more_school(
        [
            {**mbo, "person_key": "X1", "schooljaar": "2023-2024"},  # the window's last year
            {**mbo, "person_key": "X2", "schooljaar": "2021-2022"},
        ]
    )
    t = build_analysis_table(_persons(), school, _postcodes(), _cbs()).set_index("pupil_id")
    assert t.loc["X1", "mbo_uitstroom"] == "nog-bezig"
    assert pd.isna(t.loc["X2", "mbo_uitstroom"])
    assert not t.loc["X2", "mbo_diploma"] and not t.loc["X2", "mbo_uitval_jaar1"]


def test_duplicate_address_rows_first_one_wins():
    postcodes = pd.concat([_postcodes(), _postcodes().assign(buurt_code="BU99999999")])
    t = build_analysis_table(_persons(), _school(), postcodes, _cbs()).set_index("pupil_id")
    assert t.loc["P1", "buurt_code"] == "BU00140101"


def test_no_linked_rows_gives_an_empty_table_with_the_schema_dtypes():
    full = build_analysis_table(_persons(), _school(), _postcodes(), _cbs())
    unlinked = _school().assign(person_key=pd.array([None] * len(_school()), dtype=S))
    for school in (_school().iloc[:0], unlinked):
        t = build_analysis_table(_persons(), school, _postcodes(), _cbs())
        assert len(t) == 0
        assert t.dtypes.to_dict() == full.dtypes.to_dict()


def test_missing_link_method_column_means_exact():
    t = build_analysis_table(
        _persons(), _school().drop(columns="link_method"), _postcodes(), _cbs()
    )
    assert set(t["link_method"]) == {"exact"}


def test_analysis_sql_runs_on_plain_duckdb_views(table):
    con = duckdb.connect()
    for name, frame in (
        ("reg", _persons()),
        ("duo", _school()),
        ("pc", _postcodes()),
        ("kwb", _cbs()),
    ):
        con.register(f"{name}_frame", frame)
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM {name}_frame")
    result = con.sql(analysis_sql("reg", "duo", "pc", "kwb")).to_arrow_table()
    expected = table.reset_index()
    assert result.column_names == list(expected.columns)
    for name in result.column_names:
        assert result.column(name).to_pylist() == [
            None if pd.isna(v) else v for v in expected[name].astype(object)
        ], name
