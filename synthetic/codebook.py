"""The twin's codebook (Markdown): what each column is, what the twin is and is not good for.

Everything here comes from the schema, the twin itself and gate figures; no real value.
Real-data statistics are not printed: the fidelity table shows the twin's value and the
tolerance it was proven to be within.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from synthetic.gate import GateResult
from synthetic.prepare import Coarsening
from synthetic.schema import TableSchema
from synthetic.settings import TwinSettings

_HOW = {
    "cart": (
        "sequential CART (R synthpop's method): one scikit-learn decision tree per column in"
        " a visit sequence, each value drawn from a real donor in a leaf of at least"
        " {min_leaf} people, numbers smoothed within the leaf's range"
    ),
    "gaussian_copula": "SDV 2.0 GaussianCopulaSynthesizer, one per stratum of {strata}",
    "ctgan": "SDV 2.0 CTGANSynthesizer ({epochs} epochs)",
    "tvae": "SDV 2.0 TVAESynthesizer ({epochs} epochs)",
}


def _values(spec, twin: pd.Series, info: Coarsening) -> str:
    if spec.type == "numerical":
        v = pd.to_numeric(twin, errors="coerce").dropna()
        return f"{v.min():g} .. {v.max():g}" if len(v) else "(empty)"
    levels = info.allowed.get(spec.name, [])
    shown = ", ".join(str(x) for x in levels[:12]) + (" ..." if len(levels) > 12 else "")
    return f"{len(levels)} values: {shown}" if len(levels) > 12 else shown


def _redraw_lines(
    gate: GateResult, settings: TwinSettings, rows: int, redrawn: Mapping[str, int]
) -> list[str]:
    """What was done about rows equal to real ones, in the gate's figures (measured on the
    release files as read back); a check the gate did not run is said to be not measured."""
    where = " and ".join(gate.files) if gate.files else "the twin"
    unique, identical = gate.check("replicated uniques"), gate.check("identical rows")
    small = gate.check("k-anonymity")
    k = settings.thresholds.k_anonymity
    lines = [
        "- Rows equal to a real pupil's full record that no other pupil shares (replicated"
        " uniques, synthpop's rule), and rows whose coarsened birth year, sex, wijk and school"
        f" match fewer than {k} real pupils, were drawn again while sampling"
        f" ({redrawn.get('replicated uniques', 0):,} and {redrawn.get('k-anonymity', 0):,}"
        " draws).",
    ]
    if unique is None or small is None:
        lines.append("- Replicated uniques and small groups in the released files: not measured.")
    else:
        lines.append(
            f"- Read back from {where}, the release gate counted {unique.value:,.0f} replicated"
            f" uniques and {small.value:,.0f} rows in a real group below {k}"
            f" ({'pass' if unique.passed and small.passed else 'FAIL'}; both must be 0)."
        )
    if identical is None:
        lines.append("- Rows equal to a real row of a shared combination: not measured.")
    else:
        lines.append(
            f"- {round(identical.value * rows):,} rows ({identical.value:.1%}) equal a real row"
            " of a combination several real pupils share, which singles out no one; the gate"
            f" requires {identical.threshold.removeprefix('<= ')}"
            f" ({'pass' if identical.passed else 'FAIL'})."
        )
    return lines


def _attack_lines(gate: GateResult) -> list[str]:
    if not gate.attacks:
        return ["", "Attacks (anonymeter): not run for this twin."]
    lines = [
        "",
        "## Privacy attacks (anonymeter)",
        "",
        "Each attack was run with this twin against real pupils used to fit it and against a"
        " holdout of real pupils it never saw (the control, of the same size); the risk is the"
        " attack's success beyond the control's, 0 = none, 1 = every attack succeeded.",
        "",
        "| attack | risk | 95% interval | success (training / control) | attacks |",
        "|---|---|---|---|---|",
    ]
    for r in gate.attacks:
        control = "n/a" if r.control_rate is None else f"{r.control_rate:.3f}"
        lines.append(
            f"| {r.name} | {r.risk:.3f} | {r.ci[0]:.3f} - {r.ci[1]:.3f} |"
            f" {r.attack_rate:.3f} / {control} | {r.n_attacks} |"
        )
    return lines


def render_codebook(
    event: str,
    version: str,
    schema: TableSchema,
    twin: pd.DataFrame,
    info: Coarsening,
    settings: TwinSettings,
    gate: GateResult,
    extra: Mapping[str, Any] | None = None,
    redrawn: Mapping[str, int] | None = None,
) -> str:
    """The codebook as Markdown; every privacy statement quotes the gate's own figure."""
    strata = " x ".join(settings.stratify_by) or "the whole table"
    how = _HOW[settings.synthesizer].format(
        strata=strata, epochs=settings.epochs, min_leaf=settings.min_leaf
    )
    keeps = (
        "a buurt is only drawn within its wijk"
        if settings.synthesizer == "cart"
        else "buurt always lies in its wijk (sdv.cag.FixedCombinations)"
    )
    lines = [
        f"# Synthetic twin `{event}` {version}",
        "",
        f"{len(twin):,} invented pupils, one row each, with the columns of the linked analysis"
        " table. **No row is a real person.**",
        "",
        "## How it was made",
        "",
        f"- Model: {how}, seed {settings.seed}; fitted inside the secure zone on the linked"
        " table minus a holdout; the fitted model never leaves the secure zone.",
        "- Keys (pupil pseudonyms) and provenance columns were dropped before fitting.",
        f"- Categories seen fewer than {settings.thresholds.rare_category_min} times were merged"
        " ('other' for categories, the nearest level for ordered ones) and numbers were"
        " top/bottom coded at the 10th smallest/largest value.",
        "- Area figures (CBS buurt/wijk statistics) are looked up from the area code, so they are"
        f" consistent with it; {keeps}.",
        *_redraw_lines(gate, settings, len(twin), redrawn or {}),
        "",
        "## What it is good for, and what not",
        "",
        "- Good for: writing and debugging your analysis, exploring distributions, and the"
        " statistics in the fidelity table below, which the twin was checked to preserve.",
        "- Not good for: final conclusions, effect sizes outside the fidelity table, small"
        " subgroups, rare categories (merged), or anything about a particular person, school or"
        " buurt. Verify findings on the real data through the airlock.",
        "",
        "## Columns",
        "",
        "| column | type | role | values / range | missing | description |",
        "|---|---|---|---|---|---|",
    ]
    for spec in schema.synthesised:
        col = twin[spec.name]
        kind = spec.type + (" (lowest first)" if spec.type == "ordinal" else "")
        lines.append(
            f"| `{spec.name}` | {kind} | {spec.role} | {_values(spec, col, info)} | "
            f"{col.isna().mean():.0%} | {spec.description.replace('|', '/')} |"
        )
    lines += [
        "",
        "## Release gate",
        "",
        "| check | figure | required | result |",
        "|---|---|---|---|",
    ]
    for c in gate.checks:
        if c.name.startswith("fidelity "):
            continue
        lines.append(
            f"| {c.name} | {c.value:.4g} | {c.threshold} | {'pass' if c.passed else 'FAIL'} |"
        )
    if gate.quality is not None:
        q = gate.quality
        lines += [
            "",
            f"SDMetrics quality {q.overall:.3f} (column shapes {q.column_shapes:.3f}, pair trends"
            f" {q.pair_trends:.3f}); diagnostic {q.diagnostic:.3f}.",
        ]
    lines += _attack_lines(gate)
    lines += [
        "",
        "## Fidelity: challenge statistics",
        "",
        "Each statistic a challenge rests on was computed on the real table and on this twin;"
        " the twin is released only if every one is within its tolerance. A tolerance is set"
        " for the table size the challenge was calibrated at; on a smaller table it is widened"
        " by sqrt(calibration rows / rows), because sampling noise alone exceeds it there.",
        "",
        "| challenge | statistic | on the twin | within | tolerance (calibrated) | result |",
        "|---|---|---|---|---|---|",
    ]
    for f in gate.fidelity:
        twin_value = "n/a" if f.twin is None else f"{f.twin:.3f}"
        lines.append(
            f"| {f.challenge} | {f.name}: {f.description} | {twin_value} | ±{f.limit:.3g} |"
            f" ±{f.tolerance:g} | {'pass' if f.passed else 'FAIL'} |"
        )
    if not gate.fidelity:
        lines.append("| (no challenge declared a statistic) | | | | | |")
    for key, value in (extra or {}).items():
        lines.append(f"\n{key}: {value}")
    return "\n".join(lines) + "\n"
