"""Anonymeter's three attacks on one twin, run inside .venv-anonymeter (never imported by hackgap).

anonymeter 1.1 pins numpy < 1.27 and pyarrow < 22, which hackgap's environment cannot hold,
so `synthetic.attacks` writes the frames to the secure temporary directory and runs this file
with that environment's Python: `python -I anonymeter_runner.py DIR`. DIR holds ori.parquet
(training rows, as many as the control), control.parquet (the holdout), syn.parquet (the twin
as released) and spec.json (its `only`, when set, names the attacks to run: a later round with
more attacks); the risks go to DIR/risks.json, figures only.

anonymeter draws its targets with pandas' global RNG and its random baselines with an unseeded
`numpy.random.default_rng()`; both are seeded here so the same files give the same risks.
Its two numba kernels take ~15 s to compile in every process, so they are compiled with
numba's on-disk cache (NUMBA_CACHE_DIR, in anonymeter's environment: compiled code only);
`--warm` fills that cache on invented data (scripts/bootstrap.sh anonymeter runs it).
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd


def _seed_everything(seed: int) -> None:
    np.random.seed(seed % 2**32)
    original = np.random.default_rng
    calls = iter(range(1, 1_000_000))

    def seeded(seed_arg=None):
        return original([seed, next(calls)] if seed_arg is None else seed_arg)

    np.random.default_rng = seeded


def _cache_compiled_code() -> None:
    import numba

    jit = numba.jit

    def cached_jit(*args, **kwargs):
        kwargs.setdefault("cache", True)
        return jit(*args, **kwargs)

    numba.jit = cached_jit


def _warm(directory: Path) -> None:
    """Run every attack once on a small invented table, compiling the kernels into the cache."""
    rng = np.random.default_rng(0)

    def table(n: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "a": rng.normal(size=n),
                "b": rng.integers(1990, 2000, n).astype(float),
                "c": rng.choice(["x", "y", "z"], n),
                "d": rng.choice(["p", "q"], n),
                "e": [f"r{i}" for i in range(n)],  # unique: every singling-out query succeeds
            }
        )

    directory.mkdir(parents=True, exist_ok=True)
    for name, n in (("ori", 200), ("control", 200), ("syn", 400)):
        table(n).to_parquet(directory / f"{name}.parquet", index=False)
    spec = {"seed": 1, "n_attacks": 20, "n_jobs": 1, "n_cols": 2, "secrets": ["d"]}
    spec |= {"max_attempts": 2_000}
    spec |= {"link_groups": [["a", "b"], ["c"]], "known": ["a", "b", "c"]}
    (directory / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    main(directory)


class _Notes(logging.Handler):
    """anonymeter's log lines (counts only, e.g. how many singling-out queries it found)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage().split(". ")[0])


NOTES = _Notes()


def _entry(name: str, evaluator, caught: list) -> dict:
    risk = evaluator.risk(confidence_level=0.95)
    res = evaluator.results(confidence_level=0.95)
    return {
        "name": name,
        "risk": float(risk.value),
        "ci": [float(risk.ci[0]), float(risk.ci[1])],
        "attack_rate": float(res.attack_rate.value),
        "control_rate": float(res.control_rate.value) if res.control_rate else None,
        "baseline_rate": float(res.baseline_rate.value),
        "n_attacks": int(res.n_attacks_ori),
        "warnings": sorted({str(w.message).split(".")[0] for w in caught} | set(_drain())),
    }


def _drain() -> list[str]:
    lines, NOTES.lines = NOTES.lines, []
    return lines


def main(directory: Path) -> None:
    _cache_compiled_code()
    logging.getLogger("anonymeter").addHandler(NOTES)
    logging.getLogger("anonymeter").propagate = False
    from anonymeter.evaluators import (
        InferenceEvaluator,
        LinkabilityEvaluator,
        SinglingOutEvaluator,
    )

    spec = json.loads((directory / "spec.json").read_text(encoding="utf-8"))
    ori, control, syn = (
        pd.read_parquet(directory / f"{n}.parquet") for n in ("ori", "control", "syn")
    )
    seed, n_attacks, n_jobs = spec["seed"], spec["n_attacks"], spec["n_jobs"]
    only = spec.get("only")  # names of the attacks to run (a later round); None: all

    def wanted(name: str) -> bool:
        return only is None or name in only

    _seed_everything(seed)
    results = []
    for mode in ("univariate", "multivariate"):
        if not wanted(f"singling out ({mode})"):
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ev = SinglingOutEvaluator(
                ori,
                syn,
                n_attacks=n_attacks,
                n_cols=spec["n_cols"],
                control=control,
                max_attempts=spec["max_attempts"],
                seed=seed,
            ).evaluate(mode=mode)
            results.append(_entry(f"singling out ({mode})", ev, caught))
    groups = tuple(list(g) for g in spec["link_groups"])
    if wanted("linkability"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ev = LinkabilityEvaluator(
                ori, syn, aux_cols=groups, n_attacks=n_attacks, n_neighbors=1, control=control
            ).evaluate(n_jobs=n_jobs)
            results.append(_entry("linkability", ev, caught))
    for secret in spec["secrets"]:
        if not wanted(f"inference: {secret}"):
            continue
        aux = [c for c in spec["known"] if c != secret]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ev = InferenceEvaluator(
                ori, syn, aux_cols=aux, secret=secret, n_attacks=n_attacks, control=control
            ).evaluate(n_jobs=n_jobs)
            results.append(_entry(f"inference: {secret}", ev, caught))
    (directory / "risks.json").write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1] == "--warm":
        _warm(Path(sys.argv[2]))
    else:
        main(Path(sys.argv[1]))
