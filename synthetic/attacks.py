"""Anonymeter's attacks on a twin, run in anonymeter's own locked environment (secure zone).

Three attacks (Giomi et al. 2022, the ones the EU's Article 29 group names): singling out
(univariate and multivariate), linkability (two groups of quasi-identifiers joined through the
twin) and inference (guessing each sensitive column from the quasi-identifiers). Each attack is
run against training rows and against the holdout, the control; the risk is the attack's
success beyond the control's. The training rows are sub-sampled to the holdout's size: with
unequal sizes a singling-out query matches more often in the smaller table, and that size
difference alone showed as a risk (0.27 against 0.02 on the demo twin).

anonymeter 1.1 pins numpy < 1.27 and pyarrow < 22, which conflict with hackgap's: its code
runs in `.venv-anonymeter` (scripts/bootstrap.sh anonymeter, lock in
synthetic/anonymeter-requirements.lock) as a subprocess on files written here, in the secure
temporary directory given; the files and the results never leave the secure zone, and the
results are figures only.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from synthetic.errors import TwinError
from synthetic.privacy import canonical_text
from synthetic.schema import TableSchema

RUNNER = Path(__file__).with_name("anonymeter_runner.py")
LOCK = Path(__file__).with_name("anonymeter-requirements.lock")
VENV = Path(__file__).resolve().parents[1] / ".venv-anonymeter"
TIMEOUT = 600
ESCALATION = 4  # a round with 4x the attacks halves its interval


@dataclass(frozen=True)
class AttackRisk:
    """One attack's risk (point estimate and 95% interval) and the success rates behind it."""

    name: str
    risk: float
    ci: tuple[float, float]
    attack_rate: float
    control_rate: float | None
    baseline_rate: float
    n_attacks: int
    warnings: tuple[str, ...] = field(default_factory=tuple)
    rounds: tuple[int, ...] = ()  # attack counts of earlier rounds whose interval spanned the limit

    def detail(self) -> str:
        control = "" if self.control_rate is None else f" vs control {self.control_rate:.3f}"
        notes = "".join(f"; anonymeter: {w}" for w in self.warnings)
        again = (
            f" (after {', '.join(f'{n:,}' for n in self.rounds)}: interval spanned the limit)"
            if self.rounds
            else ""
        )
        return (
            f"95% CI {self.ci[0]:.3f}-{self.ci[1]:.3f}; success {self.attack_rate:.3f}"
            f"{control}, random guess {self.baseline_rate:.3f}; {self.n_attacks:,} attacks"
            f"{again}{notes}"
        )


def anonymeter_python() -> Path:
    """The Python of anonymeter's environment (HACKGAP_ANONYMETER_PYTHON overrides)."""
    override = os.environ.get("HACKGAP_ANONYMETER_PYTHON")
    python = Path(override) if override else VENV / "bin" / "python"
    if not python.exists():
        raise TwinError(
            f"anonymeter environment missing ({python}): the release gate runs anonymeter's "
            "attacks there; run `scripts/bootstrap.sh anonymeter` (make setup does it)."
        )
    return python


def attack_frame(df: pd.DataFrame, schema: TableSchema, columns: Sequence[str]) -> pd.DataFrame:
    """Numbers as floats, everything else as its schema-typed text (null as a level)."""
    out = {}
    text = canonical_text(df, schema, [c for c in columns if schema[c].type != "numerical"])
    for name in columns:
        if schema[name].type == "numerical":
            out[name] = pd.to_numeric(df[name].astype(object), errors="coerce").astype(float)
        else:
            out[name] = text[name].to_numpy()
    return pd.DataFrame(out).reset_index(drop=True)


def _parquet(df: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    df.to_parquet(buffer, index=False)
    return buffer.getvalue()


@dataclass(frozen=True)
class AttackSpec:
    """What the attacker knows and how many attacks: fixed, so the gate is deterministic."""

    columns: tuple[str, ...]
    link_groups: tuple[tuple[str, ...], tuple[str, ...]]
    known: tuple[str, ...]
    secrets: tuple[str, ...]
    n_attacks: int
    n_cols: int
    seed: int
    max_attacks: int = 5_000  # later rounds, for an interval spanning the limit
    max_attempts: int = 20_000  # singling-out query drafts tried, at most (a time bound)
    # threads for the nearest-neighbour searches (linkability, inference): each target's
    # search is independent, so any count gives the same risks; the stage waits for the
    # attack process, so it gets every core (at 2,000,000 persons 2 threads took a round
    # of 2,000 attacks from 445-470 s to 238-242 s on 2 cores, the same risks)
    n_jobs: int = 1


def run_attacks(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    twin: pd.DataFrame,
    schema: TableSchema,
    spec: AttackSpec,
    workdir: Path,
    limit: float | None = None,
) -> list[AttackRisk]:
    """Every attack on `twin`; `train` is sub-sampled (seeded) to the holdout's size.

    With a `limit` (the gate's maximum risk), an attack whose 95% interval still spans it is
    run again with `ESCALATION` times the attacks, up to `spec.max_attacks` (and the holdout's
    size), and that round's figures replace the first's. With 500 attacks an inference risk's
    interval is about +-0.13 wide, so near the limit the point estimate alone passed or failed
    a twin by chance (issue 13: the failing column moved with the settings at 2M persons)."""
    rows = min(len(train), len(holdout))
    ori = train.sample(n=rows, random_state=spec.seed).reset_index(drop=True)
    control = holdout.sample(n=rows, random_state=spec.seed + 1).reset_index(drop=True)
    frames = {
        "ori": _parquet(attack_frame(ori, schema, spec.columns)),
        "control": _parquet(attack_frame(control, schema, spec.columns)),
        "syn": _parquet(attack_frame(twin, schema, spec.columns)),
    }
    base = {
        "link_groups": [list(g) for g in spec.link_groups],
        "known": list(spec.known),
        "secrets": list(spec.secrets),
        "n_cols": spec.n_cols,
        "max_attempts": spec.max_attempts,
        "seed": spec.seed,
        "n_jobs": spec.n_jobs,
    }
    asked = min(spec.n_attacks, rows)  # a target is attacked once at most
    risks = _round(frames, base | {"n_attacks": asked, "only": None}, workdir)
    cap = min(max(spec.max_attacks, spec.n_attacks), rows)
    while limit is not None and asked < cap:
        unsettled = [r.name for r in risks if r.ci[0] < limit <= r.ci[1]]
        if not unsettled:
            break
        before, asked = asked, min(asked * ESCALATION, cap)
        again = _round(frames, base | {"n_attacks": asked, "only": unsettled}, workdir)
        better = {r.name: replace(r, rounds=(*_rounds(risks, r.name), before)) for r in again}
        risks = [better.get(r.name, r) for r in risks]
    return risks


def _rounds(risks: list[AttackRisk], name: str) -> tuple[int, ...]:
    return next(r.rounds for r in risks if r.name == name)


def _round(frames: dict[str, bytes], settings: dict, workdir: Path) -> list[AttackRisk]:
    """One anonymeter run on the frames, once per input (the same files give the same risks)."""
    same_risks = {k: v for k, v in settings.items() if k != "n_jobs"}  # threads change no risk
    digest = hashlib.sha256(json.dumps(same_risks, sort_keys=True).encode())
    for name in sorted(frames):
        digest.update(frames[name])
    directory = workdir / f"attacks-{digest.hexdigest()[:16]}"
    result = directory / "risks.json"
    if not result.exists():
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        for name, data in frames.items():
            (directory / f"{name}.parquet").write_bytes(data)
        (directory / "spec.json").write_text(json.dumps(settings), encoding="utf-8")
        _run(directory)
    return [
        AttackRisk(
            name=r["name"],
            risk=float(r["risk"]),
            ci=(float(r["ci"][0]), float(r["ci"][1])),
            attack_rate=float(r["attack_rate"]),
            control_rate=None if r["control_rate"] is None else float(r["control_rate"]),
            baseline_rate=float(r["baseline_rate"]),
            n_attacks=int(r["n_attacks"]),
            warnings=tuple(r.get("warnings", ())),
        )
        for r in json.loads(result.read_text(encoding="utf-8"))
    ]


def _run(directory: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    python = anonymeter_python()
    # compiled numba kernels only (no data), filled by `scripts/bootstrap.sh anonymeter`
    env.update(NUMBA_CACHE_DIR=str(python.parent.parent / "numba-cache"), POLARS_MAX_THREADS="2")
    proc = subprocess.run(
        [str(python), "-I", str(RUNNER), str(directory)],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
        check=False,
    )
    if proc.returncode != 0 or not (directory / "risks.json").exists():
        # anonymeter's traceback may quote a value from the frames: keep it out of the message
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1].split(":")[0]
        raise TwinError(
            f"anonymeter attacks failed ({last}, exit {proc.returncode}); check the anonymeter "
            "environment with `scripts/bootstrap.sh anonymeter` and run again."
        )
