"""Make a twin end to end (secure zone): check, coarsen, fit, sample, write, read back, gate.

The gate judges the release files as read back (synthetic.release), so `TwinBuild.twin` is
the frame read from twin.parquet and `files` are the very files that may be published.
Publishing is not here: the flows decide where the result goes, and only if the gate passed.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from synthetic.cart import Mapper
from synthetic.fidelity import Check
from synthetic.fit import FittedTwin, fit_twin, sample_twin, stratum_labels
from synthetic.gate import GateContext, GateResult, judge_release
from synthetic.prepare import area_columns, attach_areas, restore_dtypes
from synthetic.release import read_release, sha256, write_release
from synthetic.schema import TableSchema
from synthetic.settings import TwinSettings

Progress = Callable[[str], None]


@dataclass
class TwinBuild:
    """A candidate twin with its gate verdict; `fitted` stays in the secure zone.

    `twin` is twin.parquet as read back; `files` the release files judged and `digests`
    their SHA-256 at judging time (the flows publish only files that still match)."""

    twin: pd.DataFrame
    gate: GateResult
    fitted: FittedTwin
    context: GateContext
    rejected: int
    timings: dict[str, float] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)


def canonical_order(real: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """Rows sorted by their synthesised values, so the twin depends on the table's content
    only: the linked table is ordered by pseudonym, which changes with the key."""
    columns = [c.name for c in schema.synthesised if c.name in real.columns]
    text = pd.DataFrame({c: real[c].astype(str) for c in columns}, index=real.index)
    order = text.sort_values(columns, kind="stable").index
    return real.loc[order].reset_index(drop=True)


def draw_twin(
    real: pd.DataFrame,
    schema: TableSchema,
    settings: TwinSettings,
    checks: Mapping[str, Sequence[Check]] | None = None,
    required: Mapping[str, Sequence[str]] | None = None,
    progress: Progress | None = None,
    fit_map: Mapper | None = None,
) -> tuple[pd.DataFrame, FittedTwin, GateContext, int, dict[str, float]]:
    """The candidate twin before any file or gate: (twin, fitted, context, rows redrawn,
    timings). Everything random in a twin happens here, seeded by `settings.seed`."""
    say = progress or (lambda _msg: None)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    settings = settings.sized(len(real))
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
        fit_map=fit_map,
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

    return twin, fitted, ctx, rejected, timings


def make_twin(
    real: pd.DataFrame,
    schema: TableSchema,
    settings: TwinSettings,
    checks: Mapping[str, Sequence[Check]] | None = None,
    required: Mapping[str, Sequence[str]] | None = None,
    progress: Progress | None = None,
    workdir: Path | None = None,
    fit_map: Mapper | None = None,
) -> TwinBuild:
    """Fit on the training part of `real`, sample, redraw unsafe rows, write the release
    files to `workdir` (a secure-zone directory; default a fresh temporary one, removed
    with its files once the gate has run), read them back and run the gate on them."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="hackgap-twin-") as tmp:
            build = make_twin(
                real, schema, settings, checks, required, progress, Path(tmp), fit_map
            )
            build.files = {}
            return build
    say = progress or (lambda _msg: None)
    twin, fitted, ctx, rejected, timings = draw_twin(
        real, schema, settings, checks, required, say, fit_map
    )

    started = time.perf_counter()
    say("writing the release files and reading them back")
    files = write_release(twin, workdir)
    digests = {name: sha256(path) for name, path in files.items()}
    read_back = read_release(files, schema)
    say("running the release gate on the files as read back (anonymeter included)")
    gate = judge_release(ctx, read_back, workdir)
    timings["gate"] = time.perf_counter() - started
    return TwinBuild(
        read_back[next(iter(read_back))], gate, fitted, ctx, rejected, timings, files, digests
    )
