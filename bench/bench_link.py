"""Link stage: the exact-link path against one DuckDB SQL query over the same files.

Baseline: the three joins of the link stage (school record -> person on the person
number, person -> parents for the household income decile, person address -> postcode
table -> CBS wijk figures) with the per-pupil condensing, as one DuckDB query over the
same CSV files, written to Parquet (exact links only, no validation, no pseudonyms).
Measured: hackgap's exact-link path: the validating readers, HMAC pseudonymisation,
exact link, `build_analysis_table`, generalisation and the deterministic Parquet write.
Target (issue 3): <= 1.5x the baseline at 235,000 and 2,000,000 persons, peak memory
under 4 GiB at 2,000,000. Each side runs in a fresh process (honest peak RSS).

Splink step: wall time and pairs compared per second of the probabilistic link of the
10% of pupils without a person number at 235,000 persons, next to Splink's own guidance
(its performance guide: blocked comparisons are typically 10-1,000x the input records,
and the count of comparisons, not of records, drives run time).
Inputs come from flows.demodata in a temporary directory. `--quick`: 20,000 and 200,000.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import textwrap
from pathlib import Path

from bench.harness import Result, measure_subprocess

SEED = 7
KEY_ENV = {"HACKGAP_BENCH_KEY": "b" * 64}

GENERATE = """
from pathlib import Path
from flows.demodata import simulate, write_sources
write_sources(simulate({persons}, {seed}, no_bsn_share=0.10), Path({out!r}))
"""

BASELINE = """
import duckdb
d = {src!r}
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
con.execute(f'''
COPY (
WITH p AS (
  SELECT * FROM read_csv('{{d}}/brp_personen.csv', delim=';', header=true,
                         encoding='latin-1', all_varchar=true)),
s AS (
  SELECT * FROM read_csv('{{d}}/duo_onderwijs.csv', delim=';', header=true, all_varchar=true)
  WHERE bsn IS NOT NULL AND bsn <> ''),
pc AS (
  SELECT PC6 AS postcode, Huisnummer AS huisnummer,
         'BU' || lpad(Buurt2023, 8, '0') AS buurt_code, 'WK' || lpad(Wijk2023, 6, '0') AS wijk_code
  FROM read_csv('{{d}}/pc6hnr_2023_gwb.csv', delim=';', header=true, all_varchar=true)),
k AS (
  SELECT trim(code) AS code,
         TRY_CAST(replace(trim(ink), ',', '.') AS DOUBLE) AS inkomen,
         TRY_CAST(replace(trim(laag), ',', '.') AS DOUBLE) AS laag
  FROM read_csv('{{d}}/kwb_2023_statline.csv', delim=';', header=true, all_varchar=true,
                names=['wb', 'naam', 'soort', 'code', 'inw', 'inw015', 'ink', 'laag',
                       'bijstand', 'sted'])),
linked AS (SELECT s.* FROM s JOIN p ON s.bsn = p.bsn),
pupil AS (
  SELECT bsn,
    max(CASE WHEN onderwijssoort = 'po' THEN schooljaar END) AS po_schooljaar,
    max(CASE WHEN onderwijssoort = 'po' THEN brin END) AS po_brin,
    max(CASE WHEN onderwijssoort = 'po' THEN eindtoets_score END) AS eindtoets_score,
    max(CASE WHEN onderwijssoort = 'po' THEN schooladvies END) AS schooladvies,
    max(CASE WHEN onderwijssoort = 'vo' AND leerjaar = '3' THEN niveau END) AS vo_niveau_3,
    bool_or(onderwijssoort = 'vo' AND diploma = 'J') AS vo_diploma,
    bool_or(vsv = 'J') AS vsv,
    min(CASE WHEN onderwijssoort = 'mbo' THEN schooljaar END) AS mbo_instroom,
    arg_min(CASE WHEN onderwijssoort = 'mbo' THEN niveau END, schooljaar) AS mbo_niveau,
    bool_or(onderwijssoort = 'mbo' AND diploma = 'J') AS mbo_diploma
  FROM linked GROUP BY bsn)
SELECT pupil.*, year(strptime(me.geboortedatum, '%Y%m%d')) AS geboortejaar,
       month(strptime(me.geboortedatum, '%Y%m%d')) AS geboortemaand,
       me.geslacht, me.migratieachtergrond,
       coalesce(o1.inkomen_decile, o2.inkomen_decile) AS inkomen_decile,
       pc.buurt_code, pc.wijk_code, kw.inkomen AS wijk_gem_inkomen, kb.laag AS buurt_pct_laag
FROM pupil
JOIN p AS me ON me.bsn = pupil.bsn
LEFT JOIN p AS o1 ON o1.bsn = me.bsn_ouder1
LEFT JOIN p AS o2 ON o2.bsn = me.bsn_ouder2
LEFT JOIN pc ON pc.postcode = me.postcode AND pc.huisnummer = me.huisnummer
LEFT JOIN k AS kw ON kw.code = pc.wijk_code
LEFT JOIN k AS kb ON kb.code = pc.buurt_code
ORDER BY pupil.bsn
) TO '{{d}}/baseline.parquet' (FORMAT parquet)
''')
import json
rows = con.execute(f"SELECT count(*) FROM '{{d}}/baseline.parquet'").fetchone()[0]
print(json.dumps({{"rows": rows}}))
"""

EXACT_PATH = """
import os, json
from pathlib import Path
from flows.link import schema_columns, write_parquet
from flows.pipeline import linkage as lk, readers
from flows.pipeline.analysis import build_analysis_table
from flows.pipeline.pseudonymise import generalise, pseudonymise_persons, pseudonymise_school
d = Path({src!r})
key = os.environ["HACKGAP_BENCH_KEY"].encode()
m = readers.read_municipal(d / "brp_personen.csv")
s = readers.read_school(d / "duo_onderwijs.csv")
pc = readers.read_postcodes(d / "pc6hnr_2023_gwb.csv")
cbs = readers.read_cbs(d / "kwb_2023_statline.csv", municipality="GM0014", year=2023)
persons, _ = lk.unique_persons(pseudonymise_persons(m.frame, key))
school, _ = lk.exact_link(pseudonymise_school(s.frame, key), persons)
linked = school[school["link_method"].notna()]
table = generalise(build_analysis_table(persons, linked, pc.frame, cbs.frame), schema_columns())
table = table.sort_values("pupil_id", kind="mergesort").reset_index(drop=True)
write_parquet(table, d / "hackgap.parquet")
print(json.dumps({{"rows": len(table)}}))
"""

SPLINK = """
import os, json, time
from pathlib import Path
from flows.pipeline import linkage as lk, readers
from flows.pipeline.pseudonymise import pseudonymise_persons, pseudonymise_school
d = Path({src!r})
key = os.environ["HACKGAP_BENCH_KEY"].encode()
brp = readers.read_municipal(d / "brp_personen.csv").frame
persons, _ = lk.unique_persons(pseudonymise_persons(brp, key))
school = pseudonymise_school(readers.read_school(d / "duo_onderwijs.csv").frame, key)
school, _ = lk.exact_link(school, persons)
t0 = time.perf_counter()
_, st = lk.probabilistic_link(school, persons, lk.LinkSettings())
print(json.dumps({{"seconds": time.perf_counter() - t0, "predict": st.seconds_predict,
                  "pairs": st.pairs_compared, "identities": st.identities,
                  "candidates": st.candidates, "rows": st.rows, "linked": st.rows_linked,
                  "by_rule": st.pairs_by_rule}}))
"""


def _code(template: str, **kw) -> str:
    return textwrap.dedent(template.format(**kw))


def _generate(persons: int, out: Path) -> None:
    measure_subprocess(_code(GENERATE, persons=persons, seed=SEED, out=str(out)))


def _exact_results(persons: int, src: Path) -> list[Result]:
    base_s, base_mib, base = measure_subprocess(_code(BASELINE, src=str(src)))
    ours_s, ours_mib, ours = measure_subprocess(_code(EXACT_PATH, src=str(src)), env=KEY_ENV)
    label = f"{persons:,} persons"
    results = [
        Result(
            f"link exact path, {label}",
            ours_s,
            "s",
            baseline=base_s,
            target_ratio=1.5,
            notes=f"pupils: hackgap {ours['rows']:,}, DuckDB {base['rows']:,}",
        ),
        Result(
            f"link exact path peak RSS, {label}",
            ours_mib,
            "MiB",
            baseline=base_mib,
            notes="target < 4096 MiB at 2,000,000 persons",
        ),
    ]
    return results


def _splink_results(persons: int, src: Path) -> list[Result]:
    _wall, mib, st = measure_subprocess(_code(SPLINK, src=str(src)), env=KEY_ENV)
    pairs_per_s = st["pairs"] / st["predict"] if st["predict"] else 0.0
    ratio = st["pairs"] / max(st["identities"] + st["candidates"], 1)
    note = (
        f"{st['identities']:,} identities x {st['candidates']:,} candidates -> "
        f"{st['pairs']:,} pairs ({ratio:.1f}x input records; Splink guide: 10-1,000x); "
        f"linked {st['linked']:,}/{st['rows']:,} records; by rule {json.dumps(st['by_rule'])}"
    )
    label = f"{persons:,} persons, 10% without person number"
    return [
        Result(f"Splink train+predict, {label}", st["seconds"], "s", notes=note),
        Result(
            f"Splink predict pairs/s, {label}",
            pairs_per_s,
            "pairs/s",
            notes=f"predict {st['predict']:.2f} s; peak RSS {mib:,.0f} MiB",
        ),
    ]


def run(quick: bool) -> list[Result]:
    sizes = (20_000, 200_000) if quick else (235_000, 2_000_000)
    splink_size = 20_000 if quick else 235_000
    results: list[Result] = []
    for persons in sizes:
        src = Path(tempfile.mkdtemp(prefix=f"hackgap-bench-link-{persons}-"))
        try:
            _generate(persons, src)
            results += _exact_results(persons, src)
            if persons == splink_size:
                results += _splink_results(persons, src)
        finally:
            shutil.rmtree(src, ignore_errors=True)
    return results
