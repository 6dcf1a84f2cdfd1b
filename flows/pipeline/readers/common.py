"""Shared set-up of the per-source readers: settings from event.yaml and layout detection."""

from __future__ import annotations

from pathlib import Path

from flows.event import Source
from flows.pipeline.detect import Layout, Where, detect_layout
from flows.pipeline.errors import SourceError


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
