"""The release gate: every check a twin must pass before it may leave the secure zone.

`GateContext.build` does the real-data side once (coarsening, hashes, quasi-identifier
counts, train/holdout split); `run_gate` then judges any candidate twin, and `judge_release`
judges the release files themselves: it reads twin.parquet and twin.csv back and runs every
check on each, so what is judged is exactly what would be published. Values are compared by
their schema-typed text (synthetic.privacy.canonical_text), never by the pandas dtype.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from synthetic.attacks import AttackRisk, AttackSpec, run_attacks
from synthetic.fidelity import Check, FidelityResult, evaluate_fidelity
from synthetic.metadata import TABLE, column_metadata
from synthetic.prepare import Coarsening, check_input, coarsen
from synthetic.privacy import (
    QuasiIdentifiers,
    dcr_overfitting,
    disclosure_protection,
    rare_value_rows,
    row_hashes,
    unique_hashes,
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
    attacks: list[AttackRisk] = field(default_factory=list)
    files: tuple[str, ...] = ()  # the release files judged (empty: a frame in memory)

    def check(self, name: str) -> CheckResult | None:
        return next((c for c in self.checks if c.name == name), None)

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
    unique_real: np.ndarray
    qi: QuasiIdentifiers
    columns: list[str]
    redrawn: dict[str, int] = field(default_factory=dict)

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
        hashes = row_hashes(real, schema, columns)
        return cls(
            real=real,
            schema=schema,
            settings=settings,
            checks=checks,
            coarse=coarse,
            info=info,
            train_index=np.sort(order[n_holdout:]),
            holdout_index=np.sort(order[:n_holdout]),
            real_hashes=hashes,
            unique_real=unique_hashes(hashes),
            qi=QuasiIdentifiers.from_real(
                real,
                schema,
                [q for q in settings.quasi_identifiers if q in real.columns],
                settings.coarsen,
                settings.thresholds.rare_category_min,
            ),
            columns=columns,
        )

    def hashes(self, twin: pd.DataFrame) -> np.ndarray:
        return row_hashes(twin, self.schema, self.columns)

    def replicated_uniques(self, twin: pd.DataFrame) -> np.ndarray:
        """True for twin rows equal to a real row that no other real row equals (synthpop's
        replicated uniques): such a row is that person's full record."""
        return np.isin(self.hashes(twin), self.unique_real)

    def identical(self, twin: pd.DataFrame) -> np.ndarray:
        """True for twin rows equal to any real row on every synthesised column."""
        return np.isin(self.hashes(twin), self.real_hashes)

    def reject_mask(self, twin: pd.DataFrame) -> np.ndarray:
        """Rows the sampler must redraw: replicated uniques, or in a real group below k.

        A copy of a common combination discloses nothing and is kept (redrawing it would
        thin out exactly the most typical pupils); the gate bounds its share instead."""
        unique = self.replicated_uniques(twin)
        small = self.qi.small_group_mask(twin, self.settings.thresholds.k_anonymity)
        for name, mask in (("replicated uniques", unique), ("k-anonymity", small & ~unique)):
            self.redrawn[name] = self.redrawn.get(name, 0) + int(mask.sum())
        return unique | small

    def holdout_identical_share(self) -> float:
        """Share of the holdout (real people the model never saw) equal to a training row:
        how often a faithful release would repeat a real row by chance of the population."""
        train = np.unique(self.real_hashes[self.train_index])
        held = self.real_hashes[self.holdout_index]
        return float(np.isin(held, train).mean()) if len(held) else 0.0

    def attack_spec(self) -> AttackSpec:
        s = self.settings
        known = tuple(c for c in self.schema.with_role("quasi_identifier") if c in self.columns)
        secrets = tuple(c for c in self.schema.with_role("sensitive") if c in self.columns)
        groups = tuple(tuple(c for c in g if c in self.columns) for g in s.link_groups)
        return AttackSpec(
            columns=tuple(self.columns),
            link_groups=(groups[0], groups[1]),
            known=known,
            secrets=secrets,
            n_attacks=s.attack_count,
            max_attacks=s.attack_count_max,
            n_cols=s.attack_columns,
            seed=s.seed,
            n_jobs=len(os.sched_getaffinity(0)),
        )

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


def run_gate(
    ctx: GateContext,
    twin: pd.DataFrame,
    quality: bool = True,
    attacks: bool = False,
    workdir: Path | None = None,
) -> GateResult:
    """Every gate check on `twin` (the synthesised columns, any dtypes).

    `attacks` adds anonymeter's attacks (a subprocess in its own environment, files in
    `workdir`, a secure-zone directory); the release path, `judge_release`, always runs them.
    """
    s, t = ctx.settings, ctx.settings.thresholds
    result = GateResult()
    unique = int(ctx.replicated_uniques(twin).sum())
    result.checks.append(
        CheckResult(
            "replicated uniques",
            unique == 0,
            unique,
            "0",
            "twin rows equal to a real row that is unique in the real table (synthpop's rule)",
        )
    )
    identical = int(ctx.identical(twin).sum())
    share = identical / max(len(twin), 1)
    # A dense population repeats itself: where more of the real people the model never saw
    # equal a training row than the threshold allows, a faithful twin cannot do better, so
    # it is held to that share instead (as disclosure protection is held to the holdout's),
    # plus two standard errors of that share measured on the holdout's rows.
    natural = ctx.holdout_identical_share()
    noise = 2 * np.sqrt(natural * (1 - natural) / max(len(ctx.holdout_index), 1))
    allowed = max(t.max_identical_share, natural + noise)
    result.checks.append(
        CheckResult(
            "identical rows",
            share <= allowed,
            share,
            f"<= {allowed:.3g} (the larger of {t.max_identical_share:g} and the holdout's own "
            "share + 2 standard errors)",
            f"{identical:,} of {len(twin):,} twin rows equal a real row on every synthesised "
            f"column; of real people outside the training rows {natural:.1%} equal a "
            "training row",
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
    score, closer = dcr_overfitting(
        train, holdout, twin_plain, ctx.sdtypes, s.dcr_rows, s.seed, ctx.schema
    )
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
            ctx.coarse,
            twin_plain,
            known,
            sensitive,
            numerical,
            s.disclosure_rows,
            s.seed,
            ctx.schema,
        )
        # The same attack with the holdout (real people the model never saw) as the "twin":
        # what any faithful release of this population discloses. Where the population's
        # own structure (e.g. background by wijk) already lies below the threshold, the
        # twin is held to that level instead, less a margin for sampling noise.
        reference = disclosure_protection(
            train, holdout, known, sensitive, numerical, s.disclosure_rows, s.seed, ctx.schema
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
    if attacks:
        with tempfile.TemporaryDirectory(prefix="hackgap-attacks-") as scratch:
            result.attacks = run_attacks(
                ctx.real.iloc[ctx.train_index],
                ctx.real.iloc[ctx.holdout_index],
                twin,
                ctx.schema,
                ctx.attack_spec(),
                Path(workdir) if workdir else Path(scratch),  # workdir: a secure-zone directory
                limit=t.max_attack_risk,
            )
        for risk in result.attacks:
            result.checks.append(
                CheckResult(
                    f"anonymeter {risk.name}",
                    risk.risk < t.max_attack_risk,
                    risk.risk,
                    f"< {t.max_attack_risk:g}",
                    risk.detail(),
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


def _same(a: float, b: float) -> bool:
    return (a != a and b != b) or abs(a - b) <= 1e-12


def judge_release(
    ctx: GateContext, read_back: Mapping[str, pd.DataFrame], workdir: Path
) -> GateResult:
    """Every check, anonymeter's attacks included, on each release file as read back.

    One line per check: where the files disagree, the failing file's figure is shown (else
    the first file's) and the other file's figure is named in the detail. Quality, fidelity
    and attack figures are the first file's (twin.parquet)."""
    results = {
        name: run_gate(ctx, df, attacks=True, workdir=workdir) for name, df in read_back.items()
    }
    names = list(results)
    first = results[names[0]]
    merged = GateResult(
        quality=first.quality,
        fidelity=first.fidelity,
        attacks=first.attacks,
        files=tuple(names),
    )
    for check in first.checks:
        per_file = {n: results[n].check(check.name) for n in names}
        failing = [n for n, c in per_file.items() if c is None or not c.passed]
        shown_file = failing[0] if failing else names[0]
        shown = per_file[shown_file] or check
        others = [
            f"{n}: {c.value:.4g}" if c else f"{n}: not measured"
            for n, c in per_file.items()
            if n != shown_file and (c is None or not _same(c.value, shown.value))
        ]
        detail = shown.detail
        if failing or others:
            where = f"{shown_file}: {shown.value:.4g}" + "".join(f"; {o}" for o in others)
            detail = f"{detail} [{where}]" if detail else f"[{where}]"
        merged.checks.append(
            CheckResult(shown.name, not failing, shown.value, shown.threshold, detail)
        )
    return merged


def _metadata(ctx: GateContext):
    from sdv.metadata import Metadata

    columns = column_metadata(ctx.schema, ctx.columns, ctx.info)
    return Metadata.load_from_dict({"tables": {TABLE: {"columns": columns}}})
