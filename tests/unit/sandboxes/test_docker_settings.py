"""Pure parts of the docker backend: names, limits, hardening (no engine needed)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from sandboxes import docker as sd


def _sandbox(**kw):
    base = dict(image="hackgap/sandbox:latest", cpu_limit=0.5, mem_limit="2G", start_timeout=60)
    return SimpleNamespace(**{"network": None, **base, **kw})


def test_names_per_event_and_team():
    assert sd.network_name("ev", _sandbox()) == "hackgap-ev"
    assert sd.network_name("ev", _sandbox(network="mine")) == "mine"
    assert sd.container_name("ev", "alpha") == "hackgap-ev-alpha-collab"
    assert sd.team_volume("ev", "alpha") == "hackgap-ev-alpha-collab"


@pytest.mark.parametrize(
    ("spec", "expected"), [("2G", 2 * 2**30), ("512M", 512 * 2**20), ("1.5G", 3 * 2**29)]
)
def test_limits_in_bytes_and_cpu_quota(spec, expected):
    limits = sd.limit_settings(_sandbox(mem_limit=spec))
    assert limits["mem_limit"] == limits["memswap_limit"] == expected  # no swap
    assert limits["cpu_quota"] == 50_000 and limits["cpu_period"] == 100_000


def test_mem_limit_too_small_is_one_sentence():
    with pytest.raises(sd.SandboxError, match=r"^sandbox\.mem_limit 100M is below the 384M"):
        sd.limit_settings(_sandbox(mem_limit="100M"))


def test_hardening_settings():
    host = sd.host_settings()
    assert host["cap_drop"] == ["ALL"]
    assert host["security_opt"] == ["no-new-privileges"]
    assert host["read_only"] is True and host["pids_limit"] == sd.PIDS_LIMIT


def test_firewall_rules_drop_all_but_hub_port_and_replies():
    net = sd.EventNetwork("hackgap-ev", "abc", "br-abc", "172.30.0.1", "172.30.0.0/16")
    rules = sd._firewall_rules(net, 8081)
    assert [r[-1] for r in rules] == ["ACCEPT", "ACCEPT", "DROP"]
    assert all(r[:2] == ["-i", "br-abc"] for r in rules)
    assert "ESTABLISHED,RELATED" in rules[0] and rules[1][-4:-2] == ["--dport", "8081"]


def test_spawner_escape_keeps_slugs_and_escapes_the_rest():
    spawner = sd.DockerTeamSpawner.__new__(sd.DockerTeamSpawner)
    escape = sd.DockerTeamSpawner._slug_or_escape(spawner)
    assert escape("alpha-collab") == "alpha-collab"
    assert escape("Alice@x") != "Alice@x"


def test_compose_publishes_store_and_prefect_on_loopback_only():
    import yaml

    root = Path(__file__).resolve().parents[3]
    compose = yaml.safe_load((root / "infra" / "compose.yaml").read_text())
    services = compose["services"]
    for name in ("store", "prefect"):
        assert services[name]["ports"], name
        assert all(str(port).startswith("127.0.0.1:") for port in services[name]["ports"]), name
        assert not any("docker.sock" in v for v in services[name].get("volumes", []))
    hub = services["hub"]
    assert hub["network_mode"] == "host" and "NET_ADMIN" in hub["cap_add"]
    assert hub["cap_drop"] == ["ALL"]
