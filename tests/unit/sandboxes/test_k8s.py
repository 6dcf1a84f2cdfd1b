"""Kubernetes backend: `hackgap teams render-k8s` renders z2jh values the chart's schema accepts.

No cluster runs here; the values are checked the way `helm install` checks them (the chart's
defaults merged with ours, then the chart's values schema), and the Python the values hand
the hub (hub.extraConfig) is run against a real traitlets config.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
import types
from pathlib import Path
from unittest import mock

import jsonschema
import pytest
import yaml
from traitlets.config import Config

from flows import cli
from flows.demo import DEMO_NAME, scaffold
from sandboxes import k8s, layout

SOURCE_FILES = ["brp_personen.csv", "kwb_2023_statline.csv", "pc6hnr_2023_gwb.csv"]
SOURCE_FILES += ["duo_onderwijs.csv"]
OAUTH_SECRET = "oauth-client-secret-value-3f9a"  # what the organiser's environment holds


def demo_event(tmp_path: Path, **changes) -> Path:
    """The demo event.yaml (placeholder source files: rendering reads none of them)."""
    directory = tmp_path / "event"
    scaffold(directory, seed=7)
    (directory / "sources").mkdir(exist_ok=True)
    for name in SOURCE_FILES:
        (directory / "sources" / name).write_text("x\n")
    data = yaml.safe_load((directory / "event.yaml").read_text())
    for key, value in changes.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    (directory / "event.yaml").write_text(yaml.safe_dump(data))
    return directory


def hackgap(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run the real entry point in-process (its error printing included)."""
    monkeypatch.setattr(sys, "argv", ["hackgap", *args])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    out, err = capsys.readouterr()
    return exc.value.code or 0, out, err


def render(monkeypatch, capsys, tmp_path, **changes) -> tuple[dict, str]:
    event = demo_event(tmp_path, **changes)
    code, _, err = hackgap(
        monkeypatch, capsys, "teams", "render-k8s", str(event), str(tmp_path / "out")
    )
    assert code == 0, err
    text = (tmp_path / "out" / "values.yaml").read_text()
    return yaml.safe_load(text), text


def helm_merged(values: dict) -> dict:
    """The chart's defaults with our values over them, as Helm coalesces them."""
    defaults = yaml.safe_load(k8s.CHART_DEFAULTS_FILE.read_text())
    return k8s.merge_values(defaults, values)


def test_demo_event_renders_values_the_chart_schema_accepts(monkeypatch, capsys, tmp_path):
    values, _ = render(monkeypatch, capsys, tmp_path)
    schema = json.loads(k8s.SCHEMA_FILE.read_text())
    jsonschema.Draft7Validator(schema).validate(helm_merged(values))
    assert values["singleuser"]["image"] == {"name": "hackgap/sandbox", "tag": "latest"}
    assert values["singleuser"]["cpu"]["limit"] == 1.0
    assert values["singleuser"]["memory"]["limit"] == "2G"
    assert values["singleuser"]["storage"]["type"] == "dynamic"  # one PVC per account


def test_vendored_schema_is_the_chart_schema_with_its_licence():
    assert "BSD 3-Clause" in (k8s.Z2JH_DIR / "LICENSE").read_text()
    schema = json.loads(k8s.SCHEMA_FILE.read_text())
    assert set(schema["required"]) >= {"hub", "singleuser", "cull"}
    # the chart's own defaults pass its schema: the merge base is sound
    jsonschema.Draft7Validator(schema).validate(helm_merged({}))


def test_resource_limits_and_image_follow_the_event(monkeypatch, capsys, tmp_path):
    values, _ = render(
        monkeypatch,
        capsys,
        tmp_path,
        sandbox={"cpu_limit": 2.5, "mem_limit": "3G", "image": "reg.example/hg/sb:2026.12"},
    )
    assert values["singleuser"]["cpu"] == {"limit": 2.5}
    assert values["singleuser"]["memory"] == {"limit": "3G", "guarantee": "3G"}
    assert values["singleuser"]["image"] == {"name": "reg.example/hg/sb", "tag": "2026.12"}


def test_groups_roles_and_accounts_match_the_teams(monkeypatch, capsys, tmp_path):
    values, _ = render(monkeypatch, capsys, tmp_path)
    event = yaml.safe_load((tmp_path / "event" / "event.yaml").read_text())
    teams = {t["name"]: t["members"] for t in event["teams"]}
    hub = values["hub"]
    groups = hub["config"]["JupyterHub"]["load_groups"]
    roles = hub["loadRoles"]
    for team, members in teams.items():
        account = layout.team_account(team)
        assert groups[layout.team_group(team)] == {"users": members}
        # the role names the members (exact on every hub start), not the add-only group
        (role,) = [r for r in roles.values() if f"access:servers!user={account}" in r["scopes"]]
        assert role["users"] == members and "groups" not in role
        # a team's role names its own account only
        assert all(s.endswith(f"!user={account}") for s in role["scopes"])
    assert groups[k8s.COLLAB_GROUP] == {"users": [layout.team_account(t) for t in teams]}
    assert groups[layout.JUDGES_GROUP] == {"users": event["judges"]}
    assert groups[layout.ORGANISERS_GROUP] == {"users": event["organisers"]}
    assert roles["judge-page"]["users"] == sorted(event["judges"] + event["organisers"])
    assert roles["judge-page"]["scopes"] == ["access:services!service=judge"]
    assert hub["services"]["judge"]["command"][-2:] == ["-m", "judging.webapp"]
    # people log in; collaboration accounts cannot (not allowed, no existing-user pass)
    auth = hub["config"]["Authenticator"]
    people = {m for ms in teams.values() for m in ms} | {*event["judges"], *event["organisers"]}
    assert set(auth["allowed_users"]) == people
    assert auth["allow_existing_users"] is False
    assert auth["admin_users"] == []  # organisers have a role, not hub admin
    assert roles["organisers"]["users"] == event["organisers"]
    assert "admin-ui" in roles["organisers"]["scopes"]


def test_names_jupyterhub_refuses_are_never_rendered(monkeypatch, capsys, tmp_path):
    from jupyterhub.roles import _validate_role_name  # the hub's own rule, run at start

    teams = [{"name": "9-lives-", "members": ["zoe"]}, {"name": "x", "members": ["yan"]}]
    values, _ = render(monkeypatch, capsys, tmp_path, teams=teams, judging={"conflicts": {}})
    for name in values["hub"]["loadRoles"]:
        _validate_role_name(name)
    assert values["hub"]["config"]["JupyterHub"]["load_groups"]["9-lives-"] == {"users": ["zoe"]}


# Initialise a real JupyterHub 6 (database, users, groups, roles; no proxy, no servers) from
# the chart-style config a values file gives (hub.config sections, hub.loadRoles as a list),
# once per config in turn on the same database: a hub restarted with new values.
HUB_INIT = """
import asyncio, json, sys
from traitlets.config import Config
from jupyterhub import orm
from jupyterhub.app import JupyterHub

async def main():
    for config in json.loads(sys.argv[1]):
        app = JupyterHub(config=Config(config))
        await app.initialize([])
        db = app.db
        print(json.dumps({
            "roles": {r.name: sorted(u.name for u in r.users) for r in db.query(orm.Role)},
            "groups": {g.name: sorted(u.name for u in g.users) for g in db.query(orm.Group)},
            "users": sorted(u.name for u in db.query(orm.User)),
        }))
        db.close()

asyncio.run(main())
"""


def _hub_config(values: dict, state: Path) -> dict:
    config = {section: dict(cfg) for section, cfg in values["hub"]["config"].items()}
    roles = [{"name": name, **role} for name, role in values["hub"]["loadRoles"].items()]
    judge = {"name": "judge", "url": f"http://127.0.0.1:{k8s.JUDGE_PORT}"}
    config["JupyterHub"].update(
        load_roles=roles,
        services=[judge],
        db_url=f"sqlite:///{state / 'hub.sqlite'}",
        cookie_secret_file=str(state / "cookie_secret"),
        pid_file=str(state / "hub.pid"),
    )
    return config


def _start_hub(configs: list[dict], state: Path) -> list[dict]:
    res = subprocess.run(
        [sys.executable, "-c", HUB_INIT, json.dumps(configs)],
        capture_output=True,
        text=True,
        cwd=state,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    # every hub.config key is a real trait of its class (the hub only warns about others)
    assert "not recognized" not in res.stderr, res.stderr
    return [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]


@pytest.mark.hub
def test_a_real_hub_loads_the_roster_and_a_moved_member_loses_the_old_server(tmp_path):
    def values(teams):
        ev = k8s.K8sEvent(
            name="demo",
            end_epoch=time.time() + 3600,
            teams=teams,
            challenges={},
            judges=["judge-eva"],
            organisers=["org-olga"],
        )
        return k8s.render_values(ev)

    first = values({"team-a": ["anna", "bram"], "team-b": ["chaima"]})
    moved = values({"team-a": ["anna"], "team-b": ["bram", "chaima"]})  # bram changes team
    before, after = _start_hub([_hub_config(v, tmp_path) for v in (first, moved)], tmp_path)
    assert before["roles"]["team-team-a-access"] == ["anna", "bram"]
    assert before["roles"]["judge-page"] == ["judge-eva", "org-olga"]
    assert before["roles"]["admin"] == [] and before["roles"]["organisers"] == ["org-olga"]
    assert {"team-a-collab", "team-b-collab"} <= set(before["users"])
    # after the restart with the new values (helm upgrade):
    assert after["roles"]["team-team-a-access"] == ["anna"]
    assert after["roles"]["team-team-b-access"] == ["bram", "chaima"]
    # JupyterHub only ever adds to groups: why the roles, not the groups, grant access
    assert after["groups"]["team-a"] == ["anna", "bram"]


def test_team_pods_have_no_egress_at_all(monkeypatch, capsys, tmp_path):
    values, _ = render(monkeypatch, capsys, tmp_path)
    policy = helm_merged(values)["singleuser"]["networkPolicy"]  # chart defaults included
    assert policy["enabled"] is True
    assert policy["egress"] == []
    assert policy["egressAllowRules"] and not any(policy["egressAllowRules"].values())
    # without DNS, the hub must be reachable by its Service IP
    assert "hub_connect_url" in values["hub"]["extraConfig"]["hackgap-1-network"]


def test_twin_is_a_read_only_volume_in_the_workspace(monkeypatch, capsys, tmp_path):
    values, _ = render(monkeypatch, capsys, tmp_path)
    storage = values["singleuser"]["storage"]
    (twin,) = [m for m in storage["extraVolumeMounts"] if m["mountPath"].endswith("/twin")]
    assert twin["readOnly"] is True and twin["subPath"] == layout.TWIN_DIR
    volumes = {v["name"]: v for v in storage["extraVolumes"]}
    assert volumes[twin["name"]]["persistentVolumeClaim"]["readOnly"] is True
    assert all(m.get("readOnly") for m in storage["extraVolumeMounts"])
    assert (
        values["singleuser"]["extraEnv"][layout.TWIN_PATH_ENV]
        == twin["mountPath"] + "/twin.parquet"
    )


def _walk(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, (*path, str(key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, (*path, str(i)))
    else:
        yield path, node


def test_no_secret_is_inlined(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("HACKGAP_OAUTH_CLIENT_ID", "client-id-value-77")
    monkeypatch.setenv("HACKGAP_OAUTH_CLIENT_SECRET", OAUTH_SECRET)
    oauth = {"provider": "github", "callback_url": "https://hub.example/hub/oauth_callback"}
    values, text = render(monkeypatch, capsys, tmp_path, sandbox={"auth": "oauth", "oauth": oauth})
    assert OAUTH_SECRET not in text and "client-id-value-77" not in text
    hub = values["hub"]
    assert hub["config"]["JupyterHub"]["authenticator_class"].endswith("GitHubOAuthenticator")
    ref = hub["extraEnv"]["HACKGAP_OAUTH_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": f"hackgap-{DEMO_NAME}-oauth", "key": "client-secret"}
    # no value under a secret-ish key is a literal: only references (names, mounted files)
    for path, value in _walk(values):
        key = path[-1].lower()
        if any(word in key for word in ("secret", "token", "password", "cookie")):
            assert path[-1] in {"secretName", "password_file"} or not isinstance(value, str), path
    # the hub's environment (with the OAuth secret in it) is not handed to team pods
    assert hub["config"]["Spawner"]["env_keep"] == []
    assert list(values["singleuser"]["extraEnv"]) == [layout.TWIN_PATH_ENV]
    # the chart must generate its own cookie secret and proxy token
    assert "cookieSecret" not in hub and "secretToken" not in values.get("proxy", {})


def test_hackgap_passwords_are_issued_once_and_never_in_the_values(monkeypatch, capsys, tmp_path):
    values, text = render(monkeypatch, capsys, tmp_path)
    workdir = tmp_path / "event" / ".hackgap"
    hashes = json.loads((layout.hub_dir(workdir) / "passwords.json").read_text())
    event = yaml.safe_load((tmp_path / "event" / "event.yaml").read_text())
    people = {m for t in event["teams"] for m in t["members"]} | {*event["judges"]}
    people |= set(event["organisers"])
    assert set(hashes) == people  # collaboration accounts have none: nobody logs in as them
    credentials = layout.credentials_file(workdir)
    assert credentials.stat().st_mode & 0o777 == 0o600
    rows = credentials.read_text().splitlines()[1:]
    assert sorted(r.split(",")[0] for r in rows) == sorted(people)
    for row in rows:
        password = row.split(",")[-1]
        assert password not in text and hashes[row.split(",")[0]] not in text
    mount = values["hub"]["config"]["HackgapAuthenticator"]["password_file"]
    assert mount == f"{k8s.AUTH_MOUNT}/{k8s.PASSWORD_FILE_KEY}"
    # a second render issues nothing new
    event_dir = str(tmp_path / "event")
    code, out, _ = hackgap(
        monkeypatch, capsys, "teams", "render-k8s", event_dir, str(tmp_path / "o")
    )
    assert code == 0 and "Passwords: 0 new" in out
    assert credentials.read_text().splitlines()[1:] == rows


def test_schema_breaking_values_are_refused_with_the_path_and_rule(monkeypatch, capsys, tmp_path):
    event = demo_event(tmp_path)
    out = tmp_path / "out"
    assert hackgap(monkeypatch, capsys, "teams", "render-k8s", str(event), str(out))[0] == 0
    before = (out / "values.yaml").read_text()
    site = tmp_path / "site.yaml"
    for bad, path, rule in [
        ({"singleuser": {"memroy": {"limit": "1G"}}}, "singleuser.memroy", "additionalProperties"),
        ({"singleuser": {"cpu": {"limit": "2"}}}, "singleuser.cpu.limit", "type"),
        (
            {"singleuser": {"networkPolicy": {"egressAllowRules": {"everything": True}}}},
            "singleuser.networkPolicy.egressAllowRules.everything",
            "additionalProperties",
        ),
    ]:
        site.write_text(yaml.safe_dump(bad))
        code, _, err = hackgap(
            monkeypatch, capsys, "teams", "render-k8s", str(event), str(out), "--values", str(site)
        )
        assert code == 2
        assert f": {path}: " in err and f"rule `{rule}`" in err, err
        assert "Traceback" not in err
        assert (out / "values.yaml").read_text() == before  # nothing half-written


def test_an_event_setting_the_chart_cannot_express_is_one_sentence(monkeypatch, capsys, tmp_path):
    image = "hackgap/sandbox@sha256:" + "0" * 64
    event = demo_event(tmp_path, sandbox={"image": image})
    code, _, err = hackgap(
        monkeypatch, capsys, "teams", "render-k8s", str(event), str(tmp_path / "o")
    )
    assert code == 2
    assert err.startswith("error: sandbox.image: ") and "give a tag instead" in err
    assert not (tmp_path / "o" / "values.yaml").exists()


@pytest.mark.parametrize(
    ("sandbox", "sentence"),
    [
        ({"auth": "oauth"}, "error: sandbox.oauth: required when sandbox.auth is oauth;"),
        (
            {"auth": "oauth", "oauth": {"provider": "generic", "token_url": "https://id/t"}},
            "error: sandbox.oauth.authorize_url: required for the generic OpenID Connect",
        ),
    ],
)
def test_incomplete_oauth_is_one_sentence(monkeypatch, capsys, tmp_path, sandbox, sentence):
    event = demo_event(tmp_path, sandbox=sandbox)
    code, _, err = hackgap(
        monkeypatch, capsys, "teams", "render-k8s", str(event), str(tmp_path / "o")
    )
    assert code == 2 and err.startswith(sentence), err


def test_generic_oidc_provider_is_rendered(monkeypatch, capsys, tmp_path):
    oauth = {
        "provider": "generic",
        "authorize_url": "https://id.example/auth",
        "token_url": "https://id.example/token",
        "userdata_url": "https://id.example/userinfo",
    }
    values, _ = render(monkeypatch, capsys, tmp_path, sandbox={"auth": "oauth", "oauth": oauth})
    config = values["hub"]["config"]
    assert config["JupyterHub"]["authenticator_class"].endswith("GenericOAuthenticator")
    assert config["GenericOAuthenticator"]["username_claim"] == "preferred_username"
    assert config["GenericOAuthenticator"]["token_url"] == oauth["token_url"]
    assert "hackgap-passwords" not in json.dumps(values)  # no password Secret with OAuth
    # the hub reads the client credentials from the Secret-fed environment at start
    monkeypatch.setenv("HACKGAP_OAUTH_CLIENT_ID", "id-from-secret")
    monkeypatch.setenv("HACKGAP_OAUTH_CLIENT_SECRET", "secret-from-secret")
    c = _run_extra_config(values, [])
    assert c.GenericOAuthenticator.client_secret == "secret-from-secret"
    assert c.GenericOAuthenticator.client_id == "id-from-secret"


def test_an_unwritable_output_directory_is_one_sentence(monkeypatch, capsys, tmp_path):
    event = demo_event(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, _, err = hackgap(monkeypatch, capsys, "teams", "render-k8s", str(event), str(blocker))
    assert code == 2
    assert err.startswith(f"error: {blocker}: cannot write values.yaml here"), err


def _run_extra_config(values: dict, services: list[dict]) -> Config:
    """Execute hub.extraConfig as the chart's jupyterhub_config.py does (last, in key order)."""
    c = Config()
    c.JupyterHub.services = services
    z2jh = types.ModuleType("z2jh")
    z2jh.get_name_env = lambda name, suffix="": {"_SERVICE_HOST": "10.0.0.7"}.get(suffix, "8081")
    sys.modules["z2jh"] = z2jh
    try:
        # the hub pod's own address, as its /etc/hosts gives it
        with mock.patch("socket.gethostbyname", return_value="10.1.2.3"):
            for _, code in sorted(values["hub"]["extraConfig"].items()):
                exec(compile(code, "extraConfig", "exec"), {"c": c})
    finally:
        del sys.modules["z2jh"]
    return c


def test_culler_waits_for_the_event_end_then_runs(monkeypatch, capsys, tmp_path):
    values, _ = render(monkeypatch, capsys, tmp_path)
    assert values["cull"]["enabled"] is True and values["cull"]["timeout"] == 3600
    culler = {
        "name": "jupyterhub-idle-culler",
        "command": ["python3", "-m", "jupyterhub_idle_culler"],
    }
    c = _run_extra_config(values, [culler])
    assert c.KubeSpawner.hub_connect_url == "http://10.0.0.7:8081"
    (service,) = c.JupyterHub.services
    wait = service["command"][:4]
    assert service["command"][4:] == ["python3", "-m", "jupyterhub_idle_culler"]
    event = yaml.safe_load((tmp_path / "event" / "event.yaml").read_text())
    end = (
        event["end"]
        if isinstance(event["end"], dt.datetime)
        else dt.datetime.fromisoformat(event["end"])
    )
    assert float(wait[3]) == pytest.approx(end.timestamp())
    # the wrapper really waits until the end, then becomes the culler's command
    say = [sys.executable, "-c", "print('culler running')"]
    past = subprocess.run(
        [sys.executable, *wait[1:3], str(time.time() - 1), *say], capture_output=True, text=True
    )
    assert past.stdout.strip() == "culler running"
    future = subprocess.Popen(
        [sys.executable, *wait[1:3], str(time.time() + 60), *say], stdout=subprocess.PIPE
    )
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            future.wait(timeout=1.5)
    finally:
        future.kill()
        future.wait()


def test_judge_page_is_served_from_the_hub_pod_ip(monkeypatch, capsys, tmp_path):
    values, _ = render(monkeypatch, capsys, tmp_path)
    judge = {"name": "judge", **values["hub"]["services"]["judge"]}
    assert judge["environment"]["HACKGAP_WORKDIR"] == k8s.EVENT_MOUNT + "/.hackgap"
    assert judge["oauth_no_confirm"] is True
    c = _run_extra_config(values, [judge])
    assert c.JupyterHub.services[0]["url"] == f"http://10.1.2.3:{k8s.JUDGE_PORT}"
    ingress = values["hub"]["networkPolicy"]["ingress"]
    assert ingress == [
        {
            "ports": [{"port": k8s.JUDGE_PORT}],
            "from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/component": "proxy"}}}],
        }
    ]


def test_only_collaboration_accounts_get_a_server(monkeypatch, capsys, tmp_path):
    values, _ = render(monkeypatch, capsys, tmp_path)
    c = _run_extra_config(values, [])
    hook = c.Spawner.pre_spawn_hook

    def spawner(name):
        return types.SimpleNamespace(user=types.SimpleNamespace(name=name), environment={})

    event = yaml.safe_load((tmp_path / "event" / "event.yaml").read_text())
    team = spawner(layout.team_account("team-noord"))
    hook(team)
    assert team.environment["HACKGAP_CHALLENGES"].split() == event["challenges"]
    with pytest.raises(ValueError, match="/hub/user/team-noord-collab/"):
        hook(spawner("anna"))
    with pytest.raises(ValueError, match="you are in no team"):
        hook(spawner("judge-eva"))
    # and everyone lands where they work
    landing = c.JupyterHub.default_url

    def visit(name):
        user = types.SimpleNamespace(name=name)
        return landing(types.SimpleNamespace(current_user=user, base_url="/"))

    assert visit("anna") == "/user/team-noord-collab/lab"
    assert visit("judge-eva") == "/services/judge/"
    assert visit("stranger") == "/hub/home"
