"""Canonical frames -> the analysis table (flows/schemas/analysis_table.yaml), one row per pupil.

Works on keys only by equality, so the secure pipeline runs it on pseudonymised frames
(school.person_key, persons.bsn, bsn_ouder1/2 all hashed with the same key) and the demo
generator runs it on true BSNs to get the ground truth. The derivation is one DuckDB query
(`analysis_sql`, shared with the link benchmark); this module only hands the frames to DuckDB
as Arrow and turns the Arrow result into the schema's pandas dtypes without a Python object
per value (except the strings that pandas' default string dtype holds as Python objects).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from flows.pipeline.analysis_sql import analysis_sql
from flows.pipeline.memory import duckdb_connection

__all__ = ["analysis_sql", "build_analysis_table", "load_schema", "ses_tertiles"]

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "analysis_table.yaml"
THREADS = 2  # the link stage's target machine has two cores
# Row numbers handed to the query with the frames: numbering in SQL (row_number() OVER ())
# would read each frame in a single thread.
_ROW_ID = "__row"
_INPUTS = {
    "persons": [
        "bsn",
        "geboortedatum",
        "geslacht",
        "postcode",
        "huisnummer",
        "bsn_ouder1",
        "bsn_ouder2",
        "inkomen_decile",
        "migratieachtergrond",
        "datum_vertrek",
    ],
    "school": [
        "person_key",
        "schooljaar",
        "onderwijssoort",
        "leerjaar",
        "niveau",
        "leerweg",
        "sector",
        "brin",
        "schooladvies",
        "eindtoets_score",
        "diploma",
        "uitgeschreven",
        "vsv",
        "geslacht",
        "geboortedatum",
    ],
    "postcodes": ["postcode", "huisnummer", "buurt_code", "wijk_code"],
    "cbs": ["region_code", "region_type", "gem_inkomen_per_inwoner", "pct_laag_inkomen"],
}


@functools.cache
def load_schema() -> dict[str, Any]:
    """The parsed analysis-table schema YAML."""
    return yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))


def ses_tertiles(cbs: pd.DataFrame) -> pd.Series:
    """wijk_code -> tertile (1 = lowest) of the wijken's mean income per inhabitant.

    Ranked with ties broken by code, so 12 wijken give exactly 4 per tertile. The demo
    generator uses this; `analysis_sql` computes the same in SQL.
    """
    wijk = cbs[(cbs["region_type"] == "wijk") & cbs["gem_inkomen_per_inwoner"].notna()]
    wijk = pd.DataFrame(
        {
            "code": wijk["region_code"].astype(str).to_numpy(),
            "inc": wijk["gem_inkomen_per_inwoner"].astype(float).to_numpy(),
        }
    ).sort_values(["inc", "code"], kind="stable")
    n = len(wijk)
    tert = (np.arange(n) * 3 // max(n, 1)) + 1
    return pd.Series(tert, index=wijk["code"].to_numpy(), name="wijk_ses_tertiel")


def build_analysis_table(
    persons: pd.DataFrame,
    school: pd.DataFrame,
    postcodes: pd.DataFrame,
    cbs: pd.DataFrame,
    *,
    link_method: str | None = None,
) -> pd.DataFrame:
    """One row per pupil in `school` (linked rows: non-null `person_key`), schema columns/dtypes,
    sorted by pupil key.

    `link_method` forces one value for all pupils; otherwise it is taken from the school
    frame's `link_method` column (first row per pupil; "exact" if the column is absent).
    """
    if link_method is None and "link_method" not in school:
        link_method = "exact"
    frames = {"persons": persons, "school": school, "postcodes": postcodes, "cbs": cbs}
    con = duckdb_connection()
    try:
        con.execute(f"SET threads = {THREADS}")
        for name, frame in frames.items():
            con.register(name, _arrow(frame, name, with_link_method=link_method is None))
        sql = analysis_sql(
            "persons", "school", "postcodes", "cbs", link_method=link_method, row_id=_ROW_ID
        )
        result = con.sql(sql).to_arrow_table()
    finally:
        con.close()
    return _to_schema(result)


def _arrow(frame: pd.DataFrame, name: str, *, with_link_method: bool) -> pa.Table:
    """The columns the query reads, as Arrow (strings zero-copy), plus the row number."""
    columns = _INPUTS[name] + (["link_method"] if name == "school" and with_link_method else [])
    table = pa.Table.from_pandas(frame[columns], preserve_index=False)
    return table.append_column(_ROW_ID, pa.array(np.arange(len(frame), dtype=np.int64)))


def _to_schema(result: pa.Table) -> pd.DataFrame:
    """The query's Arrow columns as the schema's pandas dtypes, straight from Arrow: ordinal ->
    ordered Categorical, categorical with values -> Categorical, boolean -> "boolean",
    numerical -> Int64 (whole numbers) or Float64, else "string"."""
    out = {}
    for name, spec in load_schema()["columns"].items():
        arr = result.column(name)
        kind = spec["type"]
        categories = spec.get("order") if kind == "ordinal" else spec.get("values")
        if kind in ("ordinal", "categorical") and categories:
            out[name] = _categorical(arr, list(categories), ordered=kind == "ordinal")
        elif kind == "boolean":
            out[name] = pd.BooleanDtype().__from_arrow__(arr)
        elif kind == "numerical":
            dtype = pd.Int64Dtype() if pa.types.is_integer(arr.type) else pd.Float64Dtype()
            out[name] = dtype.__from_arrow__(arr.cast(dtype.numpy_dtype.name))
        elif kind == "id":
            out[name] = pd.StringDtype().__from_arrow__(arr)
        else:
            out[name] = _repeated_strings(arr)
    return pd.DataFrame(out, index=pd.RangeIndex(result.num_rows), copy=False)


def _repeated_strings(arr: pa.ChunkedArray) -> pd.api.extensions.ExtensionArray:
    """pandas' default string dtype (Python objects) for a column of few distinct values:
    each distinct value becomes an object once, several times faster than one per row."""
    encoded = pc.dictionary_encode(arr).combine_chunks()
    values = pd.StringDtype().__from_arrow__(encoded.dictionary)
    return values.take(pc.fill_null(encoded.indices, -1).to_numpy(), allow_fill=True)


def _categorical(arr: pa.ChunkedArray, categories: list, *, ordered: bool) -> pd.Categorical:
    """Values outside `categories` (and missing ones) become missing, as pd.Categorical does."""
    at = pc.index_in(arr, value_set=pa.array(categories, type=arr.type))
    codes = pc.fill_null(at, -1).to_numpy()
    return pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(categories, ordered))
