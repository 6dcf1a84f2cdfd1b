"""Names and paths every room agrees on: hub accounts, team workspaces, submissions.

One place, so the hub config, the spawners, provisioning, the submission review and the
judge page never spell a name or a folder twice.
"""

from __future__ import annotations

from pathlib import Path

# -- hub accounts and groups --------------------------------------------------------------

ACCOUNT_SUFFIX = "-collab"
JUDGES_GROUP = "judges"
ORGANISERS_GROUP = "organisers"


def team_account(team: str) -> str:
    """The hub user that owns a team's server (JupyterHub's collaboration-account pattern)."""
    return f"{team}{ACCOUNT_SUFFIX}"


def team_group(team: str) -> str:
    """The hub group of a team's members; it gets access to the team account's server."""
    return team


def team_system_user(event: str, team: str) -> str:
    """The Unix user a team's server runs as on the local backend (root only): <= 32 chars."""
    return f"hg-{team}"[:32]


def review_system_user(team: str) -> str:
    """The Unix account a team's notebook re-runs on the twin as (root only; owns nothing)."""
    return f"hgr-{team}"[:32]


def verify_system_user(team: str) -> str:
    """The Unix account a team's notebook runs on the real data as (root only; owns nothing)."""
    return f"hgv-{team}"[:32]


# -- workdir layout -----------------------------------------------------------------------


def hub_dir(workdir: Path) -> Path:
    """Hub state: database, cookie secret, rendered config, proxy token (0700)."""
    return Path(workdir) / "hub"


def teams_root(workdir: Path) -> Path:
    """Parent of the team workspaces on the local backend (0711: traversable, not listable)."""
    return Path(workdir) / "teams"


def workspace_dir(workdir: Path, team: str) -> Path:
    """A team's workspace (its server's home) on the local backend."""
    return teams_root(workdir) / team


def credentials_file(workdir: Path) -> Path:
    """The organiser-only file (0600) with every generated password, written once."""
    return Path(workdir) / "credentials" / "passwords.csv"


def review_dir(workdir: Path) -> Path:
    """Secure working area of the review stage: frozen copies, re-runs, real-data runs (0700)."""
    return Path(workdir) / "review"


def judge_view_dir(workdir: Path, team: str) -> Path:
    """What judges may see of a team's submission, written by the review stage only after
    checks: the executed twin notebook, the re-run result, the twin's outputs and the real-data
    outputs the airlock released. The judge page reads nothing else."""
    return Path(workdir) / "judging" / "submissions" / team


def judging_db(workdir: Path) -> Path:
    """The judges' scores (SQLite)."""
    return Path(workdir) / "judging" / "scores.sqlite"


# -- inside a workspace -------------------------------------------------------------------

CHALLENGES_DIR = "challenges"  # challenges/<id>/brief.md, starter.ipynb, rubric
TWIN_DIR = "twin"  # the released twin files, read-only: twin.parquet, twin.csv, codebook.md
SUBMISSION_DIR = "submission"  # one notebook + outputs/
OUTPUTS_DIR = "outputs"  # inside submission/: files the notebook writes, release candidates
SUBMITTED_RECORD = ".submitted.json"  # inside submission/: written by hackgap-submit
TWIN_PATH_ENV = "HACKGAP_TWIN"  # the twin.parquet a notebook reads (twin, or real in verify)


def submission_dir(workspace: Path) -> Path:
    return Path(workspace) / SUBMISSION_DIR


def outputs_dir(workspace: Path) -> Path:
    return submission_dir(workspace) / OUTPUTS_DIR


def sandbox_python(workdir: Path | None = None) -> Path:
    """The team servers' Python (local backend), runnable by any system user: re-runs use it."""
    from sandboxes.singleuser import env_dir

    return env_dir() / "bin" / "python"
