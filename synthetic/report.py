"""The twin's HTML report: real vs twin distributions and pair trends, one self-contained file.

Only aggregates are drawn: per-column counts in bins/categories with cells under
`min_cell` suppressed (not drawn) on the real side, and a heatmap of SDMetrics pair-trend
scores. No real row is ever plotted; plots are inline SVG.
"""

from __future__ import annotations

import html
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from synthetic.gate import GateResult
from synthetic.prepare import Coarsening
from synthetic.schema import TableSchema

plt.rcParams["svg.hashsalt"] = "hackgap"  # stable ids: the same twin gives the same report


def _svg(fig) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _label(value) -> str | None:
    """One label per category whatever the dtype: 5, 5.0 and "5" are the same level."""
    if value is None or pd.isna(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _counts(real: pd.Series, twin: pd.Series, spec, info: Coarsening):
    if spec.type == "numerical":
        t = pd.to_numeric(twin, errors="coerce").dropna()
        r = pd.to_numeric(real, errors="coerce").dropna()
        lo, hi = (float(t.min()), float(t.max())) if len(t) else (0.0, 1.0)
        edges = np.linspace(lo, hi if hi > lo else lo + 1, 21)
        rc, _ = np.histogram(r.clip(lo, hi), edges)
        tc, _ = np.histogram(t, edges)
        labels = [f"{e:g}" for e in edges[:-1]]
    else:
        levels = [_label(v) for v in info.allowed.get(spec.name, [])]
        r = real.astype(object).map(_label)
        t = twin.astype(object).map(_label)
        rc = np.array([(r == v).sum() for v in levels])
        tc = np.array([(t == v).sum() for v in levels])
        labels = levels
    return labels, rc.astype(float), tc.astype(float)


def column_plot(real: pd.Series, twin: pd.Series, spec, info: Coarsening, min_cell: int) -> str:
    """Bars of shares per bin/category, real (small cells suppressed) beside twin."""
    labels, rc, tc = _counts(real, twin, spec, info)
    suppressed = (rc > 0) & (rc < min_cell)
    rc[suppressed] = np.nan
    r_share = rc / max(np.nansum(rc), 1)
    t_share = tc / max(tc.sum(), 1)
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(5.2, 2.4))
    ax.bar(x - 0.2, np.nan_to_num(r_share), 0.4, label="real (aggregated)", color="#4c72b0")
    ax.bar(x + 0.2, t_share, 0.4, label="twin", color="#dd8452")
    step = max(1, len(labels) // 10)
    ax.set_xticks(
        x[::step], [str(lbl)[:12] for lbl in labels[::step]], rotation=45, ha="right", fontsize=7
    )
    ax.set_title(
        spec.name + (f" ({int(suppressed.sum())} small cells hidden)" if suppressed.any() else ""),
        fontsize=9,
    )
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7)
    return _svg(fig)


def pair_heatmap(columns: list[str], pairs: list[tuple[str, str, float]]) -> str:
    """SDMetrics pair-trend scores (1 = the twin keeps the pair's relationship)."""
    index = {c: i for i, c in enumerate(columns)}
    grid = np.full((len(columns), len(columns)), np.nan)
    for a, b, score in pairs:
        if a in index and b in index:
            grid[index[a], index[b]] = grid[index[b], index[a]] = score
    fig, ax = plt.subplots(figsize=(8, 7))
    image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(columns)), columns, rotation=90, fontsize=7)
    ax.set_yticks(range(len(columns)), columns, fontsize=7)
    ax.set_title("Column pair trends: twin vs real (SDMetrics score)", fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.7)
    return _svg(fig)


def _attack_table(gate: GateResult) -> str:
    """anonymeter's risks with their 95% intervals (figures only)."""
    if not gate.attacks:
        return "<h2>Privacy attacks (anonymeter)</h2><p>Not run for this twin.</p>"
    rows = "".join(
        f'<tr class="attack"><td>{html.escape(r.name)}</td><td>{r.risk:.3f}</td>'
        f"<td>{r.ci[0]:.3f} - {r.ci[1]:.3f}</td><td>{r.attack_rate:.3f}</td>"
        f"<td>{'n/a' if r.control_rate is None else f'{r.control_rate:.3f}'}</td>"
        f"<td>{r.baseline_rate:.3f}</td><td>{r.n_attacks}</td></tr>"
        for r in gate.attacks
    )
    return (
        "<h2>Privacy attacks (anonymeter)</h2>"
        "<p>Each attack used this twin against real pupils it was fitted on and against a"
        " holdout it never saw (the control, same size); the risk is the success beyond the"
        " control's.</p><table><tr><th>attack</th><th>risk</th><th>95% interval</th>"
        "<th>success on training</th><th>success on control</th><th>random guess</th>"
        f"<th>attacks</th></tr>{rows}</table>"
    )


def render_report(
    event: str,
    version: str,
    schema: TableSchema,
    real: pd.DataFrame,
    twin: pd.DataFrame,
    info: Coarsening,
    gate: GateResult,
    min_cell: int = 10,
) -> str:
    """The whole report as one HTML string."""
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(c.name)}</td>"
        f"<td>{'-' if c.name.startswith('fidelity ') else f'{c.value:.4g}'}</td>"
        f"<td>{esc(c.threshold)}</td>"
        f"<td class={'pass' if c.passed else 'fail'}>{'pass' if c.passed else 'FAIL'}</td>"
        f"<td>{esc(c.detail)}</td></tr>"
        for c in gate.checks
    )
    plots = "".join(
        f'<figure class="plot" data-column="{esc(spec.name)}">'
        f"{column_plot(real[spec.name], twin[spec.name], spec, info, min_cell)}</figure>"
        for spec in schema.synthesised
    )
    heat = ""
    if gate.quality is not None:
        cols = [s.name for s in schema.synthesised]
        heat = f'<figure class="plot heatmap">{pair_heatmap(cols, gate.quality.pairs)}</figure>'
        q = gate.quality
        quality = (
            f"<p>SDMetrics quality <b>{q.overall:.3f}</b> (column shapes {q.column_shapes:.3f},"
            f" pair trends {q.pair_trends:.3f}); diagnostic {q.diagnostic:.3f}.</p>"
        )
    else:
        quality = ""
    attacks = _attack_table(gate)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Synthetic twin {esc(event)} {esc(version)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;font-size:13px}}
.pass{{color:#1a7f37}}.fail{{color:#cf222e;font-weight:bold}}
.grid{{display:flex;flex-wrap:wrap;gap:8px}}figure.plot{{margin:0}}svg{{max-width:100%;height:auto}}
</style></head><body>
<h1>Synthetic twin <code>{esc(event)}</code> {esc(version)}</h1>
<p>{len(twin):,} invented rows. Real data appear only as aggregated counts per bin or category,
with cells under {min_cell} hidden; no real row is plotted.</p>
<h2>Release gate</h2>
<table><tr><th>check</th><th>figure</th><th>required</th><th>result</th><th>detail</th></tr>
{rows}</table>
{quality}
{attacks}
<h2>Distributions: real vs twin</h2>
<div class="grid">{plots}</div>
<h2>Pair trends</h2>
{heat}
</body></html>
"""
