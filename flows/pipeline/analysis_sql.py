"""The analysis table as one DuckDB query over four relations with the canonical columns.

Plain SQL text, so the same query runs on the pipeline's in-memory frames
(`build_analysis_table`) and on a benchmark's views of raw files. Keys are only compared
by equality, so it works the same on true BSNs and on pseudonyms.

Semantics kept from the former pandas implementation:
- a pupil's school rows are ordered by year (missing last), then po < vo < mbo < hbo (other
  kinds last), then input order; every "first"/"last" pick follows that order;
- a key held by several register rows, or an address held by several postcode rows, takes
  the first of them in input order;
- a missing parent key matches the first register row without a BSN, and a missing address
  part matches a missing one (pandas' lookups did so).
"""

from __future__ import annotations

from flows.pipeline.schemas import sql_literal

_VO_DIPLOMAS = "('vmbo-b', 'vmbo-k', 'vmbo-gt', 'havo', 'vwo')"
# A year outside +-_YEAR_SPAN (only a school year like "1e99-..." parses to one) sorts as a
# missing year, which keeps the order key within BIGINT.
_YEAR_SPAN = 100_000


def _mbo_rank(niveau: str) -> str:
    """mbo-1 .. mbo-4 as 1 .. 4, anything else NULL."""
    ranks = " ".join(f"WHEN 'mbo-{i}' THEN {i}" for i in range(1, 5))
    return f"CASE {niveau} {ranks} END"


def analysis_sql(
    persons: str,
    school: str,
    postcodes: str,
    cbs: str,
    *,
    link_method: str | None = None,
    row_id: str | None = None,
) -> str:
    """SQL for the analysis table: schema column names, one row per linked pupil, by key.

    Arguments name the relations (tables or views) with the canonical register, school,
    postcode and CBS columns. `link_method` forces one value for every pupil; without it
    the school relation needs a `link_method` column (each pupil's first row's is used).
    `row_id` names a column numbering the rows of persons, school and postcodes in input
    order (0, 1, 2, ...); without it they are numbered by row_number() OVER (), which keeps
    the scan order but reads those relations in a single thread.
    Text comes out as VARCHAR, whole numbers as BIGINT, measures as DOUBLE, flags BOOLEAN.
    """
    rn = "row_number() OVER ()" if row_id is None else f'"{row_id}"'
    method = "p.first_link_method" if link_method is None else sql_literal(link_method)
    school_method = "CAST(link_method AS VARCHAR)" if link_method is None else "NULL"
    # Linked school rows; ord sorts a pupil's rows by (year, kind, input order) as one
    # BIGINT, so every pick is an arg_min/arg_max over it.
    school_rows = f"""
    SELECT *,
      (coalesce(CASE WHEN abs(year) < {_YEAR_SPAN} THEN year END, {_YEAR_SPAN}) * 8
        + coalesce(CASE soort WHEN 'po' THEN 0 WHEN 'vo' THEN 1 WHEN 'mbo' THEN 2
                   WHEN 'hbo' THEN 3 END, 4)) * 4294967296 + rn AS ord
    FROM (
      SELECT
        CAST(person_key AS VARCHAR) AS key,
        {rn} AS rn,
        TRY_CAST(substr(CAST(schooljaar AS VARCHAR), 1, 4) AS BIGINT) AS year,
        CAST(schooljaar AS VARCHAR) AS schooljaar,
        CAST(onderwijssoort AS VARCHAR) AS soort,
        leerjaar,
        CAST(niveau AS VARCHAR) AS niveau,
        CAST(leerweg AS VARCHAR) AS leerweg,
        CAST(sector AS VARCHAR) AS sector,
        CAST(brin AS VARCHAR) AS brin,
        CAST(schooladvies AS VARCHAR) AS schooladvies,
        CAST(eindtoets_score AS BIGINT) AS eindtoets_score,
        coalesce(CAST(diploma AS BOOLEAN), false) AS diploma,
        coalesce(CAST(uitgeschreven AS BOOLEAN), false) AS uitgeschreven,
        coalesce(CAST(vsv AS BOOLEAN), false) AS vsv,
        CAST(geslacht AS VARCHAR) AS geslacht,
        geboortedatum,
        {school_method} AS link_method
      FROM {school}
      WHERE person_key IS NOT NULL
    )"""
    person_rows = f"""
    SELECT {rn} AS rn, CAST(bsn AS VARCHAR) AS bsn, geboortedatum,
      CAST(geslacht AS VARCHAR) AS geslacht, CAST(postcode AS VARCHAR) AS postcode,
      CAST(huisnummer AS BIGINT) AS huisnummer, CAST(bsn_ouder1 AS VARCHAR) AS bsn_ouder1,
      CAST(bsn_ouder2 AS VARCHAR) AS bsn_ouder2,
      CAST(inkomen_decile AS BIGINT) AS inkomen_decile,
      CAST(migratieachtergrond AS VARCHAR) AS migratieachtergrond, datum_vertrek
    FROM {persons}"""
    # school_rows and person_rows are repeated as subqueries, not shared CTEs: DuckDB would
    # materialise a shared one in full, while each use reads only the columns it needs.
    return f"""
WITH
-- Per pupil, over all their rows: the picks that need no other row, and flags.
pupil AS (
  SELECT key,
    max(year) AS max_year,
    arg_min_null(link_method, ord) AS first_link_method,
    arg_min_null(geslacht, ord) AS first_geslacht,
    arg_min_null(geboortedatum, ord) AS first_geboortedatum,
    arg_min_null(schooljaar, ord) FILTER (WHERE soort = 'po') AS po_schooljaar,
    arg_min_null(brin, ord) FILTER (WHERE soort = 'po') AS po_brin,
    arg_min_null(eindtoets_score, ord) FILTER (WHERE soort = 'po') AS eindtoets_score,
    arg_min_null(schooladvies, ord) FILTER (WHERE soort = 'po') AS schooladvies,
    arg_min_null(niveau, ord) FILTER (WHERE soort = 'vo' AND leerjaar = 3)
      AS vo_niveau_leerjaar3,
    bool_or(diploma) FILTER (WHERE soort = 'vo') AS vo_diploma,
    bool_or(vsv) AS vsv,
    min(ord) FILTER (WHERE soort = 'mbo') AS mbo_first_ord,
    max(ord) FILTER (WHERE soort = 'mbo') AS mbo_last_ord,
    min(ord) FILTER (WHERE soort = 'mbo' AND diploma) AS mbo_diploma_ord,
    -- exactly one distinct (non-missing) mbo year
    min(year) FILTER (WHERE soort = 'mbo') = max(year) FILTER (WHERE soort = 'mbo')
      AS mbo_one_year,
    max(year) FILTER (WHERE soort = 'hbo') AS hbo_last_year
  FROM ({school_rows})
  GROUP BY key
),
mbo_rows AS (
  SELECT key, ord, year, schooljaar, niveau, leerweg, sector, diploma, uitgeschreven
  FROM ({school_rows}) WHERE soort = 'mbo'
),
-- mbo pupils: their first mbo row, their first with a diploma and their last.
mbo_pupil AS (
  SELECT p.key, p.mbo_one_year, p.hbo_last_year,
    f.year AS f_year, f.schooljaar AS f_schooljaar, f.niveau AS f_niveau,
    f.leerweg AS f_leerweg, f.sector AS f_sector, f.diploma AS f_diploma,
    f.uitgeschreven AS f_uitgeschreven,
    d.ord IS NOT NULL AS diploma, d.year AS d_year, {_mbo_rank("d.niveau")} AS d_rank,
    l.year AS l_year, l.niveau AS l_niveau, l.uitgeschreven AS l_uitgeschreven
  FROM pupil p
  JOIN mbo_rows f ON f.ord = p.mbo_first_ord
  JOIN mbo_rows l ON l.ord = p.mbo_last_ord
  LEFT JOIN mbo_rows d ON d.ord = p.mbo_diploma_ord
),
-- Their vo and mbo rows measured against those rows.
mbo_career AS (
  SELECT r.key,
    -- changed sector or level the year after intake, without a diploma in the first
    bool_or(r.soort = 'mbo' AND r.year = m.f_year + 1 AND NOT m.f_diploma
      AND (coalesce(r.sector, '') <> coalesce(m.f_sector, '') OR r.niveau <> m.f_niveau))
      AS switched,
    -- vo before the intake year: the last diploma level, else "pro" or "geen diploma"
    bool_or(r.soort = 'vo' AND r.year < m.f_year) AS seen_vo,
    arg_max_null(r.niveau, r.ord) FILTER (WHERE r.soort = 'vo' AND r.year < m.f_year
      AND r.diploma AND r.niveau IN {_VO_DIPLOMAS}) AS vo_best,
    arg_max_null(r.niveau, r.ord) FILTER (WHERE r.soort = 'vo' AND r.year < m.f_year)
      AS vo_last,
    -- a higher mbo level after the first mbo diploma
    bool_or(r.soort = 'mbo' AND r.year > m.d_year AND {_mbo_rank("r.niveau")} > m.d_rank)
      AS vervolg
  FROM (
    SELECT key, 'mbo' AS soort, ord, year, niveau, sector, diploma FROM mbo_rows
    UNION ALL
    SELECT key, soort, ord, year, niveau, NULL, diploma FROM ({school_rows}) WHERE soort = 'vo'
  ) r
  JOIN mbo_pupil m ON m.key = r.key
  GROUP BY r.key
),
mbo AS (SELECT * FROM mbo_pupil JOIN mbo_career USING (key)),
-- Each pupil's register row: the first with the pupil's key.
pupil_rows AS (SELECT * FROM ({person_rows}) WHERE bsn IN (SELECT key FROM pupil)),
me AS (
  SELECT r.*
  FROM pupil_rows r
  JOIN (SELECT min(rn) AS rn FROM pupil_rows GROUP BY bsn) f ON f.rn = r.rn
),
-- Income decile per parent key (first register row with it); a missing parent key gets
-- the first register row without a BSN.
parent AS (
  SELECT bsn, arg_min_null(inkomen_decile, rn) AS decile
  FROM ({person_rows})
  WHERE bsn IN (SELECT bsn_ouder1 FROM me UNION ALL SELECT bsn_ouder2 FROM me)
  GROUP BY bsn
),
no_bsn AS (
  SELECT arg_min_null(inkomen_decile, rn) AS decile FROM ({person_rows}) WHERE bsn IS NULL
),
-- buurt and wijk per pupil address: the first postcode row with that address.
address AS (
  SELECT a.postcode, a.huisnummer,
    arg_min_null(a.buurt, a.rn) AS buurt, arg_min_null(a.wijk, a.rn) AS wijk
  FROM (
    SELECT {rn} AS rn, CAST(postcode AS VARCHAR) AS postcode,
      CAST(huisnummer AS BIGINT) AS huisnummer, CAST(buurt_code AS VARCHAR) AS buurt,
      CAST(wijk_code AS VARCHAR) AS wijk
    FROM {postcodes}
  ) a
  SEMI JOIN (
    SELECT postcode, huisnummer FROM me
    UNION ALL SELECT NULL, NULL  -- the address of a pupil without a register row
  ) m ON a.postcode IS NOT DISTINCT FROM m.postcode
    AND a.huisnummer IS NOT DISTINCT FROM m.huisnummer
  GROUP BY a.postcode, a.huisnummer
),
-- CBS figures by region code.
region AS (
  SELECT CAST(region_code AS VARCHAR) AS code, CAST(region_type AS VARCHAR) AS type,
    CAST(gem_inkomen_per_inwoner AS DOUBLE) AS inkomen,
    CAST(pct_laag_inkomen AS DOUBLE) AS laag
  FROM {cbs}
),
wijk AS (SELECT code, min(inkomen) AS inkomen FROM region WHERE type = 'wijk' GROUP BY code),
buurt AS (SELECT code, min(laag) AS laag FROM region WHERE type = 'buurt' GROUP BY code),
-- SES tertile, as ses_tertiles: wijken with an income ranked by (income, code), in thirds.
tertile AS (
  SELECT code, min(tertiel) AS tertiel
  FROM (
    SELECT code,
      (row_number() OVER (ORDER BY inkomen, code) - 1) * 3 // count(*) OVER () + 1 AS tertiel
    FROM region WHERE type = 'wijk' AND inkomen IS NOT NULL
  )
  GROUP BY code
)
SELECT
  p.key AS pupil_id,
  {method} AS link_method,
  -- birth date and sex from DUO (the pupil's first row) when the register has none
  year(coalesce(me.geboortedatum, p.first_geboortedatum)) AS geboortejaar,
  month(coalesce(me.geboortedatum, p.first_geboortedatum)) AS geboortemaand,
  coalesce(me.geslacht, p.first_geslacht) AS geslacht,
  me.migratieachtergrond,
  coalesce(
    CASE WHEN me.bsn_ouder1 IS NULL THEN nb.decile ELSE o1.decile END,
    CASE WHEN me.bsn_ouder2 IS NULL THEN nb.decile ELSE o2.decile END
  ) AS inkomen_decile,
  a.buurt AS buurt_code,
  a.wijk AS wijk_code,
  w.inkomen AS wijk_gem_inkomen,
  b.laag AS buurt_pct_laag_inkomen,
  t.tertiel AS wijk_ses_tertiel,
  p.po_schooljaar,
  p.po_brin,
  p.eindtoets_score,
  p.schooladvies,
  p.vo_niveau_leerjaar3,
  p.vo_diploma,
  p.vsv,
  m.f_schooljaar AS mbo_instroom_schooljaar,
  m.f_niveau AS mbo_niveau,
  m.f_leerweg AS mbo_leerweg,
  m.f_sector AS mbo_sector,
  CASE
    WHEN m.vo_best IS NOT NULL THEN m.vo_best
    WHEN m.seen_vo THEN CASE WHEN m.vo_last = 'pro' THEN 'pro' ELSE 'geen diploma' END
  END AS mbo_vooropleiding,
  CASE WHEN m.key IS NOT NULL  -- mbo pupils only, as the next ones
    THEN m.f_uitgeschreven AND coalesce(m.mbo_one_year, false) END AS mbo_uitval_jaar1,
  CASE WHEN m.key IS NOT NULL THEN coalesce(m.switched, false) END AS mbo_switch_jaar1,
  m.diploma AS mbo_diploma,
  CASE
    WHEN m.diploma THEN CASE
      WHEN m.hbo_last_year > m.d_year THEN 'hbo'
      WHEN m.vervolg THEN 'mbo-vervolg'
      -- moved out after 1 October of the diploma year: lost to graduate tracking
      WHEN me.datum_vertrek > make_date(m.d_year, 10, 1) THEN 'onbekend'
      ELSE 'arbeidsmarkt' END
    WHEN m.l_uitgeschreven AND coalesce({_mbo_rank("m.l_niveau")}, 0) >= 2
      THEN 'zonder-startkwalificatie'
    WHEN NOT m.l_uitgeschreven AND m.l_year = (SELECT max(max_year) FROM pupil)
      THEN 'nog-bezig'
  END AS mbo_uitstroom
FROM pupil p
LEFT JOIN mbo m ON m.key = p.key
LEFT JOIN me ON me.bsn = p.key
CROSS JOIN no_bsn nb
LEFT JOIN parent o1 ON o1.bsn = me.bsn_ouder1
LEFT JOIN parent o2 ON o2.bsn = me.bsn_ouder2
LEFT JOIN address a
  ON a.postcode IS NOT DISTINCT FROM me.postcode AND a.huisnummer IS NOT DISTINCT FROM me.huisnummer
LEFT JOIN wijk w ON w.code = a.wijk
LEFT JOIN buurt b ON b.code = a.buurt
LEFT JOIN tertile t ON t.code = a.wijk
ORDER BY p.key
"""
