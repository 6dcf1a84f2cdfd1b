"""The readers' fast path: DuckDB parses, checks and converts a CSV extract in one pass.

DuckDB reads the file in parallel and turns each mapped column into its canonical value
while it applies the field's declared rules (the kind's pattern, a real calendar date, a
required value, the domain rules: the same declarations the pandera schemas are built
from). The first value that breaks a rule stops the query, and so does anything DuckDB
cannot read exactly as the reference path would (a line with too few fields, bytes that
are not UTF-8, a quote left open). Then `read_canonical` returns None and the reader
reads the file again on the reference path, whose message names the column and lines:
the fast path changes how quickly a good file is read, never what an organiser is told.

No value of the file appears in SQL text, in a log or in an exception raised from here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from re import _parser  # the standard library's pattern parser (read-only use)
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from flows.pipeline.detect import Layout
from flows.pipeline.errors import SourceError
from flows.pipeline.memory import duckdb_connection
from flows.pipeline.readers.table import CsvChunks, FastPathDeclined
from flows.pipeline.schemas import Field, FrameSpec, one_of, sql_literal, to_pandas

# What Python's str.strip() removes (the reference path strips with it). DuckDB's trim()
# removes spaces only (quickly; trim with a character set is several times slower), so a
# value that still starts or ends with other whitespace declines: a pattern refuses it,
# and text without a pattern is checked for it.
_WHITESPACE = (  # every character with str.isspace() (a test checks the list)
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
    "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_EDGE = "^[{0}]|[{0}]$".format("".join(f"\\x{{{ord(c):x}}}" for c in _WHITESPACE))
# cp1252 and Latin-1 differ only in bytes 0x80-0x9F, which DuckDB's Latin-1 decoder
# refuses: a cp1252 file is read as Latin-1, and one holding such a byte (a euro sign, a
# curly quote) fails that read and is parsed by Arrow in transcoded blocks instead.


@dataclass
class FastRead:
    """The canonical frame (index = data row number in the file) and the rows read."""

    frame: pd.DataFrame
    rows_read: int


def _duckdb_encoding(codec: str) -> str | None:
    """DuckDB's name of the encoding that reads the file (cp1252 via Latin-1), or None."""
    return {"utf-8": "utf-8", "utf-8-sig": "utf-8", "latin-1": "latin-1", "cp1252": "latin-1"}.get(
        codec
    )


def _value(f: Field, text: str) -> str:
    """SQL of one canonical column from its stripped text; error() where a rule breaks.

    A conversion that fails raises too (strptime on 20230231, a cast that overflows).
    """
    kind, ok = f.kind, []
    if kind.pattern is not None:
        ok.append(f"regexp_full_match({text}, {sql_literal(f'(?:{kind.pattern})?')})")
    elif not any(r.values is not None or r.pattern is not None for r in f.checks):
        ok.append(f"NOT regexp_matches({text}, {sql_literal(_EDGE)})")  # else a rule refuses it
    if not f.nullable:
        ok.append(f"{text} <> ''")
    value = kind.sql.format(v=f"nullif({text}, '')")
    if not ok:
        return value
    return f"CASE WHEN {' AND '.join(ok)} THEN {value} ELSE error('rule') END"


def _may_reach_the_edge(pattern: str) -> bool:
    """Whether a text matching `pattern` whole may be empty or start or end with whitespace.

    Read from the parsed pattern, conservatively: any construct not handled below counts
    as yes. Only a pattern that answers no may judge a value before it is stripped.
    The pattern runs in RE2 but is read by Python's parser: where the two differ (RE2's
    POSIX classes such as [[:space:]]) the answer is yes too.
    """
    if "[:" in pattern:
        return True
    try:
        items = list(_parser.parse(pattern))
    except re.error:
        return True
    first, last = _edge(items, first=True), _edge(items, first=False)
    return first[0] or last[0] or first[1]


def _edge(items: list, *, first: bool) -> tuple[bool, bool]:
    """(the first (or last) character may be whitespace, the sequence may be empty)."""
    for op, av in items if first else reversed(items):
        whitespace, empty = _edge_item(str(op), av, first=first)
        if whitespace or not empty:
            return whitespace, False
    return False, True


def _edge_item(op: str, av: Any, *, first: bool) -> tuple[bool, bool]:
    if op == "LITERAL":
        return chr(av) in _WHITESPACE, False
    if op == "IN":
        return any(_class_item_may_be_whitespace(o, v) for o, v in av), False
    if op in ("MAX_REPEAT", "MIN_REPEAT"):
        low, _high, sub = av
        whitespace, empty = _edge(list(sub), first=first)
        return whitespace, empty or low == 0
    if op == "SUBPATTERN":
        return _edge(list(av[-1]), first=first)
    if op == "BRANCH":
        ends = [_edge(list(branch), first=first) for branch in av[1]]
        return any(w for w, _ in ends), any(e for _, e in ends)
    return True, True  # any character, a negated literal, an anchor, a back-reference ...


def _class_item_may_be_whitespace(op: Any, value: Any) -> bool:
    op = str(op)
    if op == "LITERAL":
        return chr(value) in _WHITESPACE
    if op == "RANGE":
        return any(value[0] <= ord(c) <= value[1] for c in _WHITESPACE)
    return not (op == "CATEGORY" and str(value) in ("CATEGORY_DIGIT", "CATEGORY_WORD"))


def _accept(f: Field, raw: str) -> str | None:
    """SQL true where the unstripped value is already a valid, stripped, non-empty text of
    `f` (most values of a good file): it is converted as it is, skipping the stripping and
    the checks of `_value`, which then see only the other rows. None: no such shortcut.

    A kind's pattern qualifies when no text it matches is empty or has whitespace at an
    edge; a pattern of one character from a set is tested as equalities (cheaper than a
    regular expression). A text field without a pattern qualifies by its list of values.
    """
    pattern = f.kind.pattern
    if pattern is not None:
        if _may_reach_the_edge(pattern):
            return None
        literals = _one_of_characters(pattern)
        if literals is None:
            return f"regexp_full_match({raw}, {sql_literal(f'(?:{pattern})')})"
        return _equals_one_of(raw, literals)
    for rule in f.checks:
        if rule.values is not None and all(
            isinstance(v, str) and v and v == v.strip() for v in rule.values
        ):
            return _equals_one_of(raw, [str(v) for v in rule.values])
    return None


def _one_of_characters(pattern: str) -> list[str] | None:
    """The characters of a pattern that is one character from a set of literals ([MVmv])."""
    items = list(_parser.parse(pattern))
    if len(items) != 1 or str(items[0][0]) != "IN":
        return None
    chars = items[0][1]
    if not all(str(op) == "LITERAL" for op, _ in chars):
        return None
    return [chr(c) for _, c in chars]


def _equals_one_of(raw: str, values: list[str]) -> str:
    return one_of(values).sql(raw)  # a CASE of equalities, as the rule's own check


def _csv_scan(path: Path, layout: Layout, encoding: str) -> str:
    """DuckDB's CSV reader with the detected layout, every column as text, strict."""
    columns = ", ".join(f"{sql_literal(name)}: 'VARCHAR'" for name in layout.header)
    return (
        f"read_csv({sql_literal(str(path))}, delim={sql_literal(layout.delimiter)}, quote='\"', "
        f"escape='\"', header=true, auto_detect=false, columns={{{columns}}}, "
        f"encoding={sql_literal(encoding)}, strict_mode=true, null_padding=false, "
        "ignore_errors=false, store_rejects=false)"
    )


def canonical_sql(source: str, spec: FrameSpec, mapping: dict[str, str]) -> str:
    """The query turning `source` (text columns named as in the file) into the canonical
    columns of `spec`; error() at the first value that breaks a rule."""
    inner, outer = [], []
    for f in spec.fields:
        if f.name in mapping:
            raw = '"' + mapping[f.name].replace('"', '""') + '"'
            # trim() only where needed: it copies every value it is given
            padded = f"{raw} LIKE ' %' OR {raw} LIKE '% '"
            text = f"coalesce(CASE WHEN {padded} THEN trim({raw}) ELSE {raw} END, '')"
            value = _value(f, text)
            accept = _accept(f, raw)
            # the usual value skips the stripping and _value's checks, and so does a
            # missing one where that is allowed (DuckDB's CSV reader gives NULL for it)
            fast = [f"WHEN {raw} IS NULL THEN NULL"] if f.nullable else []
            if accept is not None:
                fast.append(f"WHEN {accept} THEN {f.kind.sql.format(v=raw)}")
            if fast:
                value = f"CASE {' '.join(fast)} ELSE {value} END"
        else:
            value = _value(f, "''")
        name = f'"{f.name}"'
        inner.append(f"{value} AS {name}")
        rules = [sql for r in f.checks if (sql := r.sql(name))]
        if rules:  # on the converted value; a missing value passes, as in pandera
            ok = " AND ".join([f"{name} IS NULL OR ({rules[0]})", *(f"({r})" for r in rules[1:])])
            outer.append(f"CASE WHEN {ok} THEN {name} ELSE error('rule') END AS {name}")
        else:
            outer.append(name)
    return f"SELECT {', '.join(outer)} FROM (SELECT {', '.join(inner)} FROM {source})"


def read_canonical(chunks: CsvChunks, spec: FrameSpec, mapping: dict[str, str]) -> FastRead | None:
    """The canonical frame of a well-formed extract whose values all keep the rules, else None.

    DuckDB reads UTF-8 and Latin-1 itself, and cp1252 as Latin-1 unless it holds a byte
    where the two differ; such a file is parsed by Arrow in transcoded blocks instead and
    streamed into the same query.
    """
    names = list(chunks.layout.header)
    if len(set(names)) != len(names) or "" in names:
        return None
    encoding = _duckdb_encoding(chunks.layout.encoding)
    if encoding is None:
        return None
    table = _query(chunks, spec, mapping, encoding)
    if table is None and chunks.layout.encoding == "cp1252":
        table = _query(chunks, spec, mapping, None)
    if table is None:
        return None
    frame = _frame(table, spec, pd.RangeIndex(table.num_rows))
    return None if frame is None else FastRead(frame, table.num_rows)


def _query(
    chunks: CsvChunks,
    spec: FrameSpec,
    mapping: dict[str, str],
    encoding: str | None,
) -> pa.Table | None:
    """Run `canonical_sql` over DuckDB's CSV reader (`encoding`) or Arrow's (None)."""
    con = duckdb_connection()
    try:
        # strings leave as large_string, what pandas' Arrow strings hold (no cast, no copy)
        con.execute("SET arrow_large_buffer_size = true")
        con.execute("SET preserve_insertion_order = true")
        if encoding is not None:
            source = _csv_scan(chunks.path, chunks.layout, encoding)
        else:
            names = list(chunks.layout.header)
            schema = pa.schema([(name, pa.string()) for name in names])
            batches = (b for t in chunks.arrow_tables() for b in t.to_batches())
            con.register("arrow_source", pa.RecordBatchReader.from_batches(schema, batches))
            source = "arrow_source"
        return con.sql(canonical_sql(source, spec, mapping)).to_arrow_table()
    except (duckdb.Error, FastPathDeclined, SourceError):
        return None
    finally:
        con.close()


def _frame(table: pa.Table, spec: FrameSpec, index: pd.Index) -> pd.DataFrame | None:
    """The query's Arrow columns as the canonical pandas dtypes; None if one cannot be held
    (e.g. a real date outside pandas' datetime64[ns] range, years 1677-2262)."""
    try:
        columns = {
            f.name: to_pandas(table.column(f.name), index, f.kind.dtype) for f in spec.fields
        }
    except (pa.ArrowInvalid, OverflowError):
        return None
    return pd.DataFrame(columns, index=index, copy=False)


def convert_texts(texts: pd.DataFrame, spec: FrameSpec) -> pd.DataFrame | None:
    """The canonical frame of a frame of stripped texts named as `spec` (a chunk that a
    reader has already scoped), same index; None if any value breaks a rule."""
    con = duckdb_connection()
    try:
        # strings leave as large_string, what pandas' Arrow strings hold (no cast, no copy)
        con.execute("SET arrow_large_buffer_size = true")
        con.execute("SET preserve_insertion_order = true")
        con.register("texts", pa.Table.from_pandas(texts[spec.names], preserve_index=False))
        sql = canonical_sql("texts", spec, {name: name for name in spec.names})
        table = con.sql(sql).to_arrow_table()
    except duckdb.Error:
        return None
    finally:
        con.close()
    return _frame(table, spec, texts.index)


def custom_rules_hold(spec: FrameSpec, frame: pd.DataFrame, enforced: Iterable[str] = ()) -> bool:
    """The rules only pandas can run (e.g. the elfproef) hold for every row.

    `enforced`: columns whose custom rules the reader's reject step has just applied
    (dropped or blanked every failing value), so they are not run a second time.
    """
    done = set(enforced)
    return all(
        bool(np.asarray(r.custom(frame[f.name])).all())
        for f in spec.fields
        for r in f.checks
        if r.custom is not None and f.name not in done
    )
