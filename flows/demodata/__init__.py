"""Realistic demo sources for hackgap: an invented municipality with planted effects.

`simulate` builds the world, `write_sources` writes the four extracts of docs/data.md,
`truth_analysis_table` gives the analysis table a perfect linkage would produce.
"""

from flows.demodata.effects import EFFECTS, Effects, describe
from flows.demodata.extracts import write_sources
from flows.demodata.truth import demo_analysis_table, truth_analysis_table
from flows.demodata.world import World, simulate

__all__ = [
    "EFFECTS",
    "Effects",
    "World",
    "demo_analysis_table",
    "describe",
    "simulate",
    "truth_analysis_table",
    "write_sources",
]
