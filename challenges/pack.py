"""Challenge packs: `challenges/<id>/` with challenge.yaml, brief.md and a starter notebook.

A pack is data, not code: an organiser adds one by dropping a directory into the event's
`challenges/` folder (or a directory on $HACKGAP_CHALLENGE_PATH). Loading checks the
file against the JSON Schema and then what a schema cannot say (weights sum to 1,
statistics exist and read declared columns), and reports each problem as one sentence.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from challenges.errors import ChallengeError, where
from challenges.statistics import STATISTICS, check_params, statistic_columns

PACK_FILE = "challenge.yaml"
BUILTIN_DIR = Path(__file__).with_name("packs")
SCHEMA_FILE = Path(__file__).with_name("challenge.schema.json")
PATH_ENV = "HACKGAP_CHALLENGE_PATH"
DEFAULT_FILES = {"brief": "brief.md", "notebook": "starter.ipynb"}


@dataclass(frozen=True)
class FidelityCheck:
    """A statistic the twin must preserve: |twin value - real value| <= allowed(rows).

    `tolerance` holds at `reference_rows` analysis-table rows (the size it was calibrated
    at); a smaller table has more sampling noise, so `allowed` widens it by
    sqrt(reference_rows / rows). None: the tolerance holds at any size.
    """

    name: str
    statistic: str
    params: dict
    tolerance: float
    description: str
    reference_rows: int | None = None

    def allowed(self, rows: int) -> float:
        """The tolerance for a real table of `rows` rows: sampling noise grows as 1/sqrt(n).

        `rows` is the whole analysis table's row count, not the rows the statistic selects
        (those shrink in the same proportion, so the ratio is the same in expectation).
        """
        if not self.reference_rows or rows <= 0:
            return self.tolerance
        return self.tolerance * max(1.0, math.sqrt(self.reference_rows / rows))

    @property
    def columns(self) -> tuple[str, ...]:
        """Analysis-table columns the statistic reads."""
        return statistic_columns(self.statistic, self.params)

    def compute(self, df: pd.DataFrame) -> float:
        """The statistic's value on `df` (real table or twin); StatisticError if unsupported."""
        return STATISTICS[self.statistic](df, **self.params)


@dataclass(frozen=True)
class Criterion:
    """One rubric line judges score on the rubric's scale."""

    id: str
    title: dict
    description: dict
    weight: float


@dataclass(frozen=True)
class Rubric:
    """Criteria with weights summing to 1, scored on an integer scale."""

    scale_min: int
    scale_max: int
    criteria: tuple[Criterion, ...]
    labels: dict = field(default_factory=dict)

    def weighted(self, scores: dict[str, float]) -> float:
        """Weighted score of one judge's scores (criterion id -> score on the scale)."""
        return sum(c.weight * scores[c.id] for c in self.criteria)


@dataclass(frozen=True)
class OutputRules:
    """Disclosure rules for results computed on real data (ACRO's defaults as reference)."""

    min_cell_count: int = 10
    round_to: int = 5
    dominance_n: int = 2
    dominance_k: float = 0.9


@dataclass(frozen=True)
class Pack:
    """A loaded, checked challenge pack."""

    id: str
    title: dict
    question: dict
    datasets: tuple[str, ...]
    columns: tuple[str, ...]
    fidelity: tuple[FidelityCheck, ...]
    rubric: Rubric
    output_rules: OutputRules
    path: Path
    version: int = 1
    key_statistic: str | None = None
    verification: bool = True  # real-data verification allowed for this challenge

    @property
    def brief_path(self) -> Path:
        return self.path / self._files.get("brief", DEFAULT_FILES["brief"])

    @property
    def notebook_path(self) -> Path:
        return self.path / self._files.get("notebook", DEFAULT_FILES["notebook"])

    @property
    def key_check(self) -> FidelityCheck:
        """The check the starter notebook plots (key_statistic, else the first)."""
        return next((c for c in self.fidelity if c.name == self.key_statistic), self.fidelity[0])

    _files: dict = field(default_factory=dict, repr=False)


# --- finding packs ----------------------------------------------------------------------


def search_dirs(search_path: Iterable[str | Path] | None = None) -> list[Path]:
    """Where packs are looked up, first match wins.

    Order: search_path (e.g. the event's challenges/), $HACKGAP_CHALLENGE_PATH, built-ins.
    """
    dirs = [Path(p) for p in (search_path or [])]
    env = os.environ.get(PATH_ENV, "")
    dirs += [Path(p) for p in env.split(os.pathsep) if p]
    dirs.append(BUILTIN_DIR)
    return dirs


def find_pack(pack_id: str, search_path: Iterable[str | Path] | None = None) -> Path:
    """Directory of the pack with this id; ChallengeError naming the places looked in."""
    dirs = search_dirs(search_path)
    for directory in dirs:
        candidate = directory / pack_id
        if (candidate / PACK_FILE).is_file() or (candidate.is_dir() and directory != BUILTIN_DIR):
            return candidate
    looked = ", ".join(str(d) for d in dirs)
    raise ChallengeError(
        f"{where(pack_id, PACK_FILE)}: no pack with this id in {looked}; check the spelling "
        f"or add a directory {pack_id}/ to the event's challenges/ folder."
    )


def pack_ids(search_path: Iterable[str | Path] | None = None) -> list[str]:
    """Ids of every pack on the search path (directories holding a challenge.yaml)."""
    ids: dict[str, None] = {}
    for directory in search_dirs(search_path):
        if directory.is_dir():
            ids.update(
                dict.fromkeys(p.parent.name for p in sorted(directory.glob(f"*/{PACK_FILE}")))
            )
    return sorted(ids)


def load_pack(pack: str | Path, search_path: Iterable[str | Path] | None = None) -> Pack:
    """Load and check a pack by id (looked up on the search path) or by its directory."""
    text = str(pack)
    path = Path(pack)
    if isinstance(pack, Path) or os.sep in text or (path.is_dir() and (path / PACK_FILE).exists()):
        return load_pack_dir(path)
    return load_pack_dir(find_pack(text, search_path))


def load_packs(
    ids: Sequence[str] | None = None, search_path: Iterable[str | Path] | None = None
) -> list[Pack]:
    """Load the packs with these ids (all packs on the search path if None), in that order.

    Problems in several packs are reported together.
    """
    search_path = list(search_path or [])
    packs, problems = [], []
    for pack_id in pack_ids(search_path) if ids is None else ids:
        try:
            packs.append(load_pack(pack_id, search_path))
        except ChallengeError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ChallengeError(problems)
    return packs


# --- loading one directory --------------------------------------------------------------


@functools.cache
def challenge_schema() -> dict[str, Any]:
    """The JSON Schema of challenge.yaml (also for editors: challenges/challenge.schema.json)."""
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def load_pack_dir(directory: Path) -> Pack:
    """Load a pack directory; every problem found is one sentence in the ChallengeError."""
    directory = Path(directory)
    name = directory.name
    file = directory / PACK_FILE
    if not directory.is_dir():
        raise ChallengeError(
            f"{where(name, PACK_FILE)}: the directory {directory} does not exist; create it or "
            "fix the path."
        )
    if not file.is_file():
        raise ChallengeError(
            f"{where(name, PACK_FILE)}: the file is missing from {directory}; every pack needs "
            "one (see docs/challenges.md)."
        )
    data = _read_yaml(file, name)
    pack_id = data.get("id") if isinstance(data.get("id"), str) else name
    # Imported here: jsonschema takes seconds to import, and every `hackgap` command
    # imports this module.
    import jsonschema

    errors = sorted(
        jsonschema.Draft202012Validator(challenge_schema()).iter_errors(data),
        key=lambda e: [str(p) for p in e.absolute_path],
    )
    if errors:
        raise ChallengeError([_schema_sentence(pack_id, e) for e in errors])
    pack = _build(data, directory)
    problems = _semantic_problems(pack, name)
    problems += _missing_files(pack)
    if problems:
        raise ChallengeError(problems)
    return pack


def _read_yaml(file: Path, name: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise ChallengeError(
            f"{where(name, PACK_FILE)}: not valid YAML{line}; fix the indentation or quoting there."
        ) from None
    except UnicodeDecodeError:
        raise ChallengeError(
            f"{where(name, PACK_FILE)}: not UTF-8 text; save it as UTF-8."
        ) from None
    if not isinstance(data, dict):
        raise ChallengeError(
            f"{where(name, PACK_FILE)}: must be a mapping of keys to values; start from a "
            "built-in pack (see docs/challenges.md)."
        )
    return data


def _field(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _schema_sentence(pack_id: str, err: Any) -> str:
    """One sentence per schema error; never echoes long values."""
    path = list(err.absolute_path)
    kind = err.validator
    if kind == "required":
        missing = err.message.split("'")[1]
        path.append(missing)
        return f"{where(pack_id, PACK_FILE, _field(path))}: required but missing; add it."
    if kind == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        known = ", ".join(err.schema.get("properties", {}))
        return (
            f"{where(pack_id, PACK_FILE, _field(path) or None)}: unknown key(s) "
            f"{', '.join(map(str, extra))}; remove them or use one of {known}."
        )
    field_name = _field(path) or None
    if kind == "enum":
        allowed = ", ".join(map(str, err.validator_value))
        return f"{where(pack_id, PACK_FILE, field_name)}: must be one of {allowed}; fix the value."
    if kind == "type":
        return (
            f"{where(pack_id, PACK_FILE, field_name)}: must be of type {err.validator_value} "
            f"(got {type(err.instance).__name__}); fix the value."
        )
    if kind == "pattern":
        return (
            f"{where(pack_id, PACK_FILE, field_name)}: '{err.instance}' does not match "
            f"{err.validator_value}; use lowercase letters, digits and dashes or underscores."
        )
    reason = err.message if len(err.message) < 120 else f"fails the '{kind}' rule"
    return f"{where(pack_id, PACK_FILE, field_name)}: {reason.rstrip('.')}; fix the value."


def _build(data: dict[str, Any], directory: Path) -> Pack:
    rubric = data["rubric"]
    rules = data["output_rules"]
    dominance = rules.get("dominance", {})
    return Pack(
        id=data["id"],
        version=data.get("version", 1),
        title=dict(data["title"]),
        question=dict(data["question"]),
        datasets=tuple(data["datasets"]),
        columns=tuple(data["columns"]),
        fidelity=tuple(
            FidelityCheck(
                name=c["name"],
                statistic=c["statistic"],
                params=dict(c["params"]),
                tolerance=float(c["tolerance"]),
                description=c["description"].strip(),
                reference_rows=data.get("tolerance_reference_rows"),
            )
            for c in data["fidelity"]
        ),
        rubric=Rubric(
            scale_min=rubric["scale"]["min"],
            scale_max=rubric["scale"]["max"],
            labels={str(k): dict(v) for k, v in rubric["scale"].get("labels", {}).items()},
            criteria=tuple(
                Criterion(
                    id=c["id"],
                    title=dict(c["title"]),
                    description={k: v.strip() for k, v in c["description"].items()},
                    weight=float(c["weight"]),
                )
                for c in rubric["criteria"]
            ),
        ),
        output_rules=OutputRules(
            min_cell_count=rules["min_cell_count"],
            round_to=rules["round_to"],
            dominance_n=dominance.get("n", OutputRules.dominance_n),
            dominance_k=float(dominance.get("k", OutputRules.dominance_k)),
        ),
        path=directory.resolve(),
        key_statistic=data.get("key_statistic"),
        verification=bool(data.get("verification", True)),
        _files={**DEFAULT_FILES, **data.get("files", {})},
    )


def _semantic_problems(pack: Pack, dir_name: str) -> list[str]:
    """What the schema cannot say: ids, sums, statistics and their columns."""
    at = functools.partial(where, pack.id, PACK_FILE)
    problems = []
    if pack.id != dir_name:
        problems.append(
            f"{at('id')}: '{pack.id}' differs from the directory name '{dir_name}'; rename one "
            "so they match."
        )
    total = sum(c.weight for c in pack.rubric.criteria)
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        problems.append(
            f"{at('rubric.weights')}: the weights sum to {round(total, 6):g}; make them sum to 1."
        )
    if pack.rubric.scale_min >= pack.rubric.scale_max:
        problems.append(
            f"{at('rubric.scale')}: min must be below max; fix the scale (e.g. 1 to 5)."
        )
    problems += _duplicates([c.id for c in pack.rubric.criteria], at, "rubric.criteria", "id")
    problems += _duplicates([c.name for c in pack.fidelity], at, "fidelity", "name")
    declared = set(pack.columns)
    for i, check in enumerate(pack.fidelity):
        if check.statistic not in STATISTICS:
            problems.append(
                f"{at(f'fidelity[{i}].statistic')}: unknown statistic '{check.statistic}'; use "
                f"one of {', '.join(STATISTICS)}."
            )
            continue
        bad = check_params(check.statistic, check.params)
        problems += [f"{at(f'fidelity[{i}].params.{p}')}: {reason}." for p, reason in bad]
        if bad:
            continue
        undeclared = [c for c in check.columns if c not in declared]
        if undeclared:
            problems.append(
                f"{at(f'fidelity[{i}].params')}: '{check.name}' reads column(s) "
                f"{', '.join(undeclared)}, which the pack does not declare; add them to columns."
            )
    if pack.key_statistic and pack.key_statistic not in {c.name for c in pack.fidelity}:
        problems.append(
            f"{at('key_statistic')}: '{pack.key_statistic}' is not a fidelity check of this pack; "
            "name one of its checks."
        )
    return problems


def _duplicates(values: list[str], at: Any, prefix: str, key: str) -> list[str]:
    seen: set[str] = set()
    out = []
    for i, value in enumerate(values):
        if value in seen:
            out.append(f"{at(f'{prefix}[{i}].{key}')}: '{value}' appears twice; make it unique.")
        seen.add(value)
    return out


def _missing_files(pack: Pack) -> list[str]:
    out = []
    for key, path in (("brief", pack.brief_path), ("notebook", pack.notebook_path)):
        if not path.is_file():
            out.append(
                f"{where(pack.id, path.name, f'files.{key}')}: the file is missing from "
                f"{pack.path}; add it (a built-in pack shows the shape) or fix files.{key} in "
                f"{PACK_FILE}."
            )
    return out


def validate_pack(pack: Pack, available_columns: Iterable[str] | None = None) -> None:
    """Check what loading cannot: columns exist in the analysis table, templates render.

    `available_columns` comes from the analysis-table schema (the flows hand it over);
    None skips that check.
    """
    from challenges.render import check_templates

    problems = []
    if available_columns is not None:
        available = set(available_columns)
        reported: set[str] = set()
        for i, check in enumerate(pack.fidelity):
            for column in check.columns:
                if column not in available:
                    reported.add(column)
                    problems.append(
                        f"{where(pack.id, PACK_FILE, f'fidelity[{i}].params')}: statistic "
                        f"'{check.name}' names column '{column}', which the linked analysis "
                        "table lacks; use one of its columns (flows/schemas/analysis_table.yaml)."
                    )
        for column in pack.columns:
            if column not in available and column not in reported:
                problems.append(
                    f"{where(pack.id, PACK_FILE, 'columns')}: column '{column}' is not in the "
                    "linked analysis table; use a column of flows/schemas/analysis_table.yaml."
                )
    problems += check_templates(pack)
    if problems:
        raise ChallengeError(problems)
