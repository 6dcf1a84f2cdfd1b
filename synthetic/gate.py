"""The release gate: every check a twin must pass before it may leave the secure zone.

`GateContext.build` does the real-data side once (coarsening, hashes, quasi-identifier
counts, train/holdout split); `run_gate` then judges any candidate twin, which is how the
tests feed it twins that copy rows, erase a gradient or show a rare combination.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from synthetic.fidelity import Check, FidelityResult, evaluate_fidelity
from synthetic.metadata import TABLE, column_metadata
from synthetic.prepare import Coarsening, check_input, coarsen
from synthetic.privacy import (
    QuasiIdentifiers,
    dcr_overfitting,
    disclosure_protection,
    identical_mask,
    rare_value_rows,
    row_hashes,
)
from synthetic.quality import Quality, evaluate
from synthetic.schema import TableSchema
from synthetic.settings import TwinSettings

DISCLOSURE_MARGIN = 0.02  # ~3 SDs of the score's sampling noise at 5,000 rows (measured)


@dataclass(frozen=True)
class CheckResult:
    """One gate check: its figure, the threshold it is held to, and whether it passed."""

    name: str
    passed: bool
    value: float
    threshold: str
    detail: str = ""

    def sentence(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        extra = f" ({self.detail})" if self.detail else ""
        return f"{self.name} {verdict}: {self.value:.4g} (required {self.threshold}){extra}"


@dataclass
class GateResult:
    checks: list[CheckResult] = field(default_factory=list)
    quality: Quality | None = None
    fidelity: list[FidelityResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]


@dataclass
class GateContext:
    """The real-data side of the gate, computed once per run (secure zone only)."""

    real: pd.DataFrame
    schema: TableSchema
    settings: TwinSettings
    checks: Mapping[str, Sequence[Check]]
    coarse: pd.DataFrame
    info: Coarsening
    train_index: np.ndarray
    holdout_index: np.ndarray
    real_hashes: np.ndarray
    qi: QuasiIdentifiers
    columns: list[str]

    @classmethod
    def build(
        cls,
        real: pd.DataFrame,
        schema: TableSchema,
        settings: TwinSettings,
        checks: Mapping[str, Sequence[Check]] | None = None,
        required: Mapping[str, Sequence[str]] | None = None,
    ) -> GateContext:
        checks = checks or {}
        check_input(real, schema, required)
        real = real.reset_index(drop=True)
        coarse, info = coarsen(real, schema, settings)
        columns = [c.name for c in schema.synthesised]
        rng = np.random.default_rng(settings.seed)
        n_holdout = min(settings.holdout_rows, len(real) // 5)
        order = rng.permutation(len(real))
        return cls(
            real=real,
            schema=schema,
            settings=settings,
            checks=checks,
            coarse=coarse,
            info=info,
            train_index=np.sort(order[n_holdout:]),
            holdout_index=np.sort(order[:n_holdout]),
            real_hashes=row_hashes(real, columns),
            qi=QuasiIdentifiers.from_real(
                real,
                [q for q in settings.quasi_identifiers if q in real.columns],
                settings.coarsen,
                settings.thresholds.rare_category_min,
            ),
            columns=columns,
        )

    def reject_mask(self, twin: pd.DataFrame) -> np.ndarray:
        """Rows the sampler must redraw: copies of a real row, or in a real group below k."""
        bad = identical_mask(self.real_hashes, twin, self.columns)
        return bad | self.qi.small_group_mask(twin, self.settings.thresholds.k_anonymity)

    @property
    def sdtypes(self) -> dict[str, str]:
        meta = column_metadata(self.schema, self.columns, self.info)
        return {c: m["sdtype"] for c, m in meta.items()}


def plain(df: pd.DataFrame, schema: TableSchema, columns: Sequence[str]) -> pd.DataFrame:
    """Released dtypes back to the plain ones SDV/SDMetrics read (objects, floats)."""
    out = {}
    for name in columns:
        col = df[name]
        if schema[name].type == "numerical":
            out[name] = pd.to_numeric(col, errors="coerce").astype(float)
        else:
            values = col.astype(object)
            out[name] = values.where(col.notna(), None)
    return pd.DataFrame(out)


def _ratio_check(name: str, value: float, minimum: float, detail: str = "") -> CheckResult:
    return CheckResult(name, bool(value >= minimum), value, f">= {minimum:g}", detail)


def run_gate(ctx: GateContext, twin: pd.DataFrame, quality: bool = True) -> GateResult:
    """Every gate check on `twin` (released dtypes, the synthesised columns)."""
    s, t = ctx.settings, ctx.settings.thresholds
    result = GateResult()
    identical = int(identical_mask(ctx.real_hashes, twin, ctx.columns).sum())
    result.checks.append(
        CheckResult(
            "identical rows",
            identical <= t.max_identical_rows,
            identical,
            f"<= {t.max_identical_rows}",
            "twin rows equal to a real row on all non-key columns",
        )
    )
    small = int(ctx.qi.small_group_mask(twin, t.k_anonymity).sum())
    result.checks.append(
        CheckResult(
            "k-anonymity",
            small == 0,
            small,
            "0",
            f"twin rows whose coarsened ({', '.join(ctx.qi.columns)}) "
            f"matches 1..{t.k_anonymity - 1}"
            " real people",
        )
    )
    rare = rare_value_rows(ctx.real, twin, ctx.schema, t.rare_category_min)
    result.checks.append(
        CheckResult(
            "rare values",
            not rare,
            sum(rare.values()),
            "0",
            "; ".join(f"{c}: {n} rows" for c, n in rare.items())
            or f"no value seen < {t.rare_category_min} times in the real data",
        )
    )
    twin_plain = plain(twin, ctx.schema, ctx.columns)
    train = ctx.coarse.iloc[ctx.train_index]
    holdout = ctx.coarse.iloc[ctx.holdout_index]
    score, closer = dcr_overfitting(train, holdout, twin_plain, ctx.sdtypes, s.dcr_rows, s.seed)
    result.checks.append(
        _ratio_check(
            "DCR overfitting protection",
            score,
            t.dcr_overfitting_min,
            f"{closer:.1%} of twin rows closer to training than to holdout; ideal 50%",
        )
    )
    sensitive = [c for c in ctx.schema.with_role("sensitive") if c in ctx.columns]
    if sensitive:
        known = [dict(s.coarsen).get(q, q) for q in s.quasi_identifiers]
        known = [q for q in dict.fromkeys(known) if q in ctx.columns]
        numerical = [c for c in known if ctx.schema[c].type == "numerical"]
        scores = disclosure_protection(
            ctx.coarse, twin_plain, known, sensitive, numerical, s.disclosure_rows, s.seed
        )
        # The same attack with the holdout (real people the model never saw) as the "twin":
        # what any faithful release of this population discloses. Where the population's
        # own structure (e.g. background by wijk) already lies below the threshold, the
        # twin is held to that level instead, less a margin for sampling noise.
        reference = disclosure_protection(
            train, holdout, known, sensitive, numerical, s.disclosure_rows, s.seed
        )
        needed = {
            c: min(t.disclosure_protection_min, reference[c] - DISCLOSURE_MARGIN) for c in sensitive
        }
        worst = min(scores, key=lambda c: scores[c] - needed[c])
        result.checks.append(
            CheckResult(
                "disclosure protection",
                all(scores[c] >= needed[c] for c in sensitive),
                scores[worst],
                f">= {t.disclosure_protection_min:g} or the holdout's score - "
                f"{DISCLOSURE_MARGIN:g}",
                ", ".join(f"{c}: {v:.3f} (holdout {reference[c]:.3f})" for c, v in scores.items()),
            )
        )
    if quality:
        meta = _metadata(ctx)
        result.quality = evaluate(
            ctx.coarse.iloc[ctx.train_index], twin_plain, meta, s.eval_rows, s.seed
        )
        result.checks.append(
            _ratio_check(
                "quality",
                result.quality.overall,
                t.min_quality,
                f"column shapes {result.quality.column_shapes:.3f}, "
                f"pair trends {result.quality.pair_trends:.3f}",
            )
        )
    result.fidelity = evaluate_fidelity(ctx.real, twin, ctx.checks)
    for f in result.fidelity:
        diff = f.difference
        result.checks.append(
            CheckResult(
                f"fidelity {f.challenge}/{f.name}",
                f.passed,
                float("nan") if diff is None else diff,
                f"|twin - real| <= {f.limit:.3g}",
                f.error
                or (
                    f"tolerance {f.tolerance:g} widened for {len(ctx.real):,} rows"
                    if f.limit > f.tolerance
                    else ""
                ),
            )
        )
    return result


def _metadata(ctx: GateContext):
    from sdv.metadata import Metadata

    columns = column_metadata(ctx.schema, ctx.columns, ctx.info)
    return Metadata.load_from_dict({"tables": {TABLE: {"columns": columns}}})
