"""SDV 2.0 Metadata built from the declared schema, never from blind detection.

Ordinals become `ordinal` with their declared order (the kept levels, lowest first), so the
copula sees rank and a gradient such as income -> advice can survive; keys and provenance
are never in the frame; hierarchies become `sdv.cag.FixedCombinations` constraints so a
twin never pairs a buurt with another wijk.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
from sdv.cag import FixedCombinations
from sdv.metadata import Metadata

from synthetic.prepare import Coarsening
from synthetic.schema import TableSchema
from synthetic.settings import TwinSettings

TABLE = "analysis"
_SDTYPES = {"numerical": "numerical", "categorical": "categorical", "boolean": "boolean"}


def column_metadata(
    schema: TableSchema, columns: Iterable[str], info: Coarsening
) -> dict[str, dict]:
    """SDV column specs for `columns`, typed from the schema."""
    out: dict[str, dict] = {}
    for name in columns:
        spec = schema[name]
        if spec.type == "ordinal":
            levels = info.allowed.get(name) or list(spec.order or ())
            out[name] = {"sdtype": "ordinal", "range_values": list(levels)}
        elif spec.type == "numerical":
            out[name] = {"sdtype": "numerical"}
        elif spec.type == "datetime":  # not in the current schema; kept for future columns
            out[name] = {"sdtype": "datetime"}
        else:
            out[name] = {"sdtype": _SDTYPES[spec.type]}
    return out


def build_metadata(schema: TableSchema, frame: pd.DataFrame, info: Coarsening) -> Metadata:
    """Metadata for exactly the columns of `frame` (the frame a synthesizer is fitted on)."""
    columns = column_metadata(schema, frame.columns, info)
    return Metadata.load_from_dict({"tables": {TABLE: {"columns": columns}}})


def constraints(settings: TwinSettings, frame: pd.DataFrame) -> list[FixedCombinations]:
    """FixedCombinations for each declared hierarchy whose columns are all fitted."""
    return [
        FixedCombinations(column_names=list(levels))
        for levels in settings.hierarchies
        if all(col in frame.columns for col in levels)
    ]
