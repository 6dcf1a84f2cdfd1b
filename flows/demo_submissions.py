"""Demo submissions: one notebook per demo team, written for the demo challenges.

Each is the challenge's starter notebook (as teams receive it) plus a few analysis cells that
write release candidates to outputs/. team-noord (advieskloof) writes outputs that pass the
disclosure checks; team-zuid (uitval-eerste-jaar) also writes a fine crosstab that has small
cells on the real data, so the demo shows an output withheld with its rule. The bench
(bench/bench_rerun.py) re-runs copies of them.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

NOORD_CELLS = [
    "# Inkomensgroep x havo-advies: aantallen, afgerond op 5 (outputregels)\n"
    "import json\n"
    "from pathlib import Path\n"
    "Path('outputs').mkdir(exist_ok=True)\n"
    "counts = pd.crosstab(advice['inkomen'], advice['havo_plus'].map({True: 'havo+', "
    "False: 'lager'}))\n"
    "((counts / 5).round() * 5).astype(int).to_csv('outputs/advies_naar_inkomen.csv')\n"
    "counts",
    "# Aandeel havo+ per band van 5 eindtoetspunten, met aantallen (alleen banden >= 20)\n"
    "bands = advice.groupby('score_band')['havo_plus'].agg(share='mean', count='size')\n"
    "bands = bands[bands['count'] >= 20]\n"
    "bands['share'] = bands['share'].round(3)\n"
    "bands['count'] = ((bands['count'] / 5).round() * 5).astype(int)\n"
    "bands.to_csv('outputs/havo_plus_per_band.csv')\n"
    "bands",
    "# Logistische regressie: inkomen naast toetsscore en buurt (met vrijheidsgraden)\n"
    "import statsmodels.formula.api as smf\n"
    "data = advice.dropna(subset=['wijk_ses_tertiel']).astype({'havo_plus': int})\n"
    "data = data.astype({'inkomen_decile': float, 'wijk_ses_tertiel': float,\n"
    "                    'eindtoets_score': float})\n"
    "fit = smf.logit('havo_plus ~ eindtoets_score + inkomen_decile + wijk_ses_tertiel',\n"
    "                data=data).fit(disp=0)\n"
    "model = {'coef': {k: round(float(v), 4) for k, v in fit.params.items()},\n"
    "         'dof': int(fit.df_resid)}\n"
    "Path('outputs/logit_inkomen.json').write_text(json.dumps(model, indent=2))\n"
    "model",
]

ZUID_CELLS = [
    "# Uitval in jaar 1 naar vooropleiding: aandeel met aantallen (afgerond op 5)\n"
    "from pathlib import Path\n"
    "Path('outputs').mkdir(exist_ok=True)\n"
    "mbo = twin.dropna(subset=['mbo_uitval_jaar1', 'mbo_vooropleiding']).copy()\n"
    "mbo['uitval'] = mbo['mbo_uitval_jaar1'].astype(float)\n"
    "rates = mbo.groupby('mbo_vooropleiding', observed=True)['uitval'].agg(share='mean',\n"
    "                                                                     count='size')\n"
    "rates = rates[rates['count'] >= 20]\n"
    "rates['share'] = rates['share'].round(3)\n"
    "rates['count'] = ((rates['count'] / 5).round() * 5).astype(int)\n"
    "rates.to_csv('outputs/uitval_naar_vooropleiding.csv')\n"
    "rates",
    "# Fijn uitgesplitst: sector x herkomst x uitval. Op echte data bevat dit kleine cellen\n"
    "# (de demo laat zien dat zo'n tabel wordt tegengehouden).\n"
    "fine = pd.crosstab([mbo['mbo_sector'], mbo['migratieachtergrond']], mbo['uitval'])\n"
    "((fine / 5).round() * 5).astype(int).to_csv('outputs/uitval_sector_herkomst.csv')\n"
    "fine.head()",
]

DEMO_TEAMS = {
    "team-noord": ("advieskloof", NOORD_CELLS),
    "team-zuid": ("uitval-eerste-jaar", ZUID_CELLS),
}


def demo_notebook(challenge: str, cells: list[str], search_path: list[Path] | None = None):
    """The rendered starter notebook of `challenge` with the analysis `cells` appended."""
    from challenges import load_pack
    from challenges.render import RenderContext, render_notebook

    pack = load_pack(challenge, search_path or [])
    context = RenderContext(twin_path="../twin/twin.parquet", codebook_path="../twin/codebook.md")
    nb = render_notebook(pack, context)
    nb.cells += [nbformat.v4.new_code_cell(source) for source in cells]
    return nb


def write_demo_notebook(team: str, folder: Path, search_path: list[Path] | None = None) -> Path:
    """Write team's demo notebook into `folder` (a submission/), via a temporary name."""
    challenge, cells = DEMO_TEAMS[team]
    nb = demo_notebook(challenge, cells, search_path)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{challenge}.ipynb"
    tmp = folder / f".{challenge}.ipynb.tmp"
    nbformat.write(nb, tmp)
    tmp.replace(target)
    return target
