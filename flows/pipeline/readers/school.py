"""DUO pupil/school data (CSV), with or without the pupil's person number."""

from __future__ import annotations

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
from flows.pipeline.schemas import SCHOOL, elfproef

REJECT_BSN = "bsn fails elfproef (left empty, linked without it)"


def _blank_bad_bsn(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """A pupil's BSN that fails the 11-test is unusable, but the row can still be linked."""
    bad = frame["bsn"].notna() & ~elfproef(frame["bsn"])
    if bad.any():
        frame = frame.copy()
        frame.loc[bad, "bsn"] = pd.NA
    return frame, {REJECT_BSN: int(bad.sum())}


def read_school(path: Path, source: Source | None = None) -> ReadResult:
    """Read DUO enrolments: one row per pupil and school year; bsn may be absent or empty."""
    path, where, layout, columns = prepare(path, source, "school")
    mapping, notes = resolve_columns(layout.header, SCHOOL, where, columns)
    chunks = CsvChunks(path, layout, where)
    got = collect(
        chunks,
        SCHOOL,
        where,
        mapping,
        decimal=layout.decimal,
        reject=_blank_bad_bsn,
        before_error=chunks.check_cut,
    )
    if got.rows_read == 0:
        raise no_rows_error(where)
    got.frame.index = pd.RangeIndex(len(got.frame))  # in place: reset_index would copy
    frame = got.frame
    detected = detected_of(
        layout,
        chunks.encoding_used,
        shape="duo-csv",
        person_number="bsn" in mapping,
        rows_without_bsn=int(frame["bsn"].isna().sum()),
    )
    return ReadResult(
        frame=frame,
        source=where.file,
        detected=detected,
        rows_read=got.rows_read,
        rejected=got.rejected,
        warnings=notes,
    )
