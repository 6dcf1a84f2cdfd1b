"""Demo population: persons, families and households of a Dutch university city.

Vectorised with numpy. Four kinds of people: local children (born 1996..2024, living
with their family), their parents, students who arrived at 18 (no parents in the
municipality) and other adults (singles and couples). Household income is correlated
with the buurt's SES by rank-matching households to address slots.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from flows.demodata.effects import MIGRATION
from flows.demodata.geography import Geography

WINDOW_START = np.datetime64("2015-10-01")
WINDOW_END = np.datetime64("2024-10-01")
NAT = np.datetime64("NaT")
KID, PARENT, STUDENT, OTHER = 0, 1, 2, 3

# national deciles of standardised disposable household income (log-normal, median ~31k)
_NAT_MU, _SIGMA = 10.35, 0.45
DECILE_BOUNDS = np.exp(_NAT_MU + _SIGMA * ndtri(np.arange(1, 10) / 10))
_MIGR_P = np.array([0.25, 0.12, 0.13, 0.12, 0.06, 0.32])  # non-NL categories, residents
_MIGR_P_STUDENT = np.array([0.45, 0.03, 0.03, 0.04, 0.05, 0.40])


@dataclass
class Population:
    """Person and household arrays; person i belongs to household `household[i]`."""

    kind: np.ndarray
    birth: np.ndarray  # datetime64[D]
    sex: np.ndarray  # 'M' / 'V'
    household: np.ndarray
    mother: np.ndarray  # person index or -1
    father: np.ndarray
    arrival: np.ndarray  # datetime64[D], NaT = lived here before the window / born here
    vertrek: np.ndarray  # datetime64[D], NaT = still living here
    migration: np.ndarray  # index into MIGRATION
    hh_buurt: np.ndarray
    hh_income: np.ndarray  # euro, NaN = unknown
    hh_decile: np.ndarray  # 1..10 (true, also where income is unknown)
    hh_income_known: np.ndarray  # bool

    @property
    def n(self) -> int:
        return len(self.kind)


def _chunk_sizes(rng: np.random.Generator, total: int, sizes, p) -> np.ndarray:
    """Group index for `total` consecutive items, in groups of random size."""
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    draw = rng.choice(sizes, size=total, p=p)
    ends = np.cumsum(draw)
    return np.searchsorted(ends, np.arange(total), side="right")


def _days(rng: np.random.Generator, lo: str, hi: str, size: int) -> np.ndarray:
    a, b = np.datetime64(lo).astype(np.int64), np.datetime64(hi).astype(np.int64)
    return rng.integers(a, b + 1, size).astype("datetime64[D]")


def _years(x: np.ndarray) -> np.ndarray:
    return np.round(x * 365.25).astype(np.int64).astype("timedelta64[D]")


def _match_buurt(
    rng: np.random.Generator, geo: Geography, u: np.ndarray, noise: float
) -> np.ndarray:
    """Buurt per household: richer households (higher u) tend to live in higher-SES buurten."""
    n = len(u)
    cap = rng.multinomial(n, geo.buurt_weight)
    slots = np.repeat(np.arange(geo.n_buurten), cap)
    slot_key = geo.buurt_z[slots] + rng.normal(0, noise, n)
    out = np.empty(n, dtype=np.int64)
    out[np.argsort(u, kind="stable")] = slots[np.argsort(slot_key, kind="stable")]
    return out


def make_population(rng: np.random.Generator, geo: Geography, persons: int) -> Population:
    """Draw `persons` people with families, households, migration background and moves."""
    n_kids = int(0.24 * persons)
    n_students = int(0.18 * persons)
    # --- children and families -----------------------------------------------------------
    kid_birth = _days(rng, "1996-01-01", "2024-09-30", n_kids)
    order = np.argsort(kid_birth.astype(np.int64) + rng.uniform(0, 4 * 365, n_kids))
    fam_sorted = _chunk_sizes(rng, n_kids, [1, 2, 3, 4], [0.35, 0.42, 0.17, 0.06])
    kid_family = np.empty(n_kids, dtype=np.int64)
    kid_family[order] = fam_sorted
    n_fam = int(kid_family.max()) + 1 if n_kids else 0
    oldest = np.full(n_fam, np.iinfo(np.int64).max)
    np.minimum.at(oldest, kid_family, kid_birth.astype(np.int64))
    two_parent = rng.random(n_fam) < 0.8
    mother_birth = oldest.astype("datetime64[D]") - _years(rng.uniform(24, 38, n_fam))
    father_birth = mother_birth - _years(rng.uniform(-3, 6, n_fam))
    n_fathers = int(two_parent.sum())
    n_parents = n_fam + n_fathers
    n_others = persons - n_kids - n_parents - n_students
    if n_others < 0:
        n_students = max(0, n_students + n_others)
        n_others = max(0, persons - n_kids - n_parents - n_students)
    # --- others: adults 29..95, singles and couples -----------------------------------------
    ages = np.arange(29, 96)
    w = np.where(ages < 45, 1.3, np.where(ages < 65, 1.0, np.clip((96 - ages) / 31, 0.05, 1)))
    other_age = rng.choice(ages, n_others, p=w / w.sum()) + rng.random(n_others)
    other_birth = np.datetime64("2024-09-30") - _years(other_age)
    other_hh = _chunk_sizes(rng, n_others, [1, 2], [0.55, 0.45])
    n_other_hh = int(other_hh.max()) + 1 if n_others else 0
    # --- students: arrive at 18/19, many leave after 3..7 years ----------------------------
    st_birth = _days(rng, "1996-01-01", "2006-08-31", n_students)
    st_year = (
        st_birth.astype("datetime64[Y]").astype(int) + 1970 + 18 + (rng.random(n_students) < 0.4)
    )
    st_arrival = np.array([f"{y}-09-01" for y in range(1990, 2030)], dtype="datetime64[D]")[
        st_year - 1990
    ] - rng.integers(0, 45, n_students).astype("timedelta64[D]")
    ok = st_arrival < WINDOW_END
    st_arrival = np.where(ok, st_arrival, WINDOW_END - np.timedelta64(30, "D"))
    # --- persons in one array: kids, mothers, fathers, others, students --------------------
    kind = np.concatenate(
        [
            np.full(n_kids, KID),
            np.full(n_parents, PARENT),
            np.full(n_others, OTHER),
            np.full(n_students, STUDENT),
        ]
    ).astype(np.int8)
    n = len(kind)
    mother_idx = n_kids + np.arange(n_fam)
    father_idx = np.full(n_fam, -1)
    father_idx[two_parent] = n_kids + n_fam + np.arange(n_fathers)
    birth = np.concatenate(
        [kid_birth, mother_birth, father_birth[two_parent], other_birth, st_birth]
    ).astype("datetime64[D]")
    sex = np.concatenate(
        [
            np.where(rng.random(n_kids) < 0.51, "M", "V"),
            np.full(n_fam, "V"),
            np.full(n_fathers, "M"),
            np.where(rng.random(n_others) < 0.49, "M", "V"),
            np.where(rng.random(n_students) < 0.5, "M", "V"),
        ]
    )
    # households: families 0..F-1, others F.., students after
    household = np.concatenate(
        [
            kid_family,
            np.arange(n_fam),
            np.flatnonzero(two_parent),
            n_fam + other_hh,
            n_fam + n_other_hh + np.arange(n_students),
        ]
    ).astype(np.int64)
    n_hh = n_fam + n_other_hh + n_students
    mother = np.full(n, -1, dtype=np.int64)
    father = np.full(n, -1, dtype=np.int64)
    mother[:n_kids] = mother_idx[kid_family]
    father[:n_kids] = father_idx[kid_family]
    unknown = rng.random(n_kids) < 0.03  # foster care, parents never in the municipality
    mother[:n_kids][unknown] = -1
    father[:n_kids][unknown] = -1
    # --- household income, buurt, migration -----------------------------------------------
    hh_kind = np.concatenate(
        [np.zeros(n_fam), np.full(n_other_hh, 1), np.full(n_students, 2)]
    ).astype(np.int8)
    u = rng.normal(0, 1, n_hh) + np.where(hh_kind == 0, 0.1, 0.0)
    u[hh_kind == 2] = rng.normal(-1.6, 0.5, n_students)
    hh_buurt = np.empty(n_hh, dtype=np.int64)
    res = hh_kind < 2
    hh_buurt[res] = _match_buurt(rng, geo, u[res], noise=1.4)
    hh_buurt[~res] = rng.choice(geo.n_buurten, int((~res).sum()), p=geo.buurt_weight)
    income = np.round(np.exp(_NAT_MU - 0.05 + _SIGMA * u), -1)
    decile = 1 + np.searchsorted(DECILE_BOUNDS, income)
    known = rng.random(n_hh) >= 0.02
    p_non_nl = 1 / (1 + np.exp(1.2 + 0.45 * u))
    p_non_nl[hh_kind == 2] = 0.22
    non_nl = rng.random(n_hh) < p_non_nl
    cat = np.where(
        hh_kind == 2,
        1 + rng.choice(6, n_hh, p=_MIGR_P_STUDENT),
        1 + rng.choice(6, n_hh, p=_MIGR_P),
    )
    hh_migration = np.where(non_nl, cat, 0)
    migration = hh_migration[household]
    # --- arrivals and move-outs -------------------------------------------------------------
    arrival = np.full(n, NAT, dtype="datetime64[D]")
    arrival[kind == STUDENT] = st_arrival
    vertrek = np.full(n, NAT, dtype="datetime64[D]")
    youngest = np.full(n_fam, np.iinfo(np.int64).min)
    np.maximum.at(youngest, kid_family, kid_birth.astype(np.int64))
    fam_date = np.maximum(
        _days(rng, "2016-01-01", "2024-09-30", n_fam), (youngest + 30).astype("datetime64[D]")
    )
    fam_moves = (rng.random(n_fam) < 0.07) & (fam_date < WINDOW_END)
    fam_of = np.where(kind <= PARENT, household, 0)
    moving = (kind <= PARENT) & fam_moves[fam_of] if n_fam else np.zeros(n, dtype=bool)
    vertrek[moving] = fam_date[fam_of[moving]]
    oth = kind == OTHER
    oth_moves = oth & (rng.random(n) < 0.08)
    vertrek[oth_moves] = _days(rng, "2015-10-02", "2024-09-30", int(oth_moves.sum()))
    st = np.flatnonzero(kind == STUDENT)
    st_leave = st_arrival + _years(rng.uniform(3, 7, n_students))
    leaves = (rng.random(n_students) < 0.65) & (st_leave < WINDOW_END)
    vertrek[st[leaves]] = st_leave[leaves]
    return Population(
        kind=kind,
        birth=birth,
        sex=sex,
        household=household,
        mother=mother,
        father=father,
        arrival=arrival,
        vertrek=vertrek,
        migration=migration.astype(np.int8),
        hh_buurt=hh_buurt,
        hh_income=np.where(known, income, np.nan),
        hh_decile=decile.astype(np.int8),
        hh_income_known=known,
    )


__all__ = ["MIGRATION", "Population", "make_population"]
