"""Make a twin end to end (secure zone): check, coarsen, fit, sample, gate.

Publishing is not here: the flows decide where the result goes, and only if the gate passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from synthetic.fidelity import Check
from synthetic.fit import FittedTwin, fit_twin, sample_twin, stratum_labels
from synthetic.gate import GateContext, GateResult, run_gate
from synthetic.prepare import area_columns, attach_areas, restore_dtypes
from synthetic.schema import TableSchema
from synthetic.settings import TwinSettings

Progress = Callable[[str], None]


@dataclass
class TwinBuild:
    """A candidate twin with its gate verdict; `fitted` stays in the secure zone."""

    twin: pd.DataFrame
    gate: GateResult
    fitted: FittedTwin
    context: GateContext
    rejected: int
    timings: dict[str, float] = field(default_factory=dict)


def canonical_order(real: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """Rows sorted by their synthesised values, so the twin depends on the table's content
    only: the linked table is ordered by pseudonym, which changes with the key."""
    columns = [c.name for c in schema.synthesised if c.name in real.columns]
    text = pd.DataFrame({c: real[c].astype(str) for c in columns}, index=real.index)
    order = text.sort_values(columns, kind="stable").index
    return real.loc[order].reset_index(drop=True)


def make_twin(
    real: pd.DataFrame,
    schema: TableSchema,
    settings: TwinSettings,
    checks: Mapping[str, Sequence[Check]] | None = None,
    required: Mapping[str, Sequence[str]] | None = None,
    progress: Progress | None = None,
) -> TwinBuild:
    """Fit on the training part of `real`, sample, redraw unsafe rows, and run the gate."""
    say = progress or (lambda _msg: None)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    real = canonical_order(real, schema)
    say("checking and coarsening the linked table")
    ctx = GateContext.build(real, schema, settings, checks, required)
    info = ctx.info
    model_frame = ctx.coarse.drop(columns=area_columns(settings, info))
    labels = stratum_labels(ctx.coarse, schema, settings)
    timings["prepare"] = time.perf_counter() - started

    started = time.perf_counter()
    fitted = fit_twin(
        model_frame.iloc[ctx.train_index].reset_index(drop=True),
        labels.iloc[ctx.train_index].reset_index(drop=True),
        schema,
        info,
        settings,
        progress=say,
    )
    timings["fit"] = time.perf_counter() - started

    def finish(draw: pd.DataFrame) -> pd.DataFrame:
        return restore_dtypes(attach_areas(draw, info), ctx.real, schema, info)

    started = time.perf_counter()
    say("sampling the twin")
    drawn, rejected = sample_twin(
        fitted,
        settings.rows or len(real),
        settings.seed,
        reject=lambda draw: ctx.reject_mask(finish(draw.reset_index(drop=True))),
    )
    twin = finish(drawn)
    timings["sample"] = time.perf_counter() - started

    started = time.perf_counter()
    say("running the release gate")
    gate = run_gate(ctx, twin)
    timings["gate"] = time.perf_counter() - started
    return TwinBuild(twin, gate, fitted, ctx, rejected, timings)
