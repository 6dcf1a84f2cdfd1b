"""A team workspace: briefs and starters rendered once, the twin read-only and refreshed."""

from __future__ import annotations

import datetime as dt

from challenges import load_packs
from challenges.render import RenderContext
from sandboxes import layout
from sandboxes.workspace import fill, has_notebook, twin_version


def _twin(tmp_path, text: str):
    src = tmp_path / f"src-{text}"
    src.mkdir()
    for name in ("twin.parquet", "twin.csv", "codebook.md"):
        (src / name).write_text(f"{name} {text}")
    return src


def test_fill_is_idempotent_keeps_team_edits_and_swaps_the_twin(tmp_path):
    packs = load_packs(["advieskloof"])
    ws = tmp_path / "ws"
    ctx = RenderContext(start=dt.datetime(2026, 11, 26, 9), twin_path=str(ws / "twin/twin.parquet"))
    assert fill(
        ws, packs=packs, context=ctx, twin_src=_twin(tmp_path, "v1"), twin_version_label="v1"
    )
    starter = ws / "challenges" / "advieskloof" / "starter.ipynb"
    assert str(ws / "twin/twin.parquet") in starter.read_text()
    assert (ws / "challenges" / "advieskloof" / "brief.md").is_file()
    assert layout.outputs_dir(ws).is_dir() and not has_notebook(ws)
    twin = ws / layout.TWIN_DIR
    assert twin.stat().st_mode & 0o777 == 0o555
    assert all(p.stat().st_mode & 0o777 == 0o444 for p in twin.iterdir())
    assert ws.stat().st_mode & 0o777 == 0o700

    starter.write_text("edited by the team")
    assert not fill(
        ws, packs=packs, context=ctx, twin_src=tmp_path / "src-v1", twin_version_label="v1"
    )
    assert fill(
        ws, packs=packs, context=ctx, twin_src=_twin(tmp_path, "v2"), twin_version_label="v2"
    )
    assert twin_version(ws) == "v2"
    assert (twin / "twin.csv").read_text() == "twin.csv v2"
    assert starter.read_text() == "edited by the team"
    (layout.submission_dir(ws) / "mine.ipynb").write_text("{}")
    assert has_notebook(ws)
