"""The twin report opens in headless Chromium and shows its plots."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_report_renders_with_visible_plots(tmp_path: Path, chromium):
    import importlib.util
    import sys

    from playwright.sync_api import sync_playwright

    from flows.synthesize import load_schema
    from synthetic.gate import GateContext, run_gate
    from synthetic.report import render_report
    from synthetic.settings import TwinSettings

    spec = importlib.util.spec_from_file_location(
        "synthetic_test_tables", Path(__file__).parents[1] / "unit" / "synthetic" / "conftest.py"
    )
    tables = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = tables
    spec.loader.exec_module(tables)
    schema = load_schema()
    real = tables.make_table(1500, seed=7)
    ctx = GateContext.build(real, schema, TwinSettings())
    twin = tables.make_table(1500, seed=8).drop(columns=["pupil_id", "link_method"])
    gate = run_gate(ctx, twin)
    page_file = tmp_path / "report.html"
    page_file.write_text(render_report("demo", "v-test", schema, real, twin, ctx.info, gate))
    with sync_playwright() as p:
        browser = p.chromium.launch(**chromium)
        page = browser.new_page()
        page.goto(page_file.as_uri())
        assert page.title() == "Synthetic twin demo v-test"
        plots = page.locator("figure.plot svg")
        assert plots.count() == len(schema.synthesised) + 1
        for i in (0, plots.count() - 1):
            box = plots.nth(i).bounding_box()
            assert plots.nth(i).is_visible() and box and box["width"] > 100 and box["height"] > 50
        assert page.locator("figure.heatmap svg").is_visible()
        assert "pupil_id" not in page.content()
        browser.close()
