"""The event model: one `event.yaml` describes a whole hackathon.

Loaded into typed, frozen pydantic settings so every stage reads the same,
validated picture. Validation problems come back as plain sentences that name
the field and the fix, never as a pydantic dump.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

EVENT_FILE = "event.yaml"

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,29}$")]
Username = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]


class EventError(Exception):
    """A problem with an event directory or its event.yaml that the organiser can fix."""

    hackgap_user_error = True

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__(" ".join(self.problems))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Model):
    """One extract an organiser received, as a file in the event directory."""

    path: Path = Field(description="File path, relative to the event directory.")
    format: str = Field(
        description="Reader: brp-csv, statline-csv, cbs-odata, kwb, cbs-pc6hnr or duo-csv."
    )
    encoding: str = Field(
        "auto", description="Text encoding, or auto to detect (UTF-8, UTF-8 with BOM, cp1252)."
    )
    delimiter: str = Field("auto", description="Field delimiter, or auto to detect.")
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Column mapping from the names hackgap expects to the names in this file.",
    )


class Sources(_Model):
    municipal: Source
    cbs: Source
    postcodes: Source
    school: Source


class SecureZone(_Model):
    """Settings that only apply inside the secure zone."""

    pseudonym_key_env: str = Field(
        "HACKGAP_PSEUDONYM_KEY",
        description="Environment variable holding the HMAC key for pseudonyms (at least 32 bytes).",
    )
    pseudonym_key_file: Path | None = Field(
        None, description="File holding the HMAC key; used when the environment variable is unset."
    )
    key_version: str = Field(
        "v1",
        description="Label of the key, recorded in manifests; change it when you rotate the key.",
    )
    match_threshold: float = Field(
        0.95,
        gt=0,
        lt=1,
        description="Minimum Splink match probability to accept a probabilistic link.",
    )
    min_cell_count: int = Field(
        10, ge=1, description="Smallest count shown in reports and released outputs."
    )
    min_link_rate: float = Field(
        0.8,
        ge=0,
        le=1,
        description="Smallest share of pupils that must link to a register person; below it "
        "the link stage stops before publishing.",
    )
    minimise_margin_years: float = Field(
        1.0,
        ge=0,
        description="Register persons are kept only when born within the school data's "
        "birth-date range widened by this many years (plus the parents they name).",
    )


class TwinThresholds(_Model):
    """Release-gate thresholds for the synthetic twin; safe defaults."""

    min_quality: float = Field(
        0.80, ge=0, le=1, description="Minimum SDMetrics overall quality score."
    )
    max_identical_share: float = Field(
        0.15,
        ge=0,
        le=1,
        description="Largest share of twin rows equal to a real row on every column (rows equal "
        "to a real row that is unique in the real table are always redrawn: the gate requires 0).",
    )
    dcr_overfitting_min: float = Field(
        0.9,
        ge=0,
        le=1,
        description="Minimum SDMetrics DCROverfittingProtection score (1 = no overfitting).",
    )
    disclosure_protection_min: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Minimum SDMetrics DisclosureProtection score for sensitive columns "
        "(or the holdout's own score less 0.02, where the population itself scores lower).",
    )
    k_anonymity: int = Field(
        5, ge=2, description="Smallest group size of the coarsened quasi-identifiers."
    )
    rare_category_min: int = Field(
        10, ge=1, description="Categories rarer than this in the real data are merged."
    )
    max_attack_risk: float = Field(
        0.09,
        ge=0,
        le=1,
        description="Largest anonymeter risk (singling out, linkability, inference; point "
        "estimate against the holdout as control); 0.09 is the level the Singapore PDPC guide "
        "calls acceptable.",
    )


class Twin(_Model):
    # cart (sequential CART, synthpop's method) is the default because it is the one that
    # passes the challenge-fidelity gate on the demo event (235,000 persons, 44,424 pupils):
    # 12/12 statistics within tolerance, quality 0.97, in ~15 s; a stratified Gaussian copula
    # kept 3/12 and CTGAN/TVAE 0/12 (a copula cannot hold associations between unordered
    # categories nor gradients at equal covariates). See synthetic/cart.py.
    synthesizer: Literal["cart", "gaussian_copula", "ctgan", "tvae", "hma"] = "cart"
    epochs: int = Field(300, ge=1, description="Training epochs for ctgan/tvae.")
    # auto: synthetic.settings.leaf_floor, measured to pass every gate check at 44,424 pupils
    # (10) and at 189,977 and 380,671 pupils (20), where 10 missed disclosure protection
    min_leaf: Annotated[int, Field(ge=5)] | Literal["auto"] = Field(
        "auto",
        description="cart: fewest real rows in a tree leaf; every value is drawn from that many. "
        "auto: 10 up to 100,000 pupils in the linked table, 20 above (docs/scale.md).",
    )
    max_depth: int | None = Field(
        None,
        ge=1,
        description="cart: cap on tree depth; set 6-8 for tables under ~15,000 pupils, where "
        "unlimited trees can fail the DCR overfitting check.",
    )
    rows: int | None = Field(
        None, ge=1, description="Rows to sample; default the size of the real table."
    )
    # workers 1: a local Dask cluster costs ~8-10 s to start and ~19 s of Prefect task runs
    # per fit; at 1M persons the fit took 25 s in-process, 32 s on 2 workers (docs/scale.md).
    workers: int = Field(
        1,
        ge=1,
        le=256,
        description="cart: Dask worker processes that fit the trees in parallel (Prefect's "
        "DaskTaskRunner); 1 fits them in the stage's own process.",
    )
    dask_address: str | None = Field(
        None,
        pattern=r"^(tcp|tls)://[^\s/]+:[0-9]+$",
        description="cart: address of an organiser's Dask scheduler, e.g. tcp://10.0.0.5:8786; "
        "the trees are fitted on its workers instead of a local cluster.",
    )
    thresholds: TwinThresholds = Field(default_factory=TwinThresholds)

    @field_validator("min_leaf", mode="before")
    @classmethod
    def _leaf_floor(cls, value: Any) -> Any:
        """One sentence for both ways of setting it (pydantic would give one per union arm)."""
        if value == "auto" or (type(value) is int and value >= 5):
            return value
        raise ValueError(
            f"{value!r} is not a leaf floor; set it to auto or a whole number of at least 5 "
            "(each value is drawn from that many real pupils)"
        )

    @property
    def fixed_min_leaf(self) -> int | None:
        """`min_leaf`, or None where it is left to the table's size ("auto")."""
        return None if self.min_leaf == "auto" else self.min_leaf


class Team(_Model):
    name: Slug = Field(
        description="Team name: lowercase letters, digits and dashes, at most 30 characters."
    )
    members: list[Username] = Field(min_length=1)
    open_data_only: bool = Field(
        True, description="False lets the team request verification on real data."
    )
    challenge: Slug | None = Field(
        None, description="The team's chosen challenge; default: every challenge of the event."
    )


class OAuth(_Model):
    """An OAuth provider for production log-in (oauthenticator), instead of hackgap passwords."""

    provider: Literal["github", "generic"] = Field(
        description="github, or generic (any OpenID Connect provider)."
    )
    client_id_env: str = Field(
        "HACKGAP_OAUTH_CLIENT_ID", description="Environment variable holding the client id."
    )
    client_secret_env: str = Field(
        "HACKGAP_OAUTH_CLIENT_SECRET",
        description="Environment variable holding the client secret.",
    )
    callback_url: str | None = Field(
        None, description="The hub's public OAuth callback URL (…/hub/oauth_callback)."
    )
    authorize_url: str | None = Field(None, description="generic: the authorisation endpoint.")
    token_url: str | None = Field(None, description="generic: the token endpoint.")
    userdata_url: str | None = Field(None, description="generic: the userinfo endpoint.")
    username_claim: str = Field(
        "preferred_username", description="generic: the claim that holds the username."
    )


class Sandbox(_Model):
    backend: Literal["local", "docker", "kubernetes"] = "local"
    cpu_limit: float = Field(1.0, gt=0, description="CPUs per team sandbox.")
    mem_limit: str = Field(
        "2G", pattern=r"^\d+(\.\d+)?[KMGT]?$", description="Memory per team sandbox, e.g. 2G."
    )
    start_timeout: int = Field(120, ge=10, description="Seconds to wait for a sandbox to start.")
    image: str = Field(
        "hackgap/sandbox:latest", description="Image for the docker and kubernetes backends."
    )
    hub_image: str = Field(
        "hackgap/hub:latest",
        description="kubernetes: the hub image (z2jh's k8s-hub with hackgap installed, for "
        "its password check and the judge page).",
    )
    auth: Literal["hackgap", "oauth"] = Field(
        "hackgap",
        description="hackgap: personal passwords hackgap generates (stored hashed); "
        "oauth: log in through the provider in `oauth`.",
    )
    oauth: OAuth | None = None
    cull_idle_after: int = Field(
        3600,
        ge=60,
        description="After the event's end, stop team servers idle this many seconds "
        "(never during the event).",
    )
    network: str | None = Field(
        None, description="docker: the event's internal network (default hackgap-<event name>)."
    )


class Judging(_Model):
    judges_per_submission: int = Field(2, ge=1, description="Judges scoring each submission.")
    conflicts: dict[Username, list[Slug]] = Field(
        default_factory=dict,
        description="Judge -> teams they are linked to and must not score.",
    )
    disagreement_margin: float = Field(
        1.5,
        gt=0,
        description="Flag a criterion where two judges' scores differ by more than this.",
    )


class Review(_Model):
    """Re-running and verifying submitted notebooks."""

    time_limit: int = Field(600, ge=10, description="Seconds a notebook may run.")
    mem_limit: str = Field(
        "2G", pattern=r"^\d+(\.\d+)?[KMGT]?$", description="Memory a notebook run may use."
    )
    workers: int | None = Field(
        None, ge=1, description="Notebooks run at once; default the machine's cores."
    )
    two_reviewers: bool = Field(
        False, description="The airlock needs two different reviewers to release an output."
    )
    disk_limit: str = Field(
        "1G",
        pattern=r"^\d+(\.\d+)?[KMGT]?$",
        description="Bytes a notebook run may write (its outputs and scratch files).",
    )


class Event(_Model):
    """A whole hackathon: what the organiser writes in event.yaml."""

    name: Slug = Field(description="Short id of the event: lowercase letters, digits and dashes.")
    title: str
    municipality: str = Field(
        "GM0014", pattern=r"^GM\d{4}$", description="CBS code of the municipality."
    )
    data_year: int = Field(2023, ge=2000, le=2100, description="Reference year of the CBS figures.")
    start: dt.datetime
    deadline: dt.datetime = Field(description="Submissions close.")
    end: dt.datetime
    seed: int = Field(20261126, description="Seed for every random draw in the event.")
    workdir: Path = Field(
        Path(".hackgap"),
        description="Work directory (services, logs), relative to the event directory.",
    )
    sources: Sources
    secure_zone: SecureZone = Field(default_factory=SecureZone)
    twin: Twin = Field(default_factory=Twin)
    challenges: list[Slug] = Field(min_length=1)
    teams: list[Team] = Field(default_factory=list)
    sandbox: Sandbox = Field(default_factory=Sandbox)
    judges: list[Username] = Field(default_factory=list)
    organisers: list[Username] = Field(default_factory=list)
    judging: Judging = Field(default_factory=Judging)
    review: Review = Field(default_factory=Review)

    @model_validator(mode="after")
    def _dates_in_order(self) -> Event:
        if not self.start < self.deadline <= self.end:
            raise ValueError(
                "dates are out of order: start must come before deadline, "
                "and deadline no later than end"
            )
        return self

    @model_validator(mode="after")
    def _people_and_references(self) -> Event:
        members = {m: t.name for t in self.teams for m in t.members}
        for role, people in (("judges", self.judges), ("organisers", self.organisers)):
            for person in people:
                if person in members:
                    raise ValueError(
                        f"{role}: '{person}' is also a member of team '{members[person]}'; "
                        "a judge or organiser cannot be in a team"
                    )
        teams = {t.name for t in self.teams}
        for team in self.teams:
            if team.challenge is not None and team.challenge not in self.challenges:
                raise ValueError(
                    f"team '{team.name}' chose challenge '{team.challenge}', which is not in "
                    "`challenges`; add it there or correct the name"
                )
        for judge, linked in self.judging.conflicts.items():
            if judge not in self.judges:
                raise ValueError(
                    f"judging.conflicts names '{judge}', who is not in `judges`; add the judge "
                    "or remove the entry"
                )
            for team in linked:
                if team not in teams:
                    raise ValueError(
                        f"judging.conflicts: '{judge}' is linked to unknown team '{team}'; "
                        "use a name from `teams`"
                    )
        return self

    @field_validator("teams")
    @classmethod
    def _unique_teams(cls, teams: list[Team]) -> list[Team]:
        seen: set[str] = set()
        for team in teams:
            if team.name in seen:
                raise ValueError(f"team '{team.name}' appears twice; give each team its own name")
            seen.add(team.name)
        members: dict[str, str] = {}
        for team in teams:
            for member in team.members:
                if member in members:
                    raise ValueError(
                        f"'{member}' is a member of both '{members[member]}' and '{team.name}'; "
                        "put each person in one team"
                    )
                members[member] = team.name
        return teams

    @field_validator("challenges")
    @classmethod
    def _unique_challenges(cls, challenges: list[str]) -> list[str]:
        if len(set(challenges)) != len(challenges):
            raise ValueError("a challenge is listed twice; list each challenge once")
        return challenges


class EventDir:
    """An event directory: event.yaml plus the files it points at."""

    def __init__(self, root: Path, event: Event):
        self.root = root
        self.event = event

    @property
    def workdir(self) -> Path:
        return (self.root / self.event.workdir).resolve()

    def source_path(self, which: str) -> Path:
        return (self.root / getattr(self.event.sources, which).path).resolve()


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "event.yaml"


def _sentence(err: dict[str, Any]) -> str:
    """One sentence per pydantic error, naming the field and the fix."""
    where = _where(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        return (
            f"{where}: unknown key; remove it or check its spelling against `hackgap event schema`."
        )
    if kind == "missing":
        return f"{where}: required but missing; add it (see `hackgap init` for an example)."
    if kind == "string_pattern_mismatch":
        pattern = err["ctx"]["pattern"]
        value = err.get("input")
        return f"{where}: '{value}' does not match the required pattern {pattern}; fix it."
    if kind == "value_error":
        msg = str(err["ctx"]["error"]) if "ctx" in err else err["msg"]
        return f"{where}: {msg}." if where != "event.yaml" else f"{msg[0].upper()}{msg[1:]}."
    return f"{where}: {err['msg'].rstrip('.')} (got {err.get('input')!r}); fix the value."


def parse_event(data: Any) -> Event:
    """Validate a parsed event.yaml; raise EventError with one sentence per problem."""
    if not isinstance(data, dict):
        raise EventError(
            "event.yaml must be a mapping of keys to values; see `hackgap init` for an example."
        )
    try:
        return Event.model_validate(data)
    except ValidationError as exc:
        raise EventError([_sentence(e) for e in exc.errors()]) from None


def load_event(path: Path) -> EventDir:
    """Load and validate an event directory (or its event.yaml), including its source files."""
    path = Path(path)
    is_file = path.is_file() or path.suffix in (".yaml", ".yml")
    root = path.parent if is_file else path
    file = path if is_file else root / EVENT_FILE
    if not file.is_file():
        raise EventError(f"{file}: no event file here; create one with `hackgap init {root}`.")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise EventError(
            f"{file}: not valid YAML{line}; fix the indentation or quoting there."
        ) from None
    except UnicodeDecodeError:
        raise EventError(f"{file}: not UTF-8 text; save it as UTF-8.") from None
    event = parse_event(data)
    event_dir = EventDir(root.resolve(), event)
    missing = [
        f"sources.{which}.path: file {event_dir.source_path(which)} does not exist; "
        "put the extract there or correct the path (`hackgap demo-data` writes demo files)."
        for which in Sources.model_fields
        if not event_dir.source_path(which).is_file()
    ]
    if missing:
        raise EventError(missing)
    return event_dir


def exposure_warnings(event_dir: EventDir) -> list[str]:
    """Sentences for parts of the event other users on this machine can read.

    The event directory and the workdir may stay traversable (team workspaces live under the
    workdir on the local backend) but not listable; the sources' directories not even
    traversable, because the raw extracts hold every BSN, name and address.
    """
    found: list[str] = []

    def check(path: Path, bits: int, fix: str) -> None:
        try:
            mode = path.stat().st_mode & 0o777
        except OSError:
            return
        if mode & bits:
            found.append(
                f"{path} can be read by every user on this machine (mode {mode:04o}); "
                f"run `{fix} {path}`."
            )

    check(event_dir.root, 0o004, "chmod o-r")
    files = sorted({event_dir.source_path(which) for which in Sources.model_fields})
    for folder in sorted({file.parent for file in files} - {event_dir.root}):
        check(folder, 0o005, "chmod -R o-rwx")
    for file in files:
        if file.parent == event_dir.root:  # an extract lying in the event directory itself
            check(file, 0o004, "chmod o-r")
    check(event_dir.workdir, 0o004, "chmod o-r")
    return found


def event_schema() -> dict[str, Any]:
    """JSON Schema of event.yaml, for editors."""
    schema = Event.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "hackgap event.yaml"
    return schema


_TEMPLATE = Path(__file__).with_name("templates") / "event.yaml"


def render_event_yaml(name: str, *, start: dt.datetime | None = None, seed: int = 20261126) -> str:
    """A commented event.yaml for a new event, with demo source paths."""
    start = start or dt.datetime.now().replace(minute=0, second=0, microsecond=0) + dt.timedelta(
        days=7
    )
    start = start.replace(hour=9)
    text = _TEMPLATE.read_text(encoding="utf-8")
    values = {
        "name": name,
        "title": name.replace("-", " ").title(),
        "start": start.isoformat(timespec="minutes"),
        "deadline": (start + dt.timedelta(days=1, hours=6)).isoformat(timespec="minutes"),
        "end": (start + dt.timedelta(days=1, hours=8)).isoformat(timespec="minutes"),
        "seed": str(seed),
    }
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], text)
