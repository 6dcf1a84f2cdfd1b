"""`simulate()`: a whole invented municipality as the canonical frames the readers return.

The World holds exactly what `flows/pipeline/readers` would produce from the written
extracts (persons, school, postcodes, cbs), plus the ground-truth BSN of every DUO row
(`school.true_bsn`), so the truth table is `build_analysis_table` on these frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from flows.demodata.careers import LEERWEG, NIVEAU, SECTOR, SOORT, make_careers
from flows.demodata.effects import ADVICE_ORDER, EFFECTS, MIGRATION, Effects
from flows.demodata.geography import cbs_frame, make_addresses, make_geography
from flows.demodata.names import make_bsns, make_pools, sample_first_names
from flows.demodata.population import PARENT, make_population
from flows.pipeline.analysis import ses_tertiles

STRING = "string[pyarrow]"


@dataclass
class World:
    """The invented municipality: canonical source frames plus the truth key of DUO rows."""

    persons: pd.DataFrame
    school: pd.DataFrame  # canonical DUO frame + `true_bsn`
    postcodes: pd.DataFrame
    cbs: pd.DataFrame
    municipality: str
    year: int
    seed: int


def _s(values: np.ndarray) -> pd.arrays.ArrowStringArray:
    """Compact strings; "" and None become <NA>."""
    arr = np.array(values, dtype=object)
    arr[arr == ""] = None
    return pd.array(arr, dtype=STRING)


def _lookup(names: tuple[str, ...] | np.ndarray, codes: np.ndarray) -> pd.arrays.ArrowStringArray:
    """Code array (-1 = missing) -> strings."""
    cat = pd.Categorical.from_codes(codes.astype(np.int64), categories=list(names))
    return pd.array(np.asarray(cat, dtype=object), dtype=STRING)


def simulate(
    persons: int,
    seed: int,
    *,
    no_bsn_share: float = 0.10,
    municipality: str = "GM0014",
    year: int = 2023,
    effects: Effects = EFFECTS,
) -> World:
    """Invent `persons` people of a university city with school careers and planted effects.

    Deterministic for (`persons`, `seed`, options). `year` is the CBS reference year
    (inhabitant counts on 1 January of that year).
    """
    rng = np.random.default_rng(seed)
    pools = make_pools(seed)
    geo = make_geography(rng, municipality, pools.streets)
    wijk_cbs = pd.DataFrame(
        {
            "region_type": "wijk",
            "region_code": geo.wijk_code,
            "gem_inkomen_per_inwoner": geo.wijk_gem_inkomen,
        }
    )
    wijk_tertile = ses_tertiles(wijk_cbs).reindex(geo.wijk_code).to_numpy()
    pop = make_population(rng, geo, persons)
    careers = make_careers(rng, pop, geo, wijk_tertile, effects, persons)
    addrs, hh_addr = make_addresses(rng, geo, pop.hh_buurt, pools.streets)

    # --- CBS figures from the residents on 1 January of the reference year -----------------
    ref = np.datetime64(f"{year}-01-01")
    here = (
        (pop.birth <= ref)
        & (np.isnat(pop.arrival) | (pop.arrival <= ref))
        & (np.isnat(pop.vertrek) | (pop.vertrek > ref))
    )
    young = here & (pop.birth > ref - np.timedelta64(round(15 * 365.25), "D"))
    p_buurt = pop.hh_buurt[pop.household]
    res_b = np.bincount(p_buurt[here], minlength=geo.n_buurten).astype(float)
    young_b = np.bincount(p_buurt[young], minlength=geo.n_buurten).astype(float)
    cbs = cbs_frame(geo, res_b, young_b, rng)
    for col in ("inwoners", "inwoners_0_15", "bijstand"):  # canonical CBS numbers are Float64
        cbs[col] = cbs[col].astype("Float64")
    for col in ("region_code", "region_type", "name", "stedelijkheid"):
        cbs[col] = cbs[col].astype(STRING)

    # --- persons (the register) --------------------------------------------------------------
    n = pop.n
    bsn = make_bsns(rng, n)
    tm = np.isin(pop.migration, [2, 3])  # Turkije, Marokko
    hh_tm = np.zeros(len(pop.hh_buurt), dtype=bool)
    hh_tm[pop.household[tm]] = True
    hh_surname = np.where(
        hh_tm,
        pools.tm_surnames[rng.integers(0, len(pools.tm_surnames), len(hh_tm))],
        pools.surnames[rng.integers(0, len(pools.surnames), len(hh_tm))],
    )
    surname = hh_surname[pop.household]
    own = (pop.kind == PARENT) & (pop.sex == "V") & (rng.random(n) < 0.5)
    surname = np.where(own, pools.surnames[rng.integers(0, len(pools.surnames), n)], surname)
    first = sample_first_names(rng, pools, pop.sex, tm)
    addr = hh_addr[pop.household]
    has_mother, has_father = pop.mother >= 0, pop.father >= 0
    ouder1 = np.where(has_mother, bsn[np.maximum(pop.mother, 0)], "")
    ouder2 = np.where(has_father, bsn[np.maximum(pop.father, 0)], "")
    hh_number = np.char.add(
        "HH", np.char.zfill((10_000_000 + rng.permutation(len(hh_tm))).astype(str), 8)
    )
    income = pop.hh_income[pop.household]
    decile = np.where(pop.hh_income_known[pop.household], pop.hh_decile[pop.household], 0)
    order = rng.permutation(n)  # register order: not grouped by family
    persons_df = pd.DataFrame(
        {
            "bsn": _s(bsn[order]),
            "voornamen": _s(first[order]),
            "geslachtsnaam": _s(surname[order]),
            "geboortedatum": pop.birth[order].astype("datetime64[ns]"),
            "geslacht": _s(pop.sex[order]),
            "straatnaam": _s(addrs.straat[addr][order]),
            "huisnummer": pd.array(addrs.huisnummer[addr][order], dtype="Int64"),
            "huisletter": _s(addrs.huisletter[addr][order]),
            "postcode": _s(addrs.postcode[addr][order]),
            "woonplaats": _s(np.full(n, "Groningen", dtype=object)),
            "huishoudnummer": _s(hh_number[pop.household][order]),
            "bsn_ouder1": _s(ouder1[order]),
            "bsn_ouder2": _s(ouder2[order]),
            "inkomen_huishouden": pd.array(income[order], dtype="Float64"),
            "inkomen_decile": pd.array(decile[order], dtype="Int64").astype("Int64"),
            "migratieachtergrond": _lookup(MIGRATION, pop.migration[order]),
            "datum_vertrek": pop.vertrek[order].astype("datetime64[ns]"),
        }
    )
    persons_df.loc[persons_df["inkomen_decile"] == 0, "inkomen_decile"] = pd.NA

    # --- postcodes (CBS pc6hnr) -------------------------------------------------------------
    postcodes_df = pd.DataFrame(
        {
            "postcode": _s(addrs.postcode),
            "huisnummer": pd.array(addrs.huisnummer, dtype="Int64"),
            "buurt_code": _lookup(tuple(geo.buurt_code), addrs.buurt),
            "wijk_code": _lookup(tuple(geo.wijk_code), geo.buurt_wijk[addrs.buurt]),
            "gemeente_code": _s(np.full(len(addrs.buurt), municipality, dtype=object)),
        }
    )

    # --- school (DUO) with its noise ----------------------------------------------------------
    school_df = _school_frame(rng, careers, pop, bsn, addrs.postcode[addr], no_bsn_share)
    return World(
        persons=persons_df,
        school=school_df,
        postcodes=postcodes_df,
        cbs=cbs,
        municipality=municipality,
        year=year,
        seed=seed,
    )


def _school_frame(
    rng: np.random.Generator,
    careers,
    pop,
    bsn: np.ndarray,
    person_postcode: np.ndarray,
    no_bsn_share: float,
) -> pd.DataFrame:
    """DUO rows: blank BSNs for a share of pupils, 0.5% birth-date typos, 3% outdated postcodes."""
    r = careers.rows
    person = r["person"]
    pupils = np.unique(person)
    n_p = pop.n
    no_bsn = np.zeros(n_p, dtype=bool)
    no_bsn[pupils] = rng.random(len(pupils)) < no_bsn_share
    typo = np.zeros(n_p, dtype=bool)
    typo[pupils] = rng.random(len(pupils)) < 0.005
    outdated = np.zeros(n_p, dtype=bool)
    outdated[pupils] = rng.random(len(pupils)) < 0.03
    birth = pop.birth.astype("datetime64[D]").copy()
    t = np.flatnonzero(typo)
    day = (
        birth[t].astype("datetime64[D]")
        - birth[t].astype("datetime64[M]").astype("datetime64[D]")
        + 1
    )
    day = day.astype(int)
    month = birth[t].astype("datetime64[M]").astype(int) % 12 + 1
    yr = birth[t].astype("datetime64[Y]").astype(int) + 1970
    swap = (day <= 12) & (day != month)
    new_month, new_day = np.where(swap, day, month), np.where(swap, month, day)
    swapped = np.array(
        [f"{y:04d}-{m:02d}-{d:02d}" for y, m, d in zip(yr, new_month, new_day, strict=True)],
        dtype="datetime64[D]",
    )
    birth[t] = np.where(swap, swapped, birth[t] + np.where(rng.random(len(t)) < 0.5, 1, -1))
    postcode = person_postcode.copy()
    o = np.flatnonzero(outdated)
    postcode[o] = person_postcode[rng.integers(0, n_p, len(o))]
    true_bsn = bsn[person]
    shown = np.where(no_bsn[person], "", true_bsn)
    year = r["year"]
    schooljaar = np.char.add(np.char.add(year.astype(str), "-"), (year + 1).astype(str))
    soort = r["soort"]
    return pd.DataFrame(
        {
            "bsn": _s(shown),
            "geboortedatum": birth[person].astype("datetime64[ns]"),
            "geslacht": _s(pop.sex[person]),
            "postcode": _s(postcode[person]),
            "schooljaar": _s(schooljaar),
            "brin": _lookup(tuple(careers.brins), r["brin"]),
            "vestiging": _s(np.char.zfill(r["vestiging"].astype(str), 2)),
            "onderwijssoort": _lookup(SOORT, soort),
            "leerjaar": pd.array(r["leerjaar"], dtype="Int64"),
            "niveau": _lookup(NIVEAU, r["niveau"]),
            "leerweg": _lookup(LEERWEG, r["leerweg"]),
            "sector": _lookup(SECTOR, r["sector"]),
            "schooladvies": _lookup(ADVICE_ORDER, r["advice"]),
            "eindtoets_score": pd.arrays.IntegerArray(r["score"].astype(np.int64), soort != 0),
            "diploma": pd.array(r["diploma"], dtype="boolean"),
            "uitgeschreven": pd.array(r["uitgeschreven"], dtype="boolean"),
            "vsv": pd.array(r["vsv"], dtype="boolean"),
            "true_bsn": _s(true_bsn),
        }
    )
