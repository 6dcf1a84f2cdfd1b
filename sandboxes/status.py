"""`hackgap teams status`: what each team has on the hub and in its workspace."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandboxes import layout
from sandboxes.hubapi import HubAPI, server_state
from sandboxes.workspace import has_notebook


def team_rows(
    api: HubAPI,
    workdir: Path,
    teams: dict[str, list[str]],
    workspace: Callable[[str], Path] | None = None,
) -> list[dict[str, Any]]:
    """[{team, members, account, server: ready|stopped|pending, last_activity, ...}].

    `workspace(team)` is where a team's files are on this machine: the local backend's home
    directory by default; the docker backend passes its team volume. Only a provisioned team
    is looked up (so a status never makes a workspace).
    """
    where = workspace or (lambda team: layout.workspace_dir(Path(workdir), team))
    users = api.users()
    groups = api.groups()
    rows = []
    for team in sorted(teams):
        account = layout.team_account(team)
        user = users.get(account)
        server = ((user or {}).get("servers") or {}).get("")
        activity = (server or {}).get("last_activity") or (user or {}).get("last_activity")
        rows.append(
            {
                "team": team,
                "members": groups.get(layout.team_group(team), []),
                "account": account,
                "provisioned": user is not None,
                "server": server_state(server),
                "last_activity": activity,
                "submission_notebook": user is not None and has_notebook(where(team)),
            }
        )
    return rows
