"""School careers with the planted effects, as DUO rows (pupil x school year).

A career is a list of spells (groep 8, a vo track, an mbo programme, hbo), each a run of
consecutive school years with its outcome on the last row. Every draw uses the models in
`effects.py`; rows outside 2015-2016..2023-2024 or outside the pupil's residence are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flows.demodata.effects import ADVICE_ORDER, MIGRATION, VOOROPLEIDING, Effects
from flows.demodata.geography import Geography
from flows.demodata.population import KID, STUDENT, WINDOW_END, Population

FIRST_YEAR, LAST_YEAR = 2015, 2023  # school years 2015-2016 .. 2023-2024
NIVEAU = (
    "groep 8",
    "pro",
    "vmbo-b",
    "vmbo-k",
    "vmbo-gt",
    "havo",
    "vwo",
    "mbo-1",
    "mbo-2",
    "mbo-3",
    "mbo-4",
    "hbo-ba",
)
VO0, MBO0, HBO = 1, 7, 11  # NIVEAU index of pro, mbo-1, hbo-ba
SOORT = ("po", "vo", "mbo", "hbo")
SECTOR = ("techniek", "zorg en welzijn", "economie", "groen", "horeca en toerisme")
LEERWEG = ("BOL", "BBL")
VO_YEARS = np.array([5, 4, 4, 4, 5, 6])  # pro, vmbo-b, vmbo-k, vmbo-gt, havo, vwo
MBO_YEARS = np.array([1, 2, 3, 3])


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _pick(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One category per row of a (n, k) probability matrix."""
    cum = np.cumsum(probs, axis=1)
    return (rng.random((len(probs), 1)) > cum[:, :-1]).sum(axis=1)


@dataclass
class Spells:
    """Column arrays of spells; appended to with `add`."""

    cols: dict[str, list[np.ndarray]]

    @classmethod
    def empty(cls) -> Spells:
        names = [
            "person",
            "soort",
            "start",
            "years",
            "leerjaar0",
            "niveau_a",
            "niveau_b",
            "leerweg",
            "sector",
            "brin",
            "vestiging",
            "advice",
            "score",
            "diploma",
            "uitgeschreven",
            "vsv",
        ]
        return cls({k: [] for k in names})

    def add(self, n: int, **values) -> None:
        defaults = {"leerjaar0": 1, "leerweg": -1, "sector": -1, "vestiging": 0, "advice": -1}
        defaults |= {"score": -1, "diploma": False, "uitgeschreven": False, "vsv": False}
        for key in self.cols:
            val = values.get(key, defaults.get(key))
            if val is None:
                raise KeyError(key)
            self.cols[key].append(np.broadcast_to(np.asarray(val), (n,)).copy())

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) if v else np.zeros(0) for k, v in self.cols.items()}


@dataclass
class Careers:
    """DUO rows as code arrays (see NIVEAU, SOORT, ...) plus school codes."""

    rows: dict[str, np.ndarray]
    brins: np.ndarray


def _brins(rng: np.random.Generator, n: int) -> np.ndarray:
    letters = np.array(list("ABCDEFGHJKLMNPRSTUVWXYZ"))
    codes: list[str] = []
    seen: set[str] = set()
    while len(codes) < n:
        code = f"{rng.integers(0, 100):02d}{rng.choice(letters)}{rng.choice(letters)}"
        if code not in seen:
            seen.add(code)
            codes.append(code)
    return np.array(codes)


def make_careers(
    rng: np.random.Generator,
    pop: Population,
    geo: Geography,
    wijk_tertile: np.ndarray,
    effects: Effects,
    persons: int,
) -> Careers:
    """Simulate careers of local children (born 1996..2012) and hbo students; return DUO rows.

    Also sets `pop.vertrek` for mbo graduates who move out after their diploma.
    """
    e = effects
    n_po = max(4, round(persons / 3300))
    n_vo = max(3, round(persons / 16000))
    brins = _brins(rng, n_po + n_vo + 4)
    po_b, vo_b = np.arange(n_po), n_po + np.arange(n_vo)
    mbo_b, groen_b, hbo_b = n_po + n_vo + np.arange(2), n_po + n_vo + 2, n_po + n_vo + 3
    sp = Spells.empty()

    birth_year = pop.birth.astype("datetime64[Y]").astype(int) + 1970
    birth_month = pop.birth.astype("datetime64[M]").astype(int) % 12 + 1
    kid = np.flatnonzero((pop.kind == KID) & (birth_year <= 2012))
    n = len(kid)
    hh = pop.household[kid]
    buurt = pop.hh_buurt[hh]
    wijk = geo.buurt_wijk[buurt]
    tert = wijk_tertile[wijk].astype(float)
    dec = pop.hh_decile[hh].astype(float)
    mig = pop.migration[kid]
    by = birth_year[kid]
    g8 = by + 11 + (birth_month[kid] >= 10)

    # --- groep 8: score and advice (ordered logit) --------------------------------------
    score = 535 + e.score_income * (dec - 5.5) + e.score_ses * (tert - 2)
    score = np.clip(np.round(score + rng.normal(0, e.score_sd, n)), 501, 550).astype(int)
    latent = (
        e.advice_score * (score - 535) / 10
        + e.advice_income * (dec - 5.5)
        + e.advice_ses * (tert - 2)
        + rng.logistic(0, 1, n)
    )
    advice = np.searchsorted(np.asarray(e.advice_cuts), latent, side="left")
    own_wijk_school = po_b[wijk % n_po]
    po_brin = np.where(rng.random(n) < 0.85, own_wijk_school, rng.choice(po_b, n))
    sp.add(
        n,
        person=kid,
        soort=0,
        start=g8,
        years=1,
        niveau_a=0,
        niveau_b=0,
        brin=po_brin,
        advice=advice,
        score=score,
    )

    # --- vo -------------------------------------------------------------------------
    coin = rng.random(n) < 0.5
    lvl0 = np.select(
        [advice == 0, advice == 1, advice == 2, advice == 3, advice == 4, advice == 5],
        [0, np.where(coin, 1, 2), 3, np.where(coin, 3, 4), 4, np.where(coin, 4, 5)],
        5,
    )
    lvl3 = np.where((lvl0 >= 2) & (rng.random(n) < 0.10), lvl0 - 1, lvl0)
    dur = VO_YEARS[lvl3]
    vo_start = g8 + 1
    vmbo = lvl3 <= 3
    p_drop = _logistic(
        e.vo_dropout_intercept
        + e.vo_dropout_ses * (tert - 2)
        + e.vo_dropout_income * (dec - 5.5)
        + e.vo_dropout_vmbo * vmbo
    )
    drop = rng.random(n) < p_drop
    drop_at = rng.integers(2, dur)  # leerjaar of leaving, 2..dur-1
    vo_years = np.where(drop, drop_at, dur)
    pro = lvl3 == 0
    fail = ~drop & ~pro & (rng.random(n) < e.vo_exam_fail)
    grad = ~drop & ~pro & ~fail
    r = rng.random(n)
    # prior education for mbo (index into VOOROPLEIDING) and where each pupil goes next
    voorop = np.full(n, -1)
    to_mbo = np.zeros(n, dtype=bool)
    to_hbo = np.zeros(n, dtype=bool)
    vsv_end = drop.copy()
    vmbo_grad = grad & (lvl3 >= 1) & (lvl3 <= 3)
    to_mbo |= vmbo_grad & (r < 0.95)
    vsv_end |= vmbo_grad & (r >= 0.95)
    voorop = np.where(vmbo_grad, lvl3 - 1, voorop)  # vmbo-b/k/gt -> 0/1/2
    havo_grad, vwo_grad = grad & (lvl3 == 4), grad & (lvl3 == 5)
    to_hbo |= (havo_grad & (r < 0.70)) | (vwo_grad & (r < 0.30))
    mbo4_from_ho = (havo_grad & (r >= 0.70) & (r < 0.85)) | (vwo_grad & (r >= 0.30) & (r < 0.35))
    to_mbo |= mbo4_from_ho
    voorop = np.where(mbo4_from_ho, np.where(havo_grad, 3, 4), voorop)
    pro_mbo = pro & (r < 0.45)
    to_mbo |= pro_mbo
    voorop = np.where(pro_mbo, 5, voorop)
    fail_mbo = fail & (r < 0.60)
    to_mbo |= fail_mbo
    vsv_end |= fail & (r >= 0.60)
    voorop = np.where(fail_mbo, 6, voorop)
    vo_brin = rng.choice(vo_b, n)
    vo_vest = rng.integers(0, 3, n)
    sp.add(
        n,
        person=kid,
        soort=1,
        start=vo_start,
        years=vo_years,
        niveau_a=VO0 + lvl0,
        niveau_b=VO0 + lvl3,
        brin=vo_brin,
        vestiging=vo_vest,
        diploma=grad,
        uitgeschreven=drop,
        vsv=vsv_end,
    )

    # --- hbo after havo/vwo -----------------------------------------------------------------
    _hbo(rng, sp, kid[to_hbo], (vo_start + vo_years)[to_hbo], hbo_b)

    # --- mbo ------------------------------------------------------------------------------
    m = np.flatnonzero(to_mbo)
    nm = len(m)
    vp = voorop[m]
    start = (vo_start + vo_years)[m]
    ses_m, dec_m, mig_m, by_m = tert[m] - 2, dec[m] - 5.5, mig[m], by[m]
    level_p = np.zeros((nm, 4))
    table = {
        0: [0.2, 0.8, 0, 0],
        1: [0, 0.4, 0.6, 0],
        2: [0, 0.05, 0.3, 0.65],
        3: [0, 0, 0, 1],
        4: [0, 0, 0, 1],
        5: [1, 0, 0, 0],
        6: [0.4, 0.4, 0.2, 0],
    }
    for k, row in table.items():
        level_p[vp == k] = row
    ho_fail = (vp == 6) & (lvl3[m] >= 4)
    level_p[ho_fail] = [0, 0, 0.3, 0.7]
    lv = _pick(rng, level_p)
    bbl = rng.random(nm) < np.array([0.1, 0.25, 0.15, 0.08])[lv]
    sector = rng.choice(5, nm, p=[0.27, 0.27, 0.26, 0.07, 0.13])
    mbo_brin = np.where(sector == 3, groen_b, rng.choice(mbo_b, nm))
    vest = rng.integers(1, 7, nm)
    vo_names = np.array(VOOROPLEIDING)
    uit_v = np.array([e.uitval_vooropleiding[v] for v in vo_names])[vp]
    sw_v = np.array([e.switch_vooropleiding[v] for v in vo_names])[vp]
    uit_l = np.array([e.uitval_level[f"mbo-{k}"] for k in range(1, 5)])[lv]
    p_uit = _logistic(
        e.uitval_intercept + uit_v + e.uitval_ses * ses_m + e.uitval_bbl * bbl + uit_l
    )
    uit = rng.random(nm) < p_uit
    p_sw = _logistic(e.switch_intercept + sw_v + e.switch_ses * ses_m + e.switch_bbl * bbl)
    sw = ~uit & (rng.random(nm) < p_sw)
    has_sk = (vp == 3) | (vp == 4)  # havo/vwo diploma is a start qualification

    def young(year: np.ndarray, sel: np.ndarray | slice = slice(None)) -> np.ndarray:
        return (year - by_m[sel]) < 23

    # the programme that continues: the first one (from leerjaar 2) or, after a switch, a new one
    lv2 = np.where(sw & (rng.random(nm) < 0.3), np.maximum(lv - 1, 0), lv)
    sector2 = np.where(sw, (sector + rng.integers(1, 5, nm)) % 5, sector)
    brin2 = np.where(sector2 == 3, groen_b, np.where(sw, rng.choice(mbo_b, nm), mbo_brin))
    dur = np.where(lv2 == 3, np.where(rng.random(nm) < 0.25, 4, 3), MBO_YEARS[lv2])
    cont_start = np.where(sw, start + 1, start + 1)
    cont_leerjaar0 = np.where(sw, 1, 2)
    cont_years = np.where(sw, dur, dur - 1)
    later_drop = ~uit & (cont_years >= 1) & (rng.random(nm) < e.mbo_later_dropout)
    drop_len = rng.integers(1, np.maximum(cont_years, 1) + 1)
    cont_len = np.where(later_drop, np.minimum(drop_len, cont_years), cont_years)
    finish = ~uit & ~later_drop
    # programmes that end after year 1 (mbo-1, not switched): the diploma is on the first row
    one_year = finish & (cont_years == 0)
    has_cont = ~uit & (cont_len >= 1)
    # first year of the first programme
    sp.add(
        nm,
        person=kid[m],
        soort=2,
        start=start,
        years=1,
        niveau_a=MBO0 + lv,
        niveau_b=MBO0 + lv,
        leerweg=bbl.astype(int),
        sector=sector,
        brin=mbo_brin,
        vestiging=vest,
        diploma=one_year,
        uitgeschreven=uit,
        vsv=uit & ~has_sk & young(start),
    )
    c = np.flatnonzero(has_cont)
    end_year = cont_start + cont_len - 1
    sp.add(
        len(c),
        person=kid[m][c],
        soort=2,
        start=cont_start[c],
        years=cont_len[c],
        leerjaar0=cont_leerjaar0[c],
        niveau_a=MBO0 + lv2[c],
        niveau_b=MBO0 + lv2[c],
        leerweg=bbl[c].astype(int),
        sector=sector2[c],
        brin=brin2[c],
        vestiging=vest[c],
        diploma=finish[c],
        uitgeschreven=later_drop[c],
        vsv=later_drop[c] & ~has_sk[c] & young(end_year[c], c),
    )
    dipl_year = np.where(one_year, start, end_year)  # school year whose summer ends it

    # --- after the mbo diploma ------------------------------------------------------------
    mig_names = np.array(MIGRATION)
    mv_shift = np.array([e.move_out_migration[x] for x in mig_names])[mig_m]
    moves = finish & (rng.random(nm) < _logistic(e.move_out_intercept + mv_shift))
    leave = np.array([f"{y}-08-01" for y in range(1990, 2040)], dtype="datetime64[D]")[
        dipl_year + 1 - 1990
    ] + rng.integers(0, 240, nm).astype("timedelta64[D]")
    who = kid[m][moves]
    when = leave[moves]
    keep = when < WINDOW_END
    cur = pop.vertrek[who[keep]]
    pop.vertrek[who[keep]] = np.where(np.isnat(cur) | (cur > when[keep]), when[keep], cur)
    stay = finish & ~moves
    hbo_shift = np.array([e.hbo_migration[x] for x in mig_names])[mig_m]
    p_hbo = _logistic(e.hbo_intercept + e.hbo_income * dec_m + hbo_shift)
    go_hbo = stay & (lv2 == 3) & (rng.random(nm) < p_hbo)
    _hbo(rng, sp, kid[m][go_hbo], dipl_year[go_hbo] + 1, hbo_b)
    verv = stay & (lv2 < 3) & (rng.random(nm) < e.mbo_vervolg)
    v = np.flatnonzero(verv)
    lv3 = lv2[v] + 1
    sp.add(
        len(v),
        person=kid[m][v],
        soort=2,
        start=dipl_year[v] + 1,
        years=MBO_YEARS[lv3],
        niveau_a=MBO0 + lv3,
        niveau_b=MBO0 + lv3,
        leerweg=bbl[v].astype(int),
        sector=sector2[v],
        brin=brin2[v],
        vestiging=vest[v],
        diploma=True,
    )

    # --- incoming students at hbo -----------------------------------------------------------
    st = np.flatnonzero((pop.kind == STUDENT) & (rng.random(pop.n) < 0.4))
    arr = pop.arrival[st]
    arr_year = arr.astype("datetime64[Y]").astype(int) + 1970
    _hbo(rng, sp, st, arr_year, hbo_b)

    return Careers(rows=_expand(sp.arrays(), pop), brins=brins)


def _hbo(
    rng: np.random.Generator, sp: Spells, person: np.ndarray, start: np.ndarray, brin: int
) -> None:
    """Bachelor spells of 4 years; 25% leave after year 1."""
    n = len(person)
    quit_ = rng.random(n) < 0.25
    sp.add(
        n,
        person=person,
        soort=3,
        start=start,
        years=np.where(quit_, 1, 4),
        niveau_a=HBO,
        niveau_b=HBO,
        brin=brin,
        diploma=~quit_ & (rng.random(n) < 0.9),
        uitgeschreven=quit_,
    )


def _expand(s: dict[str, np.ndarray], pop: Population) -> dict[str, np.ndarray]:
    """Spells -> rows, kept when inside the window and while the pupil lived here (1 October)."""
    years = s["years"].astype(np.int64)
    idx = np.repeat(np.arange(len(years)), years)
    first = np.concatenate([[0], np.cumsum(years)[:-1]]) if len(years) else years
    k = np.arange(len(idx)) - first[idx]
    year = s["start"][idx].astype(np.int64) + k
    person = s["person"][idx].astype(np.int64)
    teldatum = np.array(
        [np.datetime64(f"{y}-10-01") for y in range(1990, 2040)], dtype="datetime64[D]"
    )[np.clip(year, 1990, 2039) - 1990]
    arrival, vertrek = pop.arrival[person], pop.vertrek[person]
    keep = (
        (year >= FIRST_YEAR)
        & (year <= LAST_YEAR)
        & (np.isnat(arrival) | (arrival <= teldatum))
        & (np.isnat(vertrek) | (vertrek > teldatum))
        & (pop.birth[person] < teldatum)
    )
    last = k == years[idx] - 1
    idx, k, year, person, last = idx[keep], k[keep], year[keep], person[keep], last[keep]
    out = {
        "person": person,
        "year": year,
        "soort": s["soort"][idx].astype(np.int8),
        "leerjaar": (s["leerjaar0"][idx] + k).astype(np.int64),
        "niveau": np.where(
            (s["soort"][idx] == 1) & (k >= 2), s["niveau_b"][idx], s["niveau_a"][idx]
        ).astype(np.int8),
        "leerweg": s["leerweg"][idx].astype(np.int8),
        "sector": s["sector"][idx].astype(np.int8),
        "brin": s["brin"][idx].astype(np.int32),
        "vestiging": s["vestiging"][idx].astype(np.int8),
        "advice": s["advice"][idx].astype(np.int8),
        "score": s["score"][idx].astype(np.int16),
        "diploma": s["diploma"][idx].astype(bool) & last,
        "uitgeschreven": s["uitgeschreven"][idx].astype(bool) & last,
        "vsv": s["vsv"][idx].astype(bool) & last,
    }
    out["leerjaar"] = np.where(out["soort"] == 0, 8, out["leerjaar"])
    order = np.lexsort((out["soort"], out["year"], out["person"]))
    return {key: val[order] for key, val in out.items()}


__all__ = ["ADVICE_ORDER", "LEERWEG", "NIVEAU", "SECTOR", "SOORT", "Careers", "make_careers"]
