"""Rendering packs for an event, and running every rendered starter notebook on a twin."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml

from challenges import load_pack, load_packs
from challenges.render import RenderContext, render_brief, render_notebook, write_rendered

SCHEMA_FILE = Path(__file__).parents[3] / "flows" / "schemas" / "analysis_table.yaml"
PACK_IDS = ["advieskloof", "doorstroom", "uitval-eerste-jaar"]
EVENT = {
    "event_title": "Hack the gap Groningen",
    "start": dt.datetime(2026, 11, 26, 9, 0),
    "deadline": dt.datetime(2026, 11, 27, 15, 0),
    "end": dt.datetime(2026, 11, 27, 17, 30),
    "data_version": "twin-2026-11-20",
    "codebook_url": "https://hub.example/codebook.md",
}
# The key-statistic line each starter notebook prints (value last, signed, 3 decimals).
KEY_LINE = {
    "advieskloof": "Advieskloof bij gelijke score",
    "uitval-eerste-jaar": "Uitval zonder diploma vs met",
    "doorstroom": "Uit beeld, Europa/Cariben/overig minus Nederland",
}


def _descriptions() -> dict[str, str]:
    columns = yaml.safe_load(SCHEMA_FILE.read_text(encoding="utf-8"))["columns"]
    return {name: " ".join(spec["description"].split()) for name, spec in columns.items()}


# --- briefs ---------------------------------------------------------------------------


@pytest.mark.parametrize("pack_id", PACK_IDS)
def test_brief_carries_the_event_the_data_and_the_rules(pack_id):
    pack = load_pack(pack_id)
    brief = render_brief(pack, {**EVENT, "column_descriptions": _descriptions()})
    assert brief.startswith(f"# {pack.title['nl']} · {pack.title['en']}\n")
    assert "**Hack the gap Groningen** — start 26 november 2026, 09:00 uur" in brief
    assert "submissions close\n27 November 2026, 15:00" in brief
    assert "versie `twin-2026-11-20`" in brief and "version `twin-2026-11-20`" in brief
    assert "[codebook](https://hub.example/codebook.md)" in brief
    assert pack.question["nl"] in brief and pack.question["en"] in brief
    # Every column the pack needs is described, from the analysis-table schema.
    for column in pack.columns:
        assert re.search(rf"\| `{column}` \| \S", brief), column
    # Privacy rules with the pack's output rules; every rubric criterion with its weight.
    flat = " ".join(brief.split())
    assert "minimaal **10** personen per cel" in flat and "counts **rounded to 5**" in flat
    assert "meer dan 90% van het totaal" in flat
    assert "re-identify" in flat and "herleiden" in flat
    for criterion in pack.rubric.criteria:
        assert f"| {criterion.title['en']} | {round(criterion.weight * 100)}% |" in brief
    assert "{{" not in brief and "{%" not in brief


def test_brief_without_event_dates_says_they_follow():
    brief = render_brief(load_pack("advieskloof"))
    assert "**Hack the gap**.\n" in brief
    assert "start" not in brief.split("\n")[2]


def test_render_context_rejects_unknown_keys():
    with pytest.raises(TypeError, match="twin_pth"):
        RenderContext.coerce({"twin_pth": "x"})


# --- notebooks ------------------------------------------------------------------------


def test_notebook_parameters_cell_holds_the_paths_as_python_literals():
    nb = render_notebook(
        load_pack("advieskloof"),
        {"twin_path": "/data/it's/twin.parquet", "codebook_path": "/data/codebook.md"},
    )
    (params,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    namespace: dict = {}
    exec(params.source, namespace)
    assert namespace["TWIN_PATH"] == "/data/it's/twin.parquet"
    assert namespace["CODEBOOK_PATH"] == "/data/codebook.md"
    assert nb.metadata["hackgap"]["challenge"] == "advieskloof"
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    nbformat.validate(nb)


def test_write_rendered_writes_both_files_and_no_temporaries(tmp_path):
    brief, notebook = write_rendered(load_pack("doorstroom"), tmp_path / "out", EVENT)
    assert brief.read_text(encoding="utf-8").startswith("# Doorstroom na het mbo")
    assert nbformat.read(notebook, as_version=4).metadata["hackgap"]["data_version"] == (
        "twin-2026-11-20"
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["brief.md", "starter.ipynb"]


@pytest.fixture(scope="module")
def python_kernel() -> str:
    """The venv's python3 kernel; installed into the venv if this machine lacks it."""
    from jupyter_client.kernelspec import KernelSpecManager

    if "python3" not in KernelSpecManager().find_kernel_specs():
        subprocess.run(
            [sys.executable, "-m", "ipykernel", "install", "--sys-prefix"],
            check=True,
            capture_output=True,
        )
    return "python3"


@pytest.fixture(scope="module")
def twin_dir(tmp_path_factory) -> Path:
    """A twin-shaped release from demo data: parquet, csv and a codebook, as teams get them."""
    from flows.demodata import demo_analysis_table

    directory = tmp_path_factory.mktemp("twin")
    twin = demo_analysis_table(persons=20_000, seed=7).drop(columns=["pupil_id", "link_method"])
    twin.to_parquet(directory / "twin.parquet", index=False)
    twin.to_csv(directory / "twin.csv", index=False)
    lines = ["# Codebook (test)", "", "| column | description |", "|---|---|"]
    lines += [f"| `{k}` | {v} |" for k, v in _descriptions().items() if k in twin.columns]
    (directory / "codebook.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("pack_id", PACK_IDS)
def test_rendered_starter_notebook_runs_top_to_bottom(pack_id, fmt, twin_dir, python_kernel):
    from nbclient import NotebookClient

    pack = load_pack(pack_id)
    context = {
        **EVENT,
        "twin_path": str(twin_dir / f"twin.{fmt}"),
        "codebook_path": str(twin_dir / "codebook.md"),
    }
    nb = render_notebook(pack, context)
    NotebookClient(
        nb,
        timeout=300,
        kernel_name=python_kernel,
        resources={"metadata": {"path": str(twin_dir)}},
    ).execute()

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "Synthetische tweeling twin-2026-11-20" in text
    # The codebook is shown, and a figure is drawn.
    assert any("Codebook (test)" in o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert any("image/png" in o.get("data", {}) for o in outputs)
    # The key statistic printed is the pack's own definition on the same twin.
    (line,) = [ln for ln in text.splitlines() if ln.startswith(KEY_LINE[pack_id])]
    printed = float(line.rsplit(" ", 1)[1])
    twin = pd.read_parquet(twin_dir / "twin.parquet")
    assert printed == pytest.approx(pack.key_check.compute(twin), abs=0.0006)


def test_all_builtin_packs_have_a_key_line():
    assert sorted(KEY_LINE) == sorted(p.id for p in load_packs())
