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

import pandas as pd

from flows.pipeline.linkage import key_isin, to_dates

DAYS_PER_YEAR = 365.25
PARENT_KEYS = ("bsn_ouder1", "bsn_ouder2")


def birth_window(dates: pd.Series, margin_years: float) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The range of `dates` widened by `margin_years` on both sides (NaT if no date)."""
    margin = pd.Timedelta(days=math.ceil(DAYS_PER_YEAR * margin_years))
    return dates.min() - margin, dates.max() + margin


def needed_persons(
    persons: pd.DataFrame, school: pd.DataFrame, margin_years: float
) -> tuple[pd.DataFrame, int]:
    """The register rows the analysis needs (see the module docstring) and how many were not.

    A school file without any birth date gives no range: then nobody is dropped.
    """
    pdob = to_dates(persons["geboortedatum"])
    lo, hi = birth_window(to_dates(school["geboortedatum"]), margin_years)
    if pd.isna(lo) or pd.isna(hi):
        return persons, 0
    keep = pdob.between(lo, hi).to_numpy()
    if "bsn" in school.columns and school["bsn"].notna().any():
        keep |= key_isin(persons["bsn"], school["bsn"].dropna())
    parents = [persons.loc[keep, c].dropna() for c in PARENT_KEYS if c in persons.columns]
    if parents:
        keep |= key_isin(persons["bsn"], pd.concat(parents, ignore_index=True))
    dropped = int(len(persons) - keep.sum())
    return (persons if dropped == 0 else persons[keep].reset_index(drop=True)), dropped
