"""Data minimisation: drop the register persons the analysis does not need, before hashing.

The register holds everyone who ever lived in the municipality; the analysis needs the
pupils and their parents. A register person is kept when born within the school data's
birth-date range widened by a margin (`secure_zone.minimise_margin_years`, default one
year, which covers DUO's birth-date typos: a day off, or day and month swapped), or when
the school data carries their person number; plus every parent those persons name.
Everybody else is dropped before any pseudonym is made, and only their number is
reported. Works on the raw register frame inside the secure zone.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa

from flows.pipeline.linkage import arrow_keys, duck_column, to_dates

DAYS_PER_YEAR = 365.25
PARENT_KEYS = ("bsn_ouder1", "bsn_ouder2")


def birth_window(dates: pd.Series, margin_years: float) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The range of `dates` widened by `margin_years` on both sides (NaT if no date)."""
    margin = pd.Timedelta(days=math.ceil(DAYS_PER_YEAR * margin_years))
    return dates.min() - margin, dates.max() + margin


def _keep_sql(parents: list[str]) -> str:
    """Row numbers j of the register r kept: in the window (w) or a pupil's number (in s),
    and those whose number such a person names as a parent (may repeat a row)."""
    named = " UNION ALL ".join(f"SELECT {c} FROM pupil_or_cohort" for c in parents)
    parent_rows = f" UNION ALL SELECT j FROM r WHERE b IN ({named})" if parents else ""
    return (
        "WITH pupil_or_cohort AS MATERIALIZED ("
        f"SELECT {', '.join(['j', *parents])} FROM r WHERE w OR b IN (SELECT b FROM s)) "
        f"SELECT j FROM pupil_or_cohort{parent_rows}"
    )


def needed_persons(
    persons: pd.DataFrame, school: pd.DataFrame, margin_years: float
) -> tuple[pd.DataFrame, int]:
    """The register rows the analysis needs (see the module docstring) and how many were not.

    A school file without any birth date gives no range: then nobody is dropped. One
    DuckDB query picks the rows (the numbers are matched as text, missing ones never).
    """
    lo, hi = birth_window(to_dates(school["geboortedatum"]), margin_years)
    if pd.isna(lo) or pd.isna(hi):
        return persons, 0
    parents = [c for c in PARENT_KEYS if c in persons.columns]
    register = pa.table(
        {
            "j": np.arange(len(persons)),
            "w": to_dates(persons["geboortedatum"]).between(lo, hi).to_numpy(),
            "b": arrow_keys(persons["bsn"]),
            **{c: arrow_keys(persons[c]) for c in parents},
        }
    )
    pupils = school["bsn"] if "bsn" in school.columns else pd.Series([], dtype="string")
    keep = np.zeros(len(persons), dtype=bool)
    keep[duck_column(_keep_sql(parents), r=register, s=pa.table({"b": arrow_keys(pupils)}))] = True
    dropped = int(len(persons) - keep.sum())
    return (persons if dropped == 0 else persons[keep].reset_index(drop=True)), dropped
