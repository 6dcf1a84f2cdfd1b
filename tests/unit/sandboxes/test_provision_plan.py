"""Provisioning plans exactly the difference between event.yaml's roster and the hub."""

from __future__ import annotations

import pytest

from sandboxes import layout
from sandboxes.provision import ProvisionError, Roster, check, plan

ROSTER = Roster(teams={"noord": ["anna", "bram"], "zuid": ["chaima"]}, judges=["eva"],
                organisers=["olga"])  # fmt: skip


def _hub_for(roster: Roster) -> dict:
    return {
        "provisioned": set(roster.teams),
        "hub_users": roster.hub_users(),
        "hub_groups": roster.groups(),
        "hashed": set(roster.people()),
    }


def test_fresh_hub_gets_everything():
    p = plan(ROSTER, provisioned=set(), hub_users=set(), hub_groups={}, hashed=set())
    assert p.add_teams == ["noord", "zuid"]
    assert set(p.add_users) == {"anna", "bram", "chaima", "eva", "olga", "noord-collab",
                                "zuid-collab"}  # fmt: skip
    assert p.group_adds["noord"] == ["anna", "bram"]
    assert p.group_adds[layout.JUDGES_GROUP] == ["eva"]
    assert p.new_passwords == ["anna", "bram", "chaima", "eva", "olga"]
    assert p.roles_change


def test_same_roster_is_a_no_op():
    p = plan(ROSTER, **_hub_for(ROSTER))
    assert p.empty and not p.roles_change
    assert p.summary() == []


def test_member_moves_without_touching_roles():
    new = Roster(teams={"noord": ["anna"], "zuid": ["chaima", "bram"]}, judges=["eva"],
                 organisers=["olga"])  # fmt: skip
    p = plan(new, **_hub_for(ROSTER))
    assert not p.roles_change
    assert p.group_adds == {"zuid": ["bram"]}
    assert p.group_removes == {"noord": ["bram"]}
    assert p.add_users == [] and p.remove_users == [] and p.new_passwords == []


def test_removed_team_goes_with_its_account_group_and_people():
    new = Roster(teams={"noord": ["anna", "bram"]}, judges=["eva"], organisers=["olga"])
    p = plan(new, **_hub_for(ROSTER))
    assert p.remove_teams == ["zuid"] and p.roles_change
    assert p.remove_users == ["chaima", "zuid-collab"]
    assert p.remove_groups == ["zuid"]
    assert p.drop_passwords == ["chaima"]


@pytest.mark.parametrize(
    ("roster", "needle"),
    [
        (Roster(teams={"noord": []}), "team 'noord' has no members"),
        (Roster(teams={"noord": ["Anna B"]}), "'Anna B' is not a username"),
        (Roster(teams={"noord": ["anna"], "zuid": ["noord-collab"]}), "shared account"),
        (Roster(teams={"a" * 29 + "x": ["anna"], "a" * 29 + "y": ["bram"]}), "same system user"),
    ],
)
def test_bad_rosters_are_refused_in_one_sentence(roster, needle):
    with pytest.raises(ProvisionError) as err:
        check(roster, isolate=False)
    assert needle in str(err.value)
