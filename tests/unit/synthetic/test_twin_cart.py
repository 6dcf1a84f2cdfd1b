"""Sequential CART: visit order, the leaf-size privacy floor, donor sampling, determinism,
structural nulls (the challenge statistics kept at demo size: tests/e2e/test_demo_end_to_end)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthetic.cart import CartSynthesizer, _Leaves, visit_sequence
from synthetic.errors import TwinError
from synthetic.prepare import area_columns, coarsen
from synthetic.settings import TwinSettings, leaf_floor


def _fit(schema, table, **kw) -> tuple[CartSynthesizer, pd.DataFrame]:
    settings = TwinSettings(**kw).sized(len(table))
    coarse, info = coarsen(table, schema, settings)
    frame = coarse.drop(columns=area_columns(settings, info))
    return CartSynthesizer.from_settings(schema, info, settings).fit(frame), frame


@pytest.fixture(scope="module")
def fitted(schema, small_table):
    return _fit(schema, small_table, seed=5)


def test_visit_sequence_puts_conditioning_first_identifiers_last_and_child_after_parent():
    columns = ["a", "buurt", "b", "wijk", "c"]
    order = visit_sequence(
        columns, first=["buurt", "c"], last=["a"], hierarchies=[("wijk", "buurt")]
    )
    assert order == ["c", "b", "wijk", "buurt", "a"]


def test_default_order_starts_with_the_conditioning_variables(fitted):
    cart, _frame = fitted
    assert cart.order[:3] == ["wijk_code", "inkomen_decile", "migratieachtergrond"]
    assert cart.order[-4:] == ["vsv", "geboortemaand", "po_brin", "buurt_code"]


def test_every_leaf_holds_at_least_min_leaf_real_rows(fitted):
    cart, _frame = fitted
    trees = 0
    for models in cart.models.values():
        for model in models.values():
            for tree in (model.tree, model.null_tree):
                if tree is None:
                    continue
                t = tree.tree_
                leaves = t.children_left == -1
                assert t.n_node_samples[leaves].min() >= 10
                trees += 1
    assert trees > len(cart.order)  # numerical columns with nulls carry two trees


def test_min_leaf_below_the_floor_is_a_user_error():
    with pytest.raises(TwinError, match=r"twin.min_leaf: must be at least 5"):
        TwinSettings(min_leaf=3)


def test_an_unset_leaf_floor_follows_the_table_size():
    """event.yaml's `min_leaf: auto`: 10 up to 100,000 pupils, 20 above; a set floor is kept,
    and an unsized one cannot reach a tree."""
    assert [leaf_floor(n) for n in (44_424, 100_000, 100_001, 376_000)] == [10, 10, 20, 20]
    assert TwinSettings().sized(376_000).min_leaf == 20
    assert TwinSettings().sized(3_000).min_leaf == 10
    assert TwinSettings(min_leaf=7).sized(376_000).min_leaf == 7
    with pytest.raises(ValueError, match="sized"):
        CartSynthesizer.from_settings(None, None, TwinSettings())


def test_numbers_are_drawn_from_leaf_donors_smoothed_within_the_leaf_range():
    rng = np.random.default_rng(0)
    leaf = np.repeat([1, 2], 50)
    y = np.concatenate([rng.normal(10, 1, 50), rng.normal(100, 5, 50)])
    leaves = _Leaves.build(leaf, y, nodes=3)
    draws = leaves.draw(np.repeat([1, 2], 500), np.random.default_rng(1))
    assert y[:50].min() <= draws[:500].min() and draws[:500].max() <= y[:50].max()
    assert y[50:].min() <= draws[500:].min() and draws[500:].max() <= y[50:].max()
    copied = draws[np.isin(draws, y)]  # smoothed: only values clipped to a leaf's edge
    assert len(copied) < 0.1 * len(draws)
    assert set(copied) <= {y[:50].min(), y[:50].max(), y[50:].min(), y[50:].max()}
    assert abs(draws[500:].mean() - y[50:].mean()) < 1.5


def test_same_seed_same_rows_other_seed_other_rows(schema, small_table, fitted):
    cart, frame = fitted
    again, _ = _fit(schema, small_table, seed=5)
    a, b = cart.sample(500), again.sample(500)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == list(frame.columns)
    other, _ = _fit(schema, small_table, seed=6)
    assert not other.sample(500).equals(b)


def test_fit_jobs_give_the_same_twin_in_any_order(schema, small_table, fitted):
    """The trees are fitted on real columns only: jobs run in reverse order (as on workers
    that finish in any order), the models and so the sampled rows are the same."""
    cart, frame = fitted

    def backwards(fn, data, jobs):
        return [fn(data, job) for job in reversed(jobs)][::-1]

    settings = TwinSettings(seed=5).sized(len(small_table))
    _coarse, info = coarsen(small_table, schema, settings)
    again = CartSynthesizer.from_settings(schema, info, settings).fit(frame, backwards)
    assert len(again.plan(frame)[1]) > len(again.order)  # grouped columns: several jobs
    cart.rng, again.rng = np.random.default_rng(5), np.random.default_rng(5)  # same stream
    pd.testing.assert_frame_equal(again.sample(500), cart.sample(500))


def test_a_school_is_drawn_within_the_wijk_and_rare_classes_from_leaf_donors(schema, small_table):
    """po_brin gets one tree per wijk (fit_within); a tree keeps at most max_classes classes
    and draws the rest from the real pooled donors of the row's leaf."""
    cart, frame = _fit(schema, small_table, seed=5)
    assert set(cart.models["po_brin"]) == set(frame["wijk_code"])
    twin = cart.sample(len(frame))
    real_pairs = set(map(tuple, frame[["wijk_code", "po_brin"]].values))
    assert set(map(tuple, twin[["wijk_code", "po_brin"]].dropna().values)) <= real_pairs

    by_sex, _ = _fit(schema, small_table, seed=5, max_classes=3,
                     fit_within=(("po_brin", "geslacht"),))  # fmt: skip
    for model in by_sex.models["po_brin"].values():
        assert len(model.tree.classes_) <= 3 and model.pool is not None
    drawn = by_sex.sample(len(frame))["po_brin"]
    assert drawn.nunique() == frame["po_brin"].nunique() == 12  # pooled schools drawn too
    shares = drawn.value_counts(normalize=True) - frame["po_brin"].value_counts(normalize=True)
    assert shares.abs().max() < 0.03


def test_structural_nulls_stay_structural(schema):
    """Pupils without groep 8 in the window have neither score nor advice, in the twin too."""
    from flows.demodata import demo_analysis_table

    real = demo_analysis_table(persons=20_000, seed=7)
    cart, _ = _fit(schema, real)
    twin = cart.sample(len(real))
    score_null = twin["eindtoets_score"].isna()
    advice_null = twin["schooladvies"].isna()
    assert (score_null == advice_null).all()
    assert abs(score_null.mean() - real["eindtoets_score"].isna().mean()) < 0.03
    no_mbo = twin["mbo_niveau"].isna()
    assert twin.loc[no_mbo, "mbo_uitval_jaar1"].isna().all()
