"""CBS Kerncijfers wijken en buurten, in the three shapes organisers actually get.

- `statline`: the StatLine CSV export; label headers ("Bevolking/Aantal inwoners
  (aantal)"), codes padded with spaces, '.' for suppressed, decimal comma; no year
  column, so the year comes from the file name (kwb_2023_...) or a `Perioden` column.
- `odata`: what `cbsodata` returns (CSV or JSON); identifiers whose numeric suffix
  changes every year (GemiddeldInkomenPerInwoner_66, _72, _78), so they are matched
  by stem; suppressed values are empty/null.
- `kwb`: the yearly kwb-YYYY file (CSV or xlsx) with short codes (gwb_code_10, recs,
  a_inw, g_ink_pi, ...); '.' or empty for suppressed.

All end in the same canonical frame (`schemas.CBS`), filtered to the event's
municipality; a file for another municipality or year is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from flows.pipeline.detect import Layout, Where, guess_encoding, read_sample
from flows.pipeline.errors import SourceError
from flows.pipeline.readers.common import prepare
from flows.pipeline.readers.table import (
    CsvChunks,
    ReadResult,
    collect,
    detected_of,
    no_rows_error,
    resolve_columns,
)
from flows.pipeline.schemas import CBS, CBS_NUMBER, STRING, SUPPRESSED

if TYPE_CHECKING:  # only a type here: importing the event model (pydantic) is slow
    from flows.event import Source

# StatLine label (last path segment, unit removed, lower case) -> canonical name.
_STATLINE = {
    "wijken en buurten": "name",
    "soort regio": "region_type",
    "codering": "region_code",
    "aantal inwoners": "inwoners",
    "0 tot 15 jaar": "inwoners_0_15",
    "gemiddeld inkomen per inwoner": "gem_inkomen_per_inwoner",
    "huishoudens met een laag inkomen": "pct_laag_inkomen",
    "bijstand": "bijstand",
    "stedelijkheid": "stedelijkheid",
    "mate van stedelijkheid": "stedelijkheid",
}
# OData identifier stem (suffix _NN removed, lower case) -> canonical name.
_ODATA = {
    "wijkenenbuurten": "name",
    "soortregio": "region_type",
    "codering": "region_code",
    "aantalinwoners": "inwoners",
    "k_0tot15jaar": "inwoners_0_15",
    "gemiddeldinkomenperinwoner": "gem_inkomen_per_inwoner",
    "huishoudensmeteenlaaginkomen": "pct_laag_inkomen",
    "personenpersoortuitkeringbijstand": "bijstand",
    "bijstand": "bijstand",
    "matevanstedelijkheid": "stedelijkheid",
}
# kwb-YYYY short code -> canonical name; earlier entries win (gwb_code_10 over gwb_code).
_KWB = {
    "gwb_code_10": "region_code",
    "gwb_code": "region_code",
    "regio": "name",
    "recs": "region_type",
    "a_inw": "inwoners",
    "a_00_14": "inwoners_0_15",
    "g_ink_pi": "gem_inkomen_per_inwoner",
    "p_hh_li": "pct_laag_inkomen",
    "p_ink_li": "pct_laag_inkomen",  # persons, not households: only when p_hh_li is absent
    "a_soz_wb": "bijstand",
    "ste_mvs": "stedelijkheid",
}
_YEAR_COLUMNS = ("perioden", "jaar")
_FORMATS = {"statline-csv": "statline", "cbs-odata": "odata", "kwb": "kwb"}  # event.yaml names
_STEDELIJKHEID = {
    "1": "Zeer sterk stedelijk",
    "2": "Sterk stedelijk",
    "3": "Matig stedelijk",
    "4": "Weinig stedelijk",
    "5": "Niet stedelijk",
}  # StatLine's labels for the codes 1-5 of the OData and kwb shapes
_YEAR_IN_TEXT = re.compile(r"(?<!\d)((?:19|20)\d\d)(?!\d)")
_ODATA_ID = re.compile(r"^([A-Za-z][A-Za-z0-9_]*?)_(\d+)$")
_NUMERIC = [f.name for f in CBS.fields if f.kind is CBS_NUMBER]


def _statline_label(column: str) -> str:
    last = column.split("/")[-1]
    return re.sub(r"\s*\([^)]*\)\s*$", "", last).strip().lower()


def _odata_stem(column: str) -> str:
    m = _ODATA_ID.match(column.strip())
    return (m.group(1) if m else column.strip()).lower()


def detect_shape(header: Iterable[str]) -> str:
    """Which of the three CBS shapes a header belongs to, or '' if none."""
    lower = [h.strip().lower() for h in header]
    if {"gwb_code", "gwb_code_10"} & set(lower) or ("recs" in lower and "a_inw" in lower):
        return "kwb"
    if any(_ODATA_ID.match(h) and _odata_stem(h) == "codering" for h in lower):
        return "odata"
    if any(_statline_label(h) == "codering" for h in lower) or "wijken en buurten" in lower:
        return "statline"
    return ""


def _matcher(shape: str, header: list[str]) -> Callable[[str], str | None]:
    if shape == "statline":
        return lambda column: _STATLINE.get(_statline_label(column))
    if shape == "odata":
        return lambda column: _ODATA.get(_odata_stem(column))
    present = {h.strip().lower() for h in header}
    chosen: dict[str, str] = {}
    for code, target in _KWB.items():  # the first present code of each target wins
        if code in present:
            chosen.setdefault(target, code)
    return lambda column: next(
        (t for t, code in chosen.items() if code == column.strip().lower()), None
    )


class _Scope:
    """Keeps the event municipality's rows of each chunk and notes what the file covers."""

    def __init__(self, municipality: str, numeric: list[str]):
        self.municipality = municipality.upper()
        self.digits = self.municipality[2:]
        self.numeric = numeric
        self.municipalities: set[str] = set()
        self.years: set[str] = set()
        self.suppressed = 0
        self.kept = 0

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        code = frame["region_code"].str.upper()
        kind = code.str[:2]
        owner = code.str[2:6]
        regional = kind.isin(["GM", "WK", "BU"])
        self.municipalities.update(f"GM{d}" for d in owner[regional].dropna().unique())
        mine = regional & (owner == self.digits)
        frame = frame[mine.to_numpy()].copy()
        frame["region_code"] = code[mine.to_numpy()]
        frame["region_type"] = frame["region_type"].str.lower()
        sted = frame["stedelijkheid"]
        frame["stedelijkheid"] = sted.replace(_STEDELIJKHEID).replace(SUPPRESSED, "")
        for column in self.numeric:
            self.suppressed += int(frame[column].isin([SUPPRESSED, ""]).sum())
        self.kept += len(frame)
        return frame

    def note_years(self, values: pd.Series) -> None:
        for value in values.dropna().unique():
            if m := _YEAR_IN_TEXT.search(str(value)):
                self.years.add(m.group(1))


def _string_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    columns: dict[str, list[str]] = {}
    for i, record in enumerate(records):
        for key, value in record.items():
            column = columns.setdefault(key, [""] * i)
            column.append("" if value is None else str(value).strip())
        for column in columns.values():
            if len(column) < i + 1:
                column.append("")
    return pd.DataFrame({k: pd.array(v, dtype=STRING) for k, v in columns.items()})


def _read_json(path: Path, where: Where) -> pd.DataFrame:
    """OData JSON: a list of records (cbsodata) or {"value": [...]} (the OData API)."""
    sample, at_eof = read_sample(path, size=4096)
    codec = guess_encoding(sample, at_eof)
    text = path.read_text(encoding=codec)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.lineno == text.rstrip().count("\n") + 1:  # fails on its last line: cut off
            raise SourceError(
                f"{where.file}: the JSON ends early at line {exc.lineno}, so the file looks "
                "truncated; download it again."
            ) from None
        raise SourceError(
            f"{where.file}: not valid JSON at line {exc.lineno}; download it again or save the "
            "cbsodata result with json.dump."
        ) from None
    if isinstance(data, dict) and isinstance(data.get("value"), list):
        data = data["value"]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise SourceError(
            f"{where.file}: expected a JSON list of records (as cbsodata.get_data returns); "
            "save the table with json.dump(cbsodata.get_data(table_id), file)."
        )
    if not data:
        raise no_rows_error(where)
    return _string_frame(data)


def _read_xlsx(path: Path, where: Where) -> pd.DataFrame:
    try:
        frame = pd.read_excel(path, dtype=str, na_filter=False)
    except Exception as exc:
        raise SourceError(
            f"{where.file}: cannot be read as an Excel workbook ({type(exc).__name__}); "
            "save it again as .xlsx or export it as CSV."
        ) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame.astype(STRING)


def _year_from(path: Path, scope: _Scope) -> tuple[int | None, str]:
    if scope.years:
        if len(scope.years) > 1:
            return None, "several"
        return int(next(iter(scope.years))), "column"
    found = _YEAR_IN_TEXT.findall(path.stem)
    return (int(found[0]), "file name") if len(set(found)) == 1 else (None, "unknown")


def read_cbs(
    path: Path, source: Source | None = None, *, municipality: str, year: int
) -> ReadResult:
    """Read CBS kerncijfers in any of the three shapes, for the event's municipality and year."""
    path = Path(path)
    key = "cbs"
    suffix = path.suffix.lower()
    columns = dict(source.columns) if source is not None else {}
    where = Where(path.name, key)
    chunks: Iterable[pd.DataFrame]
    layout: Layout | None = None
    if suffix in (".json", ".xlsx") and path.is_file():
        table = _read_json(path, where) if suffix == ".json" else _read_xlsx(path, where)
        header = list(table.columns)
        chunks = [table]
        csv_chunks = None
        row_label = (
            (lambda i: f"record {i + 1}") if suffix == ".json" else (lambda i: f"row {i + 2}")
        )
    else:
        path, where, layout, columns = prepare(path, source, key)
        header = list(layout.header)
        csv_chunks = CsvChunks(path, layout, where)
        chunks = csv_chunks
        row_label = lambda i: f"line {i + 2}"  # noqa: E731
    shape = detect_shape(header)
    if not shape:
        raise SourceError(
            f"{where.file}: the header matches none of the CBS kerncijfers shapes (StatLine CSV "
            "export, cbsodata/OData, kwb-YYYY); download the table again or map the columns "
            f"under {where.setting}.columns."
        )
    mapping, notes = resolve_columns(header, CBS, where, columns, match=_matcher(shape, header))
    declared = _FORMATS.get(source.format if source is not None else "")
    if declared is not None and declared != shape:
        notes.append(
            f"{where.file}: {where.setting}.format says {source.format} but the file is the "
            f"{shape} shape; read it as {shape}."
        )
    if shape == "kwb" and mapping.get("pct_laag_inkomen", "").lower() == "p_ink_li":
        notes.append(
            f"{where.file}: no p_hh_li (households with a low income); used p_ink_li "
            "(persons with a low income) for pct_laag_inkomen."
        )
    year_column = next((h for h in header if _odata_stem(h) in _YEAR_COLUMNS), None)
    scope = _Scope(municipality, [c for c in _NUMERIC if c in mapping])

    def with_years(stream: Iterable[pd.DataFrame]) -> Iterable[pd.DataFrame]:
        for chunk in stream:
            if year_column is not None:
                scope.note_years(chunk[year_column])
            yield chunk

    got = collect(
        with_years(chunks),
        CBS,
        where,
        mapping,
        decimal=layout.decimal if layout is not None else ".",
        prepare=scope,
        row_label=row_label,
        before_error=csv_chunks.check_cut if csv_chunks is not None else None,
    )
    if got.rows_read == 0:
        raise no_rows_error(where)
    if got.frame.empty:
        covers = ", ".join(sorted(scope.municipalities)[:5]) or "no municipality"
        raise SourceError(
            f"{where.file}: no rows for the event's municipality {scope.municipality} (the file "
            f"covers {covers}); download the figures for {scope.municipality} or correct "
            "municipality in event.yaml."
        )
    found_year, year_from = _year_from(path, scope)
    if year_from == "several":
        notes.append(f"{where.file}: the {year_column} column holds several years.")
    elif found_year is None:
        notes.append(
            f"{where.file}: cannot tell the year of the figures (no Perioden column, no year in "
            f"the file name); assumed {year}."
        )
    elif found_year != year:
        raise SourceError(
            f"{where.file}: the figures are for {found_year} (from the {year_from}) but the "
            f"event's data_year is {year}; use the {year} figures or set data_year: "
            f"{found_year} in event.yaml."
        )
    others = len(scope.municipalities - {scope.municipality})
    if others:
        notes.append(
            f"{where.file}: kept the {scope.kept} regions of {scope.municipality}; ignored "
            f"{got.rows_read - scope.kept} rows of {others} other municipalities."
        )
    if layout is not None:
        detected = detected_of(layout, csv_chunks.encoding_used)
    else:
        detected = {"encoding": "utf-8", "delimiter": None, "decimal": ".", "format": suffix[1:]}
    detected.update(shape=shape, year=found_year, suppressed_cells=scope.suppressed)
    return ReadResult(
        frame=got.frame.reset_index(drop=True),
        source=where.file,
        detected=detected,
        rows_read=got.rows_read,
        rejected=got.rejected,
        warnings=notes,
    )
