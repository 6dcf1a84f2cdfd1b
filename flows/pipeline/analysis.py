"""Canonical frames -> the analysis table (flows/schemas/analysis_table.yaml), one row per pupil.

Works on keys only by equality, so the secure pipeline runs it on pseudonymised frames
(school.person_key, persons.bsn, bsn_ouder1/2 all hashed with the same key) and the demo
generator runs it on true BSNs to get the ground truth. Vectorised pandas throughout;
pupils are numbered once (sorted by key) so grouping and alignment run on integers, and
the lookups of millions of keys (pupil -> person, parents, address) are DuckDB hash joins.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml

STRING = "string[pyarrow]"
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "analysis_table.yaml"
_SOORT_RANK = {"po": 0, "vo": 1, "mbo": 2, "hbo": 3}
_MBO_RANK = {"mbo-1": 1, "mbo-2": 2, "mbo-3": 3, "mbo-4": 4}
_DIPLOMA_VOOROPLEIDING = ("vmbo-b", "vmbo-k", "vmbo-gt", "havo", "vwo")


@functools.cache
def load_schema() -> dict[str, Any]:
    """The parsed analysis-table schema YAML."""
    return yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))


def ses_tertiles(cbs: pd.DataFrame) -> pd.Series:
    """wijk_code -> tertile (1 = lowest) of the wijken's mean income per inhabitant.

    Ranked with ties broken by code, so 12 wijken give exactly 4 per tertile.
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


def coerce_to_schema(table: pd.DataFrame, schema: dict[str, Any] | None = None) -> pd.DataFrame:
    """Columns in schema order with schema dtypes: ordinal -> ordered Categorical, boolean ->
    "boolean", numerical -> Int64/Float64, categorical with values -> Categorical, else string."""
    schema = schema or load_schema()
    out = {}
    for name, spec in schema["columns"].items():
        col = table[name] if name in table else pd.Series(pd.NA, index=table.index)
        kind = spec["type"]
        if kind == "ordinal":
            order = list(spec["order"])
            if all(isinstance(v, int) for v in order):
                col = pd.to_numeric(col.astype("Float64"), errors="coerce").astype("Int64")
                col = col.astype(object).where(col.notna(), None)
            else:
                col = col.astype(object).where(col.notna(), None)
            out[name] = pd.Categorical(col, categories=order, ordered=True)
        elif kind == "boolean":
            out[name] = col.astype("boolean")
        elif kind == "numerical":
            integer = pd.api.types.is_integer_dtype(col.dtype)
            num = pd.to_numeric(col.astype(object).where(col.notna(), np.nan), errors="coerce")
            out[name] = num.astype("Int64" if integer else "Float64")
        elif kind == "categorical" and spec.get("values"):
            out[name] = pd.Categorical(
                col.astype(object).where(col.notna(), None), categories=list(spec["values"])
            )
        else:
            out[name] = col.astype("string")
    return pd.DataFrame(out, index=table.index)


def _year(schooljaar: pd.Series) -> pd.Series:
    """First calendar year of each school year ("2019-2020" -> 2019), parsed once per value."""
    codes, values = pd.factorize(schooljaar.array)
    first = pd.Series(values, dtype="string").str[:4]
    years = pd.to_numeric(first, errors="coerce").astype("Int64")
    return pd.Series(years.array.take(codes, allow_fill=True), index=schooljaar.index)


def _text(values: pd.Series) -> pd.Series:
    """A text column as a pandas string column, Arrow-backed ones as they are (no copy)."""
    return values if isinstance(values.dtype, pd.StringDtype) else values.astype("string")


def _arrow_text(values: pd.Series) -> pa.Array:
    """Keys as one Arrow string array (zero-copy for string[pyarrow]), for hash lookups."""
    arr = pa.array(values, from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr if pa.types.is_large_string(arr.type) else arr.cast(pa.large_string())


def _positions(keys: pa.Array, among: pa.Array) -> np.ndarray:
    """Row of each key's first occurrence in `among` (-1 if absent), missing matching missing
    like pandas' reindex/map on a key index.

    A DuckDB hash join (parallel, several times faster than Arrow's index_in on millions of
    pseudonyms) when `among` has no missing key; Arrow's index_in otherwise.
    """
    if among.null_count or len(keys) == 0 or len(among) == 0:
        at = pc.index_in(keys, value_set=among)
        return np.asarray(pc.fill_null(at, -1), dtype=np.int64)
    return _join_positions(pa.table({"k": keys}), pa.table({"k": among}))


def _join_positions(keys: pa.Table, among: pa.Table) -> np.ndarray:
    """Row of each row of `keys` in `among` (first match, -1 if none) on all of their columns;
    missing values match nothing."""
    out = np.full(keys.num_rows, -1, dtype=np.int64)
    if keys.num_rows == 0 or among.num_rows == 0:
        return out
    on = " AND ".join(f'q."{c}" = p."{c}"' for c in keys.column_names)
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        con.register("q", keys.append_column("_j", pa.array(np.arange(keys.num_rows))))
        con.register("p", among.append_column("_i", pa.array(np.arange(among.num_rows))))
        found = con.sql(f"SELECT q._j, min(p._i) FROM q JOIN p ON {on} GROUP BY q._j")
        found = found.to_arrow_table()
    finally:
        con.close()
    out[found.column(0).to_numpy()] = found.column(1).to_numpy()
    return out


def _locate_merge(me: pd.DataFrame, postcodes: pd.DataFrame) -> pd.DataFrame:
    """buurt and wijk of each pupil's address by pandas' merge (missing keys match missing)."""
    addr = pd.DataFrame(
        {
            "postcode": me["postcode"].astype("string"),
            "huisnummer": me["huisnummer"].astype("Int64"),
        },
        index=me.index,
    )
    pc = postcodes.drop_duplicates(["postcode", "huisnummer"])
    pc = pd.DataFrame(
        {
            "postcode": pc["postcode"].astype("string"),
            "huisnummer": pc["huisnummer"].astype("Int64"),
            "buurt_code": pc["buurt_code"].astype("string"),
            "wijk_code": pc["wijk_code"].astype("string"),
        }
    )
    located = addr.reset_index().merge(pc, on=["postcode", "huisnummer"], how="left")
    return located.set_index("key")


def _take(values: pd.Series, at: np.ndarray) -> pd.api.extensions.ExtensionArray | np.ndarray:
    """values[at] with -1 as missing, keeping the column's dtype."""
    return values.array.take(at, allow_fill=True)


def _first(rows: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """First row per pupil (rows are sorted by pupil and year)."""
    return rows.drop_duplicates("key", keep="first").set_index("key")[cols]


def build_analysis_table(
    persons: pd.DataFrame,
    school: pd.DataFrame,
    postcodes: pd.DataFrame,
    cbs: pd.DataFrame,
    *,
    link_method: str | None = None,
) -> pd.DataFrame:
    """One row per pupil in `school` (linked rows: non-null `person_key`), schema columns/dtypes.

    `link_method` forces one value for all pupils; otherwise it is taken from the school
    frame's `link_method` column (first row per pupil; "exact" if the column is absent).
    """
    # Pupils are numbered by their key in sorted order once; everything below groups and
    # aligns on those small integers, not on 64-character pseudonyms.
    keys = school["person_key"].astype(STRING)
    codes, pupil_keys = pd.factorize(keys.array, sort=True)
    rows = pd.DataFrame(
        {
            "key": codes,
            "year": _year(school["schooljaar"]),
            "schooljaar": _text(school["schooljaar"]),
            "soort": _text(school["onderwijssoort"]),
            "leerjaar": school["leerjaar"].astype("Int64"),
            "niveau": _text(school["niveau"]),
            "leerweg": _text(school["leerweg"]),
            "sector": _text(school["sector"]),
            "brin": _text(school["brin"]),
            "schooladvies": _text(school["schooladvies"]),
            "eindtoets_score": school["eindtoets_score"].astype("Int64"),
            "diploma": school["diploma"].astype("boolean").fillna(False),
            "uitgeschreven": school["uitgeschreven"].astype("boolean").fillna(False),
            "vsv": school["vsv"].astype("boolean").fillna(False),
            "geslacht_duo": _text(school["geslacht"]),
            "geboortedatum_duo": school["geboortedatum"],
        }
    )
    if link_method is not None:
        rows["link_method"] = link_method
    elif "link_method" in school:
        rows["link_method"] = school["link_method"].astype("category")
    else:
        rows["link_method"] = "exact"
    if (codes < 0).any():  # unlinked rows (no key); linked-only input needs no copy
        rows = rows[rows["key"] >= 0]
    rows["srank"] = rows["soort"].map(_SOORT_RANK).astype("Int64")
    if rows["year"].notna().all() and rows["srank"].notna().all():
        # the same stable order as sort_values on three integer columns, without its overhead
        order = np.lexsort(
            (
                rows["srank"].to_numpy(dtype=np.int64),
                rows["year"].to_numpy(dtype=np.int64),
                rows["key"].to_numpy(),
            )
        )
        rows = rows.take(order).reset_index(drop=True)
    else:
        rows = rows.sort_values(["key", "year", "srank"], kind="stable").reset_index(drop=True)
    last_year = rows["year"].max()

    first_any = _first(rows, ["link_method", "geslacht_duo", "geboortedatum_duo"])
    table = pd.DataFrame(index=first_any.index)
    table.index.name = "key"
    table["link_method"] = first_any["link_method"]

    # --- register: person, parents' income, address ---------------------------------------
    bsn = _arrow_text(persons["bsn"])
    at = _positions(_arrow_text(pd.Series(pupil_keys)).take(table.index.to_numpy()), bsn)
    me = pd.DataFrame(
        {c: _take(persons[c], at) for c in persons.columns if c != "bsn"}, index=table.index
    )
    n = len(table)
    parents = pa.concat_arrays([_arrow_text(me["bsn_ouder1"]), _arrow_text(me["bsn_ouder2"])])
    parent_at = _positions(parents, bsn)
    birth = pd.to_datetime(me["geboortedatum"]).fillna(
        pd.to_datetime(first_any["geboortedatum_duo"])
    )
    table["geboortejaar"] = birth.dt.year.astype("Int64")
    table["geboortemaand"] = birth.dt.month.astype("Int64")
    table["geslacht"] = me["geslacht"].astype("string").fillna(first_any["geslacht_duo"])
    table["migratieachtergrond"] = me["migratieachtergrond"].astype("string")
    decile = persons["inkomen_decile"].astype("Int64")
    d1 = _take(decile, parent_at[:n])
    d2 = _take(decile, parent_at[n:])
    table["inkomen_decile"] = pd.Series(d1, index=table.index).fillna(
        pd.Series(d2, index=table.index)
    )
    pc_keys = pa.table(
        {
            "postcode": _arrow_text(postcodes["postcode"]),
            "huisnummer": pa.array(postcodes["huisnummer"].astype("Int64"), from_pandas=True),
        }
    )
    if any(col.null_count for col in pc_keys.columns):  # pandas' merge matches missing keys
        located = _locate_merge(me, postcodes)
        table["buurt_code"] = located["buurt_code"]
        table["wijk_code"] = located["wijk_code"]
    else:
        addr = pa.table(
            {
                "postcode": _arrow_text(me["postcode"]),
                "huisnummer": pa.array(me["huisnummer"].astype("Int64"), from_pandas=True),
            }
        )
        at = _join_positions(addr, pc_keys)  # first matching address row, as drop_duplicates
        table["buurt_code"] = _take(_text(postcodes["buurt_code"]), at)
        table["wijk_code"] = _take(_text(postcodes["wijk_code"]), at)
    codes = cbs["region_code"].astype("string")
    wijk_inc = pd.Series(cbs["gem_inkomen_per_inwoner"].astype("Float64").to_numpy(), index=codes)
    laag = pd.Series(cbs["pct_laag_inkomen"].astype("Float64").to_numpy(), index=codes)
    wijk_rows = (cbs["region_type"] == "wijk").to_numpy()
    buurt_rows = (cbs["region_type"] == "buurt").to_numpy()
    table["wijk_gem_inkomen"] = table["wijk_code"].map(wijk_inc[wijk_rows])
    table["buurt_pct_laag_inkomen"] = table["buurt_code"].map(laag[buurt_rows])
    table["wijk_ses_tertiel"] = table["wijk_code"].map(ses_tertiles(cbs)).astype("Int64")

    # --- po: groep 8 ---------------------------------------------------------------------
    po = _first(
        rows[rows["soort"] == "po"], ["schooljaar", "brin", "eindtoets_score", "schooladvies"]
    )
    table["po_schooljaar"] = po["schooljaar"]
    table["po_brin"] = po["brin"]
    table["eindtoets_score"] = po["eindtoets_score"]
    table["schooladvies"] = po["schooladvies"]

    # --- vo ------------------------------------------------------------------------------
    vo = rows[rows["soort"] == "vo"]
    table["vo_niveau_leerjaar3"] = _first(vo[vo["leerjaar"] == 3], ["niveau"])["niveau"]
    table["vo_diploma"] = vo.groupby("key")["diploma"].any().astype("boolean")
    table["vsv"] = rows.groupby("key")["vsv"].any().astype("boolean")

    # --- mbo -----------------------------------------------------------------------------
    mbo = rows[rows["soort"] == "mbo"]
    first = _first(
        mbo, ["year", "schooljaar", "niveau", "leerweg", "sector", "diploma", "uitgeschreven"]
    )
    table["mbo_instroom_schooljaar"] = first["schooljaar"]
    table["mbo_niveau"] = first["niveau"]
    table["mbo_leerweg"] = first["leerweg"]
    table["mbo_sector"] = first["sector"]
    mbo = mbo.join(first[["year", "niveau", "sector", "diploma"]].add_prefix("f_"), on="key")
    n_years = mbo.groupby("key")["year"].nunique()
    table["mbo_uitval_jaar1"] = (
        first["uitgeschreven"] & n_years.reindex(first.index).eq(1)
    ).astype("boolean")
    nxt = mbo[mbo["year"] == mbo["f_year"] + 1]
    changed = (nxt["sector"].fillna("") != nxt["f_sector"].fillna("")) | (
        nxt["niveau"] != nxt["f_niveau"]
    )
    switched = (changed & ~nxt["f_diploma"]).groupby(nxt["key"]).any()
    table["mbo_switch_jaar1"] = switched.reindex(first.index, fill_value=False).astype("boolean")
    table["mbo_diploma"] = mbo.groupby("key")["diploma"].any().astype("boolean")
    table["mbo_vooropleiding"] = _vooropleiding(vo, first)
    table["mbo_uitstroom"] = _uitstroom(rows, mbo, me["datum_vertrek"], last_year)
    table["pupil_id"] = pupil_keys.take(table.index.to_numpy())
    table = table.reset_index(drop=True)
    return coerce_to_schema(table)


def _vooropleiding(vo: pd.DataFrame, first_mbo: pd.DataFrame) -> pd.Series:
    """Highest prior education seen in the vo rows before the first mbo year (NA if none seen)."""
    vo = vo.join(first_mbo[["year"]].rename(columns={"year": "mbo_year"}), on="key", how="inner")
    vo = vo[vo["year"] < vo["mbo_year"]]
    dipl = vo[vo["diploma"] & vo["niveau"].isin(_DIPLOMA_VOOROPLEIDING)]
    best = dipl.drop_duplicates("key", keep="last").set_index("key")["niveau"]
    last_level = vo.drop_duplicates("key", keep="last").set_index("key")["niveau"]
    fallback = last_level.where(last_level == "pro", "geen diploma")
    return best.reindex(fallback.index.union(best.index)).fillna(fallback)


def _uitstroom(
    rows: pd.DataFrame, mbo: pd.DataFrame, vertrek: pd.Series, last_year: int
) -> pd.Series:
    """Route after mbo, per the schema's definitions."""
    dipl = mbo[mbo["diploma"]].drop_duplicates("key", keep="first").set_index("key")
    d_year = dipl["year"]
    d_rank = dipl["niveau"].map(_MBO_RANK)
    later = rows.join(d_year.rename("d_year"), on="key", how="inner")
    later = later[later["year"] > later["d_year"]]
    to_hbo = later[later["soort"] == "hbo"].groupby("key").size().reindex(d_year.index).notna()
    lm = later[later["soort"] == "mbo"]
    higher = lm["niveau"].map(_MBO_RANK) > lm["key"].map(d_rank)
    vervolg = higher.groupby(lm["key"]).any().reindex(d_year.index, fill_value=False)
    left_date = pd.to_datetime(
        d_year.astype("Int64").astype(str).str.cat(["-10-01"] * len(d_year)), errors="coerce"
    )
    moved = (pd.to_datetime(vertrek.reindex(d_year.index)) > left_date).fillna(False)
    route = pd.Series("arbeidsmarkt", index=d_year.index, dtype=object)
    route[moved.to_numpy()] = "onbekend"
    route[vervolg.to_numpy(dtype=bool)] = "mbo-vervolg"
    route[to_hbo.to_numpy(dtype=bool)] = "hbo"
    last = mbo.drop_duplicates("key", keep="last").set_index("key")
    last = last[~last.index.isin(d_year.index)]
    other = pd.Series(pd.NA, index=last.index, dtype=object)
    quit_ = last["uitgeschreven"].to_numpy(dtype=bool)
    high = last["niveau"].map(_MBO_RANK).fillna(0).to_numpy() >= 2
    other[quit_ & high] = "zonder-startkwalificatie"
    other[~quit_ & (last["year"] == last_year).to_numpy(dtype=bool)] = "nog-bezig"
    return pd.concat([route, other])
