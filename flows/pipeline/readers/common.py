"""Shared set-up of the per-source readers: settings from event.yaml and layout detection."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from flows.pipeline.detect import Layout, Where, detect_layout
from flows.pipeline.errors import SourceError
from flows.pipeline.readers.table import (
    Collected,
    CsvChunks,
    ReadResult,
    collect,
    detected_of,
    no_rows_error,
    resolve_columns,
)
from flows.pipeline.schemas import FrameSpec

if TYPE_CHECKING:  # only a type here: importing the event model (pydantic) is slow
    from flows.event import Source


def prepare(path: Path, source: Source | None, key: str) -> tuple[Path, Where, Layout, dict]:
    """Check the file exists, detect (or check the declared) layout; return the column mapping."""
    path = Path(path)
    where = Where(path.name, key)
    if not path.is_file():
        raise SourceError(
            f"{where.file}: no such file at {path}; put the extract there or correct "
            f"{where.setting}.path in event.yaml."
        )
    encoding = source.encoding if source is not None else "auto"
    delimiter = source.delimiter if source is not None else "auto"
    layout = detect_layout(path, where=where, encoding=encoding, delimiter=delimiter)
    columns = dict(source.columns) if source is not None else {}
    return path, where, layout, columns


@dataclass
class CsvSource:
    """A CSV extract read and validated chunk by chunk, before per-source checks."""

    got: Collected
    where: Where
    layout: Layout
    chunks: CsvChunks
    mapping: dict[str, str]
    notes: list[str]

    @property
    def frame(self) -> pd.DataFrame:
        return self.got.frame

    def result(self, shape: str, **detected: Any) -> ReadResult:
        """The ReadResult, rows renumbered 0.. (until now the index held file line numbers)."""
        self.got.frame.index = pd.RangeIndex(len(self.got.frame))  # in place: no copy
        return ReadResult(
            frame=self.got.frame,
            source=self.where.file,
            detected=detected_of(self.layout, self.chunks.encoding_used, shape=shape, **detected),
            rows_read=self.got.rows_read,
            rejected=self.got.rejected,
            warnings=self.notes,
        )


def read_csv_source(
    path: Path,
    source: Source | None,
    key: str,
    spec: FrameSpec,
    *,
    reject: Callable | None = None,
    match: Callable[[str], str | None] | None = None,
    drop: Iterable[str] = (),
) -> CsvSource:
    """Detect, map columns, stream and validate one CSV extract; refuse a file with no rows.

    `drop`: optional fields the caller has no use for (e.g. names): recognised in the
    header, but never converted, checked or held in memory.
    """
    path, where, layout, columns = prepare(path, source, key)
    extra = {"match": match} if match is not None else {}
    mapping, notes = resolve_columns(layout.header, spec, where, columns, **extra)
    spec = spec.without(drop)
    mapping = {name: column for name, column in mapping.items() if name in spec.names}
    chunks = CsvChunks(path, layout, where)
    options = {"reject": reject} if reject is not None else {}
    got = collect(
        chunks,
        spec,
        where,
        mapping,
        decimal=layout.decimal,
        before_error=chunks.check_cut,
        **options,
    )
    if got.rows_read == 0:
        raise no_rows_error(where)
    return CsvSource(got, where, layout, chunks, mapping, notes)
