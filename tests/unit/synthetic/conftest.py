"""Small analysis tables for the twin tests (a few thousand invented pupils, schema-shaped).

Planted: advice rises with parents' income decile at equal test score, so a twin that
flattens that gradient fails its fidelity check.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from synthetic.schema import TableSchema

SCHEMA_FILE = Path(__file__).parents[3] / "flows" / "schemas" / "analysis_table.yaml"
ADVICE = ["pro", "vmbo-b/k", "vmbo-gt", "vmbo-gt/havo", "havo", "havo/vwo", "vwo"]
VO = ["pro", "vmbo-b", "vmbo-k", "vmbo-gt", "havo", "vwo"]
MIGRATION = [
    "Nederland", "Europa (exclusief Nederland)", "Turkije", "Marokko", "Suriname",
    "Nederlandse Cariben", "Overig buiten Europa",
]  # fmt: skip


def schema_dict() -> dict:
    return yaml.safe_load(SCHEMA_FILE.read_text(encoding="utf-8"))


def make_table(n: int = 3000, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    wijken = [f"WK0014{i:02d}" for i in range(1, 7)]
    ses_of = dict(zip(wijken, [1, 1, 2, 2, 3, 3], strict=True))
    income_of = dict(zip(wijken, [22.1, 24.3, 28.0, 29.5, 34.2, 38.9], strict=True))
    wijk = rng.choice(wijken, n)
    buurt = np.array([f"BU{w[2:]}{rng.integers(1, 6):02d}" for w in wijk])
    pct = {b: round(float(5 + (zlib.crc32(b.encode()) % 200) / 10), 1) for b in set(buurt)}
    ses = np.array([ses_of[w] for w in wijk])
    decile = np.clip(np.round(rng.normal(3 + 1.6 * ses, 2.2)), 1, 10).astype(int)
    score = np.clip(np.round(535 + 0.9 * (decile - 5.5) + 1.5 * (ses - 2) + rng.normal(0, 8, n)),
                    501, 550).astype(int)  # fmt: skip
    latent = 0.25 * (score - 535) + 0.45 * (decile - 5.5) + rng.logistic(0, 1, n)
    advice_idx = np.digitize(latent, [-4.5, -3, -1.5, -0.5, 0.8, 2.2])
    vo_idx = np.clip(advice_idx - 1 + rng.integers(0, 2, n), 0, 5)
    mbo = rng.random(n) < np.where(advice_idx <= 3, 0.7, 0.15)
    low = rng.random(n)
    schools = [f"{10 + i:02d}{'ABCDEFGHJKLMN'[i]}X" for i in range(12)]
    school_of = {w: schools[2 * i : 2 * i + 2] for i, w in enumerate(wijken)}  # schools near home
    df = pd.DataFrame(
        {
            "pupil_id": [f"{h:064x}" for h in rng.integers(0, 2**62, n)],
            "link_method": rng.choice(["exact", "probabilistic"], n, p=[0.9, 0.1]),
            "geboortejaar": rng.integers(2006, 2012, n),
            "geboortemaand": rng.integers(1, 13, n),
            "geslacht": rng.choice(["M", "V"], n),
            "migratieachtergrond": rng.choice(
                MIGRATION, n, p=[0.7, 0.08, 0.06, 0.06, 0.05, 0.02, 0.03]
            ),
            "inkomen_decile": pd.Categorical(
                np.where(rng.random(n) < 0.04, np.nan, decile),
                categories=list(range(1, 11)),
                ordered=True,
            ),
            "buurt_code": buurt,
            "wijk_code": wijk,
            "wijk_gem_inkomen": [income_of[w] for w in wijk],
            "buurt_pct_laag_inkomen": [pct[b] for b in buurt],
            "wijk_ses_tertiel": pd.Categorical(ses, categories=[1, 2, 3], ordered=True),
            "po_schooljaar": rng.choice(["2016-2017", "2017-2018", "2018-2019"], n),
            "po_brin": [school_of[w][k] for w, k in zip(wijk, rng.integers(0, 2, n), strict=True)],
            "eindtoets_score": score,
            "schooladvies": pd.Categorical.from_codes(advice_idx, ADVICE, ordered=True),
            "vo_niveau_leerjaar3": pd.Categorical.from_codes(vo_idx, VO, ordered=True),
            "vo_diploma": pd.array(rng.random(n) < 0.6, dtype="boolean"),
            "vsv": pd.array(low < np.where(ses == 1, 0.12, 0.04), dtype="boolean"),
            "mbo_instroom_schooljaar": np.where(
                mbo, rng.choice(["2020-2021", "2021-2022"], n), None
            ),
            "mbo_niveau": pd.Categorical(
                np.where(mbo, rng.choice(["mbo-2", "mbo-3", "mbo-4"], n), None),
                categories=["mbo-1", "mbo-2", "mbo-3", "mbo-4"],
                ordered=True,
            ),
            "mbo_leerweg": np.where(mbo, rng.choice(["BOL", "BBL"], n, p=[0.8, 0.2]), None),
            "mbo_sector": np.where(
                mbo, rng.choice(["techniek", "zorg en welzijn", "economie"], n), None
            ),
            "mbo_vooropleiding": np.where(
                mbo, rng.choice(["vmbo-b", "vmbo-k", "vmbo-gt"], n), None
            ),
            "mbo_uitval_jaar1": pd.array(
                np.where(mbo, rng.random(n) < 0.15, None), dtype="boolean"
            ),
            "mbo_switch_jaar1": pd.array(np.where(mbo, rng.random(n) < 0.1, None), dtype="boolean"),
            "mbo_diploma": pd.array(np.where(mbo, rng.random(n) < 0.6, None), dtype="boolean"),
            "mbo_uitstroom": np.where(
                mbo, rng.choice(["hbo", "arbeidsmarkt", "onbekend", "nog-bezig"], n), None
            ),
        }
    )
    return df


@dataclass(frozen=True)
class AdviceGap:
    """Share with havo-or-higher advice, deciles 8-10 minus deciles 1-3 (a challenge statistic)."""

    name: str = "advice_gap"
    tolerance: float = 0.08
    description: str = "havo+ advice share, high minus low income"
    reference_rows: int | None = None  # as a pack's check: tolerance calibrated at this size

    def allowed(self, rows: int) -> float:
        if not self.reference_rows:
            return self.tolerance
        return self.tolerance * max(1.0, (self.reference_rows / rows) ** 0.5)

    def compute(self, df: pd.DataFrame) -> float:
        decile = pd.to_numeric(df["inkomen_decile"].astype(object), errors="coerce")
        havo = df["schooladvies"].astype(object).isin(["havo", "havo/vwo", "vwo"])
        return float(havo[decile >= 8].mean() - havo[decile <= 3].mean())


@pytest.fixture(scope="session")
def schema() -> TableSchema:
    return TableSchema.from_dict(schema_dict())


@pytest.fixture(scope="session")
def small_table() -> pd.DataFrame:
    return make_table()


@pytest.fixture(scope="session")
def table_maker():
    """make_table(n, seed): tests import nothing from conftest (importlib mode)."""
    return make_table


@pytest.fixture(scope="session")
def advice_gap() -> AdviceGap:
    return AdviceGap()
