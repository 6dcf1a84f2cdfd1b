"""The planted effects of effects.py are recoverable from the generated (truth) table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from flows.demodata import EFFECTS, describe, simulate, truth_analysis_table
from flows.demodata.effects import HAVO_OR_HIGHER

pytestmark = pytest.mark.slow  # 60,000 persons plus model fits


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return truth_analysis_table(simulate(60_000, 2026))


def test_advice_gap_slopes_recovered_by_a_logit(table):
    g = table[table["schooladvies"].notna() & table["inkomen_decile"].notna()]
    y = g["schooladvies"].isin(HAVO_OR_HIGHER).astype(float)
    x = pd.DataFrame(
        {
            "score": (g["eindtoets_score"].astype(float) - 535) / 10,
            "income": g["inkomen_decile"].astype(float) - 5.5,
            "ses": g["wijk_ses_tertiel"].astype(float) - 2,
        }
    )
    fit = sm.Logit(y, sm.add_constant(x)).fit(disp=0)
    # tolerance: 4 standard errors (a fixed seed, so this is a check of the model, not luck)
    for term, true in (
        ("score", EFFECTS.advice_score),
        ("income", EFFECTS.advice_income),
        ("ses", EFFECTS.advice_ses),
    ):
        assert abs(fit.params[term] - true) < 4 * fit.bse[term], (term, fit.params[term])
    assert fit.params["income"] > 2 * fit.bse["income"]  # the gap is visible at equal score
    assert fit.params["ses"] > 2 * fit.bse["ses"]  # neighbourhood adds beyond income


def test_score_itself_rises_with_income(table):
    g = table[table["eindtoets_score"].notna() & table["inkomen_decile"].notna()]
    score = g["eindtoets_score"].astype(float)
    dec = g["inkomen_decile"].astype(int)
    assert score[dec >= 9].mean() - score[dec <= 2].mean() > 4  # ~0.9 points per decile


def test_vsv_rate_ratio_lowest_vs_highest_ses_tertile_about_two(table):
    rates = table.groupby("wijk_ses_tertiel", observed=True)["vsv"].mean().astype(float)
    ratio = rates.loc[1] / rates.loc[3]
    assert 1.4 < ratio < 3.0, rates.to_dict()


def test_mbo_dropout_higher_without_prior_diploma_and_for_bbl(table):
    m = table[table["mbo_niveau"].notna()]
    by_prior = m.groupby("mbo_vooropleiding", observed=True)["mbo_uitval_jaar1"].mean()
    assert by_prior["geen diploma"] > 1.8 * by_prior["vmbo-gt"]
    by_route = m.groupby("mbo_leerweg", observed=True)["mbo_uitval_jaar1"].mean()
    assert by_route["BBL"] > by_route["BOL"]
    assert 0.01 < m["mbo_switch_jaar1"].astype(float).mean() < 0.2


def test_moving_out_after_mbo_depends_on_migration_background(table):
    d = table[table["mbo_diploma"].fillna(False).astype(bool)]
    gone = (d["mbo_uitstroom"] == "onbekend").astype(float)
    nl = gone[d["migratieachtergrond"] == "Nederland"].mean()
    eu = gone[d["migratieachtergrond"] == "Europa (exclusief Nederland)"].mean()
    assert eu > 1.3 * nl
    assert set(d["mbo_uitstroom"].dropna()) >= {"hbo", "arbeidsmarkt", "onbekend"}


def test_hbo_transfer_rises_with_income_among_mbo4_graduates_who_stay(table):
    d = table[
        (table["mbo_niveau"] == "mbo-4")
        & table["mbo_diploma"].fillna(False).astype(bool)
        & table["mbo_uitstroom"].isin(["hbo", "arbeidsmarkt"])
        & table["inkomen_decile"].notna()
    ]
    y = (d["mbo_uitstroom"] == "hbo").astype(float)
    x = sm.add_constant(pd.DataFrame({"income": d["inkomen_decile"].astype(float) - 5.5}))
    fit = sm.Logit(y, x).fit(disp=0)
    assert fit.params["income"] > 0
    assert abs(fit.params["income"] - EFFECTS.hbo_income) < 4 * fit.bse["income"]


def test_describe_states_the_gap_in_words():
    text = describe()
    assert "Advice gap" in text and "%" in text
    assert np.isfinite(EFFECTS.advice_latent_mean(535, 5.5, 2))
