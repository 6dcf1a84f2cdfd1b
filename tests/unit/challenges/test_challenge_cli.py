"""`hackgap challenge ...` end to end through the real entry point (exit codes, sentences)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

FIXTURES = Path(__file__).with_name("fixtures")
SOURCE_FILES = [
    "brp_personen.csv",
    "kwb_2023_statline.csv",
    "pc6hnr_2023_gwb.csv",
    "duo_onderwijs.csv",
]


def process(*args: str) -> subprocess.CompletedProcess:
    """`hackgap challenge ARGS` as its own process (`python -m flows.cli`)."""
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", "challenge", *args],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", "HOME": str(Path.home())},
    )


@pytest.fixture
def hackgap(hackgap_cli):
    """`hackgap challenge ARGS` in this process."""
    return lambda *args: hackgap_cli("challenge", *args)


def test_list_shows_the_three_packs(hackgap):
    res = hackgap("list")
    assert res.returncode == 0, res.stderr
    for pack_id, title in [
        ("advieskloof", "De advieskloof / The advice gap"),
        ("doorstroom", "Doorstroom na het mbo / Routes after mbo"),
        ("uitval-eerste-jaar", "Uitval in het eerste mbo-jaar / First-year dropout in mbo"),
    ]:
        (row,) = [line for line in res.stdout.splitlines() if f" {pack_id} " in line]
        assert title in row
        assert [cell.strip() for cell in row.split("│")][3:5] == ["4", "5"]


def test_validate_passes_the_built_in_packs(hackgap):
    res = hackgap("validate")
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("ok ") == 3


BROKEN = {
    "bad-weights": "rubric.weights: the weights sum to 0.9; make them sum to 1.",
    "invalid-yaml": "challenge.yaml: not valid YAML at line 4;",
    "missing-brief": "challenge 'missing-brief', brief.md, files.brief: the file is missing",
    "unknown-column": "names column 'ouder_opleiding', which the linked analysis table lacks",
    "unknown-statistic": "fidelity[0].statistic: unknown statistic 'median_share'",
}


def test_validate_fails_each_broken_fixture_with_its_sentence(hackgap):
    paths = [str(FIXTURES / name) for name in BROKEN]
    res = hackgap("validate", "advieskloof", *paths)
    assert res.returncode == 2
    assert "ok advieskloof" in res.stdout
    lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == len(BROKEN)  # one sentence per broken pack
    for (name, sentence), line in zip(BROKEN.items(), lines, strict=True):
        assert line.startswith(f"error: challenge '{name}', ")
        assert sentence in line
    assert "Traceback" not in res.stderr


def test_validate_one_broken_pack_exits_2(hackgap):
    res = hackgap("validate", str(FIXTURES / "bad-weights"))
    assert res.returncode == 2
    assert res.stdout == ""


def test_unknown_id_is_a_sentence_not_a_traceback():
    res = process("show", "bestaat-niet")  # the process: exit code and stderr as a user sees
    assert res.returncode == 2
    assert "challenge 'bestaat-niet', challenge.yaml: no pack with this id" in res.stderr


def test_show_prints_checks_rubric_and_rules(hackgap):
    res = hackgap("show", "uitval-eerste-jaar")
    assert res.returncode == 0, res.stderr
    assert "uitval_gap_vooropleiding (key)" in res.stdout
    assert "±0.35" in res.stdout
    assert "rubric (scale 1-5)" in res.stdout
    assert "min cell count 10, round to 5, dominance n=2 k=0.9" in res.stdout


def test_schema_and_statistics_commands(hackgap):
    res = hackgap("schema")
    assert json.loads(res.stdout)["title"] == "hackgap challenge.yaml"
    res = hackgap("statistics")
    assert "share_difference_at_equal_covariates" in res.stdout


def test_render_for_an_event_with_its_own_pack(tmp_path, hackgap, hackgap_cli):
    event = tmp_path / "event"
    init = hackgap_cli("init", str(event))
    assert init.returncode == 0, init.stderr
    for name in SOURCE_FILES:
        (event / "sources" / name).write_text("x\n")
    shutil.copytree(FIXTURES / "ok-minimal", event / "challenges" / "ok-minimal")
    out = tmp_path / "out"
    res = hackgap(
        "render",
        "advieskloof",
        "--out",
        str(out),
        "--twin",
        "/srv/twins/event/v3/twin.parquet",
        "--codebook",
        "/srv/twins/event/v3/codebook.md",
        "--event",
        str(event),
    )
    assert res.returncode == 0, res.stderr
    brief = (out / "brief.md").read_text(encoding="utf-8")
    assert brief.startswith("# De advieskloof")
    assert "**Event** — start" in brief  # the title `hackgap init` gives the event
    assert "versie `v3`" in brief
    assert "| `schooladvies` | Primary-school advice for secondary education. |" in brief
    nb = nbformat.read(out / "starter.ipynb", as_version=4)
    assert "TWIN_PATH = '/srv/twins/event/v3/twin.parquet'" in nb.cells[1].source
    # The event's own pack is found through --event.
    res = hackgap("render", "ok-minimal", "--out", str(tmp_path / "own"), "--event", str(event))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "own" / "brief.md").read_text(encoding="utf-8").startswith("# Trial")
