"""SDMetrics quality report and diagnostic (via sdv.evaluation), per column and overall.

Both run on seeded equal-size samples of at most `eval_rows` rows: the scores are averages
of per-column and per-pair statistics that settle well before 20,000 rows, and the pair
trends grow with rows x columns^2.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import pandas as pd
from sdv.evaluation import evaluate_quality, run_diagnostic
from sdv.metadata import Metadata


@dataclass
class Quality:
    """Scores in 0..1; `columns` has per-column shape and mean pair-trend scores."""

    overall: float
    column_shapes: float
    pair_trends: float
    diagnostic: float
    columns: dict[str, dict[str, float]] = field(default_factory=dict)
    pairs: list[tuple[str, str, float]] = field(default_factory=list)


def evaluate(
    real: pd.DataFrame, twin: pd.DataFrame, metadata: Metadata, rows: int, seed: int
) -> Quality:
    """Quality report + diagnostic of `twin` against `real` (same columns, plain dtypes)."""
    n = min(rows, len(real), len(twin))
    r = real.sample(n=n, random_state=seed).reset_index(drop=True)
    t = twin.sample(n=n, random_state=seed + 1).reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = evaluate_quality(r, t, metadata, verbose=False)
        diagnostic = run_diagnostic(r, t, metadata, verbose=False)
    props = report.get_properties().set_index("Property")["Score"]
    shapes = report.get_details("Column Shapes")
    trends = report.get_details("Column Pair Trends")
    columns: dict[str, dict[str, float]] = {
        row["Column"]: {"shape": float(row["Score"])} for _, row in shapes.iterrows()
    }
    pairs = []
    for _, row in trends.iterrows():
        if pd.isna(row["Score"]):
            continue
        pairs.append((row["Column 1"], row["Column 2"], float(row["Score"])))
    for name in columns:
        scores = [s for a, b, s in pairs if name in (a, b)]
        if scores:
            columns[name]["pair_trends"] = sum(scores) / len(scores)
    return Quality(
        overall=float(report.get_score()),
        column_shapes=float(props.get("Column Shapes", float("nan"))),
        pair_trends=float(props.get("Column Pair Trends", float("nan"))),
        diagnostic=float(diagnostic.get_score()),
        columns=columns,
        pairs=pairs,
    )
