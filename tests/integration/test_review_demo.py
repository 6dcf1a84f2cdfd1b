"""The demo submissions on a demo-sized table: team-noord's outputs pass the checks, team-zuid's
fine crosstab is withheld for its small cells, and `hackgap review status --json` shows it."""

from __future__ import annotations

import io
import json
import os

import pytest
from typer.testing import CliRunner

from flows import review
from flows.event import load_event
from sandboxes import layout

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture
def demo_event(tmp_path, store, s3_server, monkeypatch):
    import yaml

    from flows.demodata import demo_analysis_table

    if os.geteuid() != 0:
        pytest.fail("the review integration tests need root (accounts, network namespaces)")
    for key, value in s3_server.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    for name in ("municipal", "cbs", "postcodes", "school"):
        (tmp_path / f"{name}.csv").write_text("x\n")
    doc = {
        "name": "demo-review",
        "title": "Demo review",
        "start": "2026-01-01T09:00",
        "deadline": "2099-01-02T09:00",
        "end": "2099-01-02T12:00",
        "sources": {w: {"path": f"{w}.csv", "format": "x"}
                    for w in ("municipal", "cbs", "postcodes", "school")},
        "challenges": ["advieskloof", "uitval-eerste-jaar", "doorstroom"],
        "teams": [
            {"name": "team-noord", "members": ["anna"], "open_data_only": False},
            {"name": "team-zuid", "members": ["chaima"], "open_data_only": False},
        ],
        "organisers": ["org-olga"],
        "review": {"time_limit": 300},
    }  # fmt: skip
    (tmp_path / "event.yaml").write_text(yaml.safe_dump(doc))
    real = demo_analysis_table(persons=20_000, seed=7)
    twin = demo_analysis_table(persons=20_000, seed=8).drop(columns=["pupil_id", "link_method"])
    for bucket, prefix, table in (
        ("open", "twins/demo-review/v-1", twin),
        ("secure", "demo-review/linked", real),
    ):
        buf = io.BytesIO()
        table.to_parquet(buf, index=False)
        name = "twin.parquet" if bucket == "open" else "analysis.parquet"
        store.publish(bucket, prefix, {name: buf.getvalue(), "codebook.md": b"# c\n"})
    return load_event(tmp_path)


def test_demo_step_leaves_checked_outputs_in_the_airlock(demo_event, store):
    from rich.console import Console

    from flows.commands.review import app, demo_step

    out = Console(record=True, width=200)
    demo_step(demo_event.root, out)
    status = {s["team"]: s for s in review.review_status(demo_event)}
    noord, zuid = status["team-noord"], status["team-zuid"]
    assert noord["challenge"] == "advieskloof" and zuid["challenge"] == "uitval-eerste-jaar"
    assert noord["rerun"]["status"] == "ok" and zuid["rerun"]["status"] == "ok"
    assert noord["verification"]["status"] == "ok"
    verdicts = {o["name"]: (o["verdict"], o["status"]) for o in noord["outputs"]}
    assert verdicts == {
        "advies_naar_inkomen.csv": ("safe", "pending"),
        "havo_plus_per_band.csv": ("safe", "pending"),
        "logit_inkomen.json": ("safe", "pending"),
    }
    small = next(o for o in zuid["outputs"] if o["name"] == "uitval_sector_herkomst.csv")
    assert small["verdict"] == "unsafe" and "below 10" in small["rule"]
    view = json.loads((layout.judge_view_dir(demo_event.workdir, "team-noord") / "view.json")
                      .read_text())  # fmt: skip
    assert view["challenge"] == "advieskloof"
    assert {o["real_status"] for o in view["outputs"]} == {"pending"}
    result = CliRunner().invoke(app, ["status", str(demo_event.root), "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert [s["team"] for s in printed] == ["team-noord", "team-zuid"]
    assert printed[0]["submission"]["sha256"] == noord["submission"]["sha256"]

    # an organiser releases one output through the CLI; a team member cannot
    approve = [
        "airlock",
        str(demo_event.root),
        "--team",
        "team-noord",
        "--output",
        "advies_naar_inkomen.csv",
        "--approve",
        "--comment",
        "counts >= 10, rounded",
    ]
    result = CliRunner().invoke(app, [*approve, "--reviewer", "anna"])
    assert result.exit_code != 0 and "not an organiser" in str(result.exception)
    result = CliRunner().invoke(app, [*approve, "--reviewer", "org-olga"])
    assert result.exit_code == 0 and "released" in result.output, result.output
    view_dir = layout.judge_view_dir(demo_event.workdir, "team-noord")
    assert (view_dir / "released" / "advies_naar_inkomen.csv").is_file()
