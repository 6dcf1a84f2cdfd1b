"""The CBS postcode-huisnummer to buurt/wijk/gemeente table (pc6hnr_YYYY_gwb.csv)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from flows.pipeline.readers.common import read_csv_source
from flows.pipeline.readers.table import (
    ReadResult,
)
from flows.pipeline.schemas import POSTCODES

if TYPE_CHECKING:  # only a type here: importing the event model (pydantic) is slow
    from flows.event import Source

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
    read = read_csv_source(path, source, "postcodes", POSTCODES, match=_match)
    years = {m.group(2) for c in read.mapping.values() if (m := _YEAR.match(c.strip().lower()))}
    return read.result("cbs-pc6hnr", year=int(years.pop()) if len(years) == 1 else None)
