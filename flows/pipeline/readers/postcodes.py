"""The CBS postcode-huisnummer to buurt/wijk/gemeente table (pc6hnr_YYYY_gwb.csv)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from flows.event import Source
from flows.pipeline.readers.common import prepare
from flows.pipeline.readers.table import (
    CsvChunks,
    ReadResult,
    collect,
    detected_of,
    no_rows_error,
    resolve_columns,
)
from flows.pipeline.schemas import POSTCODES

# CBS names the code columns after the year of the classification (Buurt2023, Wijk2024).
_STEMS = {
    "pc6": "postcode",
    "postcode": "postcode",
    "huisnummer": "huisnummer",
    "buurt": "buurt_code",
    "buurtcode": "buurt_code",
    "wijk": "wijk_code",
    "wijkcode": "wijk_code",
    "gemeente": "gemeente_code",
    "gemeentecode": "gemeente_code",
}
_YEAR = re.compile(r"^(\D+?)_?((?:19|20)\d\d)$")


def _match(column: str) -> str | None:
    m = _YEAR.match(column.strip().lower())
    return _STEMS.get(m.group(1) if m else column.strip().lower())


def read_postcodes(path: Path, source: Source | None = None) -> ReadResult:
    """Read the address-to-region table; integer codes are padded and prefixed (BU/WK/GM)."""
    path, where, layout, columns = prepare(path, source, "postcodes")
    mapping, notes = resolve_columns(layout.header, POSTCODES, where, columns, match=_match)
    chunks = CsvChunks(path, layout, where)
    got = collect(
        chunks, POSTCODES, where, mapping, decimal=layout.decimal, before_error=chunks.check_cut
    )
    if got.rows_read == 0:
        raise no_rows_error(where)
    got.frame.index = pd.RangeIndex(len(got.frame))  # in place: reset_index would copy
    years = {m.group(2) for c in mapping.values() if (m := _YEAR.match(c.strip().lower()))}
    detected = detected_of(
        layout,
        chunks.encoding_used,
        shape="cbs-pc6hnr",
        year=int(years.pop()) if len(years) == 1 else None,
    )
    return ReadResult(
        frame=got.frame,
        source=where.file,
        detected=detected,
        rows_read=got.rows_read,
        rejected=got.rejected,
        warnings=notes,
    )
