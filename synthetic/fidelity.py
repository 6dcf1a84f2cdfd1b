"""Challenge fidelity: each statistic a challenge rests on, on the real table and the twin.

The overall SDMetrics score can stay high while the one gradient a challenge is about is
gone; so every declared statistic must land within its challenge's absolute tolerance.
A statistic cannot be kept more precisely than its own sampling noise: a check calibrated
at a larger table (its `allowed(rows)`, see challenges/pack.py) widens its tolerance by
sqrt(reference rows / rows of the real table) on a smaller one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd


class Check(Protocol):
    """What a challenge pack's FidelityCheck offers (duck-typed: synthetic never imports it)."""

    name: str
    tolerance: float
    description: str

    def compute(self, df: pd.DataFrame) -> float: ...


def allowed_tolerance(check: Any, rows: int) -> float:
    """The check's tolerance at `rows` real rows (its `allowed`, else the plain tolerance)."""
    allowed = getattr(check, "allowed", None)
    return float(allowed(rows)) if callable(allowed) else float(check.tolerance)


@dataclass(frozen=True)
class FidelityResult:
    challenge: str
    name: str
    description: str
    tolerance: float
    real: float | None
    twin: float | None
    error: str = ""
    allowed: float | None = None  # the tolerance at this table's size; None: `tolerance`

    @property
    def limit(self) -> float:
        """What |twin - real| is held to."""
        return self.tolerance if self.allowed is None else self.allowed

    @property
    def difference(self) -> float | None:
        if self.real is None or self.twin is None:
            return None
        return abs(self.twin - self.real)

    @property
    def passed(self) -> bool:
        diff = self.difference
        return diff is not None and diff == diff and diff <= self.limit


def _compute(check: Any, df: pd.DataFrame) -> tuple[float | None, str]:
    try:
        value = float(check.compute(df))
    except Exception as exc:  # a statistic that cannot be computed is a failed check
        return None, f"{type(exc).__name__}"
    return (value, "") if value == value else (None, "not a number")


def evaluate_fidelity(
    real: pd.DataFrame, twin: pd.DataFrame, checks: Mapping[str, Sequence[Check]]
) -> list[FidelityResult]:
    """Every check of every challenge on both tables, tolerances at the real table's size."""
    results = []
    for challenge, items in checks.items():
        for check in items:
            real_value, real_error = _compute(check, real)
            twin_value, twin_error = _compute(check, twin)
            error = (f"real: {real_error}" if real_error else "") or (
                f"twin: {twin_error}" if twin_error else ""
            )
            results.append(
                FidelityResult(
                    challenge=challenge,
                    name=check.name,
                    description=str(getattr(check, "description", "")),
                    tolerance=float(check.tolerance),
                    real=real_value,
                    twin=twin_value,
                    error=error,
                    allowed=allowed_tolerance(check, len(real)),
                )
            )
    return results
