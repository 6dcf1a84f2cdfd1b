"""Demo geography: wijken and buurten with an SES gradient, their addresses, CBS figures.

The wijk SES tertile that drives the planted effects is computed from the CBS figures
exactly as the analysis table computes it (`flows.pipeline.analysis.ses_tertiles`), so
the effects are stated in the variable the teams see.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

WIJK_NAMES = (
    "Centrum",
    "Oude Wijken",
    "Zuid",
    "Oost",
    "Noordwest",
    "Noordoost",
    "West",
    "Haren",
    "Ten Boer",
    "Hoogkerk",
    "Zuidoost",
    "Stadshavens",
)
STEDELIJKHEID = (
    "Zeer sterk stedelijk",
    "Sterk stedelijk",
    "Matig stedelijk",
    "Weinig stedelijk",
    "Niet stedelijk",
)
ADDRESSES_PER_PC6 = 18
PC6_PER_PC4 = 250
_LETTERS = [
    a + b
    for a in "ABCDEFGHIJKLMNOPRSTVWXZ"
    for b in "ABCDEFGHIJKLMNOPRSTVWXZ"
    if a + b not in ("SA", "SD", "SS")
]


@dataclass
class Geography:
    """Wijken and buurten of the demo municipality (index = buurt number 0..B-1)."""

    municipality: str
    wijk_code: np.ndarray  # per wijk
    wijk_name: np.ndarray
    wijk_z: np.ndarray  # SES latent per wijk
    buurt_code: np.ndarray  # per buurt
    buurt_name: np.ndarray
    buurt_wijk: np.ndarray  # wijk index per buurt
    buurt_z: np.ndarray  # SES latent per buurt
    buurt_weight: np.ndarray  # population share per buurt (sums to 1)
    buurt_gem_inkomen: np.ndarray  # invented CBS mean income per inhabitant, x1000 euro
    buurt_pct_laag: np.ndarray
    wijk_gem_inkomen: np.ndarray

    @property
    def n_buurten(self) -> int:
        return len(self.buurt_code)


def make_geography(rng: np.random.Generator, municipality: str, streets: np.ndarray) -> Geography:
    """12 wijken with 6..12 buurten each; SES varies between and within wijken."""
    digits = municipality[2:]
    n_wijk = len(WIJK_NAMES)
    wijk_z = rng.permutation(np.linspace(-1.3, 1.3, n_wijk)) + rng.normal(0, 0.05, n_wijk)
    per_wijk = rng.integers(6, 13, n_wijk)
    buurt_wijk = np.repeat(np.arange(n_wijk), per_wijk)
    buurt_no = np.concatenate([np.arange(1, k + 1) for k in per_wijk])
    n_b = len(buurt_wijk)
    buurt_z = wijk_z[buurt_wijk] + rng.normal(0, 0.3, n_b)
    weight = rng.lognormal(0, 0.6, n_b)
    tiny = rng.random(n_b) < 0.05  # industrial estates, parks: CBS suppresses their income
    weight[tiny] *= 0.015
    weight /= weight.sum()
    buurt_inc = np.round(26 + 5.5 * buurt_z + rng.normal(0, 0.8, n_b), 1)
    pct_laag = np.round(np.clip(10 - 4 * buurt_z + rng.normal(0, 1.2, n_b), 1, 45), 1)
    wijk_inc = np.array(
        [
            np.average(buurt_inc[buurt_wijk == w], weights=weight[buurt_wijk == w])
            for w in range(n_wijk)
        ]
    )
    # keep the wijk income order equal to the wijk SES order (the planted tertiles)
    wijk_inc = np.round(26 + 5.5 * wijk_z, 1) * 0.5 + np.round(wijk_inc, 1) * 0.5
    wijk_inc = np.round(wijk_inc, 1)
    return Geography(
        municipality=municipality,
        wijk_code=np.array([f"WK{digits}{w + 1:02d}" for w in range(n_wijk)]),
        wijk_name=np.array(WIJK_NAMES),
        wijk_z=wijk_z,
        buurt_code=np.array(
            [f"BU{digits}{w + 1:02d}{b:02d}" for w, b in zip(buurt_wijk, buurt_no, strict=True)]
        ),
        buurt_name=rng.choice(streets, n_b, replace=False)
        if len(streets) >= n_b
        else streets[:n_b],
        buurt_wijk=buurt_wijk,
        buurt_z=buurt_z,
        buurt_weight=weight,
        buurt_gem_inkomen=buurt_inc,
        buurt_pct_laag=pct_laag,
        wijk_gem_inkomen=wijk_inc,
    )


@dataclass
class Addresses:
    """All addresses of the municipality; household h lives at address `household_address[h]`."""

    postcode: np.ndarray  # "9711AB"
    huisnummer: np.ndarray
    huisletter: np.ndarray  # "" or one capital
    straat: np.ndarray
    buurt: np.ndarray  # buurt index


def make_addresses(
    rng: np.random.Generator, geo: Geography, household_buurt: np.ndarray, streets: np.ndarray
) -> tuple[Addresses, np.ndarray]:
    """Addresses per buurt (every household one, plus 5% empty), grouped in PC6 blocks.

    Returns the addresses and, per household, the index of its address.
    """
    counts = np.bincount(household_buurt, minlength=geo.n_buurten)
    n_addr = counts + np.ceil(counts * 0.05).astype(int) + 1
    pc6_per_buurt = np.ceil(n_addr / ADDRESSES_PER_PC6).astype(int)
    pc6_first = np.concatenate([[0], np.cumsum(pc6_per_buurt)[:-1]])
    addr_buurt = np.repeat(np.arange(geo.n_buurten), n_addr)
    addr_first = np.concatenate([[0], np.cumsum(n_addr)[:-1]])
    within = np.arange(len(addr_buurt)) - addr_first[addr_buurt]
    pc6_idx = pc6_first[addr_buurt] + within // ADDRESSES_PER_PC6
    pc4 = 9711 + pc6_idx // PC6_PER_PC4
    letters = np.array(_LETTERS)[pc6_idx % PC6_PER_PC4]
    postcode = np.char.add(pc4.astype(str), letters)
    n_pc6 = int(pc6_per_buurt.sum())
    street_of_pc6 = rng.choice(streets, n_pc6)
    start_no = rng.integers(1, 120, n_pc6)
    # a step of 2 per address keeps house numbers unique within a PC6 (one side of a street)
    huisnummer = start_no[pc6_idx] + (within % ADDRESSES_PER_PC6) * 2
    huisletter = np.where(rng.random(len(pc6_idx)) < 0.06, "A", "")
    addrs = Addresses(
        postcode=postcode,
        huisnummer=huisnummer.astype(np.int64),
        huisletter=huisletter,
        straat=street_of_pc6[pc6_idx],
        buurt=addr_buurt,
    )
    # households: each takes one of its buurt's addresses, in random order
    n_hh = len(household_buurt)
    hh_first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    perm = rng.permutation(n_hh)
    order = perm[np.argsort(household_buurt[perm], kind="stable")]
    rank = np.empty(n_hh, dtype=np.int64)
    rank[order] = np.arange(n_hh) - hh_first[household_buurt[order]]
    household_address = addr_first[household_buurt] + rank
    return addrs, household_address


def cbs_frame(
    geo: Geography, residents_buurt: np.ndarray, young_buurt: np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    """Canonical CBS frame: gemeente, wijken, buurten with invented figures.

    `residents_buurt` / `young_buurt` are inhabitant counts (all / aged 0-14) per buurt on the
    reference date; buurten under 50 inhabitants get suppressed (NA) income figures.
    """
    n_b = geo.n_buurten
    bijstand_rate = np.clip(0.03 - 0.015 * geo.buurt_z, 0.002, 0.09)
    bijstand_b = np.round(residents_buurt * bijstand_rate / 5) * 5
    stedelijk_b = np.clip(np.round(1 + 0.6 * np.abs(geo.buurt_z) + rng.random(n_b)), 1, 5)
    suppressed = residents_buurt < 50
    buurt = pd.DataFrame(
        {
            "region_code": geo.buurt_code,
            "region_type": "buurt",
            "name": geo.buurt_name,
            "inwoners": residents_buurt,
            "inwoners_0_15": young_buurt,
            "gem_inkomen_per_inwoner": np.where(suppressed, np.nan, geo.buurt_gem_inkomen),
            "pct_laag_inkomen": np.where(suppressed, np.nan, geo.buurt_pct_laag),
            "bijstand": np.where(suppressed, np.nan, bijstand_b),
            "stedelijkheid": np.array(STEDELIJKHEID)[stedelijk_b.astype(int) - 1],
        }
    )
    n_w = len(geo.wijk_code)
    res_w = np.bincount(geo.buurt_wijk, weights=residents_buurt, minlength=n_w)
    young_w = np.bincount(geo.buurt_wijk, weights=young_buurt, minlength=n_w)
    bij_w = np.bincount(geo.buurt_wijk, weights=bijstand_b, minlength=n_w)
    laag_w = np.round(
        np.bincount(
            geo.buurt_wijk, weights=geo.buurt_pct_laag * (residents_buurt + 1), minlength=n_w
        )
        / np.bincount(geo.buurt_wijk, weights=residents_buurt + 1, minlength=n_w),
        1,
    )
    wijk = pd.DataFrame(
        {
            "region_code": geo.wijk_code,
            "region_type": "wijk",
            "name": geo.wijk_name,
            "inwoners": res_w,
            "inwoners_0_15": young_w,
            "gem_inkomen_per_inwoner": geo.wijk_gem_inkomen,
            "pct_laag_inkomen": laag_w,
            "bijstand": bij_w,
            "stedelijkheid": "Zeer sterk stedelijk",
        }
    )
    total = residents_buurt.sum()
    gem = pd.DataFrame(
        {
            "region_code": [geo.municipality],
            "region_type": ["gemeente"],
            "name": ["Groningen"],
            "inwoners": [total],
            "inwoners_0_15": [young_buurt.sum()],
            "gem_inkomen_per_inwoner": [
                round(float(np.average(geo.wijk_gem_inkomen, weights=res_w + 1)), 1)
            ],
            "pct_laag_inkomen": [round(float(np.average(laag_w, weights=res_w + 1)), 1)],
            "bijstand": [bij_w.sum()],
            "stedelijkheid": ["Zeer sterk stedelijk"],
        }
    )
    out = pd.concat([gem, wijk, buurt], ignore_index=True)
    for col in ("inwoners", "inwoners_0_15", "bijstand"):
        out[col] = pd.array(np.round(out[col].to_numpy(dtype=float)), dtype="Float64").astype(
            "Int64"
        )
    for col in ("gem_inkomen_per_inwoner", "pct_laag_inkomen"):
        out[col] = out[col].astype("Float64")
    return out
