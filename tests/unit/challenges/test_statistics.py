"""The statistics library on small hand-made tables whose answers are computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from challenges.statistics import (
    STATISTICS,
    StatisticError,
    check_params,
    evaluate,
    group_share,
    logit_coefficient,
    parse_condition,
    rate_ratio,
    share_difference,
    share_difference_at_equal_covariates,
    statistic_columns,
)

ADVICE = ["pro", "vmbo-b/k", "vmbo-gt", "vmbo-gt/havo", "havo", "havo/vwo", "vwo"]


def advice(values: list[str | None]) -> pd.Categorical:
    return pd.Categorical(values, categories=ADVICE, ordered=True)


ROWS = [
    # schooladvies, inkomen_decile, vsv, eindtoets_score, mbo_uitstroom
    ("vwo", 9, False, 548, "hbo"),  # 0
    ("havo", 8, False, 541, "onbekend"),  # 1
    ("vmbo-gt", 2, True, 529, "onbekend"),  # 2
    ("havo/vwo", 10, False, 545, "hbo"),  # 3
    ("pro", 1, True, 512, None),  # 4
    ("havo", 3, None, 541, "arbeidsmarkt"),  # 5
    ("vmbo-gt/havo", 2, False, 536, "hbo"),  # 6
    (None, 9, False, 540, "hbo"),  # 7
    ("vwo", None, True, 549, "hbo"),  # 8
    ("vmbo-b/k", 5, True, 520, "onbekend"),  # 9
]


@pytest.fixture
def pupils() -> pd.DataFrame:
    """Ten pupils with nulls; the tests count by hand from ROWS."""
    adv, inc, vsv, score, route = zip(*ROWS, strict=True)
    return pd.DataFrame(
        {
            "schooladvies": advice(list(adv)),
            "inkomen_decile": pd.array(inc, dtype="Int64"),
            "vsv": pd.array(vsv, dtype="boolean"),
            "eindtoets_score": list(score),
            "mbo_uitstroom": list(route),
        }
    )


# --- conditions -----------------------------------------------------------------------


def test_ordered_categorical_condition_uses_the_order_not_the_alphabet(pupils):
    rows = pupils.dropna(subset=["schooladvies"])
    mask = evaluate("schooladvies >= havo", rows)
    # havo-or-higher: rows 0 (vwo), 1 (havo), 3 (havo/vwo), 5 (havo), 8 (vwo).
    assert list(rows.index[mask]) == [0, 1, 3, 5, 8]
    assert list(rows.index[evaluate("schooladvies < vmbo-gt", rows)]) == [4, 9]


def test_nullable_boolean_and_numeric_conditions(pupils):
    rows = pupils.dropna(subset=["vsv", "inkomen_decile"])
    assert list(rows.index[evaluate("vsv", rows)]) == [2, 4, 9]
    assert list(rows.index[evaluate("vsv == false", rows)]) == [0, 1, 3, 6, 7]
    assert list(rows.index[evaluate("inkomen_decile <= 3", rows)]) == [2, 4, 6]


def test_in_and_not_in_lists_and_values_with_spaces():
    df = pd.DataFrame({"m": ["Nederland", "Europa (exclusief Nederland)", "Turkije"]})
    assert list(evaluate("m == Europa (exclusief Nederland)", df)) == [False, True, False]
    assert list(evaluate("m in [Turkije, Nederland]", df)) == [True, False, True]
    assert list(evaluate("m not in [Turkije]", df)) == [True, True, False]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "non-empty"),
        ("schooladvies >=", "no value"),
        ("m in Turkije", "needs a list"),
        ("1abc", "not a condition"),
    ],
)
def test_malformed_conditions_are_refused_with_a_reason(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_condition(text)


def test_ordering_an_unordered_text_column_is_an_error():
    df = pd.DataFrame({"schooladvies": ["havo", "vwo"]})
    with pytest.raises(StatisticError, match="text without an order"):
        evaluate("schooladvies >= havo", df)


def test_ordering_by_an_unknown_level_is_an_error(pupils):
    with pytest.raises(StatisticError, match="'gymnasium' is not a level of 'schooladvies'"):
        evaluate("schooladvies >= gymnasium", pupils.dropna(subset=["schooladvies"]))


def test_a_text_column_is_not_a_yes_no_condition(pupils):
    with pytest.raises(StatisticError, match="not a yes/no column"):
        evaluate("mbo_uitstroom", pupils.dropna(subset=["mbo_uitstroom"]))


# --- shares and gaps ------------------------------------------------------------------


def test_group_share_drops_rows_with_missing_values(pupils):
    # schooladvies known for 9 rows; havo+ in 5 of them.
    assert group_share(pupils, "schooladvies >= havo") == pytest.approx(5 / 9)
    # Both known: rows 0-6 and 9 (8 rows); income >= 8: rows 0, 1, 3 -> all havo+.
    assert group_share(pupils, "schooladvies >= havo", group="inkomen_decile >= 8") == 1.0


def test_group_share_where_restricts_the_population(pupils):
    # Not vsv (known): rows 0, 1, 3, 6, 7 -> uitstroom hbo, onbekend, hbo, hbo, hbo.
    assert group_share(pupils, "mbo_uitstroom == onbekend", where="vsv == false") == 0.2
    # A list of where conditions: both must hold (not vsv, income >= 9: rows 0, 3, 7).
    assert (
        group_share(pupils, "mbo_uitstroom == hbo", where=["vsv == false", "inkomen_decile >= 9"])
        == 1.0
    )


def test_share_difference_and_rate_ratio(pupils):
    # Income known and vsv known: rows 0-4, 6, 7, 9. vsv among >= 8 (0, 1, 3, 7): 0/4;
    # among <= 3 (2, 4, 6): 2/3.
    assert share_difference(pupils, "vsv", "inkomen_decile <= 3", "inkomen_decile >= 8") == (
        pytest.approx(2 / 3)
    )
    # Havo+ among >= 8 (0, 1, 3): 3/3; among <= 3 (2, 4, 5, 6): 1/4 -> ratio 4.
    assert (
        rate_ratio(pupils, "schooladvies >= havo", "inkomen_decile >= 8", "inkomen_decile <= 3")
        == 4.0
    )


def test_rate_ratio_with_an_empty_denominator_is_an_error(pupils):
    with pytest.raises(StatisticError, match="ratio is undefined"):
        rate_ratio(pupils, "vsv", "inkomen_decile <= 3", "inkomen_decile >= 8")


def test_an_empty_group_is_an_error(pupils):
    with pytest.raises(StatisticError, match="group 'inkomen_decile > 10' has no rows"):
        group_share(pupils, "vsv", group="inkomen_decile > 10")


def test_share_difference_at_equal_covariates_averages_within_strata():
    # Stratum 500-509: a = [1, 0] (0.5), b = [0] (0.0) -> gap 0.5, weight 3.
    # Stratum 510-519: a = [1] (1.0), b = [1, 1, 0] (2/3) -> gap 1/3, weight 4.
    # Stratum 520-529: only a -> left out.
    df = pd.DataFrame(
        {
            "y": [1, 0, 0, 1, 1, 1, 0, 1],
            "g": ["a", "a", "b", "a", "b", "b", "b", "a"],
            "score": [501, 505, 509, 512, 515, 518, 519, 525],
        }
    )
    df["y"] = df["y"].astype(bool)
    value = share_difference_at_equal_covariates(
        df, "y", "g == a", "g == b", strata=["score"], bins={"score": 10}
    )
    assert value == pytest.approx((0.5 * 3 + (1 / 3) * 4) / 7)
    # The crude gap differs: a 3/4, b 2/4 -> 0.25; stratifying changes the answer.
    assert share_difference(df, "y", "g == a", "g == b") == pytest.approx(0.25)


def test_share_difference_at_equal_covariates_with_two_strata_columns():
    df = pd.DataFrame(
        {
            "y": [True, False, True, True, False, False],
            "g": ["a", "b", "a", "b", "a", "b"],
            "s": ["x", "x", "y", "y", "z", "w"],
            "t": [1, 1, 2, 2, 3, 3],
        }
    )
    # Common strata (x,1): 1 - 0 = 1; (y,2): 1 - 1 = 0; equal weights -> 0.5.
    assert share_difference_at_equal_covariates(df, "y", "g == a", "g == b", ["s", "t"]) == 0.5


def test_no_common_stratum_is_an_error():
    df = pd.DataFrame({"y": [True, False], "g": ["a", "b"], "score": [500, 540]})
    with pytest.raises(StatisticError, match="no stratum"):
        share_difference_at_equal_covariates(
            df, "y", "g == a", "g == b", ["score"], bins={"score": 5}
        )


# --- logistic regression --------------------------------------------------------------


def test_logit_coefficient_matches_the_closed_form_log_odds_ratio():
    # One binary predictor: the coefficient is the log odds ratio of the 2x2 table.
    # x=1: 30 yes, 10 no; x=0: 20 yes, 40 no -> log((30/10) / (20/40)) = log 6.
    df = pd.DataFrame(
        {
            "y": [True] * 30 + [False] * 10 + [True] * 20 + [False] * 40,
            "x": [1] * 40 + [0] * 60,
        }
    )
    assert logit_coefficient(df, "y", ["x"], "x") == pytest.approx(math.log(6), abs=1e-6)


def test_logit_categorical_term_against_a_chosen_reference():
    # Same table, x as categories 'hoog'/'laag' with 'laag' as reference.
    df = pd.DataFrame(
        {
            "y": [True] * 30 + [False] * 10 + [True] * 20 + [False] * 40,
            "x": ["hoog"] * 40 + ["laag"] * 60,
        }
    )
    value = logit_coefficient(df, "y", ["x"], "x[hoog]", categorical=["x"], reference={"x": "laag"})
    assert value == pytest.approx(math.log(6), abs=1e-6)
    with pytest.raises(StatisticError, match="term 'x\\[laag\\]' is not in the model"):
        logit_coefficient(df, "y", ["x"], "x[laag]", categorical=["x"], reference={"x": "laag"})


def test_logit_recovers_a_known_slope_with_ordered_predictors():
    rng = np.random.default_rng(3)
    n = 4000
    decile = rng.integers(1, 11, n)
    y = rng.random(n) < 1 / (1 + np.exp(-(-1.0 + 0.3 * decile)))
    df = pd.DataFrame(
        {"y": y, "inkomen_decile": pd.Categorical(decile, categories=range(1, 11), ordered=True)}
    )
    # Numeric levels of an ordered categorical enter as their values: slope 0.3.
    assert logit_coefficient(df, "y", ["inkomen_decile"], "inkomen_decile") == pytest.approx(
        0.3, abs=0.05
    )


def test_logit_with_a_constant_outcome_is_an_error():
    df = pd.DataFrame({"y": [True, True, True], "x": [1.0, 2.0, 3.0]})
    with pytest.raises(StatisticError, match="does not vary"):
        logit_coefficient(df, "y", ["x"], "x")


def test_logit_with_perfect_separation_is_an_error():
    df = pd.DataFrame({"y": [False, False, False, True, True, True], "x": [1, 2, 3, 4, 5, 6]})
    with pytest.raises(StatisticError, match=r"cannot be fitted|did not converge"):
        logit_coefficient(df, "y", ["x"], "x")


def test_missing_column_is_an_error_naming_it(pupils):
    with pytest.raises(StatisticError, match="needs column\\(s\\) wijk_ses_tertiel"):
        group_share(pupils, "vsv", group="wijk_ses_tertiel == 1")


# --- parameter checks and columns -----------------------------------------------------


def test_check_params_reports_missing_unknown_and_malformed_parameters():
    problems = dict(
        check_params("share_difference", {"condition": "vsv >=", "group_a": "x", "colour": 1})
    )
    assert set(problems) == {"condition", "group_b", "colour"}
    assert "no value" in problems["condition"]
    assert "needs parameter 'group_b'" in problems["group_b"]
    assert "no parameter 'colour'" in problems["colour"]


def test_check_params_for_logit_terms_and_references():
    base = {"outcome": "vsv", "predictors": ["a", "b"], "categorical": ["b"]}
    assert check_params("logit_coefficient", {**base, "term": "a"}) == []
    assert check_params("logit_coefficient", {**base, "term": "b[x]"}) == []
    assert check_params("logit_coefficient", {**base, "term": "c"})[0][0] == "term"
    assert check_params("logit_coefficient", {**base, "term": "b"})[0][0] == "term"
    bad_ref = check_params("logit_coefficient", {**base, "term": "a", "reference": {"a": 1}})
    assert bad_ref[0][0] == "reference"


def test_statistic_columns_lists_every_column_read():
    params = {
        "condition": "schooladvies >= havo",
        "group_a": "inkomen_decile >= 8",
        "group_b": "inkomen_decile <= 3",
        "strata": ["eindtoets_score"],
        "where": ["po_schooljaar == 2019-2020"],
    }
    assert statistic_columns("share_difference_at_equal_covariates", params) == (
        "schooladvies",
        "inkomen_decile",
        "eindtoets_score",
        "po_schooljaar",
    )


def test_registry_holds_the_five_statistics():
    assert set(STATISTICS) == {
        "group_share",
        "share_difference",
        "rate_ratio",
        "share_difference_at_equal_covariates",
        "logit_coefficient",
    }


def test_logit_leaves_out_a_level_that_predicts_the_outcome_perfectly():
    # Level 'c' never has the outcome; its rows are left out, and the x[b] term is the
    # log odds ratio of the remaining 2x2 table: (30/10) / (20/40) = 6.
    df = pd.DataFrame(
        {
            "y": [True] * 30 + [False] * 10 + [True] * 20 + [False] * 40 + [False] * 15,
            "x": ["b"] * 40 + ["a"] * 60 + ["c"] * 15,
        }
    )
    value = logit_coefficient(df, "y", ["x"], "x[b]", categorical=["x"])
    assert value == pytest.approx(math.log(6), abs=1e-6)
    with pytest.raises(StatisticError, match="term 'x\\[c\\]' is infinite"):
        logit_coefficient(df, "y", ["x"], "x[c]", categorical=["x"])
