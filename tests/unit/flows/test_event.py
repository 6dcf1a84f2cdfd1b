"""event.yaml: loading, validation sentences, schema export, scaffolding."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from flows.event import EventError, event_schema, load_event, parse_event, render_event_yaml

SOURCE_FILES = [
    "brp_personen.csv",
    "kwb_2023_statline.csv",
    "pc6hnr_2023_gwb.csv",
    "duo_onderwijs.csv",
]


def _valid() -> dict:
    return yaml.safe_load(render_event_yaml("test-event"))


def _event_dir(tmp_path: Path, data: dict | None = None) -> Path:
    (tmp_path / "sources").mkdir(exist_ok=True)
    for name in SOURCE_FILES:
        (tmp_path / "sources" / name).write_text("x\n")
    (tmp_path / "event.yaml").write_text(yaml.safe_dump(data or _valid()))
    return tmp_path


def _problems(data) -> list[str]:
    with pytest.raises(EventError) as exc:
        parse_event(data)
    return exc.value.problems


def test_template_is_a_valid_event(tmp_path):
    event_dir = load_event(_event_dir(tmp_path))
    ev = event_dir.event
    assert ev.name == "test-event"
    assert [t.name for t in ev.teams] == ["team-noord", "team-zuid"]
    assert ev.twin.synthesizer == "cart"
    assert event_dir.source_path("school") == (tmp_path / "sources" / "duo_onderwijs.csv").resolve()
    assert event_dir.workdir == (tmp_path / ".hackgap").resolve()


def test_unknown_key_names_the_key_and_the_fix():
    data = _valid()
    data["twin"]["synthesiser"] = "ctgan"
    assert _problems(data) == [
        "twin.synthesiser: unknown key; remove it or check its spelling "
        "against `hackgap event schema`."
    ]


def test_missing_key_is_named():
    data = _valid()
    del data["sources"]["school"]
    assert _problems(data) == [
        "sources.school: required but missing; add it (see `hackgap init` for an example)."
    ]


def test_wrong_type_names_field_and_value():
    data = _valid()
    data["sandbox"]["cpu_limit"] = "lots"
    (problem,) = _problems(data)
    assert problem.startswith("sandbox.cpu_limit: ")
    assert "'lots'" in problem


def test_unknown_synthesizer_lists_the_choices():
    data = _valid()
    data["twin"]["synthesizer"] = "magic"
    (problem,) = _problems(data)
    assert problem.startswith("twin.synthesizer: ")
    assert "cart" in problem and "gaussian_copula" in problem and "'magic'" in problem


def test_leaf_floor_is_auto_unless_a_number_is_set():
    data = _valid()
    assert parse_event(data).twin.fixed_min_leaf is None  # the template leaves it to hackgap
    data["twin"]["min_leaf"] = 20
    assert parse_event(data).twin.fixed_min_leaf == 20
    for bad in (3, "big", 12.5, True):
        data["twin"]["min_leaf"] = bad
        assert _problems(data) == [
            f"twin.min_leaf: {bad!r} is not a leaf floor; set it to auto or a whole number of "
            "at least 5 (each value is drawn from that many real pupils)."
        ]


def test_deadline_before_start():
    data = _valid()
    data["deadline"] = "2020-01-01T00:00"
    (problem,) = _problems(data)
    assert problem.startswith("Dates are out of order: start must come before deadline")
    assert problem.endswith(".")


def test_duplicate_team_name():
    data = _valid()
    data["teams"].append({"name": "team-noord", "members": ["erik"]})
    (problem,) = _problems(data)
    assert problem == "teams: team 'team-noord' appears twice; give each team its own name."


def test_person_in_two_teams():
    data = _valid()
    data["teams"][1]["members"].append("anna")
    (problem,) = _problems(data)
    assert "'anna' is a member of both 'team-noord' and 'team-zuid'" in problem


def test_bad_team_name_pattern():
    data = _valid()
    data["teams"][0]["name"] = "Team Noord!"
    (problem,) = _problems(data)
    assert problem.startswith("teams.0.name: 'Team Noord!' does not match")


def test_threshold_out_of_range():
    data = _valid()
    data["twin"]["thresholds"]["min_quality"] = 1.5
    (problem,) = _problems(data)
    assert problem.startswith("twin.thresholds.min_quality: ")


def test_several_problems_are_all_reported():
    data = _valid()
    data["bogus"] = 1
    del data["title"]
    assert len(_problems(data)) == 2


def test_not_a_mapping():
    assert "must be a mapping" in _problems(["a", "b"])[0]


def test_missing_source_file_is_named(tmp_path):
    root = _event_dir(tmp_path)
    (root / "sources" / "duo_onderwijs.csv").unlink()
    with pytest.raises(EventError) as exc:
        load_event(root)
    (problem,) = exc.value.problems
    assert problem.startswith("sources.school.path: file ")
    assert "duo_onderwijs.csv does not exist" in problem


def test_invalid_yaml_names_the_line(tmp_path):
    root = _event_dir(tmp_path)
    (root / "event.yaml").write_text("name: x\n  title: : y\n")
    with pytest.raises(EventError) as exc:
        load_event(root)
    assert "not valid YAML at line 2" in str(exc.value)


def test_no_event_file(tmp_path):
    with pytest.raises(EventError, match="no event file here; create one with `hackgap init"):
        load_event(tmp_path)


def test_missing_directory_suggests_init_there(tmp_path):
    with pytest.raises(EventError) as exc:
        load_event(tmp_path / "new-event")
    assert str(exc.value).endswith(f"create one with `hackgap init {tmp_path / 'new-event'}`.")


def test_schema_validates_the_template_and_rejects_unknown_keys():
    schema = event_schema()
    data = json.loads(json.dumps(_valid(), default=str))
    jsonschema.validate(data, schema)
    data["nonsense"] = True
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)


def _process(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, check=False
    )


def test_cli_init_validate_and_exit_codes(tmp_path, hackgap_cli):
    target = tmp_path / "my-event"
    res = hackgap_cli("init", str(target))
    assert res.returncode == 0, res.stderr
    assert (target / "event.yaml").is_file()
    # A second init refuses to overwrite.
    res = hackgap_cli("init", str(target))
    assert res.returncode == 2
    assert "already exists; pass --force" in res.stderr
    # Sources missing: four sentences, exit 2, no traceback.
    res = hackgap_cli("event", "validate", str(target))
    assert res.returncode == 2
    assert res.stderr.count("error:") == 4
    assert "Traceback" not in res.stderr
    for name in SOURCE_FILES:
        (target / "sources" / name).write_text("x\n")
    res = hackgap_cli("event", "validate", str(target))
    assert res.returncode == 0, res.stderr
    assert "ok my-event: 2 teams, 3 challenges" in res.stdout


def test_cli_schema_is_json():
    res = _process("event", "schema")
    assert res.returncode == 0
    assert json.loads(res.stdout)["title"] == "hackgap event.yaml"


def test_cli_init_in_unwritable_directory(tmp_path, hackgap_cli):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() == "0":
        # root ignores permissions; use a path under a regular file instead
        blocker = tmp_path / "file"
        blocker.write_text("")
        res = hackgap_cli("init", str(blocker / "event"))
    else:
        res = hackgap_cli("init", str(locked / "event"))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
