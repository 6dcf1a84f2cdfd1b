"""Automatic disclosure checks on the files a real-data run wrote to outputs/.

ACRO's rules are the reference (acro/default.yaml: minimum cell count 10, dominance n=2
k=0.9, p-ratio 0.1, residual degrees of freedom >= 10, zeros disclosive, rounding base 5),
tightened by the challenge's `output_rules`. Each file gets one verdict:

- `safe`: every rule that applies was checked and holds (it still needs the airlock);
- `unsafe`: a rule is broken; `rule` says which (withheld);
- `review`: the checker cannot classify it ("needs manual review"; withheld by default).

What is checked directly, from the file alone:
- CSV with a count column (count, n, aantal, frequency...): a table of counts or of means
  with their counts; every count >= min_cell_count, no zeros, a multiple of round_to;
  min/max columns are one person's value (unsafe); sums need ACRO (dominance).
- CSV of integers with label columns only (a crosstab): every cell is a count, same rules.
- CSV or JSON of model coefficients (coef/estimate) with residual degrees of freedom
  (dof, df_resid): dof >= safe_dof_threshold.
- JSON numbers with their counts (keys n, count, ...): every count as above.
ACRO's own results (a folder with results.json written by `acro.finalise`) are the
notebook's claim, not proof: an output is trusted only for what ACRO checked, its file must
match ACRO's checksum, ACRO's configuration must not be looser than ours, and our direct
checks run as well (the worst verdict wins). The threshold, zero and dof checks call ACRO's
own `SDCChecks` functions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd

MAX_BYTES = 16 * 2**20
MAX_ROWS = 5000  # OpenSAFELY's release limit for CSV rows
COUNT_NAMES = {"count", "counts", "n", "aantal", "freq", "frequency", "nobs", "size", "n_obs"}
DOF_NAMES = {"dof", "df_resid", "df_residuals", "residual_dof", "df residuals"}
COEF_NAMES = {"coef", "coefficient", "estimate", "beta", "odds_ratio"}
EXTREME_NAMES = {"min", "max", "minimum", "maximum", "amin", "amax"}
SUM_NAMES = {"sum", "total", "totaal", "som"}
KEY_NAMES = {"pupil_id", "bsn", "rinpersoon", "person_id", "pseudonym"}
ACRO_BOOKKEEPING = {"results.json", "config.json"}


@dataclass(frozen=True)
class Rules:
    """The thresholds one challenge applies (ACRO's defaults unless the pack is stricter)."""

    min_cell_count: int = 10
    round_to: int = 5
    nk_n: int = 2
    nk_k: float = 0.9
    p_ratio: float = 0.1
    dof: int = 10
    zeros_disclosive: bool = True

    @classmethod
    def from_output_rules(cls, rules: Any | None) -> Rules:
        """From a challenge pack's OutputRules (never looser than ACRO's defaults)."""
        if rules is None:
            return cls()
        base = cls()
        return cls(
            min_cell_count=max(base.min_cell_count, int(rules.min_cell_count)),
            round_to=max(1, int(rules.round_to)),
            nk_n=int(getattr(rules, "dominance_n", base.nk_n)),
            nk_k=min(base.nk_k, float(getattr(rules, "dominance_k", base.nk_k))),
        )

    def risk_appetite(self) -> dict:
        """In the shape ACRO's SDCChecks expects."""
        return {
            "safe_threshold": self.min_cell_count,
            "safe_dof_threshold": self.dof,
            "safe_nk_n": self.nk_n,
            "safe_nk_k": self.nk_k,
            "safe_pratio_p": self.p_ratio,
            "check_missing_values": False,
            "survival_safe_threshold": self.min_cell_count,
            "zeros_are_disclosive": self.zeros_disclosive,
            "safe_round_base": self.round_to,
        }


@dataclass
class Verdict:
    """One output file's verdict; `rule` names the broken rule or what needs a person."""

    name: str
    verdict: str  # safe | unsafe | review
    kind: str
    rule: str = ""
    checked: list[str] = field(default_factory=list)
    sha256: str = ""

    def to_json(self) -> dict:
        return dict(self.__dict__)


_RANK = {"safe": 0, "review": 1, "unsafe": 2}


def worst(a: Verdict, b: Verdict) -> Verdict:
    return a if _RANK[a.verdict] >= _RANK[b.verdict] else b


# -- ACRO's check functions --------------------------------------------------------------------


def _sdc(rules: Rules):
    from acro.sdcchecks import SDCChecks

    return SDCChecks(rules.risk_appetite())


def _acro_counts(counts: pd.DataFrame, rules: Rules) -> list[str]:
    """Broken rules for a table of counts, through ACRO's threshold and zero checks.

    A missing cell (NaN) is a suppressed cell: not shown, so not checked.
    """
    from acro.sdcchecks import SDCEvidence

    sdc = _sdc(rules)
    table = SimpleNamespace(model_type="table", command="table")
    broken = []
    shown = counts.notna()
    evidence = SDCEvidence(interim_tables={"count_table": counts.fillna(rules.min_cell_count)})
    status, _summary, mask = sdc.check_min_threshold("table", evidence, table)
    if status == "fail":
        small = counts[mask & shown].stack()  # how many, never which value (it is real)
        broken.append(f"minimum cell count: {len(small)} cell(s) below {rules.min_cell_count}")
    evidence = SDCEvidence(interim_tables={"count_table": counts.fillna(1)})
    status, _summary, _mask = sdc.check_presence_of_zero("table", evidence, table)
    if status == "fail":
        broken.append("zeros are disclosive: the table has a zero count")
    if rules.round_to > 1:
        values = counts.stack().dropna()
        off = values[(values % rules.round_to) != 0]
        if len(off):
            broken.append(
                f"rounding: {len(off)} count(s) not a multiple of {rules.round_to} "
                "(round counts before writing them)"
            )
    return broken


def _acro_dof(dof: float, rules: Rules) -> list[str]:
    from acro.sdcchecks import SDCEvidence

    evidence = SDCEvidence(dof=int(dof))
    status, _summary, _ = _sdc(rules).check_model_dof("model", evidence, None)
    if status == "fail":
        return [f"residual degrees of freedom {int(dof)} < {rules.dof}"]
    return []


# -- classification -----------------------------------------------------------------------------


def _norm(name: Any) -> str:
    if isinstance(name, tuple):
        name = name[0]
    return str(name).strip().lower()


def _is_integral(series: pd.Series) -> bool:
    values = pd.to_numeric(series, errors="coerce").dropna()
    return len(values) > 0 and bool(((values % 1) == 0).all())


def _numeric_columns(df: pd.DataFrame, labels: set[str]) -> list:
    cols = []
    for col in df.columns:
        name = _norm(col)
        if name in labels or name.startswith("unnamed") or name.endswith(("_band", "_groep")):
            continue
        converted = pd.to_numeric(df[col], errors="coerce")
        if converted.notna().sum() >= max(1, df[col].notna().sum()):
            cols.append(col)
    return cols


def check_table(df: pd.DataFrame, rules: Rules, labels: set[str]) -> tuple[str, str, list[str]]:
    """(verdict, kind/rule, checked) for a table read from CSV."""
    names = {_norm(c) for c in df.columns}
    if names & KEY_NAMES:
        return "unsafe", "row-level data: it has a person key column", []
    if len(df) > MAX_ROWS:
        return "unsafe", f"row-level data: {len(df):,} rows (more than {MAX_ROWS:,})", []
    data_cols = names & labels
    numeric = _numeric_columns(df, labels)
    counts = [c for c in df.columns if _norm(c) in COUNT_NAMES]
    if len(data_cols) >= 4 and not counts:
        return (
            "unsafe",
            f"row-level data: {len(df):,} rows with {len(data_cols)} columns of the analysis "
            "table and no counts",
            [],
        )
    if names & EXTREME_NAMES:
        return "unsafe", "a minimum or maximum is one person's value; leave it out", []
    coef = [c for c in df.columns if _norm(c) in COEF_NAMES]
    dof = [c for c in df.columns if _norm(c) in DOF_NAMES]
    if coef:
        if not dof:
            return "review", "model coefficients without their residual degrees of freedom", []
        values = pd.to_numeric(df[dof[0]], errors="coerce").dropna()
        if values.empty:
            return "review", "model coefficients with an empty degrees-of-freedom column", []
        broken = _acro_dof(values.min(), rules)
        return _result(broken, "model", ["MinimumDoFCheck"])
    if counts:
        table = df[counts].apply(pd.to_numeric, errors="coerce")
        if names & SUM_NAMES:
            return "review", "a table of sums needs the dominance check: use ACRO's pivot_table", []
        stats = [c for c in numeric if c not in counts]
        kind = "means with counts" if stats else "counts"
        return _result(
            _acro_counts(table, rules),
            kind,
            ["MinimumThresholdCheck", "PresenceOfZeroCheck", "rounding"],
        )
    if numeric and all(_is_integral(df[c]) for c in numeric) and len(numeric) < len(df.columns):
        table = df[numeric].apply(pd.to_numeric, errors="coerce")
        return _result(
            _acro_counts(table, rules),
            "crosstab of counts",
            ["MinimumThresholdCheck", "PresenceOfZeroCheck", "rounding"],
        )
    if numeric:
        return "review", "numbers without their counts (add a count column per row)", []
    return "review", "no numbers to check (a text table)", []


def _result(broken: list[str], kind: str, checked: list[str]) -> tuple[str, str, list[str]]:
    if broken:
        return "unsafe", "; ".join(broken), checked
    return "safe", kind, checked


def _walk(data: Any, path: str = "") -> list[tuple[str, Any]]:
    items = []
    if isinstance(data, dict):
        for k, v in data.items():
            items += _walk(v, f"{path}.{k}" if path else str(k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            items += _walk(v, f"{path}[{i}]")
    else:
        items.append((path, data))
    return items


def check_json(data: Any, rules: Rules) -> tuple[str, str, list[str]]:
    leaves = _walk(data)
    numbers = [(p, v) for p, v in leaves if isinstance(v, int | float) and not isinstance(v, bool)]
    if not numbers:
        return "review", "no numbers to check", []
    last = [(p.rsplit(".", 1)[-1].split("[")[0].lower(), v) for p, v in numbers]
    if any(k in KEY_NAMES for k, _ in last) or len(numbers) > MAX_ROWS:
        return "unsafe", "row-level data in JSON", []
    if any(k in EXTREME_NAMES for k, _ in last):
        return "unsafe", "a minimum or maximum is one person's value; leave it out", []
    dofs = [v for k, v in last if k in DOF_NAMES]
    if dofs:
        return _result(_acro_dof(min(dofs), rules), "model", ["MinimumDoFCheck"])
    counts = [v for k, v in last if k in COUNT_NAMES]
    if counts:
        table = pd.DataFrame({"count": counts}, dtype=float)
        return _result(
            _acro_counts(table, rules),
            "numbers with counts",
            ["MinimumThresholdCheck", "PresenceOfZeroCheck", "rounding"],
        )
    return "review", "numbers without their counts or degrees of freedom", []


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_file(path: Path, name: str, rules: Rules, labels: set[str]) -> Verdict:
    """The direct verdict for one file (no ACRO claims involved)."""
    size = path.stat().st_size
    digest = sha256_file(path)
    if size > MAX_BYTES:
        return Verdict(name, "unsafe", "file", f"larger than {MAX_BYTES // 2**20} MB", [], digest)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            df = pd.read_csv(path)
        except Exception:
            return Verdict(name, "review", "file", "not a readable CSV table", [], digest)
        verdict, what, checked = check_table(df, rules, labels)
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            return Verdict(name, "review", "file", "not valid JSON", [], digest)
        verdict, what, checked = check_json(data, rules)
    elif suffix in (".png", ".jpg", ".jpeg", ".svg", ".pdf", ".gif"):
        return Verdict(
            name, "review", "figure", "a figure cannot be checked automatically", [], digest
        )
    else:
        return Verdict(
            name, "review", "file", f"a {suffix or 'suffix-less'} file is not a table", [], digest
        )
    if verdict == "safe":
        return Verdict(name, "safe", what, "", checked, digest)
    kind = "table" if suffix == ".csv" else "json"
    return Verdict(name, verdict, kind, what, checked, digest)


# -- ACRO results -------------------------------------------------------------------------------


def _acro_outputs(folder: Path, rules: Rules) -> tuple[dict[str, Verdict], set[str]]:
    """Verdicts ACRO claims for files in `folder` (its results.json), and its bookkeeping files."""
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    bookkeeping = {"results.json", "config.json"}
    bookkeeping |= {f"checksums/{p.name}" for p in (folder / "checksums").glob("*")}
    looser = _looser_config(folder, rules)
    claims: dict[str, Verdict] = {}
    for uid, output in (results.get("results") or {}).items():
        status = output.get("status")
        for f in output.get("files", []):
            name = f.get("name", "")
            if "DONT_RELEASE" in uid:
                claims[name] = Verdict(name, "unsafe", "acro", "ACRO marks it DONT_RELEASE")
                continue
            expected = folder / "checksums" / f"{name}.txt"
            path = folder / name
            if not path.is_file():
                continue
            if not expected.is_file() or expected.read_text().strip() != sha256_file(path):
                claims[name] = Verdict(
                    name, "unsafe", "acro", "the file differs from what ACRO checked"
                )
            elif looser:
                claims[name] = Verdict(name, "review", "acro", f"ACRO ran with {looser}")
            elif status == "pass":
                checked = sorted((f.get("sdc") or {}).get("summary", {}))
                claims[name] = Verdict(name, "safe", f"acro {output.get('type')}", "", checked)
            elif status == "fail":
                summary = " ".join(str(output.get("summary", "")).split())[:300]
                claims[name] = Verdict(name, "unsafe", "acro", f"ACRO: {summary}")
            else:
                claims[name] = Verdict(name, "review", "acro", "ACRO asks for a manual review")
    return claims, bookkeeping


def _looser_config(folder: Path, rules: Rules) -> str:
    path = folder / "config.json"
    if not path.is_file():
        return "an unknown configuration (config.json is missing)"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        if config.get("safe_threshold", 0) < rules.min_cell_count:
            return f"safe_threshold {config.get('safe_threshold')} < {rules.min_cell_count}"
        if config.get("safe_dof_threshold", 0) < rules.dof:
            return f"safe_dof_threshold {config.get('safe_dof_threshold')} < {rules.dof}"
        if config.get("safe_nk_k", 1) > rules.nk_k or config.get("safe_nk_n", 0) < rules.nk_n:
            return "a looser dominance rule"
        if config.get("safe_pratio_p", 0) < rules.p_ratio:
            return "a looser p-ratio rule"
        if not config.get("zeros_are_disclosive", False) and rules.zeros_disclosive:
            return "zeros_are_disclosive false"
    except (ValueError, AttributeError, TypeError):
        return "an unreadable config.json"
    return ""


def check_outputs(
    outputs: Path, rules: Rules | None = None, labels: set[str] | frozenset = frozenset()
) -> list[Verdict]:
    """A verdict for every file under `outputs` (relative names, sorted)."""
    rules = rules or Rules()
    outputs = Path(outputs)
    labels = {str(c).lower() for c in labels}
    claims: dict[str, Verdict] = {}
    skip: set[str] = set()
    for results in sorted(outputs.rglob("results.json")):
        folder = results.parent
        prefix = "" if folder == outputs else folder.relative_to(outputs).as_posix() + "/"
        try:
            found, bookkeeping = _acro_outputs(folder, rules)
        except (ValueError, OSError, AttributeError):
            continue  # not ACRO's: checked as a plain file below
        claims.update({prefix + k: v for k, v in found.items()})
        skip |= {prefix + b for b in bookkeeping}
    verdicts = []
    for path in sorted(p for p in outputs.rglob("*") if p.is_file() and not p.is_symlink()):
        name = path.relative_to(outputs).as_posix()
        if name in skip:
            verdicts.append(
                Verdict(name, "unsafe", "acro", "ACRO's bookkeeping, not an output", [], "")
            )
            continue
        direct = check_file(path, name, rules, labels)
        claim = claims.get(name)
        if claim is not None:
            claim.name, claim.sha256 = name, direct.sha256
            if claim.verdict == "safe" and direct.verdict == "review":
                direct = claim  # ACRO checked what the file alone cannot show (e.g. dominance)
            else:
                direct = worst(direct, claim)
                if direct is claim and claim.verdict == "safe":
                    direct.checked = sorted(set(direct.checked) | set(claim.checked))
        verdicts.append(direct)
    return verdicts
