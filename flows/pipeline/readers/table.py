"""Read a delimited extract in chunks into a canonical frame, validating every chunk.

The steps every reader shares: match the file's header to the declared fields
(explicit mapping from event.yaml first), stream the file in chunks of strings
(Arrow's multithreaded CSV parser; pandas' parser whenever Arrow declines a file or a
check fails, so messages and row numbers are always pandas'), check the text against
the raw schema, convert, drop rejected rows, check the canonical schema. Only the
current chunk is ever held as text; kept columns are compact Arrow strings, so a 2 GB
file is not in memory twice.
"""

from __future__ import annotations

import csv
import re
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa_
import pyarrow.csv as pcsv

from flows.pipeline.detect import DecodedStream, Layout, Where, decoding_error, delimiter_label
from flows.pipeline.errors import SourceError
from flows.pipeline.schemas import EMPTY, STRING, FrameSpec

if TYPE_CHECKING:
    import pandera.pandas as pa

_CHUNKED_READ = threading.Lock()
CHUNK_ROWS = 50_000  # rows per chunk on the pandas path
FAST_BLOCK_BYTES = 8 << 20  # bytes per chunk on the Arrow path: bounded memory, few checks

Reject = Callable[[pd.DataFrame], tuple[pd.DataFrame, dict[str, int]]]
# A reject step that drops or blanks every value failing its columns' custom rules (the
# elfproef) names those columns in an attribute `enforces`: not checked a second time.


def enforced_by(reject: Reject | None) -> tuple[str, ...]:
    return tuple(getattr(reject, "enforces", ()))


RowLabel = Callable[[int], str]


@dataclass(frozen=True)
class ReadResult:
    """One source extract read into its canonical frame, with what was found on the way."""

    frame: pd.DataFrame
    source: str  # file name only (never a row value)
    detected: dict[str, Any]  # encoding, delimiter, decimal, shape, ...
    rows_read: int
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> rows
    warnings: list[str] = field(default_factory=list)


def line_label(index: int) -> str:
    """Data row `index` (0-based) of a file with one header line."""
    return f"line {index + 2}"


def _listing(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _quoted(names: Iterable[str]) -> str:
    return _listing([f"'{n}'" for n in names])


def resolve_columns(
    header: Iterable[str],
    spec: FrameSpec,
    where: Where,
    explicit: dict[str, str] | None = None,
    match: Callable[[str], str | None] | None = None,
) -> tuple[dict[str, str], list[str]]:
    """Map declared field -> header name: explicit mapping, exact name, then `match`.

    Raises SourceError for a missing required column; warns about unused columns
    and optional ones that are absent. Header names are only echoed in warnings once
    the header is known to be a real header (every required column found).
    """
    header = [h for h in header if h != ""]
    explicit = dict(explicit or {})
    unknown = [name for name in explicit if name not in spec.names]
    if unknown:
        raise SourceError(
            f"{where.setting}.columns: '{unknown[0]}' is not a column hackgap reads from this "
            f"source; use one of {', '.join(spec.names)}."
        )
    seen: set[str] = set()
    for name in header:
        if name.lower() in seen:
            raise SourceError(
                f"{where.file}: the header has two columns named '{name}'; "
                "rename or remove one of them."
            )
        seen.add(name.lower())
    by_lower = {h.lower(): h for h in header}
    mapping: dict[str, str] = {}
    for name, in_file in explicit.items():
        actual = by_lower.get(in_file.strip().lower())
        if actual is None:
            raise SourceError(
                f"{where.setting}.columns maps '{name}' to '{in_file}', but {where.file} has no "
                "column of that name; correct it to match the file's header."
            )
        mapping[name] = actual
    used = set(mapping.values())
    for name in spec.names:
        actual = by_lower.get(name.lower())
        if name not in mapping and actual is not None and actual not in used:
            mapping[name] = actual
            used.add(actual)
    if match is not None:
        for column in header:
            target = None if column in used else match(column)
            if target is not None and target not in mapping:
                mapping[target] = column
                used.add(column)
    missing = [f.name for f in spec.fields if f.required and f.name not in mapping]
    if missing:
        if not mapping:
            raise SourceError(
                f"{where.file}: none of the expected columns is in the first line, so it is not "
                f"the header hackgap expects ({len(header)} columns found); add the header line "
                f"or map your column names under {where.setting}.columns."
            )
        noun = "column" if len(missing) == 1 else "columns"
        verb = "is" if len(missing) == 1 else "are"
        raise SourceError(
            f"{where.file}: required {noun} {_quoted(missing)} {verb} missing; add "
            f"{'it' if len(missing) == 1 else 'them'} or map your column name under "
            f"{where.setting}.columns (e.g. {missing[0]}: <name in your file>)."
        )
    notes = []
    absent = [f.name for f in spec.fields if f.name not in mapping]
    if absent:
        notes.append(f"{where.file}: optional columns not found, left empty: {', '.join(absent)}.")
    extra = [h for h in header if h not in used]
    if extra:
        shown = ", ".join(extra[:10]) + (f" and {len(extra) - 10} more" if len(extra) > 10 else "")
        noun = "column" if len(extra) == 1 else "columns"
        notes.append(f"{where.file}: ignored {len(extra)} {noun} hackgap does not use: {shown}.")
    return mapping, notes


def _line_list(labels: list[str]) -> str:
    if not labels:
        return ""
    numbers = [label.split(" ", 1)[1] for label in labels]
    word = labels[0].split(" ", 1)[0]
    return f" (first at {word}{'s' if len(numbers) > 1 else ''} {_listing(numbers)})"


def describe_failures(
    cases: pd.DataFrame, where: Where, mapping: dict[str, str], row_label: RowLabel
) -> SourceError:
    """One sentence for pandera's failure cases: column, what was expected, first rows.

    Uses the column, check and index of each case only, never the failing value.
    """
    cases = cases[["column", "check", "index"]]
    groups: dict[tuple[str, str], list[Any]] = {}
    for column, check, index in cases.itertuples(index=False):
        groups.setdefault((str(column), str(check)), []).append(index)
    (column, check), indexes = next(iter(groups.items()))
    rows = sorted({int(i) for i in indexes if i is not None and not pd.isna(i)})
    labels = [row_label(i) for i in rows[:3]]
    in_file = mapping.get(column, column)
    named = f"'{column}'" + (f" (file column '{in_file}')" if in_file != column else "")
    others = len({c for c, _ in groups} - {column})
    more = f"; {others} other column{'s' if others > 1 else ''} also fail" if others else ""
    fix = f"fix those rows in the extract, or map the right column under {where.setting}.columns"
    if column == "None" or not rows:
        return SourceError(
            f"{where.file}: column {named} does not have the expected type ({check}){more}; {fix}."
        )
    count = len(rows)
    if check in (EMPTY, "not_nullable"):
        return SourceError(
            f"{where.file}: column {named} is empty in {count} row{'s' if count > 1 else ''} where "
            f"a value is required{_line_list(labels)}{more}; {fix}."
        )
    return SourceError(
        f"{where.file}: column {named} has {count} value{'s' if count > 1 else ''} that "
        f"{'are' if count > 1 else 'is'} not {check}{_line_list(labels)}{more}; {fix}."
    )


def validate(
    schema: pa.DataFrameSchema,
    frame: pd.DataFrame,
    where: Where,
    mapping: dict[str, str],
    row_label: RowLabel,
) -> None:
    import pandera.pandas as pa

    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        raise describe_failures(exc.failure_cases, where, mapping, row_label) from None


@dataclass
class Collected:
    """The concatenated canonical chunks, indexed by their row number in the file."""

    frame: pd.DataFrame
    rows_read: int
    rejected: dict[str, int]


def collect(
    chunks: Iterable[pd.DataFrame],
    spec: FrameSpec,
    where: Where,
    mapping: dict[str, str],
    *,
    decimal: str = ".",
    prepare: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    reject: Reject | None = None,
    row_label: RowLabel = line_label,
    before_error: Callable[[], None] | None = None,
) -> Collected:
    """Validate, convert and concatenate raw string chunks into the canonical frame.

    CsvChunks are read by DuckDB first (`duck.read_canonical`: parse, check and convert in
    one parallel pass); if it declines the file or any rule fails, the whole file is read
    again through pandas and pandera, whose messages (and row numbers) are the reference,
    so the fast path can never change what an organiser is told. Sources that need a
    `prepare` step (the small CBS tables) are scoped chunk by chunk, and DuckDB checks and
    converts each chunk (`duck.convert_texts`); pandera runs only on a chunk it refuses.
    """
    if isinstance(chunks, CsvChunks) and chunks.fast and prepare is None:
        from flows.pipeline.readers.duck import custom_rules_hold, read_canonical

        fast = read_canonical(chunks, spec, mapping)
        if fast is not None:
            frame, counts = reject(fast.frame) if reject is not None else (fast.frame, {})
            if custom_rules_hold(spec, frame, enforced_by(reject)):
                return Collected(frame, fast.rows_read, {k: v for k, v in counts.items() if v})
        chunks.fast = False
    args = (spec, where, mapping, decimal, prepare, reject, row_label, before_error)
    # One chunked read at a time: the pandas parser's warnings.catch_warnings changes
    # process-wide state, and the link stage reads its extracts in threads.
    with _CHUNKED_READ:
        if not (isinstance(chunks, CsvChunks) and chunks.fast):
            return _collect(chunks, *args)
        try:
            return _collect(chunks, *args)
        except (SourceError, FastPathDeclined):
            chunks.fast = False
            return _collect(chunks, *args)


def _collect(
    chunks: Iterable[pd.DataFrame],
    spec: FrameSpec,
    where: Where,
    mapping: dict[str, str],
    decimal: str,
    prepare: Callable[[pd.DataFrame], pd.DataFrame] | None,
    reject: Reject | None,
    row_label: RowLabel,
    before_error: Callable[[], None] | None,
) -> Collected:
    from flows.pipeline.readers.duck import convert_texts, custom_rules_hold

    frames: list[pd.DataFrame] = []
    rejected: Counter[str] = Counter()
    rows = 0
    for chunk in chunks:
        rows += len(chunk)
        try:
            frame = pd.DataFrame(index=chunk.index)
            for f in spec.fields:
                if f.name in mapping:
                    frame[f.name] = chunk[mapping[f.name]].astype(STRING).fillna("").str.strip()
                else:
                    frame[f.name] = pd.Series("", index=chunk.index, dtype=STRING)
            if prepare is not None:
                frame = prepare(frame)
            # DuckDB checks and converts the chunk; pandera only for a chunk it refuses,
            # so that its failure cases name the rows.
            typed = convert_texts(frame, spec) if len(frame) else None
            checked = typed is not None
            if not checked:
                validate(spec.raw_schema(), frame, where, mapping, row_label)
                typed = pd.DataFrame(
                    {f.name: f.kind.convert(frame[f.name], decimal) for f in spec.fields}
                )
            del frame
            if reject is not None:
                typed, counts = reject(typed)
                rejected.update(counts)
            if not (checked and custom_rules_hold(spec, typed, enforced_by(reject))):
                validate(spec.schema(), typed, where, mapping, row_label)
        except SourceError:
            if before_error is not None:
                before_error()
            raise
        frames.append(typed)
    if not frames:
        empty = pd.DataFrame({f.name: pd.Series([], dtype=f.kind.dtype) for f in spec.fields})
        return Collected(empty, rows, dict(rejected))
    frame = frames[0] if len(frames) == 1 else pd.concat(frames)
    return Collected(frame, rows, {k: v for k, v in rejected.items() if v})


class FastPathDeclined(Exception):
    """Arrow cannot read this file exactly as pandas would; read it through pandas instead."""


def _same_as_latin1(block: bytes) -> bool:
    """No byte in 0x80-0x9F: cp1252 and Latin-1 decode this block to the same text."""
    return not ((np.frombuffer(block, dtype=np.uint8) & 0xE0) == 0x80).any()


class _Utf8Blocks:
    """The file as blocks of whole lines in UTF-8, for Arrow's CSV parser, read here.

    Everything happens in the calling thread (no Python callbacks from Arrow's threads).
    UTF-8 files pass through untouched (Arrow checks the UTF-8 itself); cp1252/Latin-1
    blocks are transcoded strictly. Counts lines and keeps the text after the last
    newline like `DecodedStream`, so a cut-off last line is found the same way. A byte
    that does not decode declines the fast path: the pandas path then names it exactly.
    """

    def __init__(self, raw: BinaryIO, codec: str, block: int):
        self._raw = raw
        self._block = block
        self._codec = codec
        self._transcode = codec not in ("utf-8", "utf-8-sig")
        self._tail = b""
        self.lines_done = 0
        self.eof = False

    def _utf8(self, data: bytes) -> bytes:
        if not self._transcode:
            return data
        try:
            if _same_as_latin1(data):  # cp1252 = Latin-1 outside 0x80-0x9F; Latin-1 is faster
                return data.decode("latin-1").encode("utf-8")
            return data.decode(self._codec).encode("utf-8")
        except UnicodeDecodeError:
            raise FastPathDeclined("decoding") from None

    def __iter__(self) -> Iterator[bytes]:
        carry = b""
        while True:
            block = self._raw.read(self._block)
            if not block:
                self.eof = True
                if carry:
                    yield self._utf8(carry)
                return
            self.lines_done += block.count(b"\n")
            data = carry + block
            cut = data.rfind(b"\n")
            self._tail = data[cut + 1 :] if cut >= 0 else data[-(1 << 20) :]
            carry = data[cut + 1 :] if cut >= 0 else data
            if cut >= 0:
                yield self._utf8(data[: cut + 1])

    def cut_last_line(self, width: int, delimiter: str) -> int | None:
        """As `DecodedStream.cut_last_line`: a last line without newline that looks cut off."""
        tail = self._tail.decode(self._codec, errors="replace")
        if not self.eof or not tail.strip():
            return None
        line = self.lines_done + 1
        if tail.count('"') % 2:
            return line
        fields = next(csv.reader([tail], delimiter=delimiter), [])
        return line if len(fields) != width else None


class CsvChunks:
    """A delimited file streamed as chunks of Arrow strings: Arrow's parser, else pandas'.

    The Arrow path (multithreaded, no Python object per value) reads well-formed files;
    anything it cannot read exactly like pandas declines it (`FastPathDeclined`) and
    `collect` reads the file again through pandas, which turns parser errors, decoding
    errors and a cut-off last line into one-sentence SourceErrors naming the line.
    """

    def __init__(
        self,
        path: Path,
        layout: Layout,
        where: Where,
        chunk_rows: int | None = None,
        *,
        fast: bool = True,
    ):
        self.path = Path(path)
        self.layout = layout
        self.where = where
        self.chunk_rows = chunk_rows or CHUNK_ROWS
        self.encoding_used = layout.encoding
        self.fast = fast
        self._stream: DecodedStream | _Utf8Blocks | None = None

    def _on_decode_error(self, codec: str, byte: int, line: int) -> SourceError:
        declared = self.layout.declared_encoding
        return decoding_error(self.where, codec, byte, line, declared=declared)

    def check_cut(self) -> None:
        """Raise when the file ends in a line without newline that has too few fields."""
        if self._stream is None:
            return
        line = self._stream.cut_last_line(len(self.layout.header), self.layout.delimiter)
        if line is not None:
            raise SourceError(
                f"{self.where.file}: the last line ({line}) is cut off, so the file looks "
                "truncated; export it again."
            )

    def _parser_error(self, exc: Exception) -> SourceError:
        text = str(exc)
        width = len(self.layout.header)
        if m := re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text):
            return SourceError(
                f"{self.where.file}: line {m.group(2)} has {m.group(3)} fields where the header "
                f"has {m.group(1)}; quote values that contain "
                f"{delimiter_label(self.layout.delimiter)} or export the file again."
            )
        if m := re.search(r"EOF inside string starting at row (\d+)", text):
            return SourceError(
                f"{self.where.file}: a quoted value that starts near line {int(m.group(1)) + 1} "
                "is never closed; fix the quotes there or export the file again."
            )
        if "Length of header or names does not match" in text:
            return SourceError(
                f"{self.where.file}: data rows have more fields than the header ({width}); "
                "quote values that contain the delimiter or export the file again."
            )
        return SourceError(
            f"{self.where.file}: cannot be parsed as {delimiter_label(self.layout.delimiter)}-"
            f"separated text ({type(exc).__name__}); check the delimiter and quoting."
        )

    def __iter__(self) -> Iterator[pd.DataFrame]:
        return self._arrow_chunks() if self.fast else self._pandas_chunks()

    def _column_names(self) -> list[str]:
        """Header names as pandas gives them (stripped; an empty one is 'Unnamed: i')."""
        return [name or f"Unnamed: {i}" for i, name in enumerate(self.layout.header)]

    def arrow_tables(self) -> Iterator[pa_.Table]:
        """The file as Arrow tables of strings (Arrow's parser; UTF-8 or transcoded).

        Raises FastPathDeclined where Arrow cannot read it exactly as pandas would.
        """
        names = self._column_names()
        if len(set(names)) != len(names):
            raise FastPathDeclined("header")
        parse = pcsv.ParseOptions(
            delimiter=self.layout.delimiter,
            quote_char='"',
            double_quote=True,
            escape_char=False,
            newlines_in_values=False,
            ignore_empty_lines=True,
        )
        convert = pcsv.ConvertOptions(
            column_types={name: pa_.string() for name in names},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            check_utf8=True,
        )
        with open(self.path, "rb") as fh:
            blocks = _Utf8Blocks(fh, self.layout.encoding, FAST_BLOCK_BYTES)
            self._stream = blocks
            for i, data in enumerate(blocks):
                read = pcsv.ReadOptions(
                    column_names=names, skip_rows=1 if i == 0 else 0, use_threads=True
                )
                try:
                    table = pcsv.read_csv(
                        pa_.BufferReader(data),
                        read_options=read,
                        parse_options=parse,
                        convert_options=convert,
                    )
                except pa_.ArrowInvalid as exc:
                    if "Empty CSV file" in str(exc):  # only the header, or blank lines
                        continue
                    raise FastPathDeclined("parse") from None
                del data
                if table.num_rows:
                    yield table
        self.check_cut()

    def _arrow_chunks(self) -> Iterator[pd.DataFrame]:
        rows = 0
        for table in self.arrow_tables():
            n = table.num_rows
            yield pd.DataFrame(
                {
                    name: pd.arrays.ArrowStringArray(table.column(name))
                    for name in table.column_names
                },
                index=pd.RangeIndex(rows, rows + n),
                copy=False,
            )
            rows += n

    def _pandas_chunks(self) -> Iterator[pd.DataFrame]:
        with open(self.path, "rb") as fh:
            stream = DecodedStream(fh, self.layout, self._on_decode_error)
            self._stream = stream
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error", pd.errors.ParserWarning)
                    reader = pd.read_csv(
                        stream,
                        sep=self.layout.delimiter,
                        dtype=STRING,
                        keep_default_na=False,
                        na_filter=False,
                        index_col=False,
                        chunksize=self.chunk_rows,
                    )
                    with reader:
                        for chunk in reader:
                            chunk.columns = [str(c).strip() for c in chunk.columns]
                            yield chunk
            except (pd.errors.ParserError, pd.errors.ParserWarning) as exc:
                self.check_cut()
                raise self._parser_error(exc) from None
            except pd.errors.EmptyDataError:
                raise SourceError(
                    f"{self.where.file}: the file is empty; export the extract again."
                ) from None
            finally:
                self.encoding_used = stream.encoding_used
        self.check_cut()


def no_rows_error(where: Where) -> SourceError:
    return SourceError(
        f"{where.file}: the file has a header but no data rows; export the extract again "
        "with its rows."
    )


def detected_of(layout: Layout, encoding_used: str, **more: Any) -> dict[str, Any]:
    """What ReadResult.detected reports for a delimited file."""
    detected: dict[str, Any] = layout.describe()
    detected["encoding"] = encoding_used
    detected.update(more)
    return detected
