"""Name and street pools (Faker nl_NL, built once) and valid, unique BSNs.

Faker is called only to fill small pools; persons then sample from the pools with numpy,
so 2,000,000 persons cost no more Faker calls than 2,000.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from faker import Faker

# pools for people with a Turkish/Moroccan background (cp1252-safe spellings)
_TR_MA_MALE = [
    "Mohammed",
    "Ahmed",
    "Yusuf",
    "Ayoub",
    "Bilal",
    "Emre",
    "Mehmet",
    "Mustafa",
    "Hamza",
    "Omar",
    "Ilias",
    "Adam",
    "Anas",
]
_TR_MA_FEMALE = [
    "Fatima",
    "Aisha",
    "Yasmina",
    "Elif",
    "Zeynep",
    "Nour",
    "Imane",
    "Salma",
    "Hiba",
    "Meryem",
    "Esra",
    "Sara",
    "Ilham",
]
_TR_MA_SURNAMES = [
    "El Amrani",
    "Bakkali",
    "Öztürk",
    "Çelik",
    "Yildiz",
    "Kaya",
    "Demir",
    "El Idrissi",
    "Benali",
    "Aydin",
    "Bouzid",
    "Özdemir",
    "Koç",
    "Ait Taleb",
    "Şimşek",
]
_EXTRA_SURNAMES = (
    "Müller",
    "Gómez",
    "Kowalski",
    "Dvořák",
    "Lefèvre",
    "Søndergaard",
    "Jansen-Ørsted",
)
ELFPROEF_WEIGHTS = np.array([9, 8, 7, 6, 5, 4, 3, 2, -1])


def _cp1252(names: set[str]) -> np.ndarray:
    ok = []
    for name in sorted(names):
        try:
            name.encode("cp1252")
        except UnicodeEncodeError:
            continue
        ok.append(name)
    return np.array(ok, dtype=object)


@dataclass
class Pools:
    """Sorted, cp1252-safe pools to sample from."""

    male: np.ndarray
    female: np.ndarray
    surnames: np.ndarray
    streets: np.ndarray
    tm_male: np.ndarray
    tm_female: np.ndarray
    tm_surnames: np.ndarray


def make_pools(seed: int) -> Pools:
    """A few thousand names and streets from Faker nl_NL, deterministic for `seed`."""
    fake = Faker("nl_NL")
    fake.seed_instance(seed)
    male = {fake.first_name_male() for _ in range(1500)}
    female = {fake.first_name_female() for _ in range(1500)}
    surnames = {fake.last_name() for _ in range(3000)} | set(_EXTRA_SURNAMES)
    streets = {fake.street_name() for _ in range(2500)}
    return Pools(
        male=_cp1252(male),
        female=_cp1252(female),
        surnames=_cp1252(surnames),
        streets=_cp1252(streets),
        tm_male=_cp1252(set(_TR_MA_MALE)),
        tm_female=_cp1252(set(_TR_MA_FEMALE)),
        tm_surnames=_cp1252(set(_TR_MA_SURNAMES)),
    )


def elfproef(bsn: str) -> bool:
    """True when a 9-digit BSN passes the 11-test."""
    if len(bsn) != 9 or not bsn.isdigit():
        return False
    return int(np.dot([int(c) for c in bsn], ELFPROEF_WEIGHTS)) % 11 == 0


def make_bsns(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` unique 9-digit BSNs (leading digit 1..6) that pass the elfproef, as strings."""
    out = np.zeros(0, dtype=np.int64)
    while len(out) < n:
        prefix = rng.integers(10_000_000, 70_000_000, int(n * 1.3) + 16)
        digits = (prefix[:, None] // 10 ** np.arange(7, -1, -1)) % 10
        check = (digits * ELFPROEF_WEIGHTS[:8]).sum(axis=1) % 11
        valid = check <= 9
        cand = prefix[valid] * 10 + check[valid]
        merged = np.concatenate([out, cand])
        _, first = np.unique(merged, return_index=True)
        out = merged[np.sort(first)]
    return out[:n].astype("U9")


def sample_first_names(
    rng: np.random.Generator, pools: Pools, sex: np.ndarray, tm: np.ndarray
) -> np.ndarray:
    """1-3 first names per person, from the pool that fits sex and background."""
    n = len(sex)
    male = sex == "M"
    parts = []
    for _ in range(3):
        name = np.where(
            male,
            pools.male[rng.integers(0, len(pools.male), n)],
            pools.female[rng.integers(0, len(pools.female), n)],
        )
        name_tm = np.where(
            male,
            pools.tm_male[rng.integers(0, len(pools.tm_male), n)],
            pools.tm_female[rng.integers(0, len(pools.tm_female), n)],
        )
        parts.append(np.where(tm, name_tm, name))
    count = rng.choice([1, 2, 3], n, p=[0.35, 0.45, 0.20])
    full = parts[0].astype(object)
    for i in (1, 2):
        full = np.where(count > i, full + " " + parts[i].astype(object), full)
    return full
