"""The hub config: every setting from event.yaml lands in JupyterHub's configuration."""

from __future__ import annotations

import json

from traitlets.config import Config

from sandboxes import hubconfig
from sandboxes.hubconfig import HubSettings, TeamSpec


def _settings(tmp_path, **kw) -> HubSettings:
    hubconfig.service_token_file(tmp_path).write_text("service-token-value\n")
    team = TeamSpec("noord", "noord-collab", "hg-noord", "/w/teams/noord",
                    "/w/teams/noord/twin/twin.parquet")  # fmt: skip
    base = dict(event="ev", hub_dir=str(tmp_path), ip="127.0.0.1", port=8000, hub_port=8081,
                proxy_api_port=8001, teams=[team], judges=["eva"], organisers=["olga"],
                env_dir="/opt/hackgap/singleuser-x", isolate=True)  # fmt: skip
    return HubSettings(**{**base, **kw})


def _apply(settings: HubSettings) -> Config:
    c = Config()
    hubconfig.apply(c, settings)
    return c


def test_team_group_reaches_only_its_account(tmp_path):
    c = _apply(_settings(tmp_path))
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    team = roles["team-noord"]
    assert team["groups"] == ["noord"]
    assert "access:servers!user=noord-collab" in team["scopes"]
    assert all("noord-collab" in s for s in team["scopes"])
    assert "admin:users" in roles["hackgap-provisioner"]["scopes"]
    assert roles["hackgap-judges"]["scopes"] == ["access:services!service=judge"]
    assert "admin:users" not in roles["hackgap-organisers"]["scopes"]
    assert c.Authenticator.admin_users == set()


def test_proxy_is_external_and_servers_survive_a_hub_restart(tmp_path):
    c = _apply(_settings(tmp_path))
    assert c.ConfigurableHTTPProxy.should_start is False
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:8001"
    assert c.JupyterHub.cleanup_servers is False
    assert c.JupyterHub.bind_url == "http://127.0.0.1:8000/"
    assert c.JupyterHub.db_url.startswith(f"sqlite:///{tmp_path}")


def test_sandbox_gets_no_hub_environment(tmp_path):
    c = _apply(_settings(tmp_path))
    assert c.Spawner.env_keep == []
    assert c.JupyterHub.spawner_class == "sandboxes.spawner.TeamSpawner"
    assert c.TeamSpawner.teams["noord-collab"]["system_user"] == "hg-noord"
    assert c.Spawner.cmd == ["/opt/hackgap/singleuser-x/bin/jupyterhub-singleuser"]


def test_culler_waits_for_the_event_end(tmp_path):
    c = _apply(_settings(tmp_path, cull_not_before=1234.5, cull_idle_after=900))
    culler = next(s for s in c.JupyterHub.services if s["name"] == "idle-culler")
    assert "--not-before=1234.5" in culler["command"]
    assert "--timeout=900" in culler["command"]


def test_judge_service_registered_only_when_given(tmp_path):
    names = [s["name"] for s in _apply(_settings(tmp_path)).JupyterHub.services]
    assert "judge" not in names
    c = _apply(_settings(tmp_path, judge={"port": 9999, "environment": {"HACKGAP_WORKDIR": "/w"}}))
    judge = next(s for s in c.JupyterHub.services if s["name"] == "judge")
    assert judge["url"] == "http://127.0.0.1:9999"
    assert judge["command"][-2:] == ["-m", "judging.webapp"]
    assert judge["environment"] == {"HACKGAP_WORKDIR": "/w"}


def test_oauth_renders_oauthenticator(tmp_path, monkeypatch):
    monkeypatch.setenv("HACKGAP_OAUTH_CLIENT_ID", "cid")
    auth = {"kind": "oauth", "provider": "generic", "client_id_env": "HACKGAP_OAUTH_CLIENT_ID",
            "client_secret_env": "NOPE", "authorize_url": "https://idp.example/auth",
            "token_url": "https://idp.example/token", "userdata_url": "https://idp.example/me",
            "username_claim": "preferred_username", "callback_url": None}  # fmt: skip
    c = _apply(_settings(tmp_path, auth=auth))
    assert c.JupyterHub.authenticator_class == "oauthenticator.generic.GenericOAuthenticator"
    assert c.GenericOAuthenticator.client_id == "cid"
    assert c.GenericOAuthenticator.token_url == "https://idp.example/token"
    assert c.GenericOAuthenticator.allow_existing_users is True
    from oauthenticator.generic import GenericOAuthenticator  # the pinned class loads it

    assert GenericOAuthenticator(config=c).token_url == "https://idp.example/token"


def test_settings_round_trip_through_the_rendered_file(tmp_path):
    settings = _settings(tmp_path)
    config_path = hubconfig.write(settings)
    assert (tmp_path / hubconfig.SETTINGS_FILE).stat().st_mode & 0o777 == 0o600
    loaded = HubSettings.from_dict(json.loads((tmp_path / hubconfig.SETTINGS_FILE).read_text()))
    assert loaded == settings
    c = Config()
    exec(compile(config_path.read_text(), str(config_path), "exec"), {"c": c, "__file__":
         str(config_path)})  # fmt: skip
    assert c.JupyterHub.hub_port == 8081
