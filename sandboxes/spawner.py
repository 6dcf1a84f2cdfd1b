"""The local backend's spawner: a team's server runs in the team workspace, as the team's user.

Only team collaboration accounts have servers (members, judges and organisers reach the
team's server through their group's role, never a server of their own). As root, each
team's server runs as its own system user (made by provisioning), whose home is the team
workspace (0700), so teams cannot read each other's files nor the event's secure parts.
Without root, servers run as the hub's user: same files, no isolation (the hub says so).
The environment is built from nothing but what a notebook needs: no variable of the hub
(object store keys, Prefect URL, service token) is passed on.
"""

from __future__ import annotations

import os
import pwd

from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid
from tornado import web
from traitlets import Bool, Dict, Unicode

from sandboxes import layout


class TeamSpawner(LocalProcessSpawner):
    """LocalProcessSpawner for team accounts: workspace as home, team user, clean env."""

    teams = Dict(
        config=True,
        help="account -> {team, system_user, workspace, twin}; the only users with servers.",
    )
    isolate = Bool(
        True, config=True, help="Run each team's server as its system user (needs root)."
    )
    env_dir = Unicode(config=True, help="The single-user Python environment (its bin/ is used).")

    def _team(self) -> dict:
        team = self.teams.get(self.user.name)
        if team is None:
            raise web.HTTPError(
                403, f"{self.user.name} has no sandbox of its own; open your team's server."
            )
        return team

    def make_preexec_fn(self, name):  # type: ignore[override]
        team = self._team()
        workspace = team["workspace"]
        # the workspace, not the Unix user's home entry: two events may share a team name
        become = set_user_setuid(team["system_user"], chdir=False) if self.isolate else None

        def preexec() -> None:
            if become is not None:
                become()
            os.chdir(workspace)

        return preexec

    def user_env(self, env):  # type: ignore[override]
        team = self._team()
        env["HOME"] = team["workspace"]
        env["USER"] = team["system_user"] if self.isolate else pwd.getpwuid(os.getuid()).pw_name
        env["SHELL"] = "/bin/bash"
        return env

    def get_env(self):  # type: ignore[override]
        env = super().get_env()
        team = self._team()
        env.update(
            PATH=f"{self.env_dir}/bin:/usr/local/bin:/usr/bin:/bin",
            LANG="C.UTF-8",
            MPLBACKEND="agg",
        )
        env[layout.TWIN_PATH_ENV] = team["twin"]
        return env

    async def start(self):  # type: ignore[override]
        self._team()
        return await super().start()

    async def move_certs(self, paths):  # type: ignore[override]
        return paths  # no internal TLS on one machine
