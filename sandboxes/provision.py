"""Teams on the hub: state in, difference applied, a re-run with nothing new is a no-op.

One hub group per team, one collaboration account per team (whose server the group's role
reaches), members in their group, judges and organisers in theirs; on the local backend as
root one system user per team whose home is the team workspace. Like TLJH's user.py the
work is small idempotent ensure/remove steps; unlike it, everything on the hub goes through
the REST API with the hackgap service token.

The order keeps a failure harmless: every check first (nothing changed yet), then the hub's
roles (a config change: the hub restarts, and restores its old config if it cannot start),
then accounts, groups, system users and workspaces, and the list of provisioned teams last.
A removed team's account and group go; its workspace stays on disk and is archived by the
caller (to the submissions bucket) before anything is removed.
"""

from __future__ import annotations

import csv
import grp
import io
import json
import os
import pwd
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sandboxes import firewall, hubauth, layout
from sandboxes.hubapi import HubAPI, server_state
from sandboxes.hubconfig import USERNAME_RULE, TeamSpec, password_file

TEAMS_FILE = "teams.json"
GECOS_MARK = "hackgap team"


class ProvisionError(Exception):
    """A roster or machine state provisioning cannot apply; nothing was changed."""

    hackgap_user_error = True


@dataclass(frozen=True)
class Roster:
    """Who should exist, from event.yaml."""

    teams: dict[str, list[str]]
    judges: list[str] = field(default_factory=list)
    organisers: list[str] = field(default_factory=list)

    def people(self) -> dict[str, tuple[str, str]]:
        """username -> (role, team or '')."""
        out = {m: ("member", t) for t, ms in self.teams.items() for m in ms}
        out |= {j: ("judge", "") for j in self.judges}
        out |= {o: ("organiser", "") for o in self.organisers}
        return out

    def groups(self) -> dict[str, list[str]]:
        out = {layout.team_group(t): sorted(ms) for t, ms in self.teams.items()}
        out[layout.JUDGES_GROUP] = sorted(self.judges)
        out[layout.ORGANISERS_GROUP] = sorted(self.organisers)
        return out

    def hub_users(self) -> set[str]:
        return set(self.people()) | {layout.team_account(t) for t in self.teams}


@dataclass
class Plan:
    """The difference between the roster and the hub."""

    add_teams: list[str] = field(default_factory=list)
    remove_teams: list[str] = field(default_factory=list)
    add_users: list[str] = field(default_factory=list)
    remove_users: list[str] = field(default_factory=list)
    add_groups: list[str] = field(default_factory=list)
    remove_groups: list[str] = field(default_factory=list)
    group_adds: dict[str, list[str]] = field(default_factory=dict)
    group_removes: dict[str, list[str]] = field(default_factory=dict)
    new_passwords: list[str] = field(default_factory=list)
    drop_passwords: list[str] = field(default_factory=list)

    @property
    def roles_change(self) -> bool:
        return bool(self.add_teams or self.remove_teams)

    @property
    def empty(self) -> bool:
        return not any(asdict(self).values())

    def summary(self) -> list[str]:
        lines = []
        for label, items in (
            ("teams added", self.add_teams), ("teams removed", self.remove_teams),
            ("hub users added", self.add_users), ("hub users removed", self.remove_users),
            ("passwords generated", self.new_passwords),
        ):  # fmt: skip
            if items:
                lines.append(f"{label}: {', '.join(sorted(items))}")
        moved = {g: v for g, v in self.group_adds.items() if v and g not in self.add_groups}
        for group, names in sorted(moved.items()):
            lines.append(f"added to {group}: {', '.join(names)}")
        for group, names in sorted(self.group_removes.items()):
            if names:
                lines.append(f"removed from {group}: {', '.join(names)}")
        return lines


def plan(
    roster: Roster,
    *,
    provisioned: set[str],
    hub_users: set[str],
    hub_groups: dict[str, list[str]],
    hashed: set[str],
) -> Plan:
    """What to change so the hub matches the roster (pure: easy to test)."""
    want_users = roster.hub_users()
    want_groups = roster.groups()
    p = Plan(
        add_teams=sorted(set(roster.teams) - provisioned),
        remove_teams=sorted(provisioned - set(roster.teams)),
        add_users=sorted(want_users - hub_users),
        remove_users=sorted(hub_users - want_users),
        add_groups=sorted(set(want_groups) - set(hub_groups)),
        remove_groups=sorted(set(hub_groups) - set(want_groups)),
        new_passwords=sorted(set(roster.people()) - hashed),
        drop_passwords=sorted(hashed - set(roster.people())),
    )
    for group, members in want_groups.items():
        have = set(hub_groups.get(group, []))
        adds, removes = sorted(set(members) - have), sorted(have - set(members))
        if adds:
            p.group_adds[group] = adds
        if removes:
            p.group_removes[group] = removes
    return p


def check(roster: Roster, *, isolate: bool) -> None:
    """Problems no hub change can fix, as one sentence each (before anything changes)."""
    problems = []
    accounts = {layout.team_account(t): t for t in roster.teams}
    for person, (role, _team) in sorted(roster.people().items()):
        if not USERNAME_RULE.match(person):
            problems.append(
                f"{role} '{person}' is not a username the hub and Unix accept; use lowercase "
                "letters, digits, '.', '_' or '-', starting with a letter or digit."
            )
        if person in accounts:
            problems.append(
                f"{role} '{person}' has the name of team {accounts[person]}'s shared account; "
                f"rename the person (names ending in '{layout.ACCOUNT_SUFFIX}' are reserved)."
            )
    for team, members in roster.teams.items():
        if not members:
            problems.append(f"team '{team}' has no members; add at least one or remove the team.")
    seen: dict[str, str] = {}
    for team in roster.teams:
        user = layout.team_system_user("", team)
        if user in seen:
            problems.append(
                f"teams '{seen[user]}' and '{team}' get the same system user '{user}'; make "
                "their names differ in the first 29 characters."
            )
        seen[user] = team
        if isolate and _foreign_user(user):
            problems.append(
                f"the system user '{user}' for team '{team}' already exists and is not "
                "hackgap's; rename the team or remove that user."
            )
    if problems:
        raise ProvisionError(problems[0] if len(problems) == 1 else " ".join(problems))


def _foreign_user(name: str) -> bool:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return False
    return not entry.pw_gecos.startswith(GECOS_MARK)


# -- state files --------------------------------------------------------------------------


def teams_file(workdir: Path) -> Path:
    return layout.hub_dir(Path(workdir)) / TEAMS_FILE


def provisioned_teams(workdir: Path) -> list[TeamSpec]:
    """The teams the hub config knows (written by provisioning; empty before)."""
    try:
        data = json.loads(teams_file(workdir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [TeamSpec(**t) for t in data]


def write_teams(workdir: Path, teams: list[TeamSpec]) -> None:
    _atomic(teams_file(workdir), json.dumps([asdict(t) for t in teams], indent=2), 0o600)


def released_twin_dir(workdir: Path) -> Path:
    """The latest released twin, copied from the open bucket (open data: others may read)."""
    return Path(workdir) / "open-twin"


def team_spec(workdir: Path, team: str, event: str) -> TeamSpec:
    ws = layout.workspace_dir(Path(workdir), team)
    return TeamSpec(
        team=team,
        account=layout.team_account(team),
        system_user=layout.team_system_user(event, team),
        workspace=str(ws),
        twin=str(ws / layout.TWIN_DIR / "twin.parquet"),
    )


def _atomic(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    tmp.replace(path)


# -- credentials --------------------------------------------------------------------------


def issue_passwords(
    workdir: Path, roster: Roster, names: list[str], drop: list[str]
) -> dict[str, str]:
    """Hash new people's generated passwords into the hub's file; return the plain ones.

    The plain values are written once, to the organiser-only credentials file (0600 in a
    0700 directory); the hub keeps only hashes.
    """
    hub_dir = layout.hub_dir(Path(workdir))
    hashes = hubauth.read_hashes(password_file(hub_dir))
    plain = {name: hubauth.new_password() for name in names}
    for name, password in plain.items():
        hashes[name] = hubauth.hash_password(password)
    for name in drop:
        hashes.pop(name, None)
    if plain:
        _append_credentials(workdir, roster, plain)
    if plain or drop:
        _atomic(password_file(hub_dir), json.dumps(hashes, indent=1, sort_keys=True), 0o600)
    return plain


def _append_credentials(workdir: Path, roster: Roster, plain: dict[str, str]) -> None:
    path = layout.credentials_file(Path(workdir))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    old = path.read_text(encoding="utf-8") if path.is_file() else "username,role,team,password\n"
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    people = roster.people()
    for name in sorted(plain):
        role, team = people[name]
        writer.writerow([name, role, team, plain[name]])
    _atomic(path, old + buf.getvalue(), 0o600)


# -- system users (local backend, root) ---------------------------------------------------


def ensure_system_user(spec: TeamSpec) -> tuple[int, int]:
    """The team's Unix user, home = workspace (0700); created once, like TLJH's ensure_user."""
    firewall.ensure_group()
    try:
        entry = pwd.getpwnam(spec.system_user)
    except KeyError:
        Path(spec.workspace).parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--user-group", "--shell", "/bin/bash",
             "--home-dir", spec.workspace, "--comment", f"{GECOS_MARK} {spec.team}",
             "--groups", firewall.GROUP, spec.system_user],
            check=True, capture_output=True,
        )  # fmt: skip
        entry = pwd.getpwnam(spec.system_user)
    if spec.system_user not in grp.getgrnam(firewall.GROUP).gr_mem:
        subprocess.run(["usermod", "-aG", firewall.GROUP, spec.system_user], check=True,
                       capture_output=True)  # fmt: skip
    return entry.pw_uid, entry.pw_gid


# -- archive ------------------------------------------------------------------------------


def archive_workspace(workspace: Path, tar_path: Path) -> Path:
    """A tar.gz of a team's workspace (the caller uploads it; the workspace stays)."""
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tar_path.with_name(f".{tar_path.name}.tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        tar.add(workspace, arcname=Path(workspace).name)
    tmp.replace(tar_path)
    return tar_path


# -- apply --------------------------------------------------------------------------------


@dataclass
class Result:
    plan: Plan
    passwords: dict[str, str]
    servers: dict[str, str]
    archived: list[Path]
    credentials: Path


def apply(
    api: HubAPI,
    workdir: Path,
    event: str,
    roster: Roster,
    *,
    isolate: bool,
    restart_hub: Callable[[], None],
    fill_workspace: Callable[[TeamSpec, tuple[int, int] | None], bool],
    archive: Callable[[str, Path], None],
    start: bool = True,
    start_timeout: float = 120,
) -> Result:
    """Make the hub match the roster; see the module docstring for the order."""
    workdir = Path(workdir)
    check(roster, isolate=isolate)
    users = api.users()
    groups = api.groups()
    before = provisioned_teams(workdir)
    p = plan(
        roster,
        provisioned={t.team for t in before},
        hub_users=set(users),
        hub_groups=groups,
        hashed=set(hubauth.read_hashes(password_file(layout.hub_dir(workdir)))),
    )
    specs = [team_spec(workdir, t, event) for t in sorted(roster.teams)]
    archived = []
    for team in p.remove_teams:  # archive first: a failed upload leaves everything in place
        ws = layout.workspace_dir(workdir, team)
        if ws.is_dir():
            archive(team, ws)
            archived.append(ws)
    if p.roles_change or before != specs:
        write_teams(workdir, specs)
        try:
            restart_hub()
        except BaseException:
            write_teams(workdir, before)
            raise
    owners: dict[str, tuple[int, int] | None] = {}
    for spec in specs:
        owners[spec.team] = ensure_system_user(spec) if isolate else None
    for spec in specs:
        fill_workspace(spec, owners[spec.team])
    passwords = issue_passwords(workdir, roster, p.new_passwords, p.drop_passwords)
    for team in p.remove_teams:
        api.stop_server(layout.team_account(team))
    api.create_users(p.add_users)
    for group in p.add_groups:
        api.create_group(group)
    for group, names in p.group_adds.items():
        api.add_to_group(group, names)
    for group, names in p.group_removes.items():
        api.remove_from_group(group, names)
    for group in p.remove_groups:
        api.delete_group(group)
    for name in p.remove_users:
        api.delete_user(name)
    servers: dict[str, str] = {}
    if start:
        accounts = [s.account for s in specs]
        current = api.users()
        stopped = [
            a
            for a in accounts
            if server_state((current.get(a, {}).get("servers") or {}).get("")) == "stopped"
        ]
        if stopped:
            servers = api.start_and_wait(stopped, start_timeout)
    return Result(p, passwords, servers, archived, layout.credentials_file(workdir))
