"""Synthesize stage vs bare SDV GaussianCopula fit+sample on the same linked table.

Baseline: GaussianCopulaSynthesizer with metadata detected from the table (keys dropped),
fit + sample as many rows. Measured: the whole stage with the event's default synthesizer
(`flows.event.Twin`, sequential CART: check, coarsen, fit, sample with redraws, every gate
check, codebook, report), target <= 1.5x. Also quality and the fidelity figures, the
stratified Gaussian copula stage (full mode), CTGAN/TVAE on a 20,000-row sample with a fixed
epoch budget, and peak memory of the stage at 2,000,000 persons (full mode only, in a fresh
process). Privacy figures of the default twin as the gate measured them on the release files
read back: replicated uniques, identical rows, and each anonymeter risk with its interval.
"""

from __future__ import annotations

import warnings

from bench.harness import Result, measure_subprocess, timed

EPOCHS = 10


def _table(persons: int):
    from flows.demodata import demo_analysis_table

    return demo_analysis_table(persons=persons, seed=7)


def _bare(real):
    from sdv.metadata import Metadata
    from sdv.single_table import GaussianCopulaSynthesizer

    data = real.drop(columns=["pupil_id", "link_method"])
    meta = Metadata.detect_from_dataframes({"analysis": data})
    synth = GaussianCopulaSynthesizer(meta)
    synth.fit({"analysis": data})
    return synth.sample(num_rows=len(data))


def _stage(real, settings):
    from challenges import load_packs
    from flows.synthesize import load_schema
    from synthetic.codebook import render_codebook
    from synthetic.make import make_twin
    from synthetic.report import render_report

    packs = load_packs(["advieskloof", "uitval-eerste-jaar", "doorstroom"])
    schema = load_schema()
    build = make_twin(
        real, schema, settings, {p.id: p.fidelity for p in packs}, {p.id: p.columns for p in packs}
    )
    info = build.context.info
    render_codebook("bench", "v", schema, build.twin, info, settings, build.gate)
    render_report("bench", "v", schema, build.context.real, build.twin, info, build.gate)
    build.twin.to_parquet("/tmp/hackgap-bench-twin.parquet")
    return build


def _default_settings(**kw):
    """TwinSettings as `hackgap synthesize` builds them from a default event.yaml twin block."""
    from flows.event import Twin
    from synthetic.settings import TwinSettings

    twin = Twin()
    base = dict(synthesizer=twin.synthesizer, min_leaf=twin.min_leaf, max_depth=twin.max_depth)
    return TwinSettings(**{**base, **kw})


def run(quick: bool) -> list[Result]:
    from synthetic.settings import TwinSettings

    warnings.filterwarnings("ignore")
    persons = 20_000 if quick else 235_000
    real = _table(persons)
    base_s, _ = timed(_bare, real)
    settings = _default_settings()
    stage_s, build = timed(_stage, real, settings)
    gate = build.gate
    fid = [f for f in gate.fidelity]
    within = sum(f.passed for f in fid)
    results = [
        Result(
            f"synthesize stage ({settings.synthesizer}), {persons:,} persons "
            f"({len(real):,} pupils)",
            stage_s,
            baseline=base_s,
            target_ratio=1.5,
            notes="baseline: bare GaussianCopula fit+sample; gate "
            + ("passed" if gate.passed else "FAILED"),
            extra={"timings": build.timings, "rejected": build.rejected},
        ),
        Result(
            "twin quality (SDMetrics overall)",
            gate.quality.overall,
            unit="",
            notes=f"shapes {gate.quality.column_shapes:.3f}, pairs {gate.quality.pair_trends:.3f};"
            " target >= 0.85",
        ),
        Result(
            "fidelity statistics within tolerance",
            within,
            unit="",
            notes=f"of {len(fid)}: "
            + ", ".join(f"{f.name} {'ok' if f.passed else 'OUT'}" for f in fid),
            extra={
                f.name: {"diff": f.difference, "tol": f.tolerance, "allowed": f.limit} for f in fid
            },
        ),
    ]
    for name in ("replicated uniques", "identical rows"):
        c = gate.check(name)
        results.append(
            Result(
                f"twin {name} (release files read back)",
                c.value,
                unit="",
                notes=f"required {c.threshold}; {c.detail}",
                extra={"redrawn while sampling": build.context.redrawn.get(name, 0)},
            )
        )
    for risk in gate.attacks:
        results.append(
            Result(
                f"anonymeter {risk.name} risk",
                risk.risk,
                unit="",
                notes=f"required < {settings.thresholds.max_attack_risk:g}; {risk.detail()}",
            )
        )
    if not quick:
        secs, b = timed(_stage, real, TwinSettings(synthesizer="gaussian_copula"))
        results.append(
            Result(
                f"gaussian_copula stage, {len(real):,} rows",
                secs,
                notes=f"quality {b.gate.quality.overall:.3f}; "
                f"fidelity {sum(f.passed for f in b.gate.fidelity)}/{len(b.gate.fidelity)}",
            )
        )
    sample = real.sample(n=min(20_000, len(real)), random_state=1)
    for name in ("ctgan", "tvae"):
        secs, b = timed(_stage, sample, TwinSettings(synthesizer=name, epochs=EPOCHS))
        results.append(
            Result(
                f"{name} stage, {len(sample):,} rows, {EPOCHS} epochs",
                secs,
                notes=f"quality {b.gate.quality.overall:.3f}; "
                f"fidelity {sum(f.passed for f in b.gate.fidelity)}/{len(b.gate.fidelity)}",
            )
        )
    if not quick:
        code = (
            "import warnings; warnings.filterwarnings('ignore')\n"
            "from bench.bench_synthesize import _default_settings, _stage, _table\n"
            "_stage(_table(2_000_000), _default_settings())\n"
        )
        wall, rss, _ = measure_subprocess(code)
        results.append(
            Result(
                "synthesize stage peak memory, 2,000,000 persons",
                rss,
                unit="MiB",
                notes=f"{wall:.0f} s wall",
            )
        )
    return results
