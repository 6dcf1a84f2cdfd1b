"""Declared schemas of the canonical source frames, checked with pandera.

Each frame is a list of `Field`s. A field's `Kind` says how the value is written in
the file (a regular expression on the stripped text, checked by the *raw* schema
before anything is converted) and what it becomes (the pandas dtype and domain
checks of the *canonical* schema, the frame the linker receives). Both schemas are
built from the same declaration, so the file format and the frame cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa_
import pyarrow.compute as pc

if TYPE_CHECKING:  # pandera is imported only when a schema is built (the reference path)
    import pandera.pandas as pa

STRING = "string[pyarrow]"  # compact: a 2 GB extract is not held as Python objects

MIGRATIEACHTERGROND = (
    "Nederland",
    "Europa (exclusief Nederland)",
    "Turkije",
    "Marokko",
    "Suriname",
    "Nederlandse Cariben",
    "Overig buiten Europa",
)
NIVEAUS = (
    "groep 8",
    *("pro", "vmbo-b", "vmbo-k", "vmbo-gt", "havo", "vwo"),
    *("mbo-1", "mbo-2", "mbo-3", "mbo-4", "hbo-ba"),
)
SCHOOLADVIEZEN = ("pro", "vmbo-b/k", "vmbo-gt", "vmbo-gt/havo", "havo", "havo/vwo", "vwo")
MBO_SECTOREN = ("techniek", "zorg en welzijn", "economie", "groen", "horeca en toerisme")
REGION_TYPES = ("gemeente", "wijk", "buurt")
SUPPRESSED = "."  # CBS: value suppressed or unknown
EMPTY = "empty"  # error text of the raw check that a required value is present

_BSN_WEIGHTS = np.array([9, 8, 7, 6, 5, 4, 3, 2, -1], dtype=np.int64)


def elfproef(values: pd.Series) -> pd.Series:
    """True where a 9-digit number passes the BSN 11-test (all zeros does not)."""
    arr = values.astype(STRING).array.__arrow_array__()
    arr = arr.combine_chunks() if isinstance(arr, pa_.ChunkedArray) else arr
    # exactly nine ASCII digits (as the regex \d{9}, without running a regex per value)
    nine = pc.and_(pc.equal(pc.binary_length(arr), 9), pc.ascii_is_decimal(arr))
    okn = pc.fill_null(nine, False).to_numpy(zero_copy_only=False)
    result = np.zeros(len(arr), dtype=bool)
    if okn.any():
        offsets_type = np.int64 if pa_.types.is_large_string(arr.type) else np.int32
        bufs = arr.buffers()
        starts = np.frombuffer(bufs[1], dtype=offsets_type)[arr.offset : arr.offset + len(arr)]
        starts = starts[okn].astype(np.int64)
        data = np.frombuffer(bufs[2], dtype=np.uint8)
        total = np.zeros(len(starts), dtype=np.int32)
        nonzero = np.zeros(len(starts), dtype=bool)
        for i, weight in enumerate(_BSN_WEIGHTS):  # digit by digit, read in place
            digit = data[starts + i].astype(np.int32) - 48
            total += weight * digit
            nonzero |= digit != 0
        result[okn] = (total % 11 == 0) & nonzero
    return pd.Series(result, index=values.index)


def _arrow(s: pd.Series) -> pa_.ChunkedArray:
    """The Arrow strings behind a column, empty values as null (Arrow compute is vectorised)."""
    arr = s.astype(STRING).array.__arrow_array__()
    return pc.if_else(pc.equal(arr, ""), None, arr)


def _series(arr: pa_.ChunkedArray | pa_.Array, like: pd.Series, dtype: str) -> pd.Series:
    return to_pandas(arr, like.index, dtype)


def to_pandas(arr: pa_.ChunkedArray | pa_.Array, index: pd.Index, dtype: str) -> pd.Series:
    """A pandas column of `dtype` built from Arrow data without a Python object per value."""
    if dtype == STRING:
        if pa_.types.is_string_view(arr.type):
            arr = arr.cast(pa_.string())
        values = pd.arrays.ArrowStringArray(arr)
    elif dtype == "Int64":
        values = pd.Int64Dtype().__from_arrow__(arr)
    elif dtype == "Float64":
        values = pd.Float64Dtype().__from_arrow__(arr)
    elif dtype == "boolean":
        values = pd.BooleanDtype().__from_arrow__(arr)
    elif dtype == "datetime64[ns]":
        stamps = pc.cast(arr, pa_.timestamp("ns"))
        values = stamps.to_numpy(zero_copy_only=False).astype("datetime64[ns]")
    else:
        return pd.Series(pd.arrays.ArrowExtensionArray(arr), index=index).astype(dtype)
    return pd.Series(values, index=index)


def _text(s: pd.Series, decimal: str) -> pd.Series:
    return _series(_arrow(s), s, STRING)


def _upper(s: pd.Series, decimal: str) -> pd.Series:
    return _series(pc.utf8_upper(_arrow(s)), s, STRING)


def _bsn(s: pd.Series, decimal: str) -> pd.Series:
    """A BSN that lost its leading zero (a spreadsheet took it for a number) gets it back."""
    return _series(pc.utf8_lpad(_arrow(s), 9, "0"), s, STRING)


def _date(fmt: str) -> Callable[[pd.Series, str], pd.Series]:
    def convert(s: pd.Series, decimal: str) -> pd.Series:
        stamps = pc.strptime(_arrow(s), format=fmt, unit="s", error_is_null=True)
        return _series(stamps, s, "datetime64[ns]")

    return convert


def _int(s: pd.Series, decimal: str) -> pd.Series:
    return _series(pc.cast(_arrow(s), pa_.int64()), s, "Int64")


def _number(s: pd.Series, decimal: str) -> pd.Series:
    """Decimal comma or point (the raw pattern allows both); '.' alone is CBS suppression."""
    arr = _arrow(s)
    arr = pc.if_else(pc.equal(arr, SUPPRESSED), None, arr)
    arr = pc.replace_substring(arr, ",", ".")
    return _series(pc.cast(arr, pa_.float64()), s, "Float64")


def _postcode(s: pd.Series, decimal: str) -> pd.Series:
    text = pc.utf8_upper(pc.replace_substring(_arrow(s), " ", ""))
    return _series(pc.if_else(pc.equal(text, ""), None, text), s, STRING)


def _jn(s: pd.Series, decimal: str) -> pd.Series:
    up = pc.utf8_upper(_arrow(s))
    no = pc.if_else(pc.equal(up, "N"), False, None)
    return _series(pc.if_else(pc.equal(up, "J"), True, no), s, "boolean")


def _code(prefix: str, digits: int) -> Callable[[pd.Series, str], pd.Series]:
    """CBS codes written as integers (140101) or with prefix and padding (BU00140101)."""

    def convert(s: pd.Series, decimal: str) -> pd.Series:
        bare = pc.utf8_lpad(_arrow(s.str.upper().str.removeprefix(prefix)), digits, "0")
        kind = bare.type
        joined = pc.binary_join_element_wise(pa_.scalar(prefix, kind), bare, pa_.scalar("", kind))
        return _series(joined, s, STRING)

    return convert


_NUMBER_SQL = "CAST(replace(nullif({v}, '" + SUPPRESSED + "'), ',', '.') AS DOUBLE)"


def _code_sql(prefix: str, digits: int) -> str:
    bare = f"CASE WHEN starts_with(upper({{v}}), '{prefix}') THEN substr({{v}}, 3) ELSE {{v}} END"
    return f"'{prefix}' || lpad(nullif({bare}, ''), {digits}, '0')"


@dataclass(frozen=True)
class Kind:
    """How a value is written in a file and what it becomes in the canonical frame."""

    pattern: str | None  # regular expression the stripped text matches; None: any text
    says: str  # what the pattern means, for messages ("a date written YYYYMMDD")
    dtype: str
    convert: Callable[[pd.Series, str], pd.Series]
    date_format: str | None = None  # strptime format of a date kind (strict: 20230231 fails)
    sql: str = "{v}"  # the same conversion in DuckDB SQL, of `{v}`: the stripped text or NULL


TEXT = Kind(None, "text", STRING, _text)
BSN = Kind(
    r"\d{8,9}",
    "a BSN of 9 digits",
    STRING,
    _bsn,
    sql="CASE WHEN length({v}) = 9 THEN {v} ELSE lpad({v}, 9, '0') END",  # lpad copies
)
DATE_YMD = Kind(
    r"\d{8}",
    "a date written YYYYMMDD",
    "datetime64[ns]",
    _date("%Y%m%d"),
    "%Y%m%d",
    sql="CAST(strptime({v}, '%Y%m%d') AS TIMESTAMP)",
)
DATE_ISO = Kind(
    r"\d{4}-\d{2}-\d{2}",
    "a date written YYYY-MM-DD",
    "datetime64[ns]",
    _date("%Y-%m-%d"),
    "%Y-%m-%d",
    sql="CAST(strptime({v}, '%Y-%m-%d') AS TIMESTAMP)",
)
INTEGER = Kind(r"-?\d+", "a whole number", "Int64", _int, sql="CAST({v} AS BIGINT)")
NUMBER = Kind(r"-?\d+(?:[.,]\d+)?", "a number", "Float64", _number, sql=_NUMBER_SQL)
CBS_NUMBER = Kind(
    r"-?\d+(?:[.,]\d+)?|\.", "a number or '.' (suppressed)", "Float64", _number, sql=_NUMBER_SQL
)
POSTCODE = Kind(
    r"\d{4} ?[A-Za-z]{2}",
    "a postcode like 9711AB",
    STRING,
    _postcode,
    sql="nullif(upper(replace({v}, ' ', '')), '')",
)
SEX = Kind(r"[MVmv]", "M or V", STRING, _upper, sql="upper({v})")
JN = Kind(
    r"[JjNn]",
    "J or N",
    "boolean",
    _jn,
    sql="CASE upper({v}) WHEN 'J' THEN true WHEN 'N' THEN false END",
)
SCHOOLJAAR = Kind(r"\d{4}-\d{4}", "a school year like 2019-2020", STRING, _text)


def _region_kind(prefix: str, digits: int, name: str) -> Kind:
    """A CBS code written as an integer (140101) or with prefix and padding (BU00140101)."""
    return Kind(
        f"(?:{prefix}|{prefix.lower()})?\\d{{1,{digits}}}",
        f"a {name} code ({prefix} + {digits} digits)",
        STRING,
        _code(prefix, digits),
        sql=_code_sql(prefix, digits),
    )


BUURT = _region_kind("BU", 8, "buurt")
WIJK = _region_kind("WK", 6, "wijk")
GEMEENTE = _region_kind("GM", 4, "gemeente")
REGION_CODE = Kind(
    r"(?:GM\d{4}|WK\d{6}|BU\d{8})",
    "a CBS region code (GM/WK/BU + digits)",
    STRING,
    _upper,
    sql="upper({v})",
)


@dataclass(frozen=True)
class Rule:
    """A domain check on a canonical column, declared once and run by two engines: pandera
    on the reference path (its failure cases name the rows), DuckDB on the fast path."""

    error: str  # what a valid value is, for messages ("one of: M, V")
    values: tuple[object, ...] | None = None  # allowed values
    low: float | None = None  # inclusive range
    high: float | None = None
    pattern: str | None = None  # the whole text matches this regular expression
    custom: Callable[[pd.Series], pd.Series] | None = None  # pandas only: True where valid

    def check(self) -> pa.Check:
        import pandera.pandas as pa

        if self.values is not None:
            return pa.Check.isin(list(self.values), error=self.error)
        if self.low is not None:
            return pa.Check.in_range(self.low, self.high, error=self.error)
        if self.pattern is not None:
            return pa.Check.str_matches(f"^{self.pattern}$", error=self.error)
        return pa.Check(self.custom, error=self.error)

    def sql(self, column: str) -> str | None:
        """True where valid (missing values pass, as in pandera); None: a custom check."""
        if self.values is not None:
            # a CASE of equalities, not IN: DuckDB turns a long IN list (and list_contains)
            # into a join, and the reader's row order would be lost; a regular expression of
            # the alternatives keeps the order too, but cost 2.4x the CASE (niveau, 12 values)
            whens = " ".join(f"WHEN {sql_literal(str(v))} THEN true" for v in self.values)
            return f"CASE CAST({column} AS VARCHAR) {whens} ELSE false END"
        if self.low is not None:
            return f"{column} BETWEEN {self.low} AND {self.high}"
        if self.pattern is not None:
            return f"regexp_full_match({column}, {sql_literal(self.pattern)})"
        return None


def sql_literal(value: object) -> str:
    """A SQL literal of a declared value (declarations only, never data)."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


@dataclass(frozen=True)
class Field:
    """One column of a canonical frame."""

    name: str
    kind: Kind
    required: bool = True  # the file must have the column (else filled with missing values)
    nullable: bool = True  # empty values allowed
    checks: tuple[Rule, ...] = ()


def one_of(values: Sequence[object]) -> Rule:
    return Rule(f"one of: {', '.join(str(v) for v in values)}", values=tuple(values))


def between(low: int, high: int) -> Rule:
    return Rule(f"between {low} and {high}", low=low, high=high)


@dataclass(frozen=True)
class FrameSpec:
    """A declared frame: its fields, from which the raw and canonical schemas are built."""

    name: str
    fields: tuple[Field, ...]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    def get(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)

    def without(self, names: Iterable[str]) -> FrameSpec:
        """The frame minus optional fields the caller will not use (never read or kept)."""
        names = set(names)
        if any(f.required for f in self.fields if f.name in names):
            raise ValueError(f"{self.name}: only optional fields can be left out")
        return FrameSpec(self.name, tuple(f for f in self.fields if f.name not in names))

    def raw_schema(self) -> pa.DataFrameSchema:
        """Checks the stripped text of each value against its kind's pattern."""
        import pandera.pandas as pa

        columns = {}
        for f in self.fields:
            checks = []
            if f.kind.pattern is not None:
                pattern = f"^(?:{f.kind.pattern})?$"  # empty is the not-nullable check's job
                checks.append(pa.Check.str_matches(pattern, error=f.kind.says))
            if f.kind.date_format is not None:
                checks.append(_real_date(f.kind.date_format))
            if not f.nullable:
                checks.append(pa.Check(lambda s: s != "", error=EMPTY))
            columns[f.name] = pa.Column(STRING, checks, nullable=False)
        return pa.DataFrameSchema(columns, name=f"{self.name} (as written)", strict=True)

    def schema(self) -> pa.DataFrameSchema:
        """The canonical frame the linker receives."""
        import pandera.pandas as pa

        columns = {
            f.name: pa.Column(f.kind.dtype, [r.check() for r in f.checks], nullable=f.nullable)
            for f in self.fields
        }
        return pa.DataFrameSchema(columns, name=self.name, strict=True, ordered=True)


def _real_date(fmt: str) -> pa.Check:
    import pandera.pandas as pa

    def check(s: pd.Series) -> pd.Series:
        # pandas parses strictly (20230231 is no date; Arrow would roll it over to March);
        # dates repeat a lot, so each distinct text is parsed once.
        codes, texts = pd.factorize(s.array)
        parsed = pd.to_datetime(np.asarray(texts, dtype=object), format=fmt, errors="coerce")
        real = np.append(np.asarray(parsed.notna()), False)[codes]  # code -1 (missing): False
        return (s == "") | pd.Series(real, index=s.index)

    return pa.Check(check, error="an existing calendar date")


def _elfproef_or_empty(s: pd.Series) -> pd.Series:
    return s.isna() | elfproef(s)


ELFPROEF = Rule("a BSN that passes the elfproef", custom=_elfproef_or_empty)


MUNICIPAL = FrameSpec(
    "municipal register",
    (
        Field("bsn", BSN, nullable=False, checks=(ELFPROEF,)),
        Field("voornamen", TEXT, required=False),
        Field("geslachtsnaam", TEXT, required=False),
        Field("geboortedatum", DATE_YMD, nullable=False),
        Field("geslacht", SEX, nullable=False, checks=(one_of(("M", "V")),)),
        Field("straatnaam", TEXT, required=False),
        Field("huisnummer", INTEGER, nullable=False, checks=(between(1, 99999),)),
        Field("huisletter", TEXT, required=False),
        Field("postcode", POSTCODE, nullable=False),
        Field("woonplaats", TEXT, required=False),
        Field("huishoudnummer", TEXT, required=False),
        Field("bsn_ouder1", BSN, checks=(ELFPROEF,)),
        Field("bsn_ouder2", BSN, checks=(ELFPROEF,)),
        Field("inkomen_huishouden", NUMBER, required=False),
        Field("inkomen_decile", INTEGER, checks=(between(1, 10),)),
        Field("migratieachtergrond", TEXT, checks=(one_of(MIGRATIEACHTERGROND),)),
        Field("datum_vertrek", DATE_YMD, required=False),
    ),
)

CBS = FrameSpec(
    "CBS kerncijfers wijken en buurten",
    (
        Field("region_code", REGION_CODE, nullable=False),
        Field("region_type", TEXT, nullable=False, checks=(one_of(REGION_TYPES),)),
        Field("name", TEXT, required=False),
        Field("inwoners", CBS_NUMBER),
        Field("inwoners_0_15", CBS_NUMBER, required=False),
        Field("gem_inkomen_per_inwoner", CBS_NUMBER),
        Field("pct_laag_inkomen", CBS_NUMBER, checks=(between(0, 100),)),
        Field("bijstand", CBS_NUMBER, required=False),
        Field("stedelijkheid", TEXT, required=False),
    ),
)

POSTCODES = FrameSpec(
    "CBS postcode-huisnummer table",
    (
        Field("postcode", POSTCODE, nullable=False),
        Field("huisnummer", INTEGER, nullable=False),
        Field("buurt_code", BUURT, nullable=False),
        Field("wijk_code", WIJK, nullable=False),
        Field("gemeente_code", GEMEENTE, nullable=False),
    ),
)

SCHOOL = FrameSpec(
    "DUO school data",
    (
        Field("bsn", BSN, required=False, checks=(ELFPROEF,)),
        Field("geboortedatum", DATE_ISO, nullable=False),
        Field("geslacht", SEX, nullable=False, checks=(one_of(("M", "V")),)),
        Field("postcode", POSTCODE),
        Field("schooljaar", SCHOOLJAAR, nullable=False),
        Field(
            "brin",
            TEXT,
            nullable=False,
            checks=(Rule("2 digits + 2 capitals", pattern=r"\d{2}[A-Z]{2}"),),
        ),
        Field("vestiging", TEXT, required=False),
        Field("onderwijssoort", TEXT, nullable=False, checks=(one_of(("po", "vo", "mbo", "hbo")),)),
        Field("leerjaar", INTEGER, nullable=False, checks=(between(1, 8),)),
        Field("niveau", TEXT, nullable=False, checks=(one_of(NIVEAUS),)),
        Field("leerweg", TEXT, required=False, checks=(one_of(("BOL", "BBL")),)),
        Field("sector", TEXT, required=False, checks=(one_of(MBO_SECTOREN),)),
        Field("schooladvies", TEXT, required=False, checks=(one_of(SCHOOLADVIEZEN),)),
        Field("eindtoets_score", INTEGER, required=False, checks=(between(501, 550),)),
        Field("diploma", JN),
        Field("uitgeschreven", JN),
        Field("vsv", JN),
    ),
)
