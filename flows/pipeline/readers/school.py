"""DUO pupil/school data (CSV), with or without the pupil's person number."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from flows.pipeline.readers.common import read_csv_source
from flows.pipeline.readers.table import (
    ReadResult,
)
from flows.pipeline.schemas import SCHOOL, elfproef

if TYPE_CHECKING:  # only a type here: importing the event model (pydantic) is slow
    from flows.event import Source

REJECT_BSN = "bsn fails elfproef (left empty, linked without it)"


def _blank_bad_bsn(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """A pupil's BSN that fails the 11-test is unusable, but the row can still be linked."""
    bad = frame["bsn"].notna() & ~elfproef(frame["bsn"])
    if bad.any():
        frame = frame.copy()
        frame.loc[bad, "bsn"] = pd.NA
    return frame, {REJECT_BSN: int(bad.sum())}


_blank_bad_bsn.enforces = ("bsn",)  # the elfproef, applied above


def read_school(path: Path, source: Source | None = None) -> ReadResult:
    """Read DUO enrolments: one row per pupil and school year; bsn may be absent or empty."""
    read = read_csv_source(path, source, "school", SCHOOL, reject=_blank_bad_bsn)
    return read.result(
        "duo-csv",
        person_number="bsn" in read.mapping,
        rows_without_bsn=int(read.frame["bsn"].isna().sum()),
    )
