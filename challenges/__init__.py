"""Challenge packs: what teams work on, what the twin must preserve, what judges score.

Packs live in `challenges/packs/<id>/` (built-in) or in an event's `challenges/` folder.
This room never imports `flows`; the flows hand it the analysis-table columns.
"""

from challenges.errors import ChallengeError
from challenges.pack import (
    Criterion,
    FidelityCheck,
    OutputRules,
    Pack,
    Rubric,
    load_pack,
    load_packs,
    pack_ids,
    search_dirs,
    validate_pack,
)
from challenges.statistics import STATISTICS, StatisticError

__all__ = [
    "STATISTICS",
    "ChallengeError",
    "Criterion",
    "FidelityCheck",
    "OutputRules",
    "Pack",
    "Rubric",
    "StatisticError",
    "load_pack",
    "load_packs",
    "pack_ids",
    "search_dirs",
    "validate_pack",
]
