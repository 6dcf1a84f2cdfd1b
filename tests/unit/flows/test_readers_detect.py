"""Encoding, delimiter and decimal detection from a sample, and the streaming decoder."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from flows.pipeline.detect import (
    SAMPLE_BYTES,
    DecodedStream,
    Where,
    detect_layout,
    guess_decimal,
    guess_delimiter,
    guess_encoding,
)
from flows.pipeline.errors import SourceError
from flows.pipeline.readers import read_municipal

FIXTURES = Path(__file__).with_name("fixtures_sources")
WHERE = Where("f.csv", "municipal")


@pytest.mark.parametrize(
    ("data", "codec"),
    [
        (b"a;b\n1;2\n", "utf-8"),
        ("a;b\nZoë;2\n".encode(), "utf-8"),
        (b"\xef\xbb\xbfa;b\n1;2\n", "utf-8-sig"),
        ("a;b\nZoë;2\n".encode("cp1252"), "cp1252"),
        (b"a;b\n\x81x;2\n", "latin-1"),
    ],
)
def test_guess_encoding(data: bytes, codec: str) -> None:
    assert guess_encoding(data, at_eof=True) == codec


def test_utf8_sequence_cut_by_the_sample_end_is_still_utf8() -> None:
    data = ("a;b\n" + "é" * 10).encode()
    assert guess_encoding(data[:-1], at_eof=False) == "utf-8"


@pytest.mark.parametrize(
    ("text", "delimiter"),
    [
        ("a;b;c\n1;2;3\n", ";"),
        ("a,b,c\n1,2,3\n", ","),
        ("a\tb\tc\n1\t2\t3\n", "\t"),
        ('"a";"b, c";"d"\n"1,5";"2";"3"\n', ";"),
        ("a|b\n1|2\n", "|"),
        ("just one column\nvalue\n", None),
    ],
)
def test_guess_delimiter(text: str, delimiter: str | None) -> None:
    assert guess_delimiter(text) == delimiter


def test_guess_decimal() -> None:
    assert guess_decimal([["h", "g"], ["28,4", "1"], ["3,0", "."]], ";") == ","
    assert guess_decimal([["h", "g"], ["28.4", "1"], [".", "2"]], ";") == "."
    assert guess_decimal([["h", "g"], ["28", "1"]], ",") == "."


def test_layout_reports_statline_export() -> None:
    layout = detect_layout(FIXTURES / "kwb_2023_statline.csv", where=WHERE)
    assert layout.describe() == {"encoding": "utf-8-sig", "delimiter": ";", "decimal": ","}
    assert layout.header[0] == "Wijken en buurten"


def test_layout_of_a_zip_or_workbook_says_save_as_csv(tmp_path: Path) -> None:
    path = tmp_path / "brp.csv"
    path.write_bytes(b"PK\x03\x04rest")
    with pytest.raises(SourceError, match=r"f.csv: this is a zip or Excel workbook"):
        detect_layout(path, where=WHERE)


def test_layout_of_utf16_says_save_as_utf8(tmp_path: Path) -> None:
    path = tmp_path / "brp.csv"
    path.write_text("a;b\n1;2\n", encoding="utf-16")
    with pytest.raises(SourceError, match=r"UTF-16 or binary.*save it as 'CSV UTF-8'"):
        detect_layout(path, where=WHERE)


def test_unknown_declared_encoding(tmp_path: Path) -> None:
    path = tmp_path / "brp.csv"
    path.write_text("a;b\n1;2\n")
    with pytest.raises(SourceError, match=r"sources.municipal.encoding: unknown encoding 'ebcdic"):
        detect_layout(path, where=WHERE, encoding="ebcdic-xx")


def test_no_delimiter_found(tmp_path: Path) -> None:
    path = tmp_path / "brp.csv"
    path.write_text("bsn\n123\n")
    with pytest.raises(SourceError, match=r"cannot find the field delimiter"):
        detect_layout(path, where=WHERE)


def _big_register(tmp_path: Path, tail: bytes) -> Path:
    """A register whose first 1 MiB is ASCII and whose later rows carry `tail`."""
    good = (FIXTURES / "brp_utf8.csv").read_bytes().splitlines(keepends=True)
    header, row = good[0], good[1]  # row 1: plain ASCII
    rows = []
    prefix = 10_000_000
    while sum(map(len, rows)) < SAMPLE_BYTES + 100_000:
        digits = [int(d) for d in str(prefix)]
        check = sum(w * d for w, d in zip(range(9, 1, -1), digits, strict=True)) % 11
        prefix += 1
        if check == 10:
            continue
        rows.append(f"{prefix - 1}{check}".encode() + row[9:])
    rows.append(tail)
    path = tmp_path / "brp_big.csv"
    path.write_bytes(header + b"".join(rows))
    return path


def test_cp1252_byte_after_an_ascii_sample_switches_encoding(tmp_path: Path) -> None:
    row = "529972001;Noël;Brontë;20090901;M;Oosterstraat;3;a;9711NV;Groningen;HH1;;;1;2;Suriname;\n"
    path = _big_register(tmp_path, row.encode("cp1252"))
    result = read_municipal(path)
    assert result.detected["encoding"] == "cp1252"
    assert result.frame["voornamen"].iloc[-1] == "Noël"


def test_mixed_encodings_in_the_sample_name_the_line(tmp_path: Path) -> None:
    text = (FIXTURES / "brp_utf8.csv").read_bytes()  # UTF-8, accents at line 5
    path = tmp_path / "brp.csv"
    row = "529972001;Noël;Brontë;20090901;M;Oosterstraat;3;a;9711NV;Groningen;HH1;;;1;2;Suriname;\n"
    path.write_bytes(text + row.encode("cp1252"))
    with pytest.raises(SourceError) as err:
        read_municipal(path)
    assert str(err.value) == (
        "brp.csv: byte 0xEB at line 10 is not UTF-8 although earlier lines are, so the file "
        "mixes encodings; export it again in one encoding (UTF-8) or set "
        "sources.municipal.encoding: cp1252."
    )


def test_decoded_stream_counts_lines_across_blocks() -> None:
    data = ("x\n" * 10 + "é\n").encode("utf-8") + b"\xff\n"
    layout = detect_layout.__globals__["Layout"](
        encoding="utf-8",
        delimiter=";",
        decimal=".",
        header=("x",),
        ascii_sample=False,
        declared_encoding=True,
    )
    stream = DecodedStream(io.BytesIO(data), layout, lambda c, b, line: ValueError(c, b, line), 3)
    with pytest.raises(ValueError) as err:
        stream.read()
    assert err.value.args == ("utf-8", 0xFF, 12)


def test_mixed_encodings_after_the_sample_name_the_line(tmp_path: Path) -> None:
    row = "529972001;Noël;Brontë;20090901;M;Oosterstraat;3;a;9711NV;Groningen;HH1;;;1;2;Suriname;\n"
    path = _big_register(tmp_path, row.encode("utf-8") + row.encode("cp1252"))
    lines = path.read_bytes().count(b"\n")
    with pytest.raises(SourceError) as err:
        read_municipal(path)
    assert str(err.value).startswith(
        f"brp_big.csv: byte 0xEB at line {lines} is not UTF-8 although earlier lines are"
    )
