"""Precision and recall of the whole link against the demo generator's truth.

For 0%, 10%, 50% and 100% of pupils without a person number, as the link stage runs
it: data minimisation, pseudonymisation, exact link, Splink (trained on the exactly
linked pairs, or without labels by expectation-maximisation when there are too few).
Measured per school record: precision = records linked to their true person / records
linked; recall = records linked to their true person / all records (every demo pupil
is in the register). Figures measured at this size are in docs/data.md. About 2-3 s per
share on a quiet machine.
"""

from __future__ import annotations

import pytest

from flows.pipeline import linkage as lk
from flows.pipeline.minimise import needed_persons
from flows.pipeline.pseudonymise import (
    pseudonymise_columns,
    pseudonymise_persons,
    pseudonymise_school,
)

KEY = b"unit-test-key-of-at-least-32-bytes!!"
PERSONS = 30_000

# share without a person number -> (precision floor, recall floor, expected training)
FLOORS = {
    0.0: (0.999, 0.99, ""),
    0.1: (0.995, 0.98, lk.TRAINED_ON_LABELS),
    0.5: (0.995, 0.96, lk.TRAINED_ON_LABELS),
    1.0: (0.99, 0.93, lk.TRAINED_BY_EM),
}


def link_demo(share: float, persons: int = PERSONS, seed: int = 5):
    """(LinkResult, true pseudonym per school row) of a demo world linked as the stage does."""
    from flows.demodata import simulate

    world = simulate(persons, seed, no_bsn_share=share)
    school_raw = world.school.drop(columns="true_bsn")
    register, _ = needed_persons(world.persons, school_raw, margin_years=1.0)
    result = lk.link_school(
        pseudonymise_school(school_raw, KEY), pseudonymise_persons(register, KEY)
    )
    truth = pseudonymise_columns(world.school[["true_bsn"]], ["true_bsn"], KEY)["true_bsn"]
    return result, truth.to_numpy()


def precision_recall(result: lk.LinkResult, truth) -> tuple[float, float]:
    out = result.school
    linked = out["link_method"].notna().to_numpy()
    right = linked & (out["person_key"].fillna("").to_numpy() == truth)
    return right.sum() / max(linked.sum(), 1), right.sum() / len(out)


@pytest.mark.parametrize("share", sorted(FLOORS))
def test_precision_and_recall_per_share_without_person_number(share):
    result, truth = link_demo(share)
    precision, recall = precision_recall(result, truth)
    min_precision, min_recall, training = FLOORS[share]
    assert precision >= min_precision, f"precision {precision:.4f} at {share:.0%} without BSN"
    assert recall >= min_recall, f"recall {recall:.4f} at {share:.0%} without BSN"
    assert result.probabilistic.training == training
    prob = (result.school["link_method"] == lk.PROBABILISTIC).to_numpy()
    if share:
        assert prob.sum() > 0.9 * result.probabilistic.rows
        false = (result.school["person_key"].fillna("").to_numpy()[prob] != truth[prob]).sum()
        assert false <= 0.01 * prob.sum()  # the documented false-link rate
