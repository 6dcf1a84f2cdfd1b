"""The DuckDB fast path reads exactly what the reference (pandas + pandera) path reads.

Every reader first tries `duck.read_canonical`; these tests read the same files with the
fast path and with it switched off, and require identical frames, counts and detections,
and that the fast path really ran (or, for files it must refuse, really declined).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from flows.demodata import simulate, write_sources
from flows.pipeline.detect import SAMPLE_BYTES, detect_layout
from flows.pipeline.errors import SourceError
from flows.pipeline.pseudonymise import DIRECT_IDENTIFIERS
from flows.pipeline.readers import duck, read_cbs, read_municipal, read_postcodes, read_school
from flows.pipeline.readers.table import CsvChunks, Where
from flows.pipeline.schemas import MUNICIPAL, SCHOOL

FIXTURES = Path(__file__).parent / "fixtures_sources"
READERS: dict[str, Callable] = {
    "brp": read_municipal,
    "duo": read_school,
    "pc6": read_postcodes,
}


def _spy(monkeypatch: pytest.MonkeyPatch, name: str) -> list[bool]:
    """Records, per call of duck.<name>, whether DuckDB returned a result."""
    calls: list[bool] = []
    real = getattr(duck, name)

    def spy(*args, **kwargs):
        got = real(*args, **kwargs)
        calls.append(got is not None)
        return got

    monkeypatch.setattr(duck, name, spy)
    return calls


@pytest.fixture
def fast_calls(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    return _spy(monkeypatch, "read_canonical")


def _reference(read: Callable, path: Path, monkeypatch: pytest.MonkeyPatch):
    with monkeypatch.context() as m:
        m.setattr(duck, "read_canonical", lambda *a, **k: None)
        return read(path)


def _assert_same(fast, ref) -> None:
    pd.testing.assert_frame_equal(fast.frame, ref.frame, check_exact=True)
    assert (fast.rows_read, fast.rejected, fast.warnings) == (
        ref.rows_read,
        ref.rejected,
        ref.warnings,
    )
    assert fast.detected == ref.detected


@pytest.mark.parametrize(
    ("reader", "name"),
    [
        ("brp", "brp_personen.csv"),
        ("brp", "brp_latin1.csv"),
        ("brp", "brp_utf8.csv"),
        ("brp", "brp_comma.csv"),
        ("brp", "brp_extra_columns.csv"),
        ("duo", "duo_onderwijs.csv"),
        ("duo", "duo_zonder_bsn.csv"),
        ("pc6", "pc6hnr_2023_gwb.csv"),
    ],
)
def test_fixture_files_read_the_same_on_both_paths(
    reader: str, name: str, fast_calls: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    read = READERS[reader]
    fast = read(FIXTURES / name)
    assert fast_calls == [True], "the fast path should have read this well-formed file"
    _assert_same(fast, _reference(read, FIXTURES / name, monkeypatch))


def test_demo_extracts_read_the_same_on_both_paths(
    tmp_path: Path, fast_calls: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    files = write_sources(simulate(4000, 11, no_bsn_share=0.1), tmp_path)
    for read, name in (
        (read_municipal, "brp_personen.csv"),
        (read_school, "duo_onderwijs.csv"),
        (read_postcodes, "pc6hnr_2023_gwb.csv"),
    ):
        fast = read(files[name])
        _assert_same(fast, _reference(read, files[name], monkeypatch))
    assert fast_calls == [True, True, True]


def test_cp1252_only_characters_are_transcoded_not_misread(
    tmp_path: Path, fast_calls: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bytes 0x80-0x9F mean different letters in cp1252 and Latin-1 (DuckDB's codec)."""
    text = (FIXTURES / "brp_personen.csv").read_text(encoding="cp1252")
    first_name = text.splitlines()[1].split(";")[1]
    text = text.replace(first_name, "Šárka “Ž”", 1)
    path = tmp_path / "brp_cp1252.csv"
    path.write_bytes(text.encode("cp1252"))
    fast = read_municipal(path)
    assert fast_calls == [True]
    assert fast.detected["encoding"] == "cp1252"
    assert (fast.frame["voornamen"] == "Šárka “Ž”").sum() == 1
    _assert_same(fast, _reference(read_municipal, path, monkeypatch))


def test_other_whitespace_around_text_is_stripped_like_the_reference(
    tmp_path: Path, fast_calls: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB's trim() removes spaces only: other whitespace at an edge sends the file to
    the reference path, which strips it as Python does."""
    text = (FIXTURES / "brp_utf8.csv").read_text(encoding="utf-8")
    first_name = text.splitlines()[1].split(";")[1]
    path = tmp_path / "brp_nbsp.csv"
    path.write_text(text.replace(first_name, f"\u00a0{first_name}\t", 1), encoding="utf-8")
    got = read_municipal(path)
    assert fast_calls == [False]
    assert got.frame["voornamen"].iloc[0] == first_name
    _assert_same(got, _reference(read_municipal, path, monkeypatch))


def _chunks(path: Path) -> CsvChunks:
    where = Where(path.name, "x")
    return CsvChunks(path, detect_layout(path, where=where), where)


def _mapping(chunks: CsvChunks, names: list[str]) -> dict[str, str]:
    return {n: n for n in names if n in chunks.layout.header}


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (";538;", ";600;"),  # eindtoets_score outside 501-550 (a domain rule)
        (";havo;", ";gymnasium;"),  # niveau not in the list
        (";havo;", ";HAVO;"),  # in the list only if case were ignored
        (";havo;", ";havo/vwo;"),  # a value of another column's list (schooladvies)
        (";2021-2022;", ";2021/2022;"),  # schooljaar not matching its pattern
        ("2010-03-15", "2010-02-30"),  # no such calendar date
    ],
)
def test_the_fast_path_declines_a_value_that_breaks_a_rule(
    tmp_path: Path, old: str, new: str
) -> None:
    text = (FIXTURES / "duo_onderwijs.csv").read_text()
    assert old in text
    path = tmp_path / "duo.csv"
    path.write_text(text.replace(old, new, 1))
    chunks = _chunks(path)
    assert duck.read_canonical(chunks, SCHOOL, _mapping(chunks, SCHOOL.names)) is None
    good = _chunks(FIXTURES / "duo_onderwijs.csv")
    assert duck.read_canonical(good, SCHOOL, _mapping(good, SCHOOL.names)) is not None


def test_a_value_outside_its_list_is_refused_by_the_reader_naming_the_column(
    tmp_path: Path, fast_calls: list[bool]
) -> None:
    """Through read_school, as the link stage reads: the fast path declines 'HAVO' (the list
    has 'havo'), and the organiser gets the reference path's sentence, nothing read."""
    path = tmp_path / "duo.csv"
    path.write_text((FIXTURES / "duo_onderwijs.csv").read_text().replace(";havo;", ";HAVO;", 1))
    with pytest.raises(SourceError) as err:
        read_school(path)
    assert fast_calls == [False]
    message = str(err.value)
    assert message.startswith("duo.csv: column 'niveau' has 1 value that is not one of: ")
    assert "HAVO" not in message  # no value of the file in a message


def test_the_fast_path_declines_a_line_with_too_few_fields(tmp_path: Path) -> None:
    lines = (FIXTURES / "brp_utf8.csv").read_text(encoding="utf-8").splitlines()
    path = tmp_path / "brp.csv"
    path.write_text("\n".join([*lines[:-1], lines[-1][:20]]) + "\n", encoding="utf-8")
    chunks = _chunks(path)
    assert duck.read_canonical(chunks, MUNICIPAL, _mapping(chunks, MUNICIPAL.names)) is None


def test_dropped_columns_are_never_read_on_either_path(
    fast_calls: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = FIXTURES / "brp_personen.csv"
    full = read_municipal(path)
    slim = read_municipal(path, drop=DIRECT_IDENTIFIERS)
    assert fast_calls == [True, True]
    assert not set(DIRECT_IDENTIFIERS) & set(slim.frame.columns)
    kept = [c for c in full.frame.columns if c not in DIRECT_IDENTIFIERS]
    pd.testing.assert_frame_equal(slim.frame, full.frame[kept])
    assert slim.warnings == full.warnings  # known columns, not "ignored" ones
    with monkeypatch.context() as m:
        m.setattr(duck, "read_canonical", lambda *a, **k: None)
        ref = read_municipal(path, drop=DIRECT_IDENTIFIERS)
    _assert_same(slim, ref)


def test_a_date_pandas_cannot_hold_is_declined_not_crashed(tmp_path: Path) -> None:
    text = (FIXTURES / "duo_onderwijs.csv").read_text()
    path = tmp_path / "duo.csv"
    path.write_text(text.replace("2010-03-15", "0001-03-15", 1))
    chunks = _chunks(path)
    assert duck.read_canonical(chunks, SCHOOL, _mapping(chunks, SCHOOL.names)) is None
    with pytest.raises(SourceError, match="geboortedatum"):
        read_school(path)


@pytest.mark.parametrize(
    ("name", "year"),
    [("kwb_2023_statline.csv", 2023), ("kwb_2023_odata.json", 2023), ("kwb-2023.csv", 2023)],
)
def test_cbs_chunks_convert_the_same_in_duckdb_and_pandera(
    name: str, year: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CBS tables are scoped chunk by chunk, then DuckDB checks and converts each chunk."""
    calls = _spy(monkeypatch, "convert_texts")
    fast = read_cbs(FIXTURES / name, municipality="GM0014", year=year)
    assert calls and all(calls)
    monkeypatch.setattr(duck, "convert_texts", lambda *a, **k: None)
    _assert_same(fast, read_cbs(FIXTURES / name, municipality="GM0014", year=year))


def test_the_whitespace_list_is_what_python_strips() -> None:
    every = "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace())
    assert every == duck._WHITESPACE


def test_a_byte_cp1252_leaves_undefined_is_refused_even_in_a_dropped_column(
    tmp_path: Path,
) -> None:
    """Past the detection sample, read as Latin-1 it would pass unnoticed; the reference
    path names the byte and its line."""
    files = write_sources(simulate(10_000, 11), tmp_path)
    path = files["brp_personen.csv"]
    lines = path.read_bytes().split(b"\n")
    assert sum(len(line) for line in lines[:-2]) > SAMPLE_BYTES
    first_name = lines[-2].split(b";")[1]
    lines[-2] = lines[-2].replace(first_name, first_name + b"\x81", 1)
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(SourceError, match="0x81"):
        read_municipal(path, drop=DIRECT_IDENTIFIERS)


def test_values_padded_with_spaces_are_stripped_on_the_fast_path(
    tmp_path: Path, fast_calls: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = (FIXTURES / "brp_utf8.csv").read_text(encoding="utf-8").splitlines()
    padded = [lines[0]] + [
        ";".join(f" {v}  " if v else v for v in line.split(";")) for line in lines[1:]
    ]
    path = tmp_path / "brp_padded.csv"
    path.write_text("\n".join(padded) + "\n", encoding="utf-8")
    got = read_municipal(path)
    assert fast_calls == [True]
    _assert_same(got, _reference(read_municipal, path, monkeypatch))
    pd.testing.assert_frame_equal(got.frame, read_municipal(FIXTURES / "brp_utf8.csv").frame)


def test_every_declared_pattern_may_judge_a_value_before_it_is_stripped() -> None:
    """The shortcut (`duck._accept`) converts a value as it is when the kind's pattern
    matches it unstripped: only sound for a pattern no empty or edge-padded text matches.
    Every declared kind qualifies; patterns that do not are refused."""
    from flows.pipeline import schemas

    kinds = [k for k in vars(schemas).values() if isinstance(k, schemas.Kind) and k.pattern]
    assert len(kinds) >= 10
    assert not [k.pattern for k in kinds if duck._may_reach_the_edge(k.pattern)]
    may = (r"\d+ ?", r" \d", r"a?\s?b", ".", "[^a]", "(?:a|b )", "x*", "a|", r"[\x00-\x40]a")
    for pattern in (*may, "[[:space:]]x"):  # the last: a POSIX class only RE2 reads as one
        assert duck._may_reach_the_edge(pattern), pattern


def test_values_needing_stripping_or_case_folding_read_the_same_beside_usual_ones(
    tmp_path: Path, fast_calls: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Usual values take the shortcut; a padded, lower-case or empty one in the same column
    goes through the stripping and checks, and the frame is the reference path's."""
    lines = (FIXTURES / "duo_onderwijs.csv").read_text().splitlines()
    first = lines[1].split(";")
    first[2] = "v"  # geslacht, lower case: upper-cased as on the reference path
    first[3] = " 9711ab "  # postcode, padded and lower case
    first[9] = "  groep 8"  # niveau from its list, padded
    first[14] = "n"  # diploma, lower case
    first[8] = " 8"  # leerjaar, padded
    lines[1] = ";".join(first)
    path = tmp_path / "duo_mixed.csv"
    path.write_text("\n".join(lines) + "\n")
    got = read_school(path)
    assert fast_calls == [True]
    _assert_same(got, _reference(read_school, path, monkeypatch))
    row = got.frame.iloc[0]
    assert (row["geslacht"], row["postcode"], row["niveau"]) == ("V", "9711AB", "groep 8")
    assert (row["diploma"], row["leerjaar"]) == (False, 8)
