"""The twin's release files, written once and read back for the gate (secure zone).

The gate judges the bytes that would be published, not a frame in memory: a value can read
differently after a round trip (a categorical of ints in memory, floats in a file), and an
earlier gate missed thousands of copied rows that way. `write_release` writes twin.parquet
and twin.csv; `read_release` reads both back, the CSV with the schema's types only (as a
participant reading the codebook would); the flows publish these same files if the gate
passed, and check their SHA-256 first.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from synthetic.errors import TwinError
from synthetic.privacy import canonical_text
from synthetic.schema import TableSchema

PARQUET, CSV = "twin.parquet", "twin.csv"


def write_release(twin: pd.DataFrame, directory: Path) -> dict[str, Path]:
    """twin.parquet and twin.csv in `directory` (CSV: UTF-8, LF, no index)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {PARQUET: directory / PARQUET, CSV: directory / CSV}
    twin.to_parquet(paths[PARQUET], index=False)
    twin.to_csv(paths[CSV], index=False, lineterminator="\n")
    return paths


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_twin_csv(path: Path, schema: TableSchema) -> pd.DataFrame:
    """twin.csv with the schema's types: numbers as floats, ordinals as ordered categoricals
    of their declared levels, booleans as pandas booleans, categories as text."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    out = {}
    for name in raw.columns:
        kind = schema[name].type if name in schema.names else "categorical"
        col = raw[name]
        if kind == "numerical":
            out[name] = pd.to_numeric(col, errors="coerce").astype(float)
        elif kind == "ordinal":
            levels = list(schema[name].order or ())
            by_text = dict(
                zip(
                    canonical_text(pd.DataFrame({name: levels}), schema, [name])[name],
                    levels,
                    strict=True,
                )
            )
            text = canonical_text(raw, schema, [name])[name]
            mapped = text.map(by_text)
            stray = int((mapped.isna() & col.notna()).sum())
            if stray:
                raise TwinError(
                    f"{path.name}: column '{name}' holds {stray} values outside its declared "
                    "order; fix the twin's dtypes (synthetic.prepare.restore_dtypes)."
                )
            out[name] = pd.Categorical(mapped, categories=levels, ordered=True)
        elif kind == "boolean":
            text = canonical_text(raw, schema, [name])[name]
            out[name] = text.map({"true": True, "false": False}).astype("boolean")
        else:
            out[name] = col.astype(object).where(col.notna(), None)
    return pd.DataFrame(out)


def read_release(paths: dict[str, Path], schema: TableSchema) -> dict[str, pd.DataFrame]:
    """Each release file as a reader gets it: Parquet as stored, CSV typed by the schema."""
    return {
        PARQUET: pd.read_parquet(paths[PARQUET]),
        CSV: read_twin_csv(paths[CSV], schema),
    }
