"""The ground-truth analysis table: what a perfect linkage of the demo sources produces.

Used to measure the linkage (compare the linked table with this one) and, through
`demo_analysis_table`, by tests of stages that need a realistic analysis table now.
"""

from __future__ import annotations

import functools

import pandas as pd

from flows.demodata.world import World, simulate
from flows.pipeline.analysis import build_analysis_table


def truth_analysis_table(world: World) -> pd.DataFrame:
    """`build_analysis_table` on the world's frames with person_key = the true BSN.

    link_method is "exact" for pupils whose DUO rows carry a bsn, else "probabilistic".
    """
    school = world.school.drop(columns=["true_bsn"])
    school["person_key"] = world.school["true_bsn"]
    school["link_method"] = world.school["bsn"].notna().map({True: "exact", False: "probabilistic"})
    return build_analysis_table(world.persons, school, world.postcodes, world.cbs)


@functools.cache
def _demo(persons: int, seed: int) -> pd.DataFrame:
    return truth_analysis_table(simulate(persons, seed))


def demo_analysis_table(persons: int = 20_000, seed: int = 7) -> pd.DataFrame:
    """A realistic analysis table for tests (memoised per process; a copy is returned)."""
    return _demo(persons, seed).copy()
