"""The municipal population-register extract (BRP-like CSV)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from flows.pipeline.errors import SourceError
from flows.pipeline.readers.common import read_csv_source
from flows.pipeline.readers.table import (
    ReadResult,
    line_label,
)
from flows.pipeline.schemas import MUNICIPAL, elfproef

if TYPE_CHECKING:  # only a type here: importing the event model (pydantic) is slow
    from flows.event import Source

REJECT_BSN = "bsn fails elfproef"
REJECT_PARENT = "bsn_ouder fails elfproef (left empty)"


def _reject_bad_bsn(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop persons whose BSN fails the 11-test; blank parents' BSNs that fail it."""
    ok = elfproef(frame["bsn"])
    if not ok.all():
        frame = frame[ok.to_numpy()]
    blanked = 0
    for column in ("bsn_ouder1", "bsn_ouder2"):
        bad = frame[column].notna() & ~elfproef(frame[column])
        if bad.any():
            frame = frame.copy() if not blanked else frame
            frame.loc[bad, column] = pd.NA
            blanked += int(bad.sum())
    return frame, {REJECT_BSN: int((~ok).sum()), REJECT_PARENT: blanked}


_reject_bad_bsn.enforces = ("bsn", "bsn_ouder1", "bsn_ouder2")  # the elfproef, applied above


def _check_unique(frame: pd.DataFrame, file: str) -> None:
    as_int = pc.cast(frame["bsn"].array.__arrow_array__(), pa.int64()).to_numpy()
    ordered = np.sort(as_int)  # on 8-byte integers: cheap for a 2 GB register
    if not (ordered[1:] == ordered[:-1]).any():
        return
    numbers = pd.Series(as_int, index=frame.index)
    dup = numbers.duplicated(keep=False)
    persons = int(numbers[dup].nunique())
    lines = [line_label(int(i)).split(" ")[1] for i in frame.index[dup.to_numpy()][:3]]
    raise SourceError(
        f"{file}: {persons} BSN{'s occur' if persons > 1 else ' occurs'} more than once "
        f"({int(dup.sum())} rows, first at lines {', '.join(lines)}); the register must have "
        "one row per person — remove the duplicate rows or export the extract again."
    )


def read_municipal(
    path: Path, source: Source | None = None, *, drop: Iterable[str] = ()
) -> ReadResult:
    """Read the register extract: one row per person, BSNs checked with the elfproef.

    `drop`: optional columns not to read at all (the link stage drops the names and the
    street here, so they are never held in memory).
    """
    read = read_csv_source(path, source, "municipal", MUNICIPAL, reject=_reject_bad_bsn, drop=drop)
    _check_unique(read.frame, read.where.file)
    return read.result("brp-csv")
