"""Pseudonymisation: keyed HMAC-SHA256 pseudonyms for person numbers, identifiers dropped.

The key turns a BSN into a stable pseudonym that cannot be reversed or recomputed
without the key, so the linked table can be joined and audited inside the secure
zone while the key itself never leaves it. The key is read from an environment
variable or a file named in event.yaml and is never logged, echoed or stored.
Hashing runs inside DuckDB (the key passed as a query parameter), which is several
times faster than a Python loop on millions of values.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from flows.pipeline.memory import duckdb_connection

if TYPE_CHECKING:  # only a type here: importing the event model (pydantic) is slow
    from flows.event import SecureZone


MIN_KEY_BYTES = 32
_BLOCK = 64  # SHA-256 block size, for the HMAC inner/outer pads

# Columns that identify a person directly; dropped as soon as the person number is hashed.
# (The household number is a register key the analysis never needs: dropped, not hashed.)
DIRECT_IDENTIFIERS = (
    "voornamen",
    "geslachtsnaam",
    "straatnaam",
    "huisletter",
    "woonplaats",
    "huishoudnummer",
)
# Person numbers that are replaced by their keyed pseudonym.
PERSON_KEYS = ("bsn", "bsn_ouder1", "bsn_ouder2")
# Quasi-identifiers that must not reach the analysis table at full detail.
FINE_QUASI_IDENTIFIERS = ("geboortedatum", "postcode", "huisnummer")

MAKE_KEY = 'python -c "import secrets; print(secrets.token_hex(32))"'


class PseudonymKeyError(Exception):
    """The pseudonym key is missing or too short; the organiser must provide one."""

    hackgap_user_error = True


def load_key(
    zone: SecureZone, root: Path | None = None, environ: Mapping[str, str] | None = None
) -> bytes:
    """Return the HMAC key from the environment variable, else the key file, never echoing it."""
    env = os.environ if environ is None else environ
    value = env.get(zone.pseudonym_key_env, "").strip()
    where = f"environment variable {zone.pseudonym_key_env}"
    if value:
        key = value.encode("utf-8")
    elif zone.pseudonym_key_file is not None:
        path = zone.pseudonym_key_file
        if root is not None and not path.is_absolute():
            path = root / path
        where = f"key file {path}"
        try:
            key = path.read_bytes().strip()
        except OSError:
            raise PseudonymKeyError(
                f"secure_zone.pseudonym_key_file: {path} cannot be read and "
                f"{zone.pseudonym_key_env} is not set; create the file with `{MAKE_KEY} > {path}` "
                "(mode 600) or export the variable."
            ) from None
    else:
        raise PseudonymKeyError(
            f"No pseudonym key: set the environment variable {zone.pseudonym_key_env} "
            f"(e.g. `export {zone.pseudonym_key_env}=$({MAKE_KEY})`) or name a key file in "
            "secure_zone.pseudonym_key_file."
        )
    if len(key) < MIN_KEY_BYTES:
        raise PseudonymKeyError(
            f"The pseudonym key in {where} is shorter than {MIN_KEY_BYTES} bytes; "
            f"replace it with a longer one, e.g. from `{MAKE_KEY}`."
        )
    return key


def key_fingerprint(key: bytes) -> str:
    """A short keyed digest of a constant: changes with the key, reveals nothing about it.

    Used only in cache keys, so a rotated key never reuses output made with the old one.
    """
    return hmac.new(key, b"hackgap cache fingerprint", hashlib.sha256).hexdigest()[:16]


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC-SHA256's outer and inner key pads (RFC 2104)."""
    k = hashlib.sha256(key).digest() if len(key) > _BLOCK else key
    k = k.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x5C for b in k), bytes(b ^ 0x36 for b in k)


def hmac_hex(value: str, key: bytes) -> str:
    """Pseudonym of one normalised value (the reference the vectorised version is tested on)."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def _key_sql(col: str) -> str:
    """Normalised person number: blanks stripped, empty = missing, numbers that lost a
    leading zero (read as integers somewhere) left-padded to 9 digits."""
    norm = f"nullif(trim(CAST(\"{col}\" AS VARCHAR)), '')"
    digits = f"regexp_full_match({norm}, '[0-9]{{1,9}}')"
    return f"CASE WHEN {digits} THEN lpad({norm}, 9, '0') ELSE {norm} END"


def pseudonymise_columns(
    frame: pd.DataFrame, columns: Iterable[str], key: bytes, *, repeated: bool = False
) -> pd.DataFrame:
    """Return a copy of `frame` with each of `columns` replaced by its HMAC-SHA256 hex pseudonym.

    Missing values stay missing. The key is a bound query parameter, so it appears in
    no SQL text, log line or error message. `repeated`: values repeat a lot (a pupil has
    a row per school year), so each distinct value is hashed once.
    """
    cols = [c for c in columns if c in frame.columns]
    out = frame.copy(deep=False)
    if not cols or frame.empty:
        for c in cols:
            out[c] = pd.Series(pd.NA, index=frame.index, dtype="string[pyarrow]")
        return out
    src = pa.Table.from_pandas(frame[cols], preserve_index=False)
    text = all(pa.types.is_string(t) or pa.types.is_large_string(t) for t in src.schema.types)
    hashed = _hash_distinct(src, key) if repeated and text else _hash(src, key)
    for c in cols:
        arr = hashed.column(c).combine_chunks()
        out[c] = pd.Series(pd.arrays.ArrowStringArray(arr), index=frame.index)
    return out


def _normalised(src: pa.Table, col: str) -> str:
    """SQL of the normalised value: the column itself when every value already is nine
    digits (what the readers give; checked here, in Arrow), else `_key_sql`."""
    values = src.column(col)
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        nine = pc.and_(pc.equal(pc.utf8_length(values), 9), pc.ascii_is_decimal(values))
        if pc.all(pc.fill_null(nine, True)).as_py():
            return f'"{col}"'
    return _key_sql(col)


def _hash(src: pa.Table, key: bytes) -> pa.Table:
    """HMAC of every column of `src`, in DuckDB; Arrow in, Arrow out (no Python object per
    value). SELECT without joins or ORDER BY keeps the row order."""
    outer, inner = hmac_pads(key)
    exprs = ", ".join(
        f'sha256($1::BLOB || unhex(sha256($2::BLOB || encode({_normalised(src, c)})))) AS "{c}"'
        for c in src.column_names
    )
    con = duckdb_connection()
    try:
        # strings leave as large_string, what pandas' Arrow strings hold (no cast, no copy)
        con.execute("SET arrow_large_buffer_size = true")
        con.execute("SET preserve_insertion_order = true")
        con.register("src", src)
        return con.sql(f"SELECT {exprs} FROM src", params=[outer, inner]).to_arrow_table()
    finally:
        con.close()


def _hash_distinct(src: pa.Table, key: bytes) -> pa.Table:
    """As `_hash`, hashing each distinct text once: a pupil has a row per school year and a
    parent a row per child, so most person numbers repeat."""
    arrays = [src.column(c).combine_chunks().cast(pa.large_string()) for c in src.column_names]
    encoded = pc.dictionary_encode(pa.concat_arrays(arrays))
    distinct = _hash(pa.table({"v": encoded.dictionary}), key).column("v").combine_chunks()
    every = pc.take(distinct, encoded.indices)
    starts = np.cumsum([0] + [len(a) for a in arrays])
    return pa.table(
        {c: every.slice(starts[i], len(arrays[i])) for i, c in enumerate(src.column_names)}
    )


def pseudonymise_persons(persons: pd.DataFrame, key: bytes) -> pd.DataFrame:
    """Register extract with person numbers hashed and names, street and town dropped.

    Postcode and house number stay until the buurt join; the birth date stays until
    linkage. Both are generalised away before anything is written.
    """
    slim = persons.drop(columns=[c for c in DIRECT_IDENTIFIERS if c in persons.columns])
    return pseudonymise_columns(slim, PERSON_KEYS, key)


def pseudonymise_school(school: pd.DataFrame, key: bytes) -> pd.DataFrame:
    """School records with the pupil's person number hashed with the same key."""
    return pseudonymise_columns(school, ("bsn",), key, repeated=True)


def generalise(table: pd.DataFrame, schema_columns: Iterable[str]) -> pd.DataFrame:
    """Keep only the analysis-table columns, in schema order; fine identifiers never pass.

    Raises ValueError (a programming error, not user input) if the schema itself would let
    a direct identifier or a fine quasi-identifier through.
    """
    wanted = list(schema_columns)
    leaking = set(wanted) & set(DIRECT_IDENTIFIERS + FINE_QUASI_IDENTIFIERS)
    if leaking:
        raise ValueError(f"analysis schema lists identifying columns {sorted(leaking)}")
    missing = [c for c in wanted if c not in table.columns]
    if missing:
        raise ValueError(f"analysis table lacks schema columns {missing}")
    return table[wanted]
