"""The link benchmark's baseline: the analysis table as one DuckDB query over the raw files.

It makes the same table as hackgap's exact-link path (same rows, values and pseudonymous
pupil_id; `bench_link` checks this) with none of the safeguards: no validation of any
value, no elfproef, no pseudonymisation of the register (it joins on the raw numbers and
hashes only the pupil ids it writes), no audit. The CSVs are read as text and cast just
where the shared `analysis_sql` needs it; DuckDB runs it all in parallel.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from flows.pipeline.analysis_sql import analysis_sql
from flows.pipeline.pseudonymise import hmac_pads

# The CSVs are loaded as tables (DuckDB parses them in parallel and keeps file order), so
# `rowid` numbers the rows in input order, the tie-break the analysis query needs.
_TABLES = """
CREATE TABLE brp AS SELECT * FROM read_csv('{d}/brp_personen.csv', delim=';', header=true,
  encoding='latin-1', all_varchar=true);
CREATE TABLE duo AS SELECT * FROM read_csv('{d}/duo_onderwijs.csv', delim=';', header=true,
  all_varchar=true);
CREATE TABLE pc6 AS SELECT * FROM read_csv('{d}/pc6hnr_2023_gwb.csv', delim=';', header=true,
  all_varchar=true);
CREATE VIEW persons AS SELECT rowid AS rid, bsn,
  strptime(geboortedatum, '%Y%m%d') AS geboortedatum, geslacht,
  replace(postcode, ' ', '') AS postcode, CAST(huisnummer AS BIGINT) AS huisnummer,
  bsn_ouder1, bsn_ouder2, CAST(inkomen_decile AS BIGINT) AS inkomen_decile,
  migratieachtergrond, strptime(datum_vertrek, '%Y%m%d') AS datum_vertrek FROM brp;
CREATE VIEW school AS SELECT rowid AS rid,
  CASE WHEN bsn IN (SELECT bsn FROM brp) THEN bsn END AS person_key,
  schooljaar, onderwijssoort, CAST(leerjaar AS BIGINT) AS leerjaar, niveau, leerweg, sector,
  brin, schooladvies, CAST(eindtoets_score AS BIGINT) AS eindtoets_score,
  diploma = 'J' AS diploma, uitgeschreven = 'J' AS uitgeschreven, vsv = 'J' AS vsv, geslacht,
  strptime(geboortedatum, '%Y-%m-%d') AS geboortedatum FROM duo;
CREATE VIEW postcodes AS SELECT rowid AS rid, PC6 AS postcode,
  CAST(Huisnummer AS BIGINT) AS huisnummer, 'BU' || lpad(Buurt2023, 8, '0') AS buurt_code,
  'WK' || lpad(Wijk2023, 6, '0') AS wijk_code FROM pc6;
CREATE VIEW cbs AS SELECT trim(code) AS region_code, lower(trim(soort)) AS region_type,
  TRY_CAST(replace(trim(ink), ',', '.') AS DOUBLE) AS gem_inkomen_per_inwoner,
  TRY_CAST(replace(trim(laag), ',', '.') AS DOUBLE) AS pct_laag_inkomen
  FROM read_csv('{d}/kwb_2023_statline.csv', delim=';', header=true, all_varchar=true,
    names=['wb', 'naam', 'soort', 'code', 'inw', 'inw015', 'ink', 'laag', 'bijstand', 'sted']);
"""


def run_baseline(src: Path, key: bytes, out: Path) -> int:
    """Write the analysis table of the extracts in `src` to `out`; the number of pupils."""
    outer, inner = hmac_pads(key)
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(_TABLES.format(d=src))
    table = analysis_sql("persons", "school", "postcodes", "cbs", link_method="exact", row_id="rid")
    pupil_id = "sha256($outer || unhex(sha256($inner || encode(pupil_id))))"
    con.execute(
        f"COPY (SELECT * REPLACE ({pupil_id} AS pupil_id) FROM ({table}) ORDER BY pupil_id) "
        f"TO '{out}' (FORMAT parquet)",
        {"outer": outer, "inner": inner},
    )
    return con.execute(f"SELECT count(*) FROM '{out}'").fetchone()[0]


def differing_rows(ours: Path, baseline: Path) -> int:
    """Rows in either Parquet file but not in the other, comparing every value as text."""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM '{ours}'").fetchall()]
    text = ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' for c in columns)
    a, b = f"SELECT {text} FROM '{ours}'", f"SELECT {text} FROM '{baseline}'"
    return con.execute(
        f"SELECT (SELECT count(*) FROM ({a} EXCEPT ALL {b})) "
        f"+ (SELECT count(*) FROM ({b} EXCEPT ALL {a}))"
    ).fetchone()[0]
