"""The hub's configuration: settings (plain JSON) rendered from event.yaml, applied in the hub.

hackgap writes two files into the hub directory: `hub-settings.json` (everything the event
decides: ports, teams, people, auth, culling, the judge page) and a three-line
`jupyterhub_config.py` that calls `apply(c, settings)`. `apply` maps each setting to hub
configuration in one place, the way Zero to JupyterHub's jupyterhub_config.py maps its
values; a unit test calls it on a plain traitlets Config. Roles are config-only in
JupyterHub, so a roster change rewrites the settings and restarts the hub (about 4 s; the
proxy and the team servers keep running, see flows/services.py).
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sandboxes import layout

SETTINGS_FILE = "hub-settings.json"
CONFIG_FILE = "jupyterhub_config.py"
SERVICE_NAME = "hackgap"  # the hub service whose token provisions through the REST API
CULLER_NAME = "idle-culler"
JUDGE_SERVICE = "judge"
# What provisioning needs (measured: `groups` alone cannot create groups).
SERVICE_SCOPES = [
    "admin:users", "admin:groups", "servers", "read:servers", "list:users", "read:users",
    "read:users:activity", "list:groups", "read:groups",
]  # fmt: skip
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
ORGANISER_SCOPES = [
    "admin-ui", "list:users", "read:users", "read:users:activity", "list:groups", "read:groups",
    "read:servers", "servers", "access:servers", "access:services",
]  # fmt: skip
# JupyterHub 6 usernames: lowercase, no slash or whitespace; we also keep them URL- and
# Unix-friendly (the team user is derived from them).
USERNAME_RULE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class TeamSpec:
    """A provisioned team as the hub config sees it (members are hub group data, not config:
    a member change needs no hub restart)."""

    team: str
    account: str
    system_user: str
    workspace: str
    twin: str


@dataclass(frozen=True)
class HubSettings:
    """Everything the hub config needs, as plain JSON."""

    event: str
    hub_dir: str
    ip: str
    port: int  # public (proxy) port
    hub_port: int
    proxy_api_port: int
    teams: list[TeamSpec]
    judges: list[str] = field(default_factory=list)
    organisers: list[str] = field(default_factory=list)
    backend: str = "local"
    isolate: bool = False
    env_dir: str = ""
    start_timeout: int = 120
    auth: dict[str, Any] = field(default_factory=lambda: {"kind": "hackgap"})
    cull_idle_after: int = 3600
    cull_not_before: float = 0.0  # epoch seconds: the event's end
    judge: dict[str, Any] | None = None  # {"port": int, "environment": {...}}
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)  # docker spawner config
    python: str = sys.executable

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{self.port}/"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HubSettings:
        teams = [TeamSpec(**t) for t in data.get("teams", [])]
        return cls(**{**data, "teams": teams})


def password_file(hub_dir: Path) -> Path:
    return Path(hub_dir) / "passwords.json"


def service_token_file(hub_dir: Path) -> Path:
    return Path(hub_dir) / "service-token"


def render(settings: HubSettings) -> str:
    """The jupyterhub_config.py text: it only loads the settings and calls `apply`."""
    return (
        '"""Rendered by hackgap from event.yaml; edit event.yaml, not this file."""\n'
        "import json, pathlib\n"
        "from sandboxes.hubconfig import HubSettings, apply\n"
        f"_settings = pathlib.Path(__file__).with_name({SETTINGS_FILE!r})\n"
        "apply(c, HubSettings.from_dict(json.loads(_settings.read_text())))\n"
    )


def write(settings: HubSettings) -> Path:
    """Write the settings and config into hub_dir (0700), each atomically; return the config."""
    hub_dir = Path(settings.hub_dir)
    hub_dir.mkdir(parents=True, exist_ok=True)
    hub_dir.chmod(0o700)
    for name, text in ((SETTINGS_FILE, settings.to_json()), (CONFIG_FILE, render(settings))):
        tmp = hub_dir / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        tmp.replace(hub_dir / name)
    return hub_dir / CONFIG_FILE


# -- applied inside the hub ----------------------------------------------------------------


def apply(c: Any, s: HubSettings) -> None:
    """Map every hub setting to JupyterHub configuration; one place per setting."""
    hub_dir = Path(s.hub_dir)
    _network(c, s)
    _state(c, hub_dir)
    _authenticator(c, s)
    _spawner(c, s)
    c.JupyterHub.load_groups = {}  # groups come from roles (teams) and the provisioning API
    c.JupyterHub.load_roles = roles(s)
    c.JupyterHub.services = services(s)
    c.JupyterHub.default_url = default_url(s)
    for cls, values in s.extra.items():  # the docker backend's settings, by class
        for key, value in values.items():
            setattr(c[cls], key, value)


def _network(c: Any, s: HubSettings) -> None:
    # The proxy is started by hackgap, not by the hub, so a hub restart (roster change)
    # keeps the proxy's routes and the team servers (cleanup_servers False) running.
    c.JupyterHub.bind_url = f"http://{s.ip}:{s.port}/"
    c.JupyterHub.hub_ip = s.ip
    c.JupyterHub.hub_port = s.hub_port
    c.JupyterHub.proxy_class = "configurable-http-proxy"
    c.ConfigurableHTTPProxy.should_start = False
    c.ConfigurableHTTPProxy.api_url = f"http://{s.ip}:{s.proxy_api_port}"
    c.JupyterHub.cleanup_servers = False
    c.JupyterHub.cleanup_proxy = False


def _state(c: Any, hub_dir: Path) -> None:
    c.JupyterHub.db_url = f"sqlite:///{hub_dir / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(hub_dir / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(hub_dir / "jupyterhub.pid")
    c.JupyterHub.data_files_path = os.path.join(sys.prefix, "share", "jupyterhub")
    c.JupyterHub.shutdown_on_logout = False
    c.JupyterHub.allow_named_servers = False
    c.JupyterHub.api_page_max_limit = 10_000  # provisioning reads every user in one page


def _authenticator(c: Any, s: HubSettings) -> None:
    if s.auth.get("kind") == "oauth":
        oauth_settings(c, s.auth)
        return
    c.JupyterHub.authenticator_class = "sandboxes.hubauth.HackgapAuthenticator"
    c.HackgapAuthenticator.password_file = str(password_file(Path(s.hub_dir)))
    c.Authenticator.admin_users = set()  # organisers get a role, not hub admin


def oauth_settings(c: Any, auth: dict[str, Any]) -> None:
    """oauthenticator for production: GitHub or any OpenID Connect provider.

    Who may log in is who provisioning created on the hub (allow_existing_users), so a
    roster change needs no restart; the provider's username must equal the event.yaml name.
    """
    provider = auth["provider"]
    cls = "GitHubOAuthenticator" if provider == "github" else "GenericOAuthenticator"
    c.JupyterHub.authenticator_class = (
        f"oauthenticator.{'github' if provider == 'github' else 'generic'}.{cls}"
    )
    section = c[cls]
    section.client_id = os.environ.get(auth["client_id_env"], "")
    section.client_secret = os.environ.get(auth["client_secret_env"], "")
    if auth.get("callback_url"):
        section.oauth_callback_url = auth["callback_url"]
    section.allow_existing_users = True
    section.allow_all = False
    if provider == "generic":
        section.authorize_url = auth.get("authorize_url") or ""
        section.token_url = auth.get("token_url") or ""
        section.userdata_url = auth.get("userdata_url") or ""
        section.username_claim = auth.get("username_claim") or "preferred_username"
        section.scope = ["openid", "profile"]


def _spawner(c: Any, s: HubSettings) -> None:
    c.Spawner.start_timeout = s.start_timeout
    # a burst of spawns on few cores (every team at the event's start) queues for CPU: give the
    # server the whole start_timeout to answer, not JupyterHub's 30 s
    c.Spawner.http_timeout = s.start_timeout
    c.Spawner.env_keep = []  # nothing of the hub's environment reaches a sandbox
    c.Spawner.default_url = "/lab"
    if s.backend != "local":
        return
    c.JupyterHub.spawner_class = "sandboxes.spawner.TeamSpawner"
    c.TeamSpawner.teams = {t.account: asdict(t) for t in s.teams}
    c.TeamSpawner.isolate = s.isolate
    c.TeamSpawner.env_dir = s.env_dir
    c.Spawner.cmd = [f"{s.env_dir}/bin/jupyterhub-singleuser"]
    c.Spawner.mem_limit = None  # the local backend cannot enforce limits (docker does)


def roles(s: HubSettings) -> list[dict[str, Any]]:
    """Team groups reach their collaboration account's server; organisers, judges, services."""
    out: list[dict[str, Any]] = [
        {
            "name": f"team-{t.team}",
            "description": f"members of {t.team} use its shared server",
            "groups": [layout.team_group(t.team)],
            "scopes": [
                f"access:servers!user={t.account}",
                f"servers!user={t.account}",
                f"read:users:activity!user={t.account}",
            ],
        }
        for t in s.teams
    ]
    out.append({"name": "hackgap-provisioner", "services": [SERVICE_NAME],
                "scopes": SERVICE_SCOPES})  # fmt: skip
    out.append({"name": "hackgap-culler", "services": [CULLER_NAME], "scopes": CULLER_SCOPES})
    out.append({"name": "hackgap-organisers", "groups": [layout.ORGANISERS_GROUP],
                "scopes": ORGANISER_SCOPES})  # fmt: skip
    out.append({"name": "hackgap-judges", "groups": [layout.JUDGES_GROUP],
                "scopes": [f"access:services!service={JUDGE_SERVICE}"]})  # fmt: skip
    return out


def services(s: HubSettings) -> list[dict[str, Any]]:
    token = service_token_file(Path(s.hub_dir)).read_text(encoding="utf-8").strip()
    out: list[dict[str, Any]] = [{"name": SERVICE_NAME, "api_token": token}]
    out.append(
        {
            "name": CULLER_NAME,
            "command": [
                s.python,
                "-m",
                "sandboxes.culler",
                f"--not-before={s.cull_not_before}",
                f"--timeout={s.cull_idle_after}",
                f"--cull-every={min(600, s.cull_idle_after)}",
            ],
        }
    )
    if s.judge:
        out.append(
            {
                "name": JUDGE_SERVICE,
                "url": f"http://{s.ip}:{s.judge['port']}",
                "command": [s.python, "-m", "judging.webapp"],
                "environment": dict(s.judge.get("environment", {})),
                "oauth_no_confirm": True,
                "display": True,
                # JupyterHub 6 waits `timeout` (default 30 s) for a managed service, then exits;
                # on a busy 2-core machine the app's start can take longer.
                "timeout": s.start_timeout,
            }
        )
    return out


def default_url(s: HubSettings):
    """Members land in their team's JupyterLab; judges and organisers on the judge page."""
    account_of = {layout.team_group(t.team): t.account for t in s.teams}
    staff = {layout.JUDGES_GROUP, layout.ORGANISERS_GROUP}
    has_judge = bool(s.judge)

    def url(handler: Any) -> str:
        user = handler.current_user
        base = handler.base_url
        groups = {g.name for g in user.groups} if user is not None else set()
        for group in sorted(groups & set(account_of)):
            return f"{base}user/{account_of[group]}/lab"
        if groups & staff and has_judge:
            return f"{base}services/{JUDGE_SERVICE}/"
        return f"{base}hub/home"

    return url
