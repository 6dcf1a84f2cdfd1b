"""Find out how a source extract is written: encoding, delimiter, decimal mark, header.

Organisers get their files from Windows exports (cp1252), StatLine (UTF-8 with BOM,
decimal comma) and CBS downloads (plain UTF-8). Detection looks at a sample of the
first bytes only, so a 2 GB file costs the same as a small one; `DecodedStream`
then decodes the whole file block by block, counting lines so that a bad byte
found later can still be named by its line, and switching to cp1252 when a file
whose sample was plain ASCII turns out to be a Windows export after all.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from flows.pipeline.errors import SourceError

SAMPLE_BYTES = 1 << 20
BLOCK_BYTES = 1 << 20
DELIMITERS = (";", ",", "\t", "|")
SAMPLE_LINES = 200

# Bytes cp1252 leaves undefined: a file with them is Latin-1, not Windows-1252.
_CP1252_UNDEFINED = frozenset(b"\x81\x8d\x8f\x90\x9d")
_DECIMAL_COMMA = re.compile(r"^\s*-?\d+,\d+\s*$")
_DECIMAL_POINT = re.compile(r"^\s*-?\d+\.\d+\s*$")
_ENCODING_NAMES = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8 with BOM", "cp1252": "cp1252"}
_DELIMITER_NAMES = {";": "';'", ",": "','", "\t": "tab", "|": "'|'"}


@dataclass(frozen=True)
class Where:
    """Names used in messages: the file (name only) and the event.yaml key of the source."""

    file: str
    key: str

    @property
    def setting(self) -> str:
        return f"sources.{self.key}"


@dataclass(frozen=True)
class Layout:
    """How a delimited text file is written, as detected or declared."""

    encoding: str  # Python codec name: utf-8, utf-8-sig, cp1252 or latin-1
    delimiter: str
    decimal: str
    header: tuple[str, ...]
    ascii_sample: bool  # the sample had no non-ASCII byte: the encoding may still change
    declared_encoding: bool

    def describe(self) -> dict[str, str]:
        """The detected settings as reported in ReadResult.detected."""
        return {"encoding": self.encoding, "delimiter": self.delimiter, "decimal": self.decimal}


def encoding_label(codec: str) -> str:
    """A codec name as people know it (UTF-8, UTF-8 with BOM, cp1252, latin-1)."""
    return _ENCODING_NAMES.get(codec, codec)


def delimiter_label(delimiter: str) -> str:
    return _DELIMITER_NAMES.get(delimiter, repr(delimiter))


def normalise_encoding(name: str, where: Where) -> str | None:
    """The Python codec for a declared encoding, or None for auto."""
    if name.strip().lower() == "auto":
        return None
    try:
        codec = codecs.lookup(name.strip()).name
    except LookupError:
        raise SourceError(
            f"{where.setting}.encoding: unknown encoding '{name}'; "
            "use utf-8, utf-8-sig, cp1252, latin-1 or auto."
        ) from None
    return {"iso8859-1": "latin-1", "windows-1252": "cp1252"}.get(codec, codec)


def normalise_delimiter(name: str, where: Where) -> str | None:
    """The delimiter character for a declared delimiter, or None for auto."""
    value = {"auto": None, "tab": "\t", "\\t": "\t", "semicolon": ";", "comma": ","}.get(
        name.strip().lower() if name.strip() else name, name
    )
    if value is not None and len(value) != 1:
        raise SourceError(
            f"{where.setting}.delimiter: '{name}' is not one character; use ';', ',', tab or auto."
        )
    return value


def read_sample(path: Path, size: int = SAMPLE_BYTES) -> tuple[bytes, bool]:
    """The first `size` bytes of a file and whether that is the whole file."""
    with open(path, "rb") as fh:
        sample = fh.read(size)
        at_eof = not fh.read(1)
    return sample, at_eof


def _line_of(data: bytes, pos: int) -> int:
    return data.count(b"\n", 0, pos) + 1


def guess_encoding(sample: bytes, at_eof: bool) -> str:
    """The most likely codec of a sample: BOM, then valid UTF-8, then cp1252 or Latin-1."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.isascii():
        return "utf-8"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=at_eof)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    return "latin-1" if _CP1252_UNDEFINED.intersection(sample) else "cp1252"


def _check_binary(sample: bytes, where: Where) -> None:
    if sample.startswith(b"PK\x03\x04"):
        raise SourceError(
            f"{where.file}: this is a zip or Excel workbook, not a text file; "
            "save it as CSV (or unzip it) and point the source at the CSV."
        )
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" in sample[:4096]:
        raise SourceError(
            f"{where.file}: the file is UTF-16 or binary, not UTF-8/cp1252 text; "
            "save it as 'CSV UTF-8' and read it again."
        )


def _check_declared_encoding(sample: bytes, at_eof: bool, declared: str, where: Where) -> str:
    """Fail fast when the sample contradicts the declared encoding; return the codec to use."""
    if declared in ("utf-8", "utf-8-sig"):
        try:
            codecs.getincrementaldecoder("utf-8")().decode(sample, final=at_eof)
        except UnicodeDecodeError as exc:
            line = _line_of(sample, exc.start)
            raise decoding_error(where, declared, sample[exc.start], line) from None
        return "utf-8-sig" if sample.startswith(codecs.BOM_UTF8) else "utf-8"
    guess = guess_encoding(sample, at_eof)
    if guess in ("utf-8", "utf-8-sig") and not sample.isascii():
        first = next(i for i, byte in enumerate(sample) if byte >= 0x80)
        raise SourceError(
            f"{where.file}: declared {encoding_label(declared)} but the file is "
            f"{encoding_label(guess)} (first non-ASCII character at line "
            f"{_line_of(sample, first)}); set {where.setting}.encoding: {guess} or auto."
        )
    return declared


def _check_mixed(sample: bytes, at_eof: bool, codec: str, where: Where) -> None:
    """Valid UTF-8 accents followed by a byte that is not UTF-8: two encodings in one file."""
    if codec not in ("cp1252", "latin-1"):
        return
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=at_eof)
    except UnicodeDecodeError as exc:
        if not sample[: exc.start].isascii():
            line = _line_of(sample, exc.start)
            raise decoding_error(where, "utf-8", sample[exc.start], line, declared=False) from None


def decoding_error(
    where: Where, codec: str, byte: int, line: int, *, declared: bool = True
) -> SourceError:
    """The sentence for a byte that the declared or detected encoding cannot decode."""
    guess = "latin-1" if byte in _CP1252_UNDEFINED or codec in ("cp1252", "latin-1") else "cp1252"
    if not declared:
        return SourceError(
            f"{where.file}: byte 0x{byte:02X} at line {line} is not {encoding_label(codec)} "
            f"although earlier lines are, so the file mixes encodings; export it again in one "
            f"encoding (UTF-8) or set {where.setting}.encoding: {guess}."
        )
    return SourceError(
        f"{where.file}: declared {encoding_label(codec)} but byte 0x{byte:02X} at line {line} "
        f"is not {encoding_label(codec)}; it looks like {guess} — "
        f"set {where.setting}.encoding: {guess} or auto."
    )


def _complete_lines(text: str, at_eof: bool) -> str:
    if at_eof:
        return text
    cut = text.rfind("\n")
    return text[: cut + 1] if cut >= 0 else text


def _rows(text: str, delimiter: str, limit: int = SAMPLE_LINES) -> list[list[str]]:
    rows: list[list[str]] = []
    try:
        for row in csv.reader(io.StringIO(text), delimiter=delimiter):
            if row:
                rows.append(row)
            if len(rows) >= limit:
                break
    except csv.Error:
        pass
    return rows


def _score(rows: list[list[str]]) -> float:
    """How well a delimiter splits the sample: fields in the header, if rows agree with it."""
    if not rows or len(rows[0]) < 2:
        return 0.0
    width = len(rows[0])
    body = rows[1:] or rows
    agree = sum(len(row) == width for row in body) / len(body)
    return width * agree if agree >= 0.8 else 0.0


def guess_delimiter(text: str) -> str | None:
    """The candidate delimiter that splits header and rows into the most, consistent fields."""
    scores = {d: _score(_rows(text, d)) for d in DELIMITERS}
    best = max(scores, key=lambda d: scores[d])
    return best if scores[best] > 0 else None


def guess_decimal(rows: list[list[str]], delimiter: str) -> str:
    """',' when numbers in the sample are written with a decimal comma, else '.'."""
    if delimiter == ",":
        return "."
    comma = point = 0
    for row in rows[1:]:
        for value in row:
            if _DECIMAL_COMMA.match(value):
                comma += 1
            elif _DECIMAL_POINT.match(value):
                point += 1
    return "," if comma > point else "."


def detect_layout(
    path: Path, *, where: Where, encoding: str = "auto", delimiter: str = "auto"
) -> Layout:
    """Detect (or check the declared) encoding, delimiter and decimal mark from a sample."""
    sample, at_eof = read_sample(path)
    if not sample.strip():
        raise SourceError(f"{where.file}: the file is empty; export the extract again.")
    _check_binary(sample, where)
    declared_enc = normalise_encoding(encoding, where)
    if declared_enc is None:
        codec = guess_encoding(sample, at_eof)
        _check_mixed(sample, at_eof, codec, where)
    else:
        codec = _check_declared_encoding(sample, at_eof, declared_enc, where)
    text = codecs.getincrementaldecoder(codec)(errors="replace").decode(sample, final=at_eof)
    text = _complete_lines(text, at_eof)
    detected_delim = guess_delimiter(text)
    declared_delim = normalise_delimiter(delimiter, where)
    if declared_delim is None:
        if detected_delim is None:
            raise SourceError(
                f"{where.file}: cannot find the field delimiter (tried ; , tab |) in the header; "
                f"set {where.setting}.delimiter to the character that separates the columns."
            )
        delim = detected_delim
    else:
        delim = declared_delim
        rows = _rows(text, delim)
        if _score(rows) == 0 and detected_delim not in (None, delim):
            raise SourceError(
                f"{where.file}: declared delimiter {delimiter_label(delim)} does not split the "
                f"header into columns; the file looks {delimiter_label(detected_delim)}-separated "
                f"— set {where.setting}.delimiter: '{detected_delim}' or auto."
            )
    rows = _rows(text, delim)
    header = tuple(name.strip().lstrip("\ufeff").strip() for name in (rows[0] if rows else []))
    return Layout(
        encoding=codec,
        delimiter=delim,
        decimal=guess_decimal(rows, delim),
        header=header,
        ascii_sample=sample.isascii(),
        declared_encoding=declared_enc is not None,
    )


class DecodedStream(io.TextIOBase):
    """A binary file read as text block by block, for pandas' chunked CSV reader.

    Counts lines as it goes so a decoding error names its line; keeps the text after
    the last newline so a cut last line can be recognised; when the sample was plain
    ASCII and the encoding was detected (not declared), a later non-UTF-8 byte
    switches the rest of the file to cp1252 instead of failing.
    """

    def __init__(
        self,
        raw: BinaryIO,
        layout: Layout,
        on_error: Callable[[str, int, int], Exception],
        block: int = BLOCK_BYTES,
    ):
        self._raw = raw
        self._block = block
        self._on_error = on_error
        self.encoding_used = layout.encoding
        self._decoder = codecs.getincrementaldecoder(layout.encoding)()
        self._may_fall_back = layout.ascii_sample and not layout.declared_encoding
        self._seen_non_ascii = False
        self._buf = ""
        self.lines_done = 0
        self.tail = ""
        self.eof = False

    def readable(self) -> bool:
        return True

    def _decode(self, block: bytes) -> str:
        pending = self._decoder.getstate()[0]
        try:
            text = self._decoder.decode(block, final=not block)
        except UnicodeDecodeError as exc:
            data = pending + block
            clean = not self._seen_non_ascii and data[: exc.start].isascii()
            if self._may_fall_back and clean:
                self.encoding_used = "cp1252"
                self._decoder = codecs.getincrementaldecoder("cp1252")()
                self._may_fall_back = False
                return self._decode_fallback(data)
            line = self.lines_done + _line_of(data, exc.start)
            raise self._on_error(self.encoding_used, data[exc.start], line) from None
        if not self._seen_non_ascii and not text.isascii():
            self._seen_non_ascii = True
        return text

    def _decode_fallback(self, data: bytes) -> str:
        try:
            return self._decoder.decode(data, final=False)
        except UnicodeDecodeError as exc:
            line = self.lines_done + _line_of(data, exc.start)
            raise self._on_error("cp1252", data[exc.start], line) from None

    def _fill(self) -> None:
        block = self._raw.read(self._block)
        text = self._decode(block)
        self.lines_done += block.count(b"\n")
        if not block:
            self.eof = True
        cut = text.rfind("\n")
        self.tail = text[cut + 1 :] if cut >= 0 else (self.tail + text)[-(1 << 20) :]
        self._buf += text

    def read(self, size: int | None = -1) -> str:
        size = -1 if size is None else size
        while not self.eof and (size < 0 or len(self._buf) < size):
            self._fill()
        if size < 0 or size >= len(self._buf):
            out, self._buf = self._buf, ""
        else:
            out, self._buf = self._buf[:size], self._buf[size:]
        return out

    def cut_last_line(self, width: int, delimiter: str) -> int | None:
        """The line number of a last line that looks cut off (no newline, too few fields)."""
        if not self.eof or not self.tail.strip():
            return None
        line = self.lines_done + 1
        if self.tail.count('"') % 2:
            return line
        fields = next(csv.reader([self.tail], delimiter=delimiter), [])
        return line if len(fields) != width else None
